"""The offline feature extractor: a small CNN trained once per dataset on its real images.

Inception weights cannot be downloaded everywhere, and ImageNet features say
little about coloured shapes anyway. So ganreg trains its own judge: a
5-layer CNN that predicts the class of an image (every class of every split)
and, for data with attributes (the built-in shapes: colour, shape, size,
position), each attribute with its own head. Its penultimate layer gives the
features FID and KID compare ("classifier" extractor); its predictions give
the text-image alignment metric.

It is trained on the images of all splits (minus a held-out tenth, on which
its accuracy is measured and stored), cached per data config under
``<cache>/eval/classifier-<key>/``, and identified in every protocol by the
sha256 of its weights file.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ganreg.atomic import atomic_save, atomic_write_text
from ganreg.data.config import DataConfig
from ganreg.errors import UserError
from ganreg.metrics.cache import EVAL_CACHE_VERSION, data_key, eval_cache_dir, sha256_file, short_hash

CLASS_HEAD = "class"
"""Name of the head that predicts the class; the other heads are the data's attribute names."""


@dataclass(frozen=True)
class ClassifierSpec:
    """How the classifier is built and trained; part of its cache key.

    Training uses torch's current thread count (``torch.set_num_threads``;
    ``ganreg eval --threads``): on a CPU shared with other jobs one thread is
    often faster than several."""

    input_size: int = 64
    """Images are resized (bilinear, antialiased) to this side when it differs from the data's."""
    width: int = 16
    """Channels of the first convolution (doubled twice). 16 trains in seconds per epoch on a CPU core."""
    feature_dim: int = 128
    epochs: int = 2
    """Two passes reach ~99.8% held-out class accuracy on the built-in shapes at 64 px."""
    batch_size: int = 64
    lr: float = 2e-3
    holdout: float = 0.1
    """Fraction of the images kept out of training to measure accuracy."""
    seed: int = 0


def classifier_input_size(image_size: int, spec: ClassifierSpec) -> int:
    """The side the classifier sees: the data's, capped at ``spec.input_size``."""
    return min(int(image_size), spec.input_size)


def resize_to(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear, antialiased resize of ``[B, 3, H, W]`` to ``size`` (no-op when equal)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


class ImageClassifier(nn.Module):
    """``images [B, 3, S, S] in [-1, 1] -> (features [B, feature_dim], {head: logits [B, K]})``.

    Four stride-2 convolutions, one stride-1 convolution at 4x4, a linear
    feature layer (flattened, not pooled: position must survive; standardised
    by a BatchNorm) and one linear head per target on its ReLU.
    """

    def __init__(self, heads: dict[str, int], input_size: int = 64, width: int = 32, feature_dim: int = 128) -> None:
        super().__init__()
        self.input_size = int(input_size)
        self.num_features = int(feature_dim)
        self.head_sizes = dict(heads)
        chans = [3, width, width * 2, width * 4, width * 4]
        layers: list[nn.Module] = []
        for c_in, c_out in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(c_in, c_out, 3, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        layers += [nn.Conv2d(chans[-1], chans[-1], 3, 1, 1, bias=False), nn.BatchNorm2d(chans[-1]), nn.ReLU(inplace=True)]
        layers += [nn.AdaptiveAvgPool2d(4)]
        self.body = nn.Sequential(*layers)
        # Standardised features (BatchNorm without affine: zero mean, unit variance on the real
        # images): FID values stay readable and KID's cubic kernel (x.y/d + 1)^3 sees x.y/d ~ 1.
        self.embed = nn.Sequential(nn.Linear(chans[-1] * 16, feature_dim), nn.BatchNorm1d(feature_dim, affine=False))
        self.heads = nn.ModuleDict({name: nn.Linear(feature_dim, k) for name, k in heads.items()})

    def features(self, images: torch.Tensor) -> torch.Tensor:
        x = resize_to(images.float(), self.input_size)
        return self.embed(self.body(x).flatten(1))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        feats = self.features(images)
        hidden = F.relu(feats)
        return feats, {name: head(hidden) for name, head in self.heads.items()}


@dataclass
class LabelledImages:
    """Real images of every split, at the classifier's input size, with their targets."""

    images: torch.Tensor
    """uint8 ``[N, 3, s, s]``."""
    targets: dict[str, torch.Tensor]
    """head name -> int64 ``[N]``."""
    head_sizes: dict[str, int]
    attributes: dict[str, list[str]] | None
    class_names: list[str]
    splits: list[str] = field(default_factory=list)


def _stack_items(items: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "images": torch.stack([it["image"] for it in items]),
        "labels": torch.tensor([int(it["label"]) for it in items], dtype=torch.long),
    }
    if "attributes" in items[0]:
        out["attributes"] = torch.stack([it["attributes"] for it in items])
    return out


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> uint8 (the datasets' own quantisation)."""
    return ((images.float() + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8)


def from_uint8(images: torch.Tensor) -> torch.Tensor:
    return images.float().sub_(127.5).div_(127.5)


class NoClasses(UserError):
    """The data's images are in no classes, so there is nothing for the evaluation classifier to learn."""

    def __init__(self, path: str | None) -> None:
        super().__init__(
            f"{path} has no classes (captions in no class folders), and the evaluation classifier learns classes: "
            "alignment, classifier-feature FID / KID / IS and the t-SNE maps need one",
            "evaluate with --extractor inception (FID / KID / IS) and --metrics fid,kid,is,diversity, or sort the "
            "images' captions into class folders with class lists (README: Data)",
        )


def load_labelled_images(config: DataConfig, input_size: int) -> LabelledImages:
    """Every split's images (resized to ``input_size``), classes and attributes."""
    from ganreg.data import build_dataset
    from ganreg.data._util import SPLITS, SplitMissing
    from ganreg.data.build import DataLoaderWithErrors, worker_count

    chunks: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    attrs: list[torch.Tensor] = []
    found: list[str] = []
    attributes: dict[str, list[str]] | None = None
    class_names: list[str] = []
    for split in SPLITS:
        try:
            ds = build_dataset(config, split)
        except SplitMissing:
            continue  # a split the source does not have (shapes: valid); any other data error is the user's to fix
        if len(ds) == 0:
            continue
        if not ds.has_classes:
            raise NoClasses(config.path)
        found.append(split)
        attributes, class_names = ds.attributes, list(ds.class_names)
        ds.set_epoch(0)
        ds = ds.view(wrong_images=False, augment=False)
        loader = DataLoaderWithErrors(ds, batch_size=256, shuffle=False, num_workers=worker_count(config.num_workers), collate_fn=_stack_items)
        for batch in loader:
            chunks.append(to_uint8(resize_to(batch["images"], input_size)))
            labels.append(batch["labels"])
            if "attributes" in batch:
                attrs.append(batch["attributes"])
    if not found:
        raise UserError("the data config yields no images to train the evaluation classifier on", "check the data section")
    targets = {CLASS_HEAD: torch.cat(labels)}
    heads = {CLASS_HEAD: len(class_names)}
    if attributes and attrs:
        table = torch.cat(attrs)
        for j, (name, values) in enumerate(attributes.items()):
            key = name if name != CLASS_HEAD else f"attr_{name}"
            targets[key] = table[:, j]
            heads[key] = len(values)
    return LabelledImages(torch.cat(chunks), targets, heads, attributes, class_names, found)


@dataclass
class TrainedClassifier:
    """A trained (or cached) classifier with what identifies it."""

    model: ImageClassifier
    path: Path
    sha256: str
    meta: dict[str, Any]

    @property
    def attributes(self) -> dict[str, list[str]] | None:
        return self.meta.get("attributes")

    @property
    def class_names(self) -> list[str]:
        return list(self.meta["class_names"])

    def protocol(self) -> dict[str, Any]:
        """What a metric computed with this classifier must state."""
        return {
            "name": "classifier",
            "weights": str(self.path),
            "sha256": self.sha256,
            "input_size": self.model.input_size,
            "resize": f"bilinear (antialiased) to {self.model.input_size} px",
            "feature_dim": self.model.num_features,
            "heldout_accuracy": self.meta.get("heldout_accuracy"),
            "trained_on": self.meta.get("trained_on"),
        }


def _train(data: LabelledImages, spec: ClassifierSpec, input_size: int, device: torch.device,
           log: Callable[[str], None]) -> tuple[ImageClassifier, dict[str, float], int, int]:
    """Train on all but the held-out fraction; return the model (eval mode) and held-out accuracy."""
    n = data.images.shape[0]
    gen = torch.Generator().manual_seed(spec.seed)
    perm = torch.randperm(n, generator=gen)
    n_hold = int(round(n * spec.holdout)) if n >= 20 else 0
    hold, train = perm[:n_hold], perm[n_hold:]
    model = ImageClassifier(data.head_sizes, input_size, spec.width, spec.feature_dim).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=spec.lr)
    steps = spec.epochs * max(1, (len(train) + spec.batch_size - 1) // spec.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=spec.lr, total_steps=steps, pct_start=0.15)
    model.train()
    last = float("nan")
    for epoch in range(spec.epochs):
        order = train[torch.randperm(len(train), generator=gen)]
        for start in range(0, len(order), spec.batch_size):
            idx = order[start : start + spec.batch_size]
            if len(idx) < 2:
                continue  # BatchNorm needs two items
            x = from_uint8(data.images[idx]).to(device)
            _, logits = model(x)
            loss = sum(F.cross_entropy(logits[h], data.targets[h][idx].to(device)) for h in logits)
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[union-attr]
            opt.step()
            sched.step()
            last = float(loss.detach())  # type: ignore[union-attr]
        log(f"evaluation classifier: epoch {epoch + 1}/{spec.epochs}, loss {last:.3f}")
    model.eval()
    acc: dict[str, float] = {}
    if n_hold:
        correct = {h: 0 for h in data.head_sizes}
        with torch.no_grad():
            for start in range(0, n_hold, 512):
                idx = hold[start : start + 512]
                _, logits = model(from_uint8(data.images[idx]).to(device))
                for h, lg in logits.items():
                    correct[h] += int((lg.argmax(1).cpu() == data.targets[h][idx]).sum())
        acc = {h: c / n_hold for h, c in correct.items()}
    return model.cpu(), acc, len(train), n_hold


def classifier_dir(config: DataConfig, spec: ClassifierSpec) -> Path:
    key = short_hash({"v": EVAL_CACHE_VERSION, "data": data_key(config), "spec": asdict(spec)})
    return eval_cache_dir(config) / f"classifier-{key}"


def _load(folder: Path) -> TrainedClassifier | None:
    path, meta_path = folder / "model.pt", folder / "meta.json"
    if not (path.is_file() and meta_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        state = torch.load(path, map_location="cpu", weights_only=True)
        model = ImageClassifier(state["heads"], state["input_size"], state["width"], state["feature_dim"])
        model.load_state_dict(state["state_dict"])
    except Exception:  # a broken cache entry is rebuilt, never trusted
        return None
    model.eval()
    return TrainedClassifier(model, path, sha256_file(path), meta)


def load_classifier(
    config: DataConfig, spec: ClassifierSpec | None = None, device: str | torch.device = "cpu",
    log: Callable[[str], None] | None = None,
) -> TrainedClassifier:
    """The cached classifier of this data config, trained first when there is none.

    Training uses its own random stream (the caller's RNG state is untouched,
    so a training run that evaluates still resumes exactly)."""
    spec = spec or ClassifierSpec()
    log = log or (lambda msg: None)
    folder = classifier_dir(config, spec)
    found = _load(folder)
    if found is not None:
        return found
    input_size = classifier_input_size(config.image_size, spec)
    t0 = time.perf_counter()
    log(f"evaluation classifier: training on the real images (once per dataset; cached in {folder})")
    data = load_labelled_images(config, input_size)
    dev = torch.device(device)
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(spec.seed)
        model, acc, n_train, n_hold = _train(data, spec, input_size, dev, log)
    state = {
        "format": "ganreg-eval-classifier",
        "version": EVAL_CACHE_VERSION,
        "heads": data.head_sizes,
        "input_size": input_size,
        "width": spec.width,
        "feature_dim": spec.feature_dim,
        "state_dict": model.state_dict(),
    }
    meta = {
        "data": config.model_dump(mode="json"),
        "data_key": data_key(config),
        "spec": asdict(spec),
        "heads": data.head_sizes,
        "attributes": data.attributes,
        "class_names": data.class_names,
        "trained_on": {"splits": data.splits, "images": n_train, "heldout_images": n_hold},
        "heldout_accuracy": acc,
        "train_seconds": round(time.perf_counter() - t0, 1),
    }
    with contextlib.suppress(OSError):  # a read-only cache still evaluates, it just retrains next time
        atomic_save(state, folder / "model.pt")
        atomic_write_text(folder / "meta.json", json.dumps(meta, indent=2) + "\n")
    accs = ", ".join(f"{h} {a:.1%}" for h, a in acc.items())
    log(f"evaluation classifier: trained in {meta['train_seconds']} s; held-out accuracy: {accs}")
    found = _load(folder)
    if found is not None:
        found.meta = meta
        return found
    model.eval()  # cache not writable: use it from memory
    return TrainedClassifier(model, folder / "model.pt", "unsaved", meta)
