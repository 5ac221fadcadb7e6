"""HDF5 files in the seed projects' layout."""

from __future__ import annotations

import os
import pickle
import shutil

import h5py
import numpy as np
import pytest
import torch

from ganreg.data import DataConfig, Vocabulary, build_dataset, make_loader
from ganreg.data.hdf5 import HDF5Dataset, image_name
from ganreg.errors import DataError


def test_seed_converter_file_loads(seed_hdf5, helpers) -> None:
    path = seed_hdf5()
    train = build_dataset(DataConfig(source="hdf5", path=str(path), image_size=32), "train")
    assert len(train) == 11  # images, not caption groups
    assert train.embedding_dim == 1024
    assert train.class_names == sorted(helpers.CLASS_COLOURS)  # every split's classes
    assert {train.class_names[k] for k in train.labels()} == {"class_00001", "class_00002", "class_00003"}
    with h5py.File(path, "r") as f:
        groups = {k: f["train"][k] for k in f["train"]}
        for i in range(len(train)):
            item = train[i]
            assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
            assert item["embedding"].shape == (1024,) and item["embedding"].dtype == torch.float32
            assert not item["caption"].endswith("\n")
            assert len(train.captions_of(i)) == 5
            assert helpers.nearest_class(item["image"]) == train.class_names[item["label"]]
            # the embedding is the one stored with the chosen caption
            match = [
                g
                for g in groups.values()
                if g["txt"][()].decode().rstrip("\n") == item["caption"]
                and image_name(g.name.split("/")[-1]) == image_name(train.item_key(i).split("/")[-1])
            ]
            assert match and any(np.array_equal(g["embeddings"][()], item["embedding"].numpy()) for g in match)
    valid = build_dataset(DataConfig(source="hdf5", path=str(path), image_size=32), "valid")
    assert len(valid) == 2 and valid.split == "valid"


def test_grey_rgba_cmyk_become_rgb(seed_hdf5, helpers) -> None:
    path = seed_hdf5(grey={"image_00001"}, rgba_png={"image_00002"}, cmyk={"image_00005"})
    ds = HDF5Dataset(path, "train", image_size=48)
    for i in range(len(ds)):
        img = ds[i]["image"]
        assert img.shape == (3, 48, 48)
    grey = ds[0]["image"]
    assert torch.allclose(grey[0], grey[1], atol=1e-6) and torch.allclose(grey[1], grey[2], atol=1e-6)
    assert helpers.nearest_class(ds[1]["image"]) == "class_00001"  # RGBA kept its colour
    assert helpers.nearest_class(ds[4]["image"]) == "class_00002"  # CMYK too


def test_wrong_image_always_from_another_class(seed_hdf5, helpers) -> None:
    # classes with 1 image and with many: the original loader's bug showed with same-class draws
    layout = {"train": {"class_00001": 12, "class_00002": 1, "class_00003": 2}}
    ds = HDF5Dataset(seed_hdf5(layout=layout), "train", image_size=32)
    for epoch in range(6):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            item = ds[i]
            assert item["wrong_label"] != item["label"]
            assert helpers.nearest_class(item["wrong_image"]) != ds.class_names[item["label"]]
            assert helpers.nearest_class(item["wrong_image"]) == ds.class_names[item["wrong_label"]]


def test_single_class_split_explains(seed_hdf5, helpers) -> None:
    ds = HDF5Dataset(seed_hdf5(layout={"train": {"class_00001": 3}}), "train", image_size=32)
    with pytest.raises(DataError, match="only one class"):
        ds[0]


def test_truncated_file_names_the_file(seed_hdf5, tmp_path, helpers) -> None:
    good = seed_hdf5()
    bad = tmp_path / "truncated.h5"
    data = good.read_bytes()
    for cut in (len(data) // 2, 1000):
        bad.write_bytes(data[:cut])
        with pytest.raises(DataError, match="truncated.h5") as err:
            ds = HDF5Dataset(bad, "train", image_size=32)
            for i in range(len(ds)):
                ds[i]
        assert "corrupt" in (err.value.fix or "") and "locked" not in err.value.message  # HDF5 says "sblock"


def test_not_hdf5_and_missing(tmp_path, helpers) -> None:
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"this is not an HDF5 file" * 10)
    with pytest.raises(DataError, match="junk.h5"):
        HDF5Dataset(junk, "train")
    # a JSON file or an image given as the HDF5 file is named as what it is not, not as a corrupt download
    for name, content in (("captions.json", b'{"a.jpg": "a red bird"}'), ("photo.jpg", b"\xff\xd8\xff" + b"\0" * 4000)):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(DataError) as err:
            HDF5Dataset(tmp_path / name, "train")
        assert err.value.message == f"{tmp_path / name} is not an HDF5 file" and "data.source folder" in (err.value.fix or "")
    with pytest.raises(DataError, match="not found"):
        HDF5Dataset(tmp_path / "missing.h5", "train")
    empty = tmp_path / "empty.h5"
    with h5py.File(empty, "w") as f:
        f.create_group("other")
    with pytest.raises(DataError, match="train/valid/test"):
        HDF5Dataset(empty, "train")


@pytest.mark.skipif(os.environ.get("HDF5_USE_FILE_LOCKING", "").upper() == "FALSE", reason="HDF5 file locking is off here")
def test_a_locked_file_is_named_as_locked_not_corrupt(seed_hdf5) -> None:
    """A writer holding the file (or NFS / Lustre without locks) was reported as "truncated or corrupt:
    re-download it": advice that deletes good data."""
    import subprocess
    import sys

    path = seed_hdf5()
    code = "import sys, time, h5py; f = h5py.File(sys.argv[1], 'a'); print('open', flush=True); time.sleep(60)"
    writer = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "open"  # another process holds it
        with pytest.raises(DataError) as err:
            HDF5Dataset(path, "train")
    finally:
        writer.kill()
        writer.wait()
    assert "it is locked" in err.value.message and "HDF5_USE_FILE_LOCKING=FALSE" in (err.value.fix or "")
    assert "corrupt" not in (err.value.fix or "")


def test_a_file_system_without_locks_is_named_as_such(seed_hdf5, monkeypatch: pytest.MonkeyPatch) -> None:
    """HDF5 1.10-1.14 (h5py 3.x wheels) says "file locking disabled on this file system" on NFS or Lustre."""
    path = seed_hdf5()

    def no_locks(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError("Unable to synchronously open file (file locking disabled on this file system (use "
                      "HDF5_USE_FILE_LOCKING environment variable to override), errno = 38)")

    monkeypatch.setattr(h5py, "File", no_locks)
    with pytest.raises(DataError) as err:
        HDF5Dataset(path, "train")
    assert "it is locked" in err.value.message and "HDF5_USE_FILE_LOCKING=FALSE" in (err.value.fix or "")


def test_undecodable_image_names_file_and_item(tmp_path, helpers) -> None:
    path = tmp_path / "broken.h5"
    helpers.write_seed_hdf5(path, {"train": {"class_00001": 2, "class_00002": 2}})
    with h5py.File(path, "a") as f:
        for k in list(f["train"]):
            if k.startswith("image_00002_"):
                del f["train"][k]["img"]
                f["train"][k].create_dataset("img", data=np.void(b"garbage"))
    ds = HDF5Dataset(path, "train", image_size=32)
    with pytest.raises(DataError, match=r"broken.h5:train/image_00002_0/img") as err:
        ds[1]
    assert "corrupt" in err.value.fix


def test_missing_split_and_class_subsets(seed_hdf5, helpers) -> None:
    layout = {"train": {"class_00001": 2, "class_00002": 2, "class_00003": 2}, "test": {"class_00004": 2}}
    path = seed_hdf5(layout=layout)
    with pytest.raises(DataError, match="no 'valid' split"):
        HDF5Dataset(path, "valid")
    sub = HDF5Dataset(path, "train", num_classes=2, seed=1)
    assert len(set(sub.labels())) == 2 and len(sub) == 4
    cfg = DataConfig(source="hdf5", path=str(path), class_split="random", num_classes=3, test_classes=1, seed=4)
    tr, te = build_dataset(cfg, "train"), build_dataset(cfg, "test")
    assert len(set(tr.labels())) == 3 and len(set(te.labels())) == 1
    assert not set(tr.labels()) & set(te.labels())
    assert len(tr) + len(te) == 8
    with pytest.raises(DataError, match="at most 3"):
        HDF5Dataset(path, "train", num_classes=5)


def test_index_cached_and_invalidated(seed_hdf5, ganreg_cache, helpers) -> None:
    path = seed_hdf5()
    HDF5Dataset(path, "train")
    assert list((ganreg_cache / "hdf5-index").glob("*.json"))
    # rewrite the file with other contents: the cached index must not be reused
    helpers.write_seed_hdf5(path, {"train": {"class_00001": 1, "class_00002": 1}})
    assert len(HDF5Dataset(path, "train")) == 2


def test_pickle_and_workers(seed_hdf5, helpers) -> None:
    ds = HDF5Dataset(seed_hdf5(), "train", image_size=32)
    ds[0]  # opens the file in this process
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._h5 is None and torch.equal(clone[2]["image"], ds[2]["image"])
    vocab = Vocabulary.build(ds.all_captions())
    out = []
    for workers in (0, 2):
        loader = make_loader(ds, batch_size=4, vocab=vocab, num_workers=workers, seed=0)
        loader.set_epoch(1)
        out.append(list(loader))
    for a, b in zip(*out, strict=True):
        assert torch.equal(a["images"], b["images"]) and torch.equal(a["embeddings"], b["embeddings"])
        assert a["embeddings"].shape == (4, 1024)


def test_worker_error_keeps_message(tmp_path, helpers) -> None:
    path = tmp_path / "w.h5"
    helpers.write_seed_hdf5(path, {"train": {"class_00001": 2, "class_00002": 2}})
    with h5py.File(path, "a") as f:
        for k in list(f["train"]):
            del f["train"][k]["img"]
            f["train"][k].create_dataset("img", data=np.void(b"garbage"))
    ds = HDF5Dataset(path, "train", image_size=32)
    loader = make_loader(ds, batch_size=2, num_workers=1)
    with pytest.raises(DataError) as err:
        next(iter(loader))
    assert err.value.message.startswith("cannot decode image") and "w.h5:train/" in err.value.message
    assert err.value.fix and "Traceback" not in str(err.value)


def test_copy_of_file_reads_same(seed_hdf5, tmp_path, helpers) -> None:
    path = seed_hdf5()
    copy = tmp_path / "copy.hdf5"
    shutil.copy(path, copy)
    a, b = HDF5Dataset(path, "test", image_size=32), HDF5Dataset(copy, "test", image_size=32)
    assert a.all_captions() == b.all_captions() and torch.equal(a[1]["image"], b[1]["image"])


def test_groups_without_caption_suffix_and_missing_fields(tmp_path, helpers) -> None:
    """One group per image keyed by the bare name (another converter's habit) still groups right."""
    path = tmp_path / "bare.h5"
    str_dt = h5py.special_dtype(vlen=str)
    with h5py.File(path, "w") as f:
        split = f.create_group("train")
        for n, cls in enumerate(["class_00001", "class_00002", "class_00001"], start=1):
            name = f"image_{n:05d}"
            g = split.create_group(name)
            g.create_dataset("name", data=name)
            g.create_dataset("img", data=np.void(helpers.encode(helpers.class_image(cls, n))))
            g.create_dataset("class", data=cls)
            g.create_dataset("txt", data=np.array(f"caption of {name}\n").astype(object), dtype=str_dt)
    ds = HDF5Dataset(path, "train", image_size=32)
    assert len(ds) == 3 and ds.embedding_dim is None and "embedding" not in ds[0]
    assert ds.captions_of(2) == ["caption of image_00003"]
    ds.close()
    with h5py.File(path, "a") as f:
        del f["train"]["image_00002"]["class"]
    with pytest.raises(DataError, match=r"bare.h5:train/image_00002 lacks class"):
        HDF5Dataset(path, "train")
