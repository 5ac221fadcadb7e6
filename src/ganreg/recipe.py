"""Recipes: JSON training jobs, validated by pydantic.

A recipe composes registered components into a training job. Every section
forbids unknown keys; every problem is reported at once with its JSON path and
a fix (the closest valid name for a typo). A recipe may name a ``base`` recipe
(path relative to itself) and override parts of it; the command line can
override any key with ``--set a.b=c``.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from ganreg.data.config import DataConfig
from ganreg.errors import ComponentError, RecipeError, UserError
from ganreg.kinds import SECTION_KINDS
from ganreg.registry import Registry, bool_problems, validation_problems, without_repeats

RECIPE_VERSION = 1


class _Strict(BaseModel):
    # no NaN or infinity: an lr of Infinity validated, then the run diverged at its second step
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def _one_folder(value: str | None) -> str | None:
    """A run-directory name (``name``, ``output.name``) stays inside ``output.dir``: no absolute path and no
    ``..`` part (``ablation/lr1e-4`` groups runs in a subfolder, and is fine)."""
    if value is None:
        return value
    parts = value.replace("\\", "/").split("/")
    if value.strip() in ("", ".") or value.startswith(("/", "\\")) or ".." in parts or re.match(r"^[A-Za-z]:", value):
        raise ValueError(f"{value!r} is no folder of its own inside output.dir: give a folder name (no '..', not absolute)")
    return value


FolderName = Annotated[str | None, AfterValidator(_one_folder)]


class ComponentSpec(_Strict):
    name: str = Field(description="Registered component: qualified `plugin:name` or a unique bare name.")
    params: dict[str, Any] = Field(default_factory=dict, description="The component's params (see `ganreg show NAME`).")


class PretrainSpec(_Strict):
    """How a text encoder is pretrained once per dataset, then cached and frozen."""

    objective: Literal["class", "attributes", "images"] = Field(
        "attributes",
        description="class: predict each caption's class (on data without classes: its image); attributes: each "
        "of its attributes where the data has them (the built-in shapes), else its class; images: match each "
        "image to one of its captions against the rest of the batch (DAMSM's sentence loss, with a small CNN "
        "trained alongside; needs no labels, and wants several epochs). target_accuracy then counts matches "
        "within a batch.",
    )
    epochs: int = Field(2, ge=1, le=1000, description="At most this many passes over the captions.")
    batch_size: int = Field(128, ge=1, description="Captions per pretraining step.")
    lr: float = Field(2e-3, gt=0, description="Adam learning rate of the pretraining.")
    target_accuracy: float = Field(
        0.99, gt=0, le=1, description="Stop early once the accuracy over the last 20 batches reaches this."
    )


class NetworkSpec(ComponentSpec):
    weights: str | None = Field(
        None,
        description="Start from these weights (a torch.save file): a ganreg checkpoint (RUN/checkpoints/latest.pt), "
        "this network's state dict, or its original project's checkpoint where the plugin reads it (DF-GAN's "
        "state_epoch_*.pth; DAMSM's text_encoder200.pth). Loaded before training; a resumed run keeps its own.",
    )


class TextEncoderSpec(NetworkSpec):
    mode: Literal["joint", "pretrain", "frozen"] = Field(
        "pretrain",
        description="joint: trained with the discriminator's loss; pretrain: trained once per dataset on its "
        "captions, cached and frozen (as DF-GAN freezes DAMSM); frozen: used as built (precomputed embeddings) "
        "or as loaded from `weights`.",
    )
    pretrain: PretrainSpec = Field(default_factory=PretrainSpec, description="mode pretrain: how the encoder is trained on the captions first.")
    vocabulary: str | None = Field(
        None,
        description="Use this vocabulary instead of building one from the captions: a ganreg vocab.json, or "
        "DF-GAN / AttnGAN's captions_DAMSM.pickle (their word ids; unknown words are dropped, as they do).",
    )

    @model_validator(mode="after")
    def _weights_are_not_pretrained_over(self) -> TextEncoderSpec:
        if self.weights is not None and self.mode == "pretrain":
            raise ValueError("text_encoder.weights with mode 'pretrain' would be overwritten: use mode 'frozen' or 'joint'")
        return self


class LossSpec(ComponentSpec):
    weight: float = Field(1.0, description="Multiplies the term in its network's objective.")
    trains: Literal["generator", "discriminator"] | None = Field(
        None, description="Network this term trains; default: the loss's own."
    )


class ScheduleSpec(_Strict):
    name: Literal["constant", "step", "linear", "cosine"] = Field(
        "constant", description="How the lr changes: constant, step (every step_epochs), linear or cosine decay to final_fraction."
    )
    step_epochs: int = Field(100, ge=1, description="step: multiply the lr by gamma every this many epochs.")
    gamma: float = Field(0.5, gt=0, le=1, description="step: the factor applied every step_epochs.")
    final_fraction: float = Field(0.0, ge=0, le=1, description="linear/cosine: lr at the end as a fraction.")


class OptimizerSpec(_Strict):
    name: Literal["adam", "adamw", "rmsprop", "sgd"] = Field("adam", description="The torch.optim optimiser.")
    lr: float = Field(2e-4, gt=0, description="Learning rate (DF-GAN: G 1e-4, D 4e-4).")
    betas: tuple[float, float] = Field(
        (0.5, 0.999), description="Adam/AdamW betas (DCGAN 0.5, 0.999; DF-GAN 0.0, 0.9); ignored by rmsprop/sgd."
    )
    weight_decay: float = Field(0.0, ge=0, description="L2 penalty (decoupled for adamw).")
    eps: float = Field(1e-8, gt=0, description="Adam/AdamW/RMSprop denominator term.")
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec, description="Learning-rate schedule.")

    @model_validator(mode="after")
    def _betas_in_range(self) -> OptimizerSpec:
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError("betas must each be in [0, 1)")
        return self


class OptimSpec(_Strict):
    generator: OptimizerSpec = Field(default_factory=OptimizerSpec, description="Optimiser of G (and of losses that train with it).")
    discriminator: OptimizerSpec = Field(
        default_factory=OptimizerSpec, description="Optimiser of D (and of a jointly trained text encoder)."
    )


class TrainSpec(_Strict):
    epochs: int | None = Field(None, ge=1, description="Passes over the training split (or set steps).")
    steps: int | None = Field(
        None,
        ge=0,
        description="Generator steps; wins over epochs when both are set. 0 saves the starting (e.g. loaded) "
        "weights as step 0 and stops: a run directory to generate from or evaluate.",
    )
    max_minutes: float | None = Field(None, gt=0, description="Stop (and save) after this wall time.")
    batch_size: int = Field(64, ge=1, description="Image-caption pairs per micro-batch.")
    d_steps: int = Field(1, ge=1, description="Discriminator steps per generator step (n_critic).")
    grad_accum: int = Field(1, ge=1, description="Micro-batches accumulated per optimiser step.")
    reuse_fake: bool = Field(
        False, description="G's step reuses the images generated for the last D step (one G forward per step, as "
        "DF-GAN's and Reed's code do) instead of a second forward from fresh noise (aelnouby's)."
    )
    amp: Literal["off", "bf16", "auto"] = Field(
        "auto", description="bf16 autocast; auto: bf16 where the device computes it natively (CUDA from Ampere on, "
        "CPUs with AVX512-BF16 or AMX), off elsewhere."
    )
    ema_decay: float | None = Field(0.999, ge=0, lt=1, description="EMA of G's weights; null disables.")
    ema_start: int = Field(0, ge=0, description="Steps before EMA starts tracking.")
    seed: int = Field(0, description="Seeds the weights, the data order and the noise (bit-identical GPU reruns also need deterministic).")
    deterministic: bool = Field(False, description="torch.use_deterministic_algorithms; slower on GPU.")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N")
    channels_last: bool = Field(False, description="NHWC activations: faster convolutions with bf16 on GPUs and recent CPUs.")
    compile_generator: bool = Field(False, description="torch.compile G.")
    compile_discriminator: bool = Field(
        False, description="torch.compile D for its first-order passes (generated and mismatched images, real ones when "
        "no loss takes their gradient); a gradient penalty's passes (MA-GP, R1, WGAN-GP) stay eager, since "
        "torch.compile does not support the double backward they need."
    )
    num_threads: int | None = Field(None, ge=1, description="CPU threads for torch (default: all cores).")


class IntervalsSpec(_Strict):
    log: int = Field(10, ge=1, description="Steps between lines of metrics.jsonl (each line: the loss terms averaged over those steps).")
    samples: int = Field(500, ge=1, description="Steps between sample grids.")
    checkpoint: int = Field(1000, ge=1, description="Steps between checkpoints (one is always written at the end).")
    keep_checkpoints: int = Field(3, ge=1, description="Numbered checkpoints kept besides latest.")


class SamplesSpec(_Strict):
    captions: int = Field(8, ge=1, le=64, description="Rows of the grid: fixed captions (half train, half held out).")
    per_caption: int = Field(8, ge=1, le=64, description="Columns: fixed noise vectors.")
    truncation: float | None = Field(None, gt=0, description="Truncate noise to [-2, 2] times this (DF-GAN: 0.88).")


class EvalSpec(_Strict):
    every_epochs: int | None = Field(None, ge=1, description="Evaluate during training every N epochs.")
    metrics: list[str] = Field(
        default_factory=lambda: ["fid", "align"], description="Any of fid, kid, is, align, diversity (see ganreg eval)."
    )
    samples: int = Field(1000, ge=10, description="Generated images per evaluation (FID/KID want thousands).")
    keep_best: str | None = Field(None, description="Keep the best checkpoint by this metric (e.g. fid).")
    tensorboard: bool = Field(False, description="Also write the logged terms and metrics as TensorBoard events.")


class OutputSpec(_Strict):
    dir: str = Field("runs", description="Parent directory of run directories.")
    name: FolderName = Field(None, description="Run directory name; default: recipe name + time.")


class Recipe(_Strict):
    version: Literal[1] = Field(RECIPE_VERSION, description="Recipe format version.")
    name: FolderName = Field(None, description="Short name; the default run directory starts with it.")
    description: str | None = Field(None, description="Free text: what the recipe is for and why its settings.")
    base: str | None = Field(None, description="A recipe this one extends (path relative to this file).")
    data: DataConfig = Field(default_factory=DataConfig, description="Where the image-caption pairs come from (source: shapes, hdf5, folder).")
    text_encoder: TextEncoderSpec = Field(description="Turns captions into the sentence (and word) embeddings G and D condition on.")
    image_encoder: NetworkSpec | None = Field(
        None,
        description="Source-image encoder, trained with G: in training its latent of each real image replaces G's "
        "noise (cVAE-GAN; pair it with a reconstruction loss such as dcgan_cls:l1 and, for a variational encoder, "
        "source_encoder:latent_kl). Samples and `ganreg eval` draw the noise from N(0, I); `ganreg generate --source "
        "IMAGE` draws from an image's latent.",
    )
    generator: NetworkSpec = Field(description="G: noise + sentence embedding -> image.")
    discriminator: NetworkSpec = Field(description="D: image + sentence embedding -> real/fake score.")
    losses: list[LossSpec] = Field(min_length=1, description="The terms of both objectives; each trains G or D.")
    optim: OptimSpec = Field(default_factory=OptimSpec, description="One optimiser per network.")
    train: TrainSpec = Field(default_factory=TrainSpec, description="Length, batch, precision, EMA, seed, device.")
    intervals: IntervalsSpec = Field(default_factory=IntervalsSpec, description="How often to log, draw samples and save.")
    samples: SamplesSpec = Field(default_factory=SamplesSpec, description="The sample grid drawn during training.")
    eval: EvalSpec = Field(default_factory=EvalSpec, description="Metrics computed during training.")
    output: OutputSpec = Field(default_factory=OutputSpec, description="Where the run directory goes.")


# --------------------------------------------------------------------- loading
def deep_merge(base: dict[str, Any], over: dict[str, Any], components: tuple[str, ...] = SECTION_KINDS) -> dict[str, Any]:
    """``over`` wins; dicts merge recursively, lists and scalars are replaced.

    A section that names another component than the base's (``"generator": {"name": "mygan:mygen"}``
    over DF-GAN's) replaces the base's section instead of merging into it: the base's ``params``
    belong to the base's component (its ``nf`` would be an unknown key of the new one), and so do its
    ``weights`` and settings."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and (key not in components or _same_component(out[key], value)):
            out[key] = deep_merge(out[key], value, ())
        else:
            out[key] = copy.deepcopy(value)
    return out


def bundled_recipes() -> Path | None:
    """The repository's ``recipes/`` folder, when ganreg runs from its checkout (an editable install)."""
    import ganreg

    folder = Path(ganreg.__file__).resolve().parents[2] / "recipes"
    return folder if folder.is_dir() else None


def _not_found_fix(path: Path) -> str:
    """Where the recipe the user meant may be: a bundled one of that name, else where the bundled ones are."""
    folder = bundled_recipes()
    if folder is None:
        return "check the path"
    for name in (path.name, f"{path.name}.json"):
        if (folder / name).is_file():
            return f"did you mean the bundled {folder / name}?"
    return f"check the path (the bundled recipes are in {folder})"


def read_json(path: Path) -> dict[str, Any]:
    if path.is_dir():
        raise UserError(f"{path} is a folder, not a recipe file", "pass a .json recipe file, e.g. recipes/dfgan.json")
    if not path.is_file():
        raise UserError(f"recipe file not found: {path}", _not_found_fix(path))
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))  # a byte-order mark (Windows editors) is no error
    except UnicodeDecodeError:
        raise UserError(f"{path} is not a text file (not UTF-8)", "pass a JSON recipe (bundled ones are in recipes/)") from None
    except json.JSONDecodeError as exc:
        raise RecipeError([(f"line {exc.lineno} col {exc.colno}", exc.msg, "fix the JSON syntax")], str(path)) from None
    if not isinstance(data, dict):
        raise RecipeError([("$", "a recipe must be a JSON object", None)], str(path))
    return data


def _same_component(base: dict[str, Any], over: dict[str, Any]) -> bool:
    """Whether ``over`` refines ``base``'s component section (a bare name matches its qualified id)."""
    if "name" not in over or not isinstance(base.get("name"), str) or not isinstance(over["name"], str):
        return True
    a, b = base["name"], over["name"]
    return a == b or (":" not in a or ":" not in b) and a.rpartition(":")[2] == b.rpartition(":")[2]


def load_raw(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a recipe and its chain of ``base`` recipes, merged."""
    path = Path(path).resolve()
    if path in _seen:
        raise UserError(f"recipe {path} extends itself through 'base'", "remove the cycle")
    data = read_json(path)
    base = data.get("base")
    if isinstance(base, str):
        if not (path.parent / base).is_file():
            raise UserError(
                f"{path}: its base recipe {base!r} was not found ({path.parent / base})",
                "'base' is read relative to the recipe file that names it; fix the path",
            )
        parent = load_raw(path.parent / base, (*_seen, path))
        parent.pop("name", None)
        data = deep_merge(parent, {k: v for k, v in data.items() if k != "base"})
    return data


def parse_value(text: str) -> Any:
    """``--set`` values: JSON when it parses (numbers, true, null, lists), else a string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set ``a.b.c`` in a raw recipe in place; a numeric part indexes a list
    (``losses.0.weight``); missing objects are created."""
    parts = key.strip().split(".")
    if not all(parts):
        raise UserError(f"--set {key!r}: empty key part", "write it as --set train.batch_size=16")
    node: Any = raw

    def bad_index(at: int, items: list[Any]) -> UserError:
        where = ".".join(parts[:at])
        return UserError(
            f"--set {key}: {where} has no item {parts[at]!r}",
            f"{where} holds {len(items)} items: use an index from 0 to {len(items) - 1}" if items else f"{where} is empty",
        )

    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise bad_index(i, node)
            node = node[int(part)]
        else:
            node = node.setdefault(part, {})
        if not isinstance(node, (dict, list)):
            raise UserError(f"--set {key}: {'.'.join(parts[: i + 1])} is not an object", "set that key itself")
    last = parts[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise bad_index(len(parts) - 1, node)
        node[int(last)] = value
    else:
        node[last] = value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b=c`` overrides (values parsed as JSON when they parse).

    ``--set generator.name=other`` swaps the component as a derived recipe does (:func:`deep_merge`): the
    section starts afresh from the new name, and the other ``--set generator.*`` keys apply on top of it,
    whatever their order on the command line."""
    out = copy.deepcopy(raw)
    pairs = []
    for item in overrides:
        if "=" not in item:
            raise UserError(f"--set {item!r} is not key=value", "write it as --set train.batch_size=16")
        key, value = item.split("=", 1)
        pairs.append((key, parse_value(value)))
    for key, value in pairs:
        section, _, field = key.partition(".")
        current = out.get(section)
        if section in SECTION_KINDS and field == "name" and isinstance(current, dict) and not _same_component(current, {"name": value}):
            out[section] = {"name": value}
    for key, value in pairs:
        set_dotted(out, key, value)
    return out


def _component_problems(
    raw: dict[str, Any], registry: Registry, sections: Iterable[str] | None = None, check_bools: bool = True
) -> list[tuple[str, str, str | None]]:
    """Check component names and their params against the registry (only ``sections``' when given);
    ``check_bools``: :func:`~ganreg.registry.bool_problems` too."""
    problems: list[tuple[str, str, str | None]] = []

    def check(kind: str, spec: Any, path: str) -> None:
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            return
        try:
            info = registry.resolve(kind, spec["name"])
        except ComponentError as exc:
            problems.append((f"{path}.name", exc.message, exc.fix))
            return
        params = spec.get("params", {})
        if isinstance(params, dict):
            if check_bools:
                problems.extend(bool_problems(info.params, params, f"{path}.params"))
            problems.extend(info.params_problems(params, f"{path}.params"))

    wanted = set(sections) if sections is not None else {*SECTION_KINDS, "losses"}
    for kind in SECTION_KINDS:
        if raw.get(kind) is not None and kind in wanted:
            check(kind, raw.get(kind), kind)
    losses = raw.get("losses")
    if isinstance(losses, list) and "losses" in wanted:
        for i, spec in enumerate(losses):
            check("loss", spec, f"losses.{i}")
    return problems


def validate_recipe(
    raw: dict[str, Any], registry: Registry, source: str = "recipe", sections: Iterable[str] | None = None,
    check_bools: bool = True,
) -> Recipe:
    """Validate a merged raw recipe; report every problem at once. ``sections`` limits the component checks
    to those sections (a trained run's generator can be used while its loss plugins are not installed).
    ``check_bools=False`` reads true / false as 1 / 0 where a number is wanted, as pydantic does: for a
    run's recorded recipe, which may predate :func:`~ganreg.registry.bool_problems` and trained that way."""
    problems: list[tuple[str, str, str | None]] = []
    recipe: Recipe | None = None
    raw = {k: v for k, v in raw.items() if k != "$schema"}  # an editor's schema link, not a setting
    if check_bools:
        problems.extend(bool_problems(Recipe, raw, ""))
    try:
        recipe = Recipe.model_validate(raw)
    except ValidationError as exc:
        problems.extend((p.lstrip("."), m, f) for p, m, f in validation_problems(exc, "", Recipe))
    problems.extend(_component_problems(raw, registry, sections, check_bools))
    problems = without_repeats(problems)
    if problems:
        raise RecipeError(problems, source)
    assert recipe is not None
    return recipe


def load_recipe(path: str | Path, registry: Registry, overrides: list[str] | None = None) -> Recipe:
    """Read, merge bases, apply ``--set`` overrides and validate a recipe file."""
    raw = apply_overrides(load_raw(path), overrides or [])
    keys = [o.split("=", 1)[0] for o in overrides or []]
    recipe = validate_recipe(raw, registry, f"{path} with --set {', '.join(keys)}" if keys else str(path))
    if recipe.name is None:
        recipe.name = Path(path).stem
    return recipe


def recipe_schema() -> dict[str, Any]:
    """The recipes' JSON Schema (for editors)."""
    schema = Recipe.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "ganreg recipe"
    schema["properties"]["$schema"] = {"type": "string", "description": "The schema's location, for editors; ignored."}
    return schema
