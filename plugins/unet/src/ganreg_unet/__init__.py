"""Text-conditional U-Net discriminator and its CutMix term for ganreg (entry point ``unet``)."""
