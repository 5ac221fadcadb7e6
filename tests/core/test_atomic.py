"""Atomic writes: complete or absent, with a normal file's permissions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from ganreg.atomic import atomic_dir, atomic_path, atomic_save, atomic_write_text


@pytest.fixture
def umask_022():  # type: ignore[no-untyped-def]
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_written_files_get_the_umask_mode_not_mkstemps_0600(tmp_path: Path, umask_022) -> None:  # type: ignore[no-untyped-def]
    atomic_write_text(tmp_path / "a.json", "{}\n")
    atomic_save({"w": torch.ones(2)}, tmp_path / "ckpt" / "latest.pt")
    with atomic_dir(tmp_path / "folder") as tmp:
        (tmp / "x.txt").write_text("x")
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "ckpt" / "latest.pt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "folder").stat().st_mode & 0o777 == 0o755
    assert torch.load(tmp_path / "ckpt" / "latest.pt", weights_only=True)["w"].tolist() == [1.0, 1.0]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "recipe.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    with pytest.raises(Exception, match="pickle"):  # AttributeError or PicklingError, by Python version
        atomic_save({"f": lambda: 0}, target)  # torch.save cannot pickle a lambda: fails mid-write
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recipe.json"]


def test_a_file_in_the_way_is_a_user_error_and_still_an_oserror(tmp_path: Path) -> None:
    """Outputs name it (exit 2); best-effort cache writes that skip an unmakeable folder (``suppress(OSError)``)
    keep skipping it."""
    from ganreg.atomic import make_folder
    from ganreg.errors import UserError

    (tmp_path / "afile").write_text("x")
    with pytest.raises(UserError, match="afile is a file"):
        make_folder(tmp_path / "afile" / "run")
    with pytest.raises(OSError):
        atomic_write_text(tmp_path / "afile" / "cache" / "x.json", "{}")
