"""Names of a run's per-step files (``checkpoints/step_0001000.pt``, ``samples/step_0001000.png``).

Torch-free, so the report and compare commands read run directories without importing torch.
"""

from __future__ import annotations

import re
from pathlib import Path

_STEP = re.compile(r"step_(\d+)")


def step_file(step: int, suffix: str) -> str:
    """The file name of ``step``'s file with ``suffix`` (".pt", ".png", ".txt")."""
    return f"step_{step:07d}{suffix}"


def step_of(path: Path) -> int | None:
    """The step in a run file's name (``step_0001000.pt``, ``samples/step_0001000.png``), or None."""
    match = _STEP.fullmatch(Path(path).stem)
    return int(match.group(1)) if match else None
