"""The training stream: uint8 images that the trainer's conversion turns into exactly the dataset's
float images, the same batches with persistent workers as without, across epochs and a resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ganreg.data import Vocabulary, build_dataset
from ganreg.data._util import to_unit_range
from ganreg.data.config import DataConfig
from ganreg.train.stream import BatchStream


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    cache = tmp_path_factory.mktemp("stream-cache")
    return build_dataset(DataConfig(source="shapes", image_size=32, num_images=96, cache_dir=str(cache)), "train")


def _vocab(dataset) -> Vocabulary:  # type: ignore[no-untyped-def]
    return Vocabulary.build(dataset.all_captions())


def _take(stream: BatchStream, n: int) -> list[dict]:
    return [stream.next() for _ in range(n)]


def test_stream_images_are_uint8_and_convert_to_the_dataset_images(dataset) -> None:  # type: ignore[no-untyped-def]
    stream = BatchStream(dataset, 8, seed=1, vocab=_vocab(dataset), max_words=18)
    batch = stream.next()
    assert batch["images"].dtype == torch.uint8 and batch["wrong_images"].dtype == torch.uint8
    dataset.set_epoch(0)
    for row, index in enumerate(batch["index"].tolist()[:3]):
        item = dataset[(0, index)]
        assert item["image"].dtype == torch.float32  # the dataset itself is unchanged
        torch.testing.assert_close(to_unit_range(batch["images"][row]), item["image"], rtol=0, atol=0)
        torch.testing.assert_close(to_unit_range(batch["wrong_images"][row]), item["wrong_image"], rtol=0, atol=0)


def test_persistent_workers_give_the_same_batches_across_epochs_and_a_resume(dataset) -> None:  # type: ignore[no-untyped-def]
    vocab = _vocab(dataset)
    per_epoch = len(dataset) // 8
    steps = per_epoch * 2 + 3  # crosses two epoch boundaries
    plain = _take(BatchStream(dataset, 8, seed=2, vocab=vocab, max_words=18), steps)
    workers = BatchStream(dataset, 8, seed=2, vocab=vocab, max_words=18, num_workers=2)
    with_workers = _take(workers, steps)
    for a, b in zip(plain, with_workers, strict=True):
        assert torch.equal(a["images"], b["images"]) and torch.equal(a["wrong_images"], b["wrong_images"])
        assert a["captions"] == b["captions"]
    resumed = BatchStream(dataset, 8, seed=2, vocab=vocab, max_words=18, num_workers=2)
    resumed.load_state({"epoch": 1, "batch": 2})
    for a, b in zip(plain[per_epoch + 2 :], _take(resumed, steps - per_epoch - 2), strict=True):
        assert torch.equal(a["images"], b["images"]) and a["captions"] == b["captions"]


def test_without_wrong_images_the_batches_keep_their_images_and_captions(dataset) -> None:  # type: ignore[no-untyped-def]
    vocab = _vocab(dataset)
    full = _take(BatchStream(dataset, 8, seed=4, vocab=vocab, max_words=18), 3)
    lean = _take(BatchStream(dataset, 8, seed=4, vocab=vocab, max_words=18, wrong_images=False), 3)
    for a, b in zip(full, lean, strict=True):
        assert "wrong_images" not in b and "wrong_labels" not in b
        assert torch.equal(a["images"], b["images"]) and a["captions"] == b["captions"]
        assert torch.equal(a["tokens"], b["tokens"]) and torch.equal(a["labels"], b["labels"])


@pytest.mark.parametrize(("losses", "wrong"), [
    ([{"name": "dfgan:hinge"}, {"name": "dfgan:hinge_generator"}], False),
    ([{"name": "matching_bce", "params": {"wrong_weight": 0.0}}, {"name": "generator_bce"}], False),
    ([{"name": "matching_bce", "params": {"wrong_weight": 0.5}}, {"name": "generator_bce"}], True),
])
def test_the_trainer_loads_wrong_images_only_for_losses_that_read_them(
    losses, wrong: bool, make_recipe, registry, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    from ganreg.train.trainer import start_or_resume

    trainer = start_or_resume(make_recipe(losses=losses, **{"train.steps": 1}), registry, tmp_path / "run", "cpu", resume=False)
    assert trainer.stream.wrong_images is wrong
    assert ("wrong_images" in trainer.stream.next()) is wrong
    assert trainer.fit() == "finished"


def test_one_class_with_wrong_images_is_named_before_training(tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    from ganreg.errors import UserError

    cache = tmp_path_factory.mktemp("one-class")
    one = build_dataset(DataConfig(source="shapes", image_size=32, num_images=480, num_classes=1, cache_dir=str(cache)), "train")
    with pytest.raises(UserError, match="only one class"):
        BatchStream(one, 4, seed=0, vocab=_vocab(one), max_words=18)
    assert BatchStream(one, 4, seed=0, vocab=_vocab(one), max_words=18, wrong_images=False).next()["images"].shape[0] == 4
