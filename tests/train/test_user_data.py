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


def _tiny_cub(root: Path, layout: str = "reed") -> Path:
    """CUB_200_2011/{images/<class>/, images.txt, bounding_boxes.txt} with landscape images like the real ones,
    and the captions and splits of Reed et al.'s archive (text_c10/ + class lists) or of DF-GAN's download
    (text/ + train|test/filenames.pickle)."""
    import pickle

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    classes = ["001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross"]
    names, boxes = [], []
    for n in range(1, 13):
        cls = classes[n % 3]
        (root / "CUB_200_2011" / "images" / cls).mkdir(parents=True, exist_ok=True)
        (root / "text_c10" / cls).mkdir(parents=True, exist_ok=True)
        stem = f"{cls.split('.')[1]}_{n:04d}"
        arr = rng.integers(0, 256, size=(75, 100, 3), dtype=np.uint8)
        Image.fromarray(arr).save(root / "CUB_200_2011" / "images" / cls / f"{stem}.jpg")
        (root / "text_c10" / cls / f"{stem}.txt").write_text(f"this bird {n} has a {cls[4:]} beak\nsmall bird\n")
        names.append(f"{n} {cls}/{stem}.jpg\n")
        boxes.append(f"{n} {10 + n}.0 12.0 {40 + n}.0 35.0\n")
    (root / "CUB_200_2011" / "images.txt").write_text("".join(names))
    (root / "CUB_200_2011" / "bounding_boxes.txt").write_text("".join(boxes))
    if layout == "reed":
        (root / "trainvalclasses.txt").write_text(f"{classes[0]}\n{classes[1]}\n")
        (root / "testclasses.txt").write_text(f"{classes[2]}\n")
        return root
    (root / "text_c10").rename(root / "text")
    for split, keep in (("train", classes[:2]), ("test", classes[2:])):
        (root / split).mkdir()
        listed = [n.split()[1].removesuffix(".jpg") for n in names if n.split()[1].split("/")[0] in keep]
        (root / split / "filenames.pickle").write_bytes(pickle.dumps(listed, protocol=2))
    return root


@pytest.mark.parametrize(("recipe_name", "layout"), [("dfgan_cub.json", "reed"), ("dfgan_cub_damsm.json", "dfgan")])
def test_bundled_cub_recipes_run_on_a_cub_folder(
    recipe_name: str, layout: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damsm_pickle  # type: ignore[no-untyped-def]
) -> None:
    """`ganreg run recipes/dfgan_cub*.json` as a user runs them (bounding-box crop, Resize + RandomCrop, flip;
    DAMSM weights and vocabulary; Reed's and DF-GAN's data layouts), shrunk by --set so they take seconds."""
    import torch

    from ganreg import plugins
    from ganreg.cli import cli
    from ganreg.data import DataConfig, build_dataset
    from ganreg.text_encoders.lstm import LSTMTextEncoder
    from ganreg.text_encoders.params import LSTMParams

    plugins.reset_registry()
    monkeypatch.delenv("GANREG_NO_PLUGIN_AUTOLOAD", raising=False)
    root = _tiny_cub(tmp_path / "birds", layout)
    sets = [
        f"data.path={root}", "data.image_size=64", "train.batch_size=4", "train.epochs=null", "train.steps=2",
        "generator.params.nf=4", "discriminator.params.nf=4", "text_encoder.params.hidden=16",
        "text_encoder.params.embedding_dim=8", "text_encoder.pretrain.epochs=1", "eval.every_epochs=null",
        "samples.captions=2", "samples.per_caption=2",
    ]
    if "damsm" in recipe_name:  # DAMSM-format files for these captions (the real ones are 300/256 wide)
        cfg = DataConfig(source="folder", path=str(root))
        wordtoix = damsm_pickle(tmp_path / "captions_DAMSM.pickle", *(build_dataset(cfg, s).all_captions() for s in ("train", "test")))
        state = LSTMTextEncoder(len(wordtoix), LSTMParams(hidden=16, embedding_dim=8)).state_dict()
        state["encoder.weight"] = state.pop("embed.weight")
        torch.save(state, tmp_path / "text_encoder200.pth")
        sets += [f"text_encoder.weights={tmp_path / 'text_encoder200.pth'}",
                 f"text_encoder.vocabulary={tmp_path / 'captions_DAMSM.pickle'}"]
    _run_two_steps(cli, recipe_name, sets, tmp_path / "run")


def _run_two_steps(cli, recipe_name: str, sets: list[str], out: Path) -> None:  # type: ignore[no-untyped-def]
    """`ganreg run recipes/<recipe_name> --set ...` (the sets shrink it to 2 steps) must finish."""
    args = ["run", str(Path(__file__).parents[2] / "recipes" / recipe_name), "--out", str(out), "--device", "cpu"]
    for s in sets:
        args += ["--set", s]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "finished at step 2/2" in res.output


def test_bundled_coco_recipe_runs_on_a_coco_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damsm_pickle  # type: ignore[no-untyped-def]
) -> None:
    """`ganreg run recipes/dfgan_coco.json` on COCO as AttnGAN / DF-GAN ship it (images/, text/ with 5 captions,
    train/ and test/ filenames.pickle of bare names), with DAMSM-format weights and vocabulary, shrunk by --set."""
    import pickle

    import numpy as np
    import torch
    from PIL import Image

    from ganreg import plugins
    from ganreg.cli import cli
    from ganreg.text_encoders.lstm import LSTMTextEncoder
    from ganreg.text_encoders.params import LSTMParams

    plugins.reset_registry()
    monkeypatch.delenv("GANREG_NO_PLUGIN_AUTOLOAD", raising=False)
    root, rng = tmp_path / "coco", np.random.default_rng(0)
    captions: dict[str, list[str]] = {"train": [], "test": []}
    for split, prefix, count in (("train", "COCO_train2014", 6), ("test", "COCO_val2014", 2)):
        names = [f"{prefix}_{i:012d}" for i in range(count)]
        for folder in ("images", "text", split):
            (root / folder).mkdir(parents=True, exist_ok=True)
        for name in names:
            Image.fromarray(rng.integers(0, 256, size=(40, 48, 3), dtype=np.uint8)).save(root / "images" / f"{name}.jpg")
            lines = [f"a {('red', 'blue')[len(name) % 2]} bus number {j} on a street" for j in range(5)]
            (root / "text" / f"{name}.txt").write_text("\n".join(lines) + "\n")
            captions[split] += lines
        (root / split / "filenames.pickle").write_bytes(pickle.dumps(names, protocol=2))
    wordtoix = damsm_pickle(root / "captions_DAMSM.pickle", captions["train"], captions["test"])
    state = LSTMTextEncoder(len(wordtoix), LSTMParams(hidden=16, embedding_dim=8)).state_dict()
    state["encoder.weight"] = state.pop("embed.weight")
    torch.save(state, tmp_path / "text_encoder100.pth")
    sets = [
        f"data.path={root}", "data.image_size=64", "train.batch_size=4", "train.epochs=null", "train.steps=2",
        "generator.params.nf=4", "discriminator.params.nf=4", "text_encoder.params.hidden=16",
        "text_encoder.params.embedding_dim=8", f"text_encoder.weights={tmp_path / 'text_encoder100.pth'}",
        f"text_encoder.vocabulary={root / 'captions_DAMSM.pickle'}", "samples.captions=2", "samples.per_caption=2",
    ]
    _run_two_steps(cli, "dfgan_coco.json", sets, tmp_path / "run")
    sample_rows = (tmp_path / "run" / "samples" / "step_0000002.txt").read_text()
    assert "(held out)" in sample_rows and "bus number" in sample_rows


def test_a_broken_test_split_stops_the_run_and_a_missing_one_does_not(tmp_path: Path, make_recipe) -> None:  # type: ignore[no-untyped-def]
    """Without a test split a run trains without held-out rows; with a broken one (a class listed that is not
    there) it must not silently do the same, scoring its "held-out" evaluation on training classes."""
    from ganreg.errors import DataError
    from ganreg.train.setup import prepare_data

    root = _tiny_cub(tmp_path / "cub")
    over = {"data": {"source": "folder", "path": str(root), "image_size": 32, "crop": "none"}}
    assert prepare_data(make_recipe(**over)).test is not None
    (root / "testclasses.txt").write_text("003.Sooty_Albatross\n004.Groove_billed_Ani\n")
    with pytest.raises(DataError, match="004.Groove_billed_Ani"):
        prepare_data(make_recipe(**over))
    (root / "testclasses.txt").unlink()
    assert prepare_data(make_recipe(**over)).test is None


@pytest.mark.parametrize("captions", ["files", "table"])
def test_own_captioned_images_without_classes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, captions: str) -> None:
    """`ganreg run recipes/dfgan.json` on a folder of photo.jpg + photo.txt pairs (or of photos and one
    metadata.csv, Hugging Face's imagefolder layout), as a user first tries their own images: it trains (the text encoder pretrained to tell which image each caption describes), `ganreg eval`
    refuses the class-based metrics with the fix and computes the others, and a recipe evaluating with the
    classifier during training is refused before anything runs."""
    import json

    import numpy as np
    from PIL import Image

    from ganreg import plugins
    from ganreg.cli import cli
    from ganreg.errors import UserError

    plugins.reset_registry()
    monkeypatch.delenv("GANREG_NO_PLUGIN_AUTOLOAD", raising=False)
    root = tmp_path / "mine"
    root.mkdir()
    rng = np.random.default_rng(0)
    rows = ["file_name,text"]
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, size=(30, 40, 3), dtype=np.uint8)).save(root / f"IMG_{i:04d}.jpg")
        caption = f"a {('red', 'blue')[i % 2]} thing number {i}"
        if captions == "files":
            (root / f"IMG_{i:04d}.txt").write_text(f"{caption}\na photo\n")
        else:
            rows += [f"IMG_{i:04d}.jpg,{caption}", f"IMG_{i:04d}.jpg,a photo"]
    if captions == "table":
        (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    recipe = str(Path(__file__).parents[2] / "recipes" / "dfgan.json")
    shrink = [
        f"data.path={root}", "data.source=folder", "data.image_size=32", "train.batch_size=4", "train.steps=2",
        "train.max_minutes=null", "generator.params.nf=4", "discriminator.params.nf=4", "text_encoder.params.hidden=16",
        "text_encoder.params.embedding_dim=8", "samples.captions=2", "samples.per_caption=2",
    ]
    sets = [a for s in shrink for a in ("--set", s)]
    runner = CliRunner()
    res = runner.invoke(cli, ["run", recipe, "--out", str(tmp_path / "run"), "--device", "cpu", *sets])
    assert res.exit_code == 0, res.output
    assert "finished at step 2/2" in res.output
    assert "to predict their image (the data has no classes)" in " ".join(res.output.split())  # as it really is

    res = runner.invoke(cli, ["eval", str(tmp_path / "run"), "--samples", "8"])  # `ganreg` turns it into exit code 2
    assert isinstance(res.exception, UserError) and "no classes" in str(res.exception)
    assert "--extractor inception" in str(res.exception)
    assert not (tmp_path / "run" / "eval.json").exists()
    res = runner.invoke(cli, ["eval", str(tmp_path / "run"), "--samples", "8", "--metrics", "diversity"])
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "run" / "eval.json").read_text())["metrics"]
    assert metrics["diversity_pixels"] > 0 and "diversity" not in metrics  # no attributes: no real reference

    res = runner.invoke(cli, ["validate", recipe, *sets, "--set", "eval.every_epochs=1", "--set", 'eval.metrics=["fid"]'])
    assert isinstance(res.exception, UserError) and "eval.metrics fid" in str(res.exception)
    assert '["diversity"]' in str(res.exception)
    res = runner.invoke(cli, ["validate", recipe, *sets, "--set", "eval.every_epochs=1", "--set", 'eval.metrics=["diversity"]'])
    assert res.exit_code == 0, res.output
