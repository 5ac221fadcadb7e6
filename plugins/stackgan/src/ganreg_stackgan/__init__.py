"""StackGAN Stage-I for ganreg (entry point ``stackgan``)."""
