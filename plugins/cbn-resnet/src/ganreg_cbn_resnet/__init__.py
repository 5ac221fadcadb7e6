"""Conditional-BatchNorm ResNet generator and projection discriminator for ganreg (entry point ``cbn_resnet``)."""
