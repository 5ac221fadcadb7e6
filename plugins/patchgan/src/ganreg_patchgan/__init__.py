"""Text-conditional PatchGAN discriminator for ganreg (entry point ``patchgan``)."""
