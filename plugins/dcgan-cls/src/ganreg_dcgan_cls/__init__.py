"""GAN-INT-CLS components for ganreg (plugin ``dcgan_cls``).

Reference: Reed et al. 2016, "Generative Adversarial Text to Image Synthesis"
(ICML), as re-implemented in PyTorch by aelnouby/Text-to-Image-Synthesis.
"""

__version__ = "0.1.0"
