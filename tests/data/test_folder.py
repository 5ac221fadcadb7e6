"""Folder layout (Oxford-102 / CUB as unpacked)."""

from __future__ import annotations

import pickle

import pytest
import torch

from ganreg.data import DataConfig, build_dataset, make_loader
from ganreg.data.folder import FolderDataset
from ganreg.errors import DataError


def cfg(root, **kw) -> DataConfig:
    return DataConfig(source="folder", path=str(root), image_size=32, **kw)


def test_oxford_layout_loads(oxford_folder, helpers) -> None:
    train = build_dataset(cfg(oxford_folder), "train")
    test = build_dataset(cfg(oxford_folder), "test")
    assert len(train) == 8 and len(test) == 2
    assert train.class_names == test.class_names == ["class_00001", "class_00002", "class_00003", "class_00004"]
    assert not set(train.labels()) & set(test.labels())
    assert len(train.captions_of(0)) == 10 and train.captions_of(0)[0].startswith("a class_00001 flower")
    for i in range(len(train)):
        item = train[i]
        assert item["image"].shape == (3, 32, 32) and "embedding" not in item and "attributes" not in item
        assert helpers.nearest_class(item["image"]) == train.class_names[item["label"]]
        assert item["caption"] in train.captions_of(i)
        assert helpers.nearest_class(item["wrong_image"]) != train.class_names[item["label"]]
    assert train.embedding_dim is None and train.attributes is None
    with pytest.raises(DataError, match="valid"):
        build_dataset(cfg(oxford_folder), "valid")


def test_cub_layout_with_class_subfolders(tmp_path, helpers) -> None:
    root = helpers.write_folder(
        tmp_path / "cub",
        {"class_00001": 2, "class_00002": 2, "class_00003": 2},
        flat_images=False,
        images_dir="CUB_200_2011/images",
        split_files={
            "trainclasses.txt": ["class_00001", "class_00002"],
            "valclasses.txt": ["class_00003"],
            "testclasses.txt": ["class_00003"],
        },
    )
    ds = build_dataset(cfg(root), "train")  # images dir found automatically
    assert len(ds) == 4 and ds.image_path(0).parent.name == "class_00001"
    assert len(build_dataset(cfg(root), "valid")) == 2


def test_random_class_subset(tmp_path, helpers) -> None:
    classes = {f"class_{k:05d}": 1 for k in range(1, 5)}
    root = helpers.write_folder(tmp_path / "f", classes)  # no split files at all
    with pytest.raises(DataError, match="split file"):
        build_dataset(cfg(root), "train")
    c = cfg(root, class_split="random", num_classes=2, test_classes=1, seed=3)
    tr, te = build_dataset(c, "train"), build_dataset(c, "test")
    assert len(set(tr.labels())) == 2 and len(set(te.labels())) == 1
    assert not {tr.class_names[k] for k in tr.labels()} & {te.class_names[k] for k in te.labels()}
    again = build_dataset(c, "train")
    assert [again.class_names[k] for k in again.labels()] == [tr.class_names[k] for k in tr.labels()]
    other = [
        build_dataset(cfg(root, class_split="random", num_classes=2, test_classes=1, seed=s), "train") for s in range(6)
    ]
    assert len({tuple(o.class_names[k] for k in o.labels()) for o in other}) > 1


def test_subset_of_split_file_classes(oxford_folder) -> None:
    ds = build_dataset(cfg(oxford_folder, num_classes=2), "train")
    assert len(set(ds.labels())) == 2
    with pytest.raises(DataError, match="at most 3"):
        build_dataset(cfg(oxford_folder, num_classes=4), "train")


def test_empty_caption_file_is_named(oxford_folder) -> None:
    bad = oxford_folder / "text_c10" / "class_00002" / "image_00004.txt"
    bad.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(DataError, match="image_00004.txt is empty") as err:
        build_dataset(cfg(oxford_folder), "train")
    assert err.value.fix


def test_missing_split_file(oxford_folder) -> None:
    (oxford_folder / "testclasses.txt").unlink()
    with pytest.raises(DataError, match="testclasses.txt") as err:
        build_dataset(cfg(oxford_folder), "test")
    assert "class_split" in err.value.fix
    assert len(build_dataset(cfg(oxford_folder), "train")) == 8  # train still fine


def test_missing_things_are_named(oxford_folder) -> None:
    (oxford_folder / "jpg" / "image_00002.jpg").unlink()
    with pytest.raises(DataError, match="no image for caption file .*image_00002.txt"):
        build_dataset(cfg(oxford_folder), "train")
    (oxford_folder / "jpg" / "image_00002.JPEG").write_bytes(b"any")  # found by stem, any case
    assert len(build_dataset(cfg(oxford_folder), "train")) == 8
    with pytest.raises(DataError, match="dataset folder not found"):
        build_dataset(cfg(oxford_folder / "nope"), "train")
    (oxford_folder / "trainvalclasses.txt").write_text("class_00001\nclass_09999\n")
    with pytest.raises(DataError, match="class_09999"):
        build_dataset(cfg(oxford_folder), "train")


def test_undecodable_image_is_named(oxford_folder) -> None:
    (oxford_folder / "jpg" / "image_00003.jpg").write_bytes(b"not an image at all")
    ds = build_dataset(cfg(oxford_folder), "train")
    with pytest.raises(DataError, match=r"image_00003.jpg \(item 2\)"):
        for i in range(len(ds)):
            ds._image_array(i)


def test_undecodable_image_is_named_from_an_evaluation_loader_worker(oxford_folder) -> None:
    """Real-image features for FID are read by worker processes: their error is the data's, not a traceback."""
    import torch

    from ganreg.metrics.reference import extract_dataset

    class MeanColour(torch.nn.Module):
        num_features = 3

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            return images.float().mean(dim=(2, 3))

    (oxford_folder / "jpg" / "image_00003.jpg").write_bytes(b"not an image at all")
    ds = build_dataset(cfg(oxford_folder), "train")
    with pytest.raises(DataError, match=r"^cannot decode image .*image_00003.jpg") as caught:
        extract_dataset(MeanColour(), ds, torch.device("cpu"), batch_size=2, num_workers=1)
    assert "Traceback" not in caught.value.message and caught.value.fix


def test_evaluation_classifier_data_names_a_broken_split_rather_than_dropping_it(oxford_folder) -> None:
    from ganreg.metrics.classifier import load_labelled_images

    assert load_labelled_images(cfg(oxford_folder), 16).splits == ["train", "test"]
    (oxford_folder / "testclasses.txt").write_text("class_00004\nclass_09999\n")
    with pytest.raises(DataError, match="class_09999"):
        load_labelled_images(cfg(oxford_folder), 16)


def test_index_rebuilt_when_captions_change(oxford_folder) -> None:
    ds = build_dataset(cfg(oxford_folder), "train")
    assert ds.captions_of(0)[0].startswith("a class_00001")
    (oxford_folder / "text_c10" / "class_00001" / "image_00001.txt").write_text("a brand new caption here\n")
    ds = build_dataset(cfg(oxford_folder), "train")
    assert ds.captions_of(0) == ["a brand new caption here"]


def test_workers_and_flip(oxford_folder) -> None:
    ds = FolderDataset(oxford_folder, "train", image_size=32, flip=True, seed=5)
    clone = pickle.loads(pickle.dumps(ds))
    assert torch.equal(clone[1]["image"], ds[1]["image"])
    flipped = 0
    for e in range(8):
        ds.set_epoch(e)
        img = ds[0]["image"]
        ref = torch.from_numpy(ds._image_array(0).copy()).permute(2, 0, 1).float().sub(127.5).div(127.5)
        flipped += int(not torch.equal(img, ref))
        assert torch.equal(img, ref) or torch.equal(img, ref.flip(-1))
    assert 0 < flipped < 8
    loader = make_loader(ds, batch_size=4, num_workers=2)
    loader.set_epoch(0)
    batches = list(loader)
    assert len(batches) == 2 and batches[0]["images"].shape == (4, 3, 32, 32)


def _py2_pickle(names: list[str]) -> bytes:
    """A list of str as Python 2's cPickle (protocol 2) writes it: SHORT_BINSTRING items, as StackGAN /
    AttnGAN's filenames.pickle files are."""
    return b"\x80\x02](" + b"".join(b"U" + bytes([len(n)]) + n.encode("ascii") for n in names) + b"e."


def test_dfgan_download_layout_text_and_filenames_pickles(tmp_path, helpers) -> None:
    """DF-GAN / AttnGAN's data/birds: captions in text/, splits as train|test/filenames.pickle (Python 2 and 3)."""
    import shutil

    root = helpers.write_folder(
        tmp_path / "birds", {"class_00001": 2, "class_00002": 2, "class_00003": 2},
        flat_images=False, images_dir="CUB_200_2011/images",
    )
    shutil.move(root / "text_c10", root / "text")
    (root / "train").mkdir()
    (root / "test").mkdir()
    stems = {c: sorted(p.stem for p in (root / "text" / c).iterdir()) for c in ("class_00001", "class_00002", "class_00003")}
    (root / "train" / "filenames.pickle").write_bytes(
        _py2_pickle([f"{c}/{s}" for c in ("class_00001", "class_00002") for s in stems[c]])
    )
    (root / "test" / "filenames.pickle").write_bytes(pickle.dumps([f"class_00003/{s}" for s in stems["class_00003"]], protocol=2))
    train, test = build_dataset(cfg(root), "train"), build_dataset(cfg(root), "test")
    assert (len(train), len(test)) == (4, 2)
    assert {train.class_names[i] for i in train.labels()} == {"class_00001", "class_00002"}
    assert train.layout.captions.name == "text" and train[0]["caption"].startswith("a class_00001")
    (root / "test" / "filenames.pickle").write_bytes(pickle.dumps(["no_class_folder"], protocol=2))
    with pytest.raises(DataError, match=r"test/filenames.pickle lists bare image names \(no classes\) but .*train/"):
        build_dataset(cfg(root), "test")
    (root / "test" / "filenames.pickle").write_bytes(pickle.dumps([f"class_00003/{stems['class_00003'][0]}", "bare"]))
    with pytest.raises(DataError, match="without their class folder"):
        build_dataset(cfg(root), "test")
    (root / "test" / "filenames.pickle").write_bytes(pickle.dumps({"a": pytest.approx}, protocol=2))
    with pytest.raises(DataError, match="refusing to load"):
        build_dataset(cfg(root), "test")


def test_dfgan_flowers_layout_images_are_found(tmp_path, helpers) -> None:
    """DF-GAN's flowers: images under oxford-102-flowers/images/ (found without data.images_dir)."""
    import shutil

    root = helpers.write_folder(tmp_path / "flowers", {"class_00001": 2, "class_00002": 2},
                                images_dir="oxford-102-flowers/images",
                                split_files={"trainvalclasses.txt": ["class_00001", "class_00002"]})
    shutil.move(root / "text_c10", root / "text")
    ds = build_dataset(cfg(root), "train")
    assert len(ds) == 4 and ds.image_path(0).parent.name == "images" and ds[0]["image"].shape == (3, 32, 32)
