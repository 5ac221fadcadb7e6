"""What the trainer needs before its first step: device, data, vocabulary,
build context, and a text encoder that is pretrained or frozen as the recipe says."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ganreg.data import Collator, SplitMissing, Vocabulary, build_dataset
from ganreg.errors import UserError
from ganreg.interfaces import BuildContext, TextBatch, TextEncoder
from ganreg.recipe import Recipe
from ganreg.train.rundir import VOCAB_FILE
from ganreg.train.stream import BatchStream


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when there is one, else CPU; a missing CUDA is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}", "use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r} asked for, but this machine has no CUDA device", "use --device cpu")
    if device.type == "meta":
        raise UserError("device 'meta' holds no data and cannot train", "use --device cpu, cuda or auto")
    if device.type not in ("cpu", "cuda"):  # mps, xpu, ...: refused here, not after the text encoder has trained
        try:
            torch.empty(1, device=device)
        except Exception as err:  # RuntimeError, AssertionError, ModuleNotFoundError (hpu): whatever torch raises
            reason = (str(err).strip() or type(err).__name__).splitlines()[0].split(". ")[0][:160]  # torch's first sentence
            raise UserError(f"device {name!r} asked for, but this PyTorch cannot use it ({reason})",
                            "use --device cpu, or auto") from None
    return device


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively: CUDA from Ampere on, or a CPU whose oneDNN kernels
    use AVX512-BF16 / AMX (there, bf16 autocast trains DF-GAN's 64-px CPU recipe about 1.4x faster)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu" and torch.backends.mkldnn.is_available():
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):  # private probe: absent from some builds
            return False
    return False


def resolve_amp(setting: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``train.amp``: ``auto`` is bf16 where the device computes it natively."""
    if setting == "bf16" or (setting == "auto" and native_bf16(device)):
        return torch.bfloat16
    return None


@dataclass
class DataBundle:
    """Train and test splits with their shared vocabulary and collator."""

    train: Any
    test: Any | None
    vocab: Vocabulary
    collator: Collator
    context: BuildContext
    num_workers: int
    max_words: int

    def fingerprint(self) -> dict[str, Any]:
        """What identifies the data a run trains on, wherever it lies: each split's image count and a hash of
        its captions in item order. Recorded in run.json; a resume (``--set data.path`` after a move) checks it."""
        splits = (("train", self.train), ("test", self.test))
        return {name: {"images": len(split), "captions_sha256": split.captions_sha256()[:16]}
                for name, split in splits if split is not None}

    def stream(
        self, batch_size: int, seed: int, pin_memory: bool = False, wrong_images: bool = True, rank: int = 0, world: int = 1
    ) -> BatchStream:
        return BatchStream(
            self.train, batch_size, seed, self.vocab, self.max_words, self.num_workers, pin_memory, wrong_images,
            rank, world,
        )

    def probe_batch(self, n: int) -> dict[str, Any]:
        """The first ``n`` training items as one batch (images in [-1, 1], no wrong images), read without
        touching the training stream: for :func:`ganreg.train.contracts.check_contracts`."""
        items = self.train.view(raw_images=False, images=True, wrong_images=False, augment=False)
        return self.collator([items[(0, i)] for i in range(min(n, len(self.train)))])

    def save_vocab(self, run_dir: Path) -> None:
        self.vocab.save(run_dir / VOCAB_FILE)

    def fixed_captions(self, n: int) -> dict[str, Any]:
        """``n`` captions of distinct classes, half from train and half held out; ``splits`` says which is which."""
        sources = [(self.train, (n + 1) // 2), (self.test, n // 2)] if self.test is not None else [(self.train, n)]
        items: list[dict[str, Any]] = []
        splits: list[str] = []
        for dataset, want in sources:
            captions_only = dataset.view(images=False, wrong_images=False)
            labels = dataset.labels()
            firsts = list({label: i for i, label in reversed(list(enumerate(labels)))}.values())[::-1]
            first_set = set(firsts)  # one label per image on data without classes: firsts is every item
            picks = (firsts + [i for i in range(len(labels)) if i not in first_set])[:want]
            items.extend(captions_only[(0, i)] for i in picks)
            splits += ["training" if dataset is self.train else "held out"] * len(picks)
        batch = self.collator(items)
        return {"batch": batch, "captions": list(batch["captions"]), "splits": splits}


MIN_VOCABULARY_COVERAGE = 0.9
"""A given vocabulary must know this share of the training captions' words: below it, it belongs to
another dataset (its unknown words would be dropped or become ``<unk>`` silently)."""


def read_vocabulary(path: Path, captions: list[str]) -> Vocabulary:
    """``text_encoder.vocabulary``: a ganreg vocab.json or a DAMSM captions pickle, checked against the captions."""
    from ganreg.data.tokenizer import tokenize

    vocab = Vocabulary.from_damsm_pickle(path) if path.suffix.lower() in (".pickle", ".pkl") else Vocabulary.load(path)
    words = [w for c in captions for w in tokenize(c, vocab.ascii_only)]
    known = sum(w in vocab for w in words) / max(1, len(words))
    if known < MIN_VOCABULARY_COVERAGE:
        raise UserError(
            f"vocabulary {path} knows only {100 * known:.1f}% of the training captions' words",
            "use the vocabulary of this dataset (DF-GAN ships one captions_DAMSM.pickle per dataset)",
        )
    return vocab


def text_batch(batch: dict[str, Any], device: torch.device | str) -> TextBatch:
    """A collated batch's text, with its tensors on ``device`` (lengths stay on the CPU: packing sequences
    needs them there)."""
    return TextBatch(
        tokens=batch["tokens"].to(device, non_blocking=True) if batch.get("tokens") is not None else None,
        lengths=batch.get("lengths"),
        embeddings=batch["embeddings"].to(device, non_blocking=True) if batch.get("embeddings") is not None else None,
        captions=batch.get("captions"),
    )


def prepare_data(recipe: Recipe, run_dir: Path | None = None) -> DataBundle:
    """Datasets of both splits, the vocabulary (built from training captions,
    or read back from a run being resumed) and the build context."""
    cfg = recipe.data
    train = build_dataset(cfg, "train")
    if recipe.eval.every_epochs:
        from ganreg.metrics.training import check_eval_spec

        check_eval_spec(recipe.eval, train.has_classes)  # a bad metric fails now (and in validate), not after an epoch
    try:
        test = build_dataset(cfg, "test")
    except SplitMissing:  # no held-out split at all; a broken one (bad file, missing class) is the user's to fix
        test = None
    vocab_path = run_dir / VOCAB_FILE if run_dir is not None else None
    if vocab_path is not None and vocab_path.is_file():
        vocab = Vocabulary.load(vocab_path)
    elif recipe.text_encoder.vocabulary is not None:
        vocab = read_vocabulary(Path(recipe.text_encoder.vocabulary), train.all_captions())
    else:
        vocab = Vocabulary.build(train.all_captions(), min_count=cfg.min_word_count)
    ctx = BuildContext(
        image_size=cfg.image_size,
        channels=3,
        num_classes=len(train.class_names),
        vocab_size=len(vocab),
        text_embedding_dim=train.embedding_dim,
        attributes=train.attributes,
    )
    return DataBundle(train, test, vocab, Collator(vocab, cfg.max_words), ctx, cfg.num_workers, cfg.max_words)


def prepare_text_encoder(
    encoder: TextEncoder, recipe: Recipe, data: DataBundle, device: torch.device, pretrain: bool = True
) -> None:
    """Pretrain-and-freeze, freeze, or leave trainable, as ``text_encoder.mode`` says (after any
    ``text_encoder.weights`` were loaded: :func:`ganreg.train.weights.load_recipe_weights`). ``pretrain=False``
    (a resumed run: its checkpoint holds the encoder) only freezes: pretraining, or finding it cached, would be
    thrown away."""
    mode = recipe.text_encoder.mode
    has_params = any(True for _ in encoder.parameters())
    if mode == "pretrain" and has_params and pretrain:
        from ganreg.text_encoders.pretrain import pretrain_text_encoder

        pretrain_text_encoder(encoder, recipe, data, device)
    if mode in ("pretrain", "frozen"):
        encoder.requires_grad_(False)
        encoder.eval()
