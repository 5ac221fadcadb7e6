"""The profiling script that ``gpu_check.sh`` runs: kept working on the CPU, so a lent GPU's scarce time is
not lost to a broken script."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "profile_train_step.py"


def test_profile_script_splits_a_step_into_categories(tmp_path: Path) -> None:
    out = tmp_path / "profile.txt"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--steps", "1", "--rows", "5", "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = out.read_text()
    total = float(re.search(r"time per step: ([\d.]+) ms", report).group(1))  # type: ignore[union-attr]
    rows = re.findall(r"^  (.+?)\s+([\d.]+) ms\s+([\d.]+) %$", report, flags=re.M)
    labels = {label.strip() for label, _, _ in rows}
    assert {"convolution", "copies and casts"} <= labels  # a DF-GAN step has both
    assert abs(sum(float(ms) for _, ms, _ in rows) - total) < 0.05 * total + 0.1
    assert abs(sum(float(pct) for _, _, pct in rows) - 100.0) < 1.0
    assert "grouped by input shapes" in report and "aten::convolution" in report
