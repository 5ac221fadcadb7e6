"""Images from new text with a trained run's generator (``ganreg generate``)."""

from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import torch

import ganreg
from ganreg.atomic import atomic_write_text
from ganreg.data import Vocabulary
from ganreg.data._util import decode_pil, pil_to_array, uint8_to_tensor
from ganreg.errors import UserError
from ganreg.interfaces import TextBatch
from ganreg.plugins import get_registry
from ganreg.recipe import Recipe
from ganreg.runfiles import checkpoint_dir, read_json_or_none, step_file, step_of
from ganreg.train.checkpoint import find_checkpoint, load_checkpoint, load_weights
from ganreg.train.networks import SamplingNetworks, build_sampling_networks
from ganreg.train.rundir import VOCAB_FILE, build_context_from, read_run
from ganreg.train.sampling import grid_images, make_noise, save_grid
from ganreg.train.setup import resolve_device
from ganreg.train.weights import EMA_KEYS, ema_state


RUNS_OWN: Final = "run"
"""The truncation a run's grids use (its recipe's ``samples.truncation``): the default of :meth:`TrainedRun.generate`
and of :class:`ganreg.metrics.evaluate.EvalOptions`, as of ``ganreg generate`` and ``ganreg eval``."""
Truncation = float | None | Literal["run"]


@dataclass(repr=False)
class TrainedRun:
    """A run's trained networks, in eval mode, with what it takes to draw images as ``ganreg generate`` does:
    the run's vocabulary, caption length and noise truncation."""

    nets: SamplingNetworks
    vocab: Vocabulary
    recipe: Recipe
    step: int
    generator_weights: str = "raw"
    """"ema" when the EMA weights were loaded, "raw" otherwise (also when the run kept no EMA)."""
    checkpoint: Path | None = None
    """The checkpoint file the weights came from."""

    def __repr__(self) -> str:
        return (f"TrainedRun({self.recipe.name!r}, step {self.step}, {self.generator_weights} generator weights, "
                f"{self.recipe.data.image_size} px, on {self.device})")

    @property
    def device(self) -> torch.device:
        return next(self.nets.generator.parameters()).device

    @torch.no_grad()
    def sentences(self, captions: list[str]) -> torch.Tensor:
        """The text encoder's sentence vectors ``[C, D]`` (float32): the generator's condition. Blend two of
        them and pass the blend to :meth:`images` to walk from one caption to another."""
        tokens, lengths = self.vocab.encode_batch(captions, self.recipe.data.max_words)
        batch = TextBatch(tokens=tokens.to(self.device), lengths=lengths, captions=list(captions))
        return self.nets.text_encoder(batch).sentence.float()

    def noise(self, n: int, seed: int = 0, truncation: Truncation = RUNS_OWN) -> torch.Tensor:
        """``n`` noise vectors ``[n, z_dim]`` on the CPU, drawn as ``ganreg generate --seed`` draws them."""
        return make_noise(n, self.nets.generator.z_dim, torch.Generator().manual_seed(seed), self.truncation(truncation))

    @torch.no_grad()
    def images(self, sentences: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Every sentence vector with every noise vector: ``[C * N, 3, S, S]`` in [-1, 1], row-major by sentence."""
        return grid_images(self.nets.generator, sentences.to(self.device), noise)

    def generate(
        self, captions: list[str], per_caption: int = 1, seed: int = 0, truncation: Truncation = RUNS_OWN
    ) -> torch.Tensor:
        """``[len(captions) * per_caption, 3, S, S]`` in [-1, 1], row-major by caption, the same noise vectors
        for every caption: the images of ``ganreg generate RUN CAPTIONS -n per_caption --seed seed``.
        ``truncation``: the run's own by default, None for plain N(0, 1) noise, or a factor."""
        return self.images(self.sentences(captions), self.noise(per_caption, seed, truncation))

    def truncation(self, given: Truncation = RUNS_OWN) -> float | None:
        """``given``, with :data:`RUNS_OWN` read as the run's ``samples.truncation``."""
        return self.recipe.samples.truncation if given == RUNS_OWN else given  # type: ignore[return-value]


def load_run(
    run_dir: Path, checkpoint: str | None = None, use_ema: bool = True, device: str = "auto", image_encoder: bool = False
) -> TrainedRun:
    """A run's networks with trained weights (the EMA generator when present), in eval mode. ``image_encoder``:
    also the run's image encoder (``generate --source``), with the EMA weights that match the generator's."""
    run_dir = Path(run_dir)
    registry = get_registry()
    sections = ("text_encoder", "image_encoder", "generator") if image_encoder else ("text_encoder", "generator")
    recipe, meta = read_run(run_dir, registry, sections=sections)  # D and losses need not be installed
    ctx = build_context_from(meta)
    nets = build_sampling_networks(recipe, registry, ctx, image_encoder=image_encoder)
    path = find_checkpoint(run_dir, checkpoint)
    state = load_checkpoint(path, map_location="cpu")
    for name, module in nets.modules().items():
        load_weights(module, state["models"][name], name, path)
    weights = "ema" if use_ema and "ema" in state else "raw"
    if weights == "ema":
        for name, module in nets.modules().items():
            key = EMA_KEYS.get(name)
            if key in state:
                load_weights(module, ema_state(state[key]), f"{name} (EMA)", path)
    dev = resolve_device(device)
    for module in nets.modules().values():
        module.to(dev).eval()
    return TrainedRun(nets, Vocabulary.load(run_dir / VOCAB_FILE), recipe, int(state["step"]), weights, path)


def truncation_option(given: float | None, plain: bool) -> Truncation:
    """``--truncation`` / ``--no-truncation`` of ``generate`` and ``eval``: ``given``, None with ``plain``,
    else :data:`RUNS_OWN`, so that their images match the run's grids and in-training evaluation."""
    if plain and given is not None:
        raise UserError("--truncation and --no-truncation contradict each other", "give one of them")
    return None if plain else (given if given is not None else RUNS_OWN)


@dataclass
class Generated:
    """What ``generate_grid`` wrote."""

    image: Path
    record: Path
    """The JSON beside the image: checkpoint, seed, truncation, noise, and the command that makes it again."""
    unknown: dict[str, list[str]] = field(default_factory=dict)
    """The words of each caption the run's vocabulary does not know (a caption the generator can only half
    read should say so)."""


@torch.no_grad()
def encode_sources(nets: SamplingNetworks, sources: list[Path], image_size: int) -> torch.Tensor:
    """The image encoder's latent (in eval mode: the mean) of each source image, ``[len(sources), z_dim]``.
    Each image is squashed to the run's square size, as evaluation reads the data's images."""
    if nets.image_encoder is None:
        raise UserError(
            "--source needs a run trained with an image encoder, and this run's recipe has no image_encoder",
            "drop --source to draw from noise, or train a recipe with an image_encoder section",
        )
    arrays = []
    for path in sources:
        if not Path(path).is_file():
            raise UserError(f"source image {path} is a folder" if Path(path).is_dir() else f"source image not found: {path}",
                            "pass an image file (PNG, JPEG, ...) to --source")
        # a big JPEG decodes at reduced scale (still at least twice image_size), as the data's images do
        im = decode_pil(Path(path).read_bytes(), what=f"source image {path}", min_side=image_size)
        arrays.append(uint8_to_tensor(pil_to_array(im, image_size)))
    device = next(nets.image_encoder.parameters()).device
    return nets.image_encoder(torch.stack(arrays).to(device)).latent.float()


def generate_grid(
    run_dir: Path, captions: list[str], per_caption: int, out: Path, checkpoint: str | None = None, seed: int = 0,
    truncation: Truncation = RUNS_OWN, use_ema: bool = True, device: str = "auto", sources: list[Path] | None = None,
) -> Generated:
    """Write the grid to ``out``, its captions to ``out.txt`` and how it was made to ``out.json``. With
    ``sources``, each column is drawn from one source image's latent instead of noise."""
    out = Path(out)
    if out.suffix.lower() not in {".png", ".jpg", ".jpeg"}:
        raise UserError(f"output {out} must be a .png or .jpg file", "use -o samples.png")
    refuse_foreign_sidecars(out)
    run = load_run(run_dir, checkpoint, use_ema, device, image_encoder=bool(sources))
    if sources:
        latents = encode_sources(run.nets, sources, run.recipe.data.image_size)
        per_caption, truncation = latents.shape[0], None
        images = run.images(run.sentences(captions), latents)
    else:
        truncation = run.truncation(truncation)
        images = run.generate(captions, per_caption, seed, truncation)
    save_grid(images, out, nrow=per_caption, captions=captions)
    record = out.with_suffix(".json")
    made = generation_record(
        Path(run_dir), run, captions, per_caption, out, seed, truncation, str(images.device), sources or []
    )
    atomic_write_text(record, json.dumps(made, indent=2) + "\n")
    return Generated(out, record, {c: words for c in captions if (words := run.vocab.unknown_words(c))})


def refuse_foreign_sidecars(out: Path) -> None:
    """``out.txt`` and ``out.json`` are written beside the image: refuse, before anything is generated, to
    overwrite such a file that an earlier ``ganreg generate`` did not write (``-o recipes/dfgan.png`` would
    otherwise replace ``recipes/dfgan.json``)."""
    for sidecar, ours in ((out.with_suffix(".json"), _is_generate_record), (out.with_suffix(".txt"), _is_captions_file)):
        if sidecar.exists() and not ours(sidecar):
            raise UserError(
                f"{sidecar} exists and was not written by ganreg generate; writing {out} would overwrite it",
                "choose another -o (the captions go to <name>.txt and the record to <name>.json beside the image)",
            )


def _is_generate_record(path: Path) -> bool:
    record = read_json_or_none(path)
    return isinstance(record, dict) and record.get("format") == "ganreg-generate"


def _is_captions_file(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8") as f:
            first = f.readline()
    except (OSError, UnicodeDecodeError):
        return False
    return first.startswith("row 1: ") or first == ""


def generation_record(
    run_dir: Path, run: TrainedRun, captions: list[str], per_caption: int, out: Path, seed: int,
    truncation: float | None, device: str, sources: list[Path] | None = None,
) -> dict[str, Any]:
    """Everything that decides the images of ``ganreg generate``: an image shared or found later can be made
    again (the checkpoint file, its step and the weights read from it, the noise's seed and truncation, or
    the source images and their SHA-256)."""
    ckpt = Path(run.checkpoint).resolve() if run.checkpoint is not None else None
    noise: dict[str, Any] = {
        "z_dim": int(run.nets.generator.z_dim),
        "count": per_caption,
        "how": "torch.randn(per_caption, z_dim) from torch.Generator().manual_seed(seed) on the CPU; with a "
               "truncation t, values outside [-2, 2] are drawn again, then all are multiplied by t",
    }
    if sources:
        noise["how"] = ("the image encoder's latent (eval mode: its mean) of each source image, squashed to the run's "
                        "image size; one column per source")
        noise["sources"] = [{"path": str(Path(p).resolve()), "sha256": hashlib.sha256(Path(p).read_bytes()).hexdigest()}
                            for p in sources]
    return {
        "format": "ganreg-generate",
        "version": 1,
        "image": out.name,
        "captions": captions,
        "per_caption": per_caption,
        "layout": "one row per caption, one column per noise vector; every row uses the same noise vectors",
        "run_dir": str(run_dir.resolve()),
        "checkpoint": {"path": str(ckpt) if ckpt else None, "step": run.step, "generator_weights": run.generator_weights},
        "seed": None if sources else seed,
        "truncation": truncation,
        "noise": noise,
        "device": device,
        "ganreg_version": ganreg.__version__,
        "torch_version": torch.__version__,
        "command": shlex.join(_command(run_dir, run, captions, per_caption, out, seed, truncation, device, sources or [])),
    }


def _command(
    run_dir: Path, run: TrainedRun, captions: list[str], per_caption: int, out: Path, seed: int,
    truncation: float | None, device: str, sources: list[Path],
) -> list[str]:
    """The ``ganreg generate`` command line that makes the same images (paths absolute, so it runs from anywhere)."""
    args = ["ganreg", "generate", str(run_dir.resolve())]
    if sources:
        args += [a for p in sources for a in ("--source", str(Path(p).resolve()))]
    else:
        args += ["-n", str(per_caption)]
    args += ["-o", str(out.resolve()), "--checkpoint", _lasting_checkpoint(run_dir, run)]
    if not sources:
        args += ["--seed", str(seed)]
        args += ["--no-truncation"] if truncation is None else ["--truncation", str(truncation)]
    if run.generator_weights == "raw":
        args.append("--no-ema")
    return args + ["--device", device.split(":")[0], "--", *captions]  # a caption may start with "-"


def _lasting_checkpoint(run_dir: Path, run: TrainedRun) -> str:
    """The checkpoint as ``--checkpoint`` should name it later: latest.pt and best.pt are overwritten as the
    run goes on, so they are named by their step when the run keeps that step's file (the same state)."""
    path = Path(run.checkpoint) if run.checkpoint is not None else find_checkpoint(run_dir)
    numbered = checkpoint_dir(run_dir) / step_file(run.step, ".pt")
    if step_of(path) is None and path.parent.resolve() == numbered.parent.resolve() and numbered.is_file():
        return str(run.step)
    return str(path.resolve())
