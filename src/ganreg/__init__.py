"""ganreg: a plugin-based registry of GAN components for text-to-image synthesis.

Kept import-light on purpose: ``import ganreg.ops`` must work without the
rest of the stack (pydantic, h5py) so kernels can be tested in isolation, and
``import ganreg`` stays instant: the Python API below is imported on first use
(:mod:`ganreg.api` shows it in use).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "run": "ganreg.api",
    "RunOutcome": "ganreg.train.cli_run",
    "load_run": "ganreg.generate",
    "TrainedRun": "ganreg.generate",
    "evaluate_run": "ganreg.metrics.evaluate",
    "EvalOptions": "ganreg.metrics.evaluate",
    "read_metrics": "ganreg.runfiles",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'ganreg' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
