"""t-SNE maps (scikit-learn) of text embeddings and image features, coloured by class.

What they show: whether the text encoder separates the classes its captions
name (held-out captions included), and whether generated images cluster by
the class of their caption the way real images do (classifier features).
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import torch
from matplotlib.lines import Line2D

from ganreg.metrics.samples import caption_keys, captions_only, eval_mode, text_batch
from ganreg.report.figures import new_figure, save_figure

MARKERS = ("o", "^", "s", "P", "X", "D")


@dataclass
class Panel:
    """One map: points, their class, and an optional group (e.g. split) drawn as the marker."""

    title: str
    features: np.ndarray
    labels: np.ndarray
    groups: np.ndarray | None = None
    group_names: list[str] | None = None
    grey_group: int | None = None
    """A group drawn in grey, not by class: the training captions beside held-out ones, whose many classes
    would otherwise use up the colours the held-out classes need to be told apart."""


GREY = (0.72, 0.72, 0.72, 1.0)


def _palette(name: str, greys: tuple[int, ...]) -> list[Any]:
    cmap = matplotlib.colormaps[name]
    return [cmap(i) for i in range(cmap.N) if i not in greys]


LEGEND_MAX = 18
"""Classes up to which the colours come from tab10 / tab20 (their greys left out) and a legend names them."""


def class_colours(classes: list[int]) -> dict[int, Any]:
    """A distinct colour per class, never grey (:data:`GREY` marks the training captions): tab10 / tab20 up
    to :data:`LEGEND_MAX` classes, then evenly spaced hues (close for many classes, but never shared)."""
    if len(classes) <= LEGEND_MAX:
        palette = _palette("tab10", (7,)) if len(classes) <= 9 else _palette("tab20", (14, 15))
        return {c: palette[i] for i, c in enumerate(classes)}
    return {c: (*colorsys.hsv_to_rgb(i / len(classes), 0.85, 0.9), 1.0) for i, c in enumerate(classes)}


def tsne_2d(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """``[N, D] -> [N, 2]``; perplexity capped for small N."""
    from sklearn.manifold import TSNE

    x = np.asarray(features, dtype=np.float32)
    n = x.shape[0]
    if n < 4:
        return np.zeros((n, 2), dtype=np.float32)
    perplexity = float(min(30.0, max(2.0, (n - 1) / 3.0)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto", random_state=seed).fit_transform(x)


@torch.no_grad()
def text_embeddings(
    text_encoder: Any, dataset: Any, collator: Any, n: int, device: torch.device, seed: int = 0, batch_size: int = 128
) -> tuple[np.ndarray, np.ndarray]:
    """Sentence embeddings of ``n`` captions of ``dataset`` (one per image, seeded) and their classes."""
    keys = caption_keys(len(dataset), min(n, len(dataset)), seed)
    dataset = captions_only(dataset)
    embs, labels = [], []
    with eval_mode(text_encoder):
        for start in range(0, len(keys), batch_size):
            batch = collator([dataset[k] for k in keys[start : start + batch_size]])
            embs.append(text_encoder(text_batch(batch, device)).sentence.float().cpu())
            labels.append(batch["labels"])
    if not embs:
        return np.zeros((0, 1), np.float32), np.zeros(0, np.int64)
    return torch.cat(embs).numpy(), torch.cat(labels).numpy()


def plot_panels(panels: list[Panel], class_names: list[str], out: Path, seed: int = 0) -> Path:
    """Side-by-side t-SNE maps, one colour per class, the same in every panel, never shared by two classes
    (a legend up to :data:`LEGEND_MAX` classes); a panel's ``grey_group`` is drawn in grey."""
    fig, axes = new_figure(len(panels), (4.3 * len(panels), 4.4))
    present = sorted({int(c) for p in panels for g, c in zip(_groups(p).tolist(), p.labels.tolist()) if g != p.grey_group})
    colour = class_colours(present)
    for ax, panel in zip(axes[0], panels):
        xy = tsne_2d(panel.features, seed)
        groups = _groups(panel)
        for g in sorted(set(groups.tolist())):
            for c in sorted(set(panel.labels[groups == g].tolist())):
                m = (groups == g) & (panel.labels == c)
                ax.scatter(xy[m, 0], xy[m, 1], s=14, color=GREY if g == panel.grey_group else colour[int(c)],
                           marker=MARKERS[g % len(MARKERS)], alpha=0.8, linewidths=0)
        title = panel.title
        if panel.group_names:
            title += "\n(" + ", ".join(f"{MARKERS[i % len(MARKERS)]} {name}" + (" in grey" if i == panel.grey_group else "")
                                       for i, name in enumerate(panel.group_names)) + ")"
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    if len(present) > LEGEND_MAX:
        fig.suptitle(f"{len(present)} classes, one hue each (too many for a legend)", fontsize=9)
    else:
        handles = [Line2D([], [], marker="o", ls="", color=colour[c], label=class_names[c] if c < len(class_names) else str(c))
                   for c in present]
        fig.legend(handles=handles, loc="outside lower center", ncol=min(len(present), 6), fontsize=8, frameon=False)
    return save_figure(fig, out, dpi=90)


def _groups(panel: Panel) -> np.ndarray:
    return panel.groups if panel.groups is not None else np.zeros(len(panel.labels), dtype=np.int64)


@dataclass
class TsneMaps:
    path: Path
    caption: str
    """What each panel shows and how its points were made (checkpoint step, weights, noise truncation)."""


def tsne_for_run(run_dir: Path, out: Path, n: int = 300, device: str = "auto", log: Any = None, seed: int = 0) -> TsneMaps:
    """Three maps for a trained run: text embeddings of training and held-out captions, classifier
    features of images generated from held-out captions, and of real held-out images; a fourth, with an
    image encoder, of its latents (means) of the same real images: whether the latent carries the class,
    which the caption should decide."""
    from ganreg.data import Collator, build_dataset
    from ganreg.errors import UserError
    from ganreg.generate import load_run
    from ganreg.metrics.classifier import NoClasses, load_classifier
    from ganreg.metrics.samples import generated_batches, real_batches

    from ganreg.runfiles import read_recipe_json

    has_encoder = read_recipe_json(Path(run_dir)).get("image_encoder") is not None
    run = load_run(Path(run_dir), None, True, device, image_encoder=has_encoder)
    dev = next(run.nets.generator.parameters()).device
    cfg = run.recipe.data
    collator = Collator(run.vocab, cfg.max_words)
    train = build_dataset(cfg, "train")
    if not train.has_classes:
        raise NoClasses(cfg.path)  # before the classifier's training is announced
    try:
        held = build_dataset(cfg, "test")
        held_name = "test"
    except UserError:  # a source without a test split: use training captions throughout
        held, held_name = train, "train"
    te, tl = text_embeddings(run.nets.text_encoder, train, collator, n // 2, dev, seed)
    he, hl = text_embeddings(run.nets.text_encoder, held, collator, n - n // 2, dev, seed)
    text_panel = Panel(
        "text embeddings of captions", np.concatenate([te, he]), np.concatenate([tl, hl]),
        np.concatenate([np.zeros(len(tl), np.int64), np.ones(len(hl), np.int64)]), ["train captions", f"{held_name} captions"],
        grey_group=0 if held is not train else None,  # coloured: the held-out classes, as in the image panels
    )
    classifier = load_classifier(cfg, device=dev, log=log)
    model = classifier.model.to(dev)
    gen_f, gen_l, real_f, real_l, latents = [], [], [], [], []
    encoder = run.nets.image_encoder
    with torch.no_grad():
        truncation = run.recipe.samples.truncation  # the noise of the run's grids and of `ganreg eval`
        for b in generated_batches(run.nets.generator, run.nets.text_encoder, held, collator, n, dev, seed, truncation):
            gen_f.append(model.features(b.images).cpu())
            gen_l.append(b.labels)
        for b in real_batches(held, collator, min(n, len(held)), seed):
            images = b.images.to(dev)
            real_f.append(model.features(images).cpu())
            real_l.append(b.labels)
            if encoder is not None:
                latents.append(encoder(images).latent.float().cpu())
    panels = [
        text_panel,
        Panel(f"generated images ({held_name} captions), classifier features", torch.cat(gen_f).numpy(), torch.cat(gen_l).numpy()),
        Panel(f"real {held_name} images, classifier features", torch.cat(real_f).numpy(), torch.cat(real_l).numpy()),
    ]
    if latents:
        panels.append(Panel(f"image encoder latents of real {held_name} images", torch.cat(latents).numpy(),
                            torch.cat(real_l).numpy()))
    path = plot_panels(panels, classifier.class_names, Path(out), seed)
    noise = f"noise truncated at {truncation}" if truncation is not None else "untruncated N(0, I) noise"
    caption = (
        f"From the checkpoint of step {run.step:,} ({run.generator_weights} generator weights). Left: the text encoder's "
        f"sentence embeddings of train captions (grey) and {held_name} captions (coloured by class). Then: classifier "
        f"features of {sum(len(x) for x in gen_l)} images generated from {held_name} captions ({noise}, as the run's grids), "
        f"coloured by the caption's class; the same features of real {held_name} images, for reference"
        + ("; the image encoder's latents of those real images." if latents else ".")
    )
    return TsneMaps(path, caption)
