"""The recipe's data section."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ganreg.data import DataConfig, build_dataset
from ganreg.errors import DataError


def test_defaults_and_validation() -> None:
    c = DataConfig()
    assert c.source == "shapes" and c.image_size == 64 and c.max_words == 18
    with pytest.raises(ValidationError, match="path is required"):
        DataConfig(source="hdf5")
    with pytest.raises(ValidationError, match="path is required"):
        DataConfig(source="folder")
    with pytest.raises(ValidationError):
        DataConfig(image_size=16)
    with pytest.raises(ValidationError):
        DataConfig(imagesize=64)  # extra keys are forbidden
    with pytest.raises(ValidationError, match="num_classes and test_classes"):
        DataConfig(source="hdf5", path="x.h5", class_split="random", num_classes=3)
    c = DataConfig(source="folder", path="x", split_files={"test": "mytest.txt"})
    assert c.split_files == {"test": ["mytest.txt"]}
    schema = DataConfig.model_json_schema()
    assert schema["properties"]["source"]["description"]


def test_build_dataset_errors(tmp_path) -> None:
    with pytest.raises(DataError, match="unknown split"):
        build_dataset(DataConfig(num_images=48), "training")
    with pytest.raises(DataError, match="not found"):
        build_dataset(DataConfig(source="hdf5", path=str(tmp_path / "none.h5")), "train")


def test_shapes_class_subsets() -> None:
    c = DataConfig(num_images=96, image_size=32, num_classes=5, test_classes=2)
    tr, te = build_dataset(c, "train"), build_dataset(c, "test")
    assert len(set(tr.labels())) == 5 and len(set(te.labels())) == 2
    assert not set(tr.labels()) & set(te.labels())


@pytest.mark.parametrize(("path", "source"), [("my/photos", "folder"), ("flowers.hdf5", "hdf5")])
def test_a_path_with_the_builtin_source_is_refused_not_ignored(path: str, source: str) -> None:
    """`--set data.path=...` without data.source trained on the built-in shapes, silently."""
    with pytest.raises(ValidationError, match=f"data.source is 'shapes'.*--set data.source={source}"):
        DataConfig(path=path)


def test_the_cache_follows_ganreg_cache_then_xdg_cache_home(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A cluster's small home quota: XDG_CACHE_HOME pointed at scratch storage was ignored."""
    from ganreg.data._util import default_cache_dir, resolve_cache_dir

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("GANREG_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "ganreg"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")  # the XDG spec ignores a relative one
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "ganreg"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "scratch"))
    assert default_cache_dir() == tmp_path / "scratch" / "ganreg"
    monkeypatch.setenv("GANREG_CACHE", "~/mine")
    assert default_cache_dir() == tmp_path / "home" / "mine"
    assert resolve_cache_dir(str(tmp_path / "recipe")) == tmp_path / "recipe"
