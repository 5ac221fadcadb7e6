"""Evaluate a generator: ``ganreg eval`` on a run directory, and the trainer's entry point.

One pass over generated batches feeds every requested metric: features for
FID/KID, class logits for IS, the classifier's heads for alignment. The
result carries its protocol (extractor and weights hash, sample counts,
split, resize, truncation, seed, checkpoint step) and a short protocol id per
metric (``fid10k-classifier:f3b1a0d4-test-64px``) so that numbers computed
differently are never mistaken for comparable.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

import ganreg
from ganreg.atomic import atomic_write_text
from ganreg.data.config import DataConfig
from ganreg.errors import UserError
from ganreg.metrics import fid as fidlib
from ganreg.metrics.alignment import AlignmentMeter
from ganreg.metrics.cache import data_keys_once, short_hash
from ganreg.metrics.classifier import CLASS_HEAD, ClassifierSpec, NoClasses, TrainedClassifier, load_classifier
from ganreg.metrics.diversity import DiversitySpec, diversity_metrics
from ganreg.metrics.features import ClassifierFeatures, FeatureExtractor, build_extractor
from ganreg.metrics.reference import Reference, dataset_reference, user_reference
from ganreg.metrics.samples import EvalBatch, generated_batches
from ganreg.runfiles import (
    BEST_CHECKPOINT, CHECKPOINT_DIR, LATEST_CHECKPOINT, RECIPE_FILE, checkpoint_dir, is_in_run, step_of,
)

METRICS = ("fid", "kid", "is", "align", "diversity")
LOWER_IS_BETTER = {"fid", "kid"}
EVAL_FILE = "eval.json"
"""The run's latest evaluation (what `ganreg report` and `ganreg compare` show)."""
EVALS_DIR = "evals"
"""Every evaluation, one file per split, checkpoint step and protocol: a second `ganreg eval` (on the
training captions after the held-out ones, or with another extractor) does not lose the first."""

Log = Callable[[str], None]


def _quiet(msg: str) -> None:
    return None


def metric_family(name: str) -> str:
    """The metric a reported value belongs to (the key of its protocol entry):
    ``align_colour`` -> ``align``, ``kid_std`` -> ``kid``, ``diversity_pixels`` -> ``diversity``."""
    for family in METRICS:
        if name == family or name.startswith(f"{family}_"):
            return family
    return name


def parse_metrics(value: str | list[str] | tuple[str, ...]) -> list[str]:
    """``"fid,kid"`` or a list -> validated names; a typo names the closest metric."""
    names = [m.strip().lower() for m in (value.split(",") if isinstance(value, str) else value) if m.strip()]
    for name in names:
        if name not in METRICS:
            close = difflib.get_close_matches(name, METRICS, n=1)
            fix = f"did you mean {close[0]!r}? " if close else ""
            raise UserError(f"unknown metric {name!r}", f"{fix}choose from {', '.join(METRICS)}")
    if not names:
        raise UserError("no metrics asked for", f"choose from {', '.join(METRICS)}")
    return list(dict.fromkeys(names))


@dataclass
class EvalOptions:
    """What to compute and how; every field ends up in the protocol."""

    metrics: list[str] = field(default_factory=lambda: list(METRICS))
    samples: int = 10000
    extractor: str = "classifier"
    split: str = "test"
    seed: int = 0
    truncation: float | None | Literal["run"] = "run"
    """The noise truncation: "run" (the default of ``ganreg eval`` too) is the run's own ``samples.truncation``,
    as its grids and in-training evaluation use; None: plain N(0, 1)."""
    ref_stats: Path | None = None
    batch_size: int = 64
    real_max: int | None = None
    """Cap on the real images behind the reference statistics (None: the whole split)."""
    classifier: ClassifierSpec = field(default_factory=ClassifierSpec)
    """How the real-data classifier is trained (its weights' sha256 is in the protocol)."""
    diversity: DiversitySpec = field(default_factory=DiversitySpec)
    """Captions and images per caption of the noise-diversity metric."""


@dataclass
class EvalResult:
    metrics: dict[str, float]
    chance: dict[str, float]
    protocol: dict[str, Any]
    metric_protocol: dict[str, dict[str, Any]]
    warnings: list[str] = field(default_factory=list)
    """What makes these numbers weak (:func:`evaluation_warnings`), kept with them in the record."""

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "ganreg-eval",
            "version": 1,
            "metrics": self.metrics,
            "chance": self.chance,
            "metric_protocol": self.metric_protocol,
            "protocol": self.protocol,
            "warnings": self.warnings,
        }


def _count(n: int) -> str:
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def protocol_id(metric: str, protocol: dict[str, Any]) -> str:
    """A short name that changes whenever the protocol does (StyleGAN-ADA style ``fid50k_full``)."""
    ext = (protocol.get("alignment_classifier") if metric == "align" else protocol.get("extractor")) or {}
    name, sha = ext.get("name", "?"), str(ext.get("sha256", "?"))[:8]
    trunc = protocol.get("truncation")
    head = f"{metric}{_count(protocol['generated_samples'])}-{name}:{sha}"
    if metric == "diversity":
        div = protocol["diversity"]
        head = f"diversity{div['captions']}x{div['per_caption']}-pixels"
    parts = [head, protocol["split"], f"{protocol['image_size']}px"]
    if trunc is not None:
        parts.append(f"trunc{trunc:g}")
    ref = protocol.get("reference") or {}
    if metric in ("fid", "kid") and ref.get("source") == "user file":
        parts.append(f"ref:{str(ref.get('sha256', '?'))[:8]}")
    elif metric in ("fid", "kid") and ref:  # the real images: which data, and how many of them
        data = str((protocol.get("data") or {}).get("data_key", "?"))[:8]
        parts.append(f"real{_count(ref['real_samples']) if isinstance(ref.get('real_samples'), int) else '?'}:{data}")
    return "-".join(parts)


def _npz_has_features(path: Path) -> bool:
    """Whether a reference npz stores the real features (KID needs them); an unreadable file says yes
    here and gets its own error when it is loaded."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            return "features" in npz.files
    except Exception:
        return True


def _reference(
    options: EvalOptions, config: DataConfig, dataset: Any, extractor: FeatureExtractor, device: torch.device, log: Log
) -> Reference:
    if options.ref_stats is not None:
        return user_reference(options.ref_stats, extractor.protocol(), extractor.num_features)
    return dataset_reference(config, options.split, dataset, extractor, device, options.real_max, log)


def needs_classifier(metrics: list[str], extractor: str) -> bool:
    """Whether these metrics read the evaluation classifier: alignment always, FID / KID / IS with its features."""
    return "align" in metrics or (extractor == "classifier" and any(m in metrics for m in ("fid", "kid", "is")))


def evaluate_generator(
    generator: nn.Module, text_encoder: nn.Module, dataset: Any, collator: Any, config: DataConfig,
    options: EvalOptions, device: torch.device, log: Log = _quiet,
) -> EvalResult:
    """Every requested metric of ``generator`` on the captions of ``dataset`` (one pass).

    The caller's random state is left untouched (training resumes exactly). ``options.truncation`` is a
    number or None here: a generator alone has no run whose truncation "run" could mean."""
    if options.truncation == "run":
        raise ValueError('evaluate_generator needs the truncation itself, not "run" (evaluate_run reads the '
                         "run's own)")
    metrics = parse_metrics(options.metrics)
    if options.samples < 2:
        raise UserError(f"--samples {options.samples} is too few", "use at least 2 (FID papers use 10k-30k)")
    if len(dataset) == 0:
        raise UserError(f"the '{options.split}' split has no images", "use another --split")
    if needs_classifier(metrics, options.extractor) and not dataset.has_classes:
        raise NoClasses(config.path)  # before anything is trained or generated
    if options.ref_stats is not None and not Path(options.ref_stats).is_file():
        raise UserError(f"reference statistics not found: {options.ref_stats}", "check the --ref-stats path (an .npz with mu and sigma)")
    if options.ref_stats is not None and "kid" in metrics and not _npz_has_features(options.ref_stats):
        raise UserError(  # before any classifier is trained or image generated
            f"KID needs the real features themselves; {options.ref_stats} holds only mu and sigma",
            "drop kid from --metrics (e.g. --metrics fid,is), or omit --ref-stats to use the dataset's cached features",
        )
    dev = torch.device(device)
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []), data_keys_once():
        return _evaluate(generator, text_encoder, dataset, collator, config, options, metrics, dev, log)


def _evaluate(
    generator: nn.Module, text_encoder: nn.Module, dataset: Any, collator: Any, config: DataConfig,
    options: EvalOptions, metrics: list[str], device: torch.device, log: Log,
) -> EvalResult:
    t0 = time.perf_counter()
    need_features = any(m in metrics for m in ("fid", "kid", "is"))
    classifier: TrainedClassifier | None = None
    if needs_classifier(metrics, options.extractor):
        classifier = load_classifier(config, options.classifier, device=device, log=log)
        classifier.model.to(device)
    extractor = build_extractor(options.extractor, config, classifier).to(device) if need_features else None
    reference = None
    if extractor is not None and ("fid" in metrics or "kid" in metrics):
        reference = _reference(options, config, dataset, extractor, device, log)

    feats: list[torch.Tensor] = []
    is_logits: list[torch.Tensor] = []
    meter = AlignmentMeter(classifier.model.head_sizes) if classifier is not None and "align" in metrics else None
    batches = generated_batches(
        generator, text_encoder, dataset, collator, options.samples, device, options.seed, options.truncation, options.batch_size
    )
    n = 0
    with torch.no_grad():
        for batch in batches:
            _consume(batch, extractor, classifier, meter, feats, is_logits)
            n += batch.images.shape[0]
    values: dict[str, float] = {}
    chance: dict[str, float] = {}
    fake = torch.cat(feats).double() if feats else None
    kid_size = 0
    if "fid" in metrics and fake is not None and reference is not None:
        real_side = reference.features.double() if reference.features is not None else reference.stats
        values["fid"] = fidlib.fid(real_side, fake)
    if "kid" in metrics and fake is not None and reference is not None and reference.features is not None:
        values["kid"], values["kid_std"], kid_size = fidlib.kid(reference.features.double(), fake, seed=options.seed)
    if "is" in metrics and is_logits:
        values["is"], values["is_std"] = fidlib.inception_score(torch.cat(is_logits).double(), seed=options.seed)
    if meter is not None:
        res = meter.result()
        values.update(res.accuracy)
        chance.update(res.chance)
    real_diversity = None
    if "diversity" in metrics:
        div, real_diversity = diversity_metrics(
            generator, text_encoder, dataset, collator, options.diversity, device, options.seed, options.truncation
        )
        values.update(div)
    protocol = _protocol(options, config, extractor, classifier, reference, n, time.perf_counter() - t0)
    per_metric = _metric_protocols(metrics, protocol, classifier, kid_size)
    if "diversity" in per_metric:
        per_metric["diversity"].update(
            generated_samples=options.diversity.captions * options.diversity.per_caption,  # not --samples
            distance="mean |x_i - x_j| over pixels in [0, 1], all pairs of images generated from one caption",
            real_pixels=real_diversity,
            reference="real images with the same class and attributes" if real_diversity is not None else None,
        )
    result = EvalResult(values, chance, protocol, per_metric)
    result.warnings = evaluation_warnings(result)
    return result


def evaluation_warnings(result: EvalResult) -> list[str]:
    """What makes these numbers untrustworthy: a weak evaluation classifier, too few generated or real
    images. Stored with the numbers (eval.json, eval_during_training.json), so the report and ``compare``
    show them too, not only the terminal that ran the evaluation."""
    p = result.protocol
    real = (p.get("reference") or {}).get("real_samples")
    sizes = sample_size_warnings(list(result.metric_protocol), p["generated_samples"],
                                 (p.get("extractor") or {}).get("feature_dim"), real if isinstance(real, int) else None)
    weak = weak_classifier_warning(p)
    return [weak, *sizes] if weak else sizes


def _consume(
    batch: EvalBatch, extractor: FeatureExtractor | None, classifier: TrainedClassifier | None,
    meter: AlignmentMeter | None, feats: list[torch.Tensor], is_logits: list[torch.Tensor],
) -> None:
    """Run the networks each batch needs: the classifier once when it is also the extractor."""
    heads: dict[str, torch.Tensor] | None = None
    if classifier is not None and (meter is not None or isinstance(extractor, ClassifierFeatures)):
        f, heads = classifier.model(batch.images)
        if isinstance(extractor, ClassifierFeatures):
            feats.append(f.float().cpu())
            is_logits.append(heads[CLASS_HEAD].float().cpu())
    if extractor is not None and not isinstance(extractor, ClassifierFeatures):
        f, lg = extractor.features_and_logits(batch.images)
        feats.append(f.float().cpu())
        if lg is not None:
            is_logits.append(lg.float().cpu())
    if meter is not None and heads is not None:
        meter.update(heads, batch.labels, batch.attributes)


def _protocol(
    options: EvalOptions, config: DataConfig, extractor: FeatureExtractor | None, classifier: TrainedClassifier | None,
    reference: Reference | None, n: int, seconds: float,
) -> dict[str, Any]:
    import torchmetrics

    from ganreg.metrics.cache import data_key

    return {
        "generated_samples": n,
        "captions": f"'{options.split}' split captions: one per image per pass, seeded order, passes cycled as needed",
        "split": options.split,
        "seed": options.seed,
        "truncation": options.truncation,
        "image_size": config.image_size,
        "diversity": {"captions": options.diversity.captions, "per_caption": options.diversity.per_caption},
        "data": {
            "source": config.source, "path": config.path, "num_images": config.num_images if config.source == "shapes" else None,
            "data_key": data_key(config),
        },
        "extractor": extractor.protocol() if extractor is not None else None,
        "reference": reference.protocol if reference is not None else None,
        "alignment_classifier": classifier.protocol() if classifier is not None else None,
        "ganreg_version": ganreg.__version__,
        "torchmetrics_version": torchmetrics.__version__,
        "seconds": round(seconds, 2),
    }


def _metric_protocols(
    metrics: list[str], protocol: dict[str, Any], classifier: TrainedClassifier | None, kid_size: int
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    ref = protocol.get("reference") or {}
    for m in metrics:
        entry: dict[str, Any] = {"id": protocol_id(m, protocol), "generated_samples": protocol["generated_samples"]}
        if m in ("fid", "kid"):
            entry["real_samples"] = ref.get("real_samples")
            entry["reference"] = ref.get("source")
        if m == "kid":
            entry.update({"subsets": fidlib.KID_SUBSETS, "subset_size": kid_size, "kernel": "polynomial (x.y/d + 1)^3"})
        if m == "is":
            entry.update({"splits": fidlib.IS_SPLITS, "std": "population (ddof 0) over the splits, as torch-fidelity",
                          "logits": (protocol.get("extractor") or {}).get("is_logits")})
        if m == "align" and classifier is not None:
            entry["ceiling"] = classifier.meta.get("heldout_accuracy")
            entry["chance"] = "sum_v p(v)^2 over the evaluated captions' targets (an image unrelated to its caption)"
        out[m] = entry
    return out


def eval_record_path(run_dir: Path, result: EvalResult) -> Path:
    """``RUN/evals/<split>-step<N>-<hash of the metrics' protocol ids, the generator weights and the seed>.json``:
    one record per distinct evaluation of a step (``--checkpoint 60`` and ``latest`` at step 60 are one)."""
    p = result.protocol
    ids = sorted(f"{k}={v.get('id')}" for k, v in result.metric_protocol.items())
    run = p.get("run") or {}
    key = short_hash([ids, run.get("generator_weights"), p.get("seed")], n=8)
    return Path(run_dir) / EVALS_DIR / f"{p['split']}-step{run.get('step', 0):07d}-{key}.json"


FID_MIN_SAMPLES = 2000
"""Fewest generated images for a FID worth reading (and twice the feature dimension, when that is more):
FID's bias falls only as 1/n, so FIDs of few images are inflated and compare only at the very same n; with
fewer images than feature dimensions the covariance is singular. Papers use 10k-50k."""
ALIGN_MIN_SAMPLES = 1000
"""Generated images for an alignment accuracy within about ±3 points (95% interval, at worst ±0.98/sqrt(n))."""


def sample_size_warnings(
    metrics: list[str], samples: int, feature_dim: int | None, real_samples: int | None = None
) -> list[str]:
    """A warning for each metric that ``samples`` generated images (or ``real_samples`` real ones, the
    reference's) are too few for, naming the count that is enough: the numbers are still computed (small
    runs are fine for smoke tests), but not to be trusted."""
    from math import sqrt

    out = []
    if real_samples is not None and "fid" in metrics and feature_dim and real_samples < 2 * feature_dim:
        worse = ("rests on a singular real covariance (fewer images than dimensions)" if real_samples <= feature_dim
                 else "is inflated")
        out.append(f"FID against {real_samples} real images of {feature_dim}-d features {worse}: evaluate on a split "
                   f"with {2 * feature_dim} or more images (--split), or with fewer feature dimensions (--extractor)")
    if real_samples is not None and "kid" in metrics and real_samples < min(fidlib.KID_SUBSET_SIZE, samples):
        out.append(f"KID's subsets hold {real_samples} images, all the real ones there are, not {fidlib.KID_SUBSET_SIZE}: "
                   "it compares only with KIDs against the same real images")
    if "fid" in metrics and feature_dim:
        need = max(FID_MIN_SAMPLES, 2 * feature_dim)
        if samples <= feature_dim:
            out.append(f"FID from {samples} images of {feature_dim}-d features rests on a singular covariance (fewer "
                       f"images than dimensions): it is no distance between the distributions; use --samples {need} or more")
        elif samples < need:
            out.append(f"FID from {samples} images is inflated (its bias falls as 1/n) and compares only with FIDs of "
                       f"exactly {samples}; use --samples {need} or more (papers use 10000-50000)")
    if "kid" in metrics and samples < fidlib.KID_SUBSET_SIZE:
        out.append(f"KID from {samples} images averages subsets of {samples}, not {fidlib.KID_SUBSET_SIZE}: its mean "
                   f"and std are noisy; use --samples {fidlib.KID_SUBSET_SIZE} or more")
    if "align" in metrics and samples < ALIGN_MIN_SAMPLES:
        out.append(f"alignment from {samples} images is only good to about ±{98 / sqrt(samples):.0f} points (95% interval); "
                   f"use --samples {ALIGN_MIN_SAMPLES} or more for ±3 points")
    return out


WEAK_CLASSIFIER = 0.8
"""Below this held-out class accuracy on real images the evaluation classifier's verdicts (alignment,
and FID/KID in its feature space) say more about the classifier than about the generator."""


def weak_classifier_warning(protocol: dict[str, Any]) -> str | None:
    """A warning when the evaluation classifier behind these numbers is weak, else None."""
    acc = (protocol.get("alignment_classifier") or {}).get("heldout_accuracy") or {}
    if acc.get("class", 1.0) >= WEAK_CLASSIFIER:
        return None
    source = (protocol.get("data") or {}).get("source")
    more = "raise data.num_images" if source == "shapes" else "evaluate on a dataset with more images per class"
    return (
        f"the evaluation classifier recognises only {acc['class']:.0%} of held-out real images' classes: alignment and "
        f"classifier-feature FID/KID are unreliable ({more}, or use --extractor inception where its weights are available)"
    )


# ------------------------------------------------------------------- runs
def resolve_checkpoint(run_dir: Path, checkpoint: str | None) -> Path:
    """``latest`` (default), ``best``, a step number, or a file."""
    from ganreg.train.checkpoint import find_checkpoint

    if checkpoint == "best":
        path = checkpoint_dir(run_dir) / BEST_CHECKPOINT
        if not path.is_file():
            raise UserError(f"{run_dir} has no best checkpoint", "set eval.keep_best in the recipe, or use --checkpoint latest")
        return path
    path = find_checkpoint(Path(run_dir), checkpoint)
    if checkpoint is not None and path == Path(checkpoint) and path.is_file():
        check_checkpoint_of_run(Path(run_dir), path)  # a file named by its path (latest and steps are the run's own)
    return path


def check_checkpoint_of_run(run_dir: Path, path: Path) -> None:
    """Refuse a checkpoint file that is not ``run_dir``'s own: ``ganreg eval`` files its numbers in that run's
    eval.json and evals/ as the run's step N, where report and compare show them as the run's. Another run's
    weights are evaluated as that run (the README's way to evaluate outside weights: make them a run)."""
    if is_in_run(run_dir, path):
        return
    file = Path(path).absolute()
    if file.parent.name == CHECKPOINT_DIR and (file.parent.parent / RECIPE_FILE).is_file():
        owner = Path(path).parent.parent if Path(path).parent.name == CHECKPOINT_DIR else file.parent.parent  # as the user wrote it
        step = step_of(file)
        which = str(step) if step is not None else {LATEST_CHECKPOINT: "latest", BEST_CHECKPOINT: "best"}.get(file.name, str(path))
        raise UserError(
            f"{path} is a checkpoint of the run {owner}, not of {run_dir}: its evaluation would be recorded in "
            f"{run_dir}/evals/ as {run_dir}'s own",
            f"evaluate it in its own run: ganreg eval {owner} --checkpoint {which}",
        )
    raise UserError(
        f"{path} is not in {run_dir}: its evaluation would be recorded in {run_dir}/evals/ as {run_dir}'s own",
        f"if it is {run_dir}'s checkpoint, put it back in {run_dir}/checkpoints/ and pass that path; "
        "if it is another run's, evaluate that run: ganreg eval OTHER_RUN --checkpoint STEP",
    )


def evaluate_run(
    run_dir: Path, options: EvalOptions, checkpoint: str | None = None, use_ema: bool = True, device: str = "auto",
    log: Log = _quiet, write: bool = True,
) -> EvalResult:
    """``ganreg eval``: load a run's trained networks, evaluate, write ``RUN/eval.json`` and
    ``RUN/evals/<split>-step<N>-<protocol>.json`` (atomically)."""
    from ganreg.data import Collator, build_dataset
    from ganreg.generate import load_run

    run_dir = Path(run_dir)
    ckpt = resolve_checkpoint(run_dir, checkpoint)
    run = load_run(run_dir, str(ckpt), use_ema, device)
    options = dataclasses.replace(options, truncation=run.truncation(options.truncation))
    dataset = build_dataset(run.recipe.data, options.split)
    collator = Collator(run.vocab, run.recipe.data.max_words)
    dev = next(run.nets.generator.parameters()).device
    result = evaluate_generator(run.nets.generator, run.nets.text_encoder, dataset, collator, run.recipe.data, options, dev, log)
    result.protocol["run"] = {
        "run_dir": str(run_dir.resolve()),
        "checkpoint": str(ckpt.resolve()),
        "step": run.step,
        "generator_weights": run.generator_weights,
        "recipe": run.recipe.name,
    }
    if write:
        text = json.dumps(result.to_json(), indent=2) + "\n"
        atomic_write_text(eval_record_path(run_dir, result), text)
        atomic_write_text(run_dir / EVAL_FILE, text)
    return result


# ---------------------------------------------------------- during training
def evaluate_during_training(trainer: Any, log: Log | None = None, state: dict[str, Any] | None = None) -> dict[str, float]:
    """The trainer's entry point (call at epoch boundaries; see :mod:`ganreg.metrics.training`)."""
    from ganreg.metrics.training import evaluate_trainer

    return evaluate_trainer(trainer, log, state)
