"""Model-agnostic GAN losses for ganreg (entry point ``losses``): they use only the component
interfaces (``Discriminator.features`` / ``logits``, ``Generator``), so they work with any
registered generator and discriminator."""

__version__ = "0.1.0"
