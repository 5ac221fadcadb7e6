"""Images from new text with a trained run's generator (``ganreg generate``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ganreg.data import Vocabulary
from ganreg.errors import UserError
from ganreg.interfaces import TextBatch
from ganreg.plugins import get_registry
from ganreg.recipe import Recipe
from ganreg.train.checkpoint import find_checkpoint, load_checkpoint, load_weights
from ganreg.train.networks import SamplingNetworks, build_sampling_networks
from ganreg.train.rundir import VOCAB_FILE, build_context_from, read_run
from ganreg.train.sampling import make_noise, save_grid
from ganreg.train.setup import resolve_device


@dataclass
class TrainedRun:
    nets: SamplingNetworks
    vocab: Vocabulary
    recipe: Recipe
    step: int
    generator_weights: str = "raw"
    """"ema" when the EMA weights were loaded, "raw" otherwise (also when the run kept no EMA)."""


def load_trained(run_dir: Path, checkpoint: str | None = None, use_ema: bool = True, device: str = "auto") -> TrainedRun:
    """A run's networks with trained weights (the EMA generator when present), in eval mode."""
    run_dir = Path(run_dir)
    registry = get_registry()
    recipe, meta = read_run(run_dir, registry, sections=("text_encoder", "generator"))  # D and losses need not be installed
    ctx = build_context_from(meta)
    nets = build_sampling_networks(recipe, registry, ctx)
    path = find_checkpoint(run_dir, checkpoint)
    state = load_checkpoint(path, map_location="cpu")
    for name, module in nets.modules().items():
        load_weights(module, state["models"][name], name, path)
    weights = "ema" if use_ema and "ema" in state else "raw"
    if weights == "ema":
        ema = {k.removeprefix("module."): v for k, v in state["ema"].items() if k.startswith("module.")}
        load_weights(nets.generator, ema, "generator (EMA)", path)
    dev = resolve_device(device)
    for module in nets.modules().values():
        module.to(dev).eval()
    return TrainedRun(nets, Vocabulary.load(run_dir / VOCAB_FILE), recipe, int(state["step"]), weights)


def resolve_truncation(run_dir: Path, given: float | None, plain: bool) -> float | None:
    """The truncation ``generate`` / ``eval`` use: ``given``, none with ``plain`` (``--no-truncation``), else
    the run's own ``samples.truncation``, so their images match the run's grids and in-training evaluation."""
    if plain and given is not None:
        raise UserError("--truncation and --no-truncation contradict each other", "give one of them")
    if given is not None or plain:
        return given
    return read_run(run_dir, get_registry(), sections=())[0].samples.truncation


@torch.no_grad()
def generate_images(
    nets: SamplingNetworks, vocab: Vocabulary, captions: list[str], per_caption: int, seed: int = 0,
    truncation: float | None = None, max_words: int = 18,
) -> torch.Tensor:
    """``[len(captions) * per_caption, 3, S, S]`` in [-1, 1]; row-major by caption.
    The same noise vectors are used for every caption."""
    device = next(nets.generator.parameters()).device
    tokens, lengths = vocab.encode_batch(captions, max_words)
    cond = nets.text_encoder(TextBatch(tokens=tokens.to(device), lengths=lengths, captions=captions)).sentence.float()
    z = make_noise(per_caption, nets.generator.z_dim, torch.Generator().manual_seed(seed), truncation).to(device)
    cond = cond.repeat_interleave(per_caption, 0)
    z = z.repeat(len(captions), 1)
    return torch.cat([nets.generator(z[i : i + 256], cond[i : i + 256]).images.float() for i in range(0, len(z), 256)])


def generate_grid(
    run_dir: Path, captions: list[str], per_caption: int, out: Path, checkpoint: str | None = None, seed: int = 0,
    truncation: float | None = None, use_ema: bool = True, device: str = "auto",
) -> dict[str, list[str]]:
    """Write the grid to ``out``; returns the words of each caption the run's vocabulary does not know
    (a caption the generator can only half read should say so)."""
    out = Path(out)
    if out.suffix.lower() not in {".png", ".jpg", ".jpeg"}:
        raise UserError(f"output {out} must be a .png or .jpg file", "use -o samples.png")
    run = load_trained(run_dir, checkpoint, use_ema, device)
    images = generate_images(run.nets, run.vocab, captions, per_caption, seed, truncation, run.recipe.data.max_words)
    save_grid(images, out, nrow=per_caption, captions=captions)
    return {c: words for c in captions if (words := run.vocab.unknown_words(c))}

