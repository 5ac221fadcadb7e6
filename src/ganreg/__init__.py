"""ganreg: a plugin-based registry of GAN components for text-to-image synthesis.

Kept import-light on purpose: ``import ganreg.ops`` must work without the
rest of the stack (pydantic, h5py) so kernels can be tested in isolation.
"""

__version__ = "0.1.0"
