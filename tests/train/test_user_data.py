"""Training on a user's own data, as written by `ganreg data make`: the seed
projects' HDF5 layout with precomputed embeddings, and the folder layout."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from ganreg.cli_data import data
from ganreg.train.trainer import start_or_resume


@pytest.mark.parametrize("fmt", ["hdf5", "folder"])
def test_train_on_exported_dataset(fmt: str, tmp_path: Path, registry, make_recipe) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / ("shapes.h5" if fmt == "hdf5" else "shapes")
    res = CliRunner().invoke(
        data, ["make", "shapes", "--out", str(out), "--size", "32", "--count", "96", "--format", fmt, "--captions", "2"]
    )
    assert res.exit_code == 0, res.output
    over = {"data": {"source": fmt, "path": str(out), "image_size": 32}, "train.steps": 2}
    if fmt == "hdf5":  # 1024-d embeddings stored with each caption, as Reed's char-CNN-RNN files
        over["text_encoder"] = {"name": "precomputed", "mode": "frozen"}
    recipe = make_recipe(**over)
    trainer = start_or_resume(recipe, registry, tmp_path / "run", "cpu", resume=False)
    assert trainer.fit() == "finished"
    assert trainer.data.context.text_embedding_dim == (1024 if fmt == "hdf5" else None)
    assert (tmp_path / "run" / "samples" / "step_0000002.png").is_file()
