"""Optional TensorBoard logging (recipe switch ``eval.tensorboard``): scalars and sample grids.

TensorBoard is not a dependency of ganreg; asking for it without the package
installed is a user error with the fix, not a crash mid-run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ganreg.errors import UserError


class TensorBoardLogger:
    """Writes event files under ``log_dir`` (``tensorboard --logdir RUN/tensorboard``)."""

    def __init__(self, log_dir: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise UserError(
                "the recipe asks for TensorBoard logging (eval.tensorboard) but tensorboard is not installed",
                "pip install tensorboard, or set eval.tensorboard=false",
            ) from None
        self.log_dir = Path(log_dir)
        self.writer: Any = SummaryWriter(log_dir=str(self.log_dir))

    def log_scalars(self, step: int, values: dict[str, float]) -> None:
        """One scalar per key (``eval/fid``, ``d/total``, ...) at ``step``."""
        for key, value in values.items():
            if isinstance(value, (int, float)):
                self.writer.add_scalar(key, float(value), global_step=int(step))
        self.writer.flush()

    def log_image(self, step: int, path: Path, tag: str = "samples") -> None:
        """An image file (a sample grid PNG) at ``step``."""
        import numpy as np
        from PIL import Image

        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"))
        self.writer.add_image(tag, arr, global_step=int(step), dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


_LOGGERS: dict[Path, TensorBoardLogger] = {}


def logger_for_run(run_dir: Path) -> TensorBoardLogger:
    """One logger per run directory (``RUN/tensorboard``), shared by every caller in the process."""
    key = Path(run_dir).resolve()
    if key not in _LOGGERS:
        _LOGGERS[key] = TensorBoardLogger(key / "tensorboard")
    return _LOGGERS[key]
