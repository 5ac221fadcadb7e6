"""The training loop: generic over components.

It knows the GAN step structure (``d_steps`` discriminator steps, then one
generator step; losses read what they need from a :class:`StepContext`),
never a model's internals. Per-network optimisers and schedules, gradient
accumulation, EMA of G, bf16 autocast, ``channels_last``, seeding, atomic
checkpoints with exact resume, Ctrl-C saves and exits, NaN/inf stops the run.
"""

from __future__ import annotations

import contextlib
import json
import math
import shlex
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ganreg.atomic import atomic_write_text
from ganreg.data._util import to_unit_range
from ganreg.errors import DataError, TrainingDiverged, UserError
from ganreg.interfaces import TextBatch
from ganreg.kinds import SECTION_KINDS
from ganreg.recipe import Recipe
from ganreg.registry import Registry
from ganreg.runfiles import checkpoint_dir, latest_checkpoint, step_file
from ganreg.train.checkpoint import load_checkpoint, load_weights, save_checkpoint
from ganreg.train.context import StepContext
from ganreg.train.contracts import PROBE_ITEMS, blame, check_contracts, check_image_range, check_loss_value
from ganreg.train.distributed import (
    SINGLE,
    Processes,
    any_process,
    average_gradients,
    barrier,
    broadcast_modules,
    broadcast_object,
    gather_objects,
    mean_over_processes,
)
from ganreg.train.networks import LossTerm, Networks, build_networks, check_trainable, parameter_table
from ganreg.train.optim import build_optimizer, build_scheduler
from ganreg.train.rundir import VOCAB_FILE, check_same_data, discard_after, record_session, trim_metrics, write_run_files
from ganreg.train.sampling import grid_images, make_noise, save_grid
from ganreg.train.setup import DataBundle, prepare_data, prepare_text_encoder, resolve_amp, resolve_device, text_batch
from ganreg.train.weights import load_recipe_weights


class Trainer:
    """Trains one recipe into one run directory."""

    def __init__(
        self, recipe: Recipe, registry: Registry, run_dir: Path, device: str | None = None, start_weights: bool = True,
        procs: Processes = SINGLE,
    ) -> None:
        """``start_weights=False`` skips the recipe's ``<kind>.weights`` (a resumed run has its own in its
        checkpoint, and the files need not exist any more). ``procs``: this process's place under torchrun
        (:mod:`ganreg.train.distributed`); process 0 builds the data and text-encoder caches first."""
        self.recipe, self.registry, self.run_dir = recipe, registry, Path(run_dir)
        self.procs = procs
        t = recipe.train
        self.device = resolve_device(device or t.device)
        if t.num_threads:
            torch.set_num_threads(t.num_threads)
        torch.manual_seed(t.seed)
        if t.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        # cuDNN's default algorithms for MA-GP's double backward of large
        # convolutions are up to 10x slower than the ones its benchmark finds
        torch.backends.cudnn.benchmark = not t.deterministic
        self.amp_dtype = resolve_amp(t.amp, self.device)
        self.memory_format = torch.channels_last if t.channels_last else torch.contiguous_format

        if not procs.main:
            barrier(procs)  # process 0 fills the data and text-encoder caches; the others then read them
        self.data: DataBundle = prepare_data(recipe, self.run_dir)
        self.nets: Networks = build_networks(recipe, registry, self.data.context)
        check_trainable(self.nets, self.data.train, t.batch_size, procs.world)
        if start_weights:
            load_recipe_weights(self.nets.modules(), {k: getattr(recipe, k) for k in SECTION_KINDS})
        prepare_text_encoder(self.nets.text_encoder, recipe, self.data, self.device, pretrain=start_weights)
        if procs.main:
            barrier(procs)
        self.joint_text = recipe.text_encoder.mode == "joint" and any(
            p.requires_grad for p in self.nets.text_encoder.parameters()
        )
        for name, module in self.nets.modules().items():
            module.to(self.device)
            if name != "text_encoder":
                module.to(memory_format=self.memory_format)
        for term in self.nets.losses:
            term.module.to(self.device)
        broadcast_modules([*self.nets.modules().values(), *(term.module for term in self.nets.losses)], procs)
        if procs.distributed:  # the same weights everywhere, then each process its own random numbers
            torch.manual_seed(t.seed + procs.rank)
        check_contracts(self.nets, self.data.probe_batch(PROBE_ITEMS), recipe.data.image_size, self.device)
        self.generator_fn = torch.compile(self.nets.generator) if t.compile_generator else self.nets.generator
        self.first_order_discriminator = (
            torch.compile(self.nets.discriminator) if t.compile_discriminator else self.nets.discriminator
        )

        self.stream = self.data.stream(
            t.batch_size,
            t.seed,
            pin_memory=self.device.type == "cuda",
            wrong_images=any(term.module.needs_wrong_images for term in self.nets.losses),
            rank=procs.rank,
            world=procs.world,
        )
        per_step = t.d_steps * t.grad_accum
        self.steps_per_epoch = max(1, self.stream.batches_per_epoch // per_step)
        self.total_steps = t.steps if t.steps is not None else (t.epochs or 1) * self.steps_per_epoch

        self.opt, self.sched = self._build_optimizers()
        self.ema: AveragedModel | None = self._averaged(self.nets.generator)
        self.ema_encoder: AveragedModel | None = self._averaged(self.nets.image_encoder)
        """The image encoder's EMA, over the same steps as G's: ``generate --source`` pairs the two averages."""
        self.noise_gen = torch.Generator().manual_seed(t.seed + 1 + 7919 * procs.rank)
        self.input_grad = any(term.module.needs_input_grad for term in self.nets.terms("discriminator"))
        self.step = 0
        self.elapsed = 0.0
        self._stop_requested = False
        self._pending: list[tuple[int, dict[str, torch.Tensor]]] = []
        self._first_step_done = False  # the losses' exceptions are named with their plugin on the first step
        self._interval_sums: dict[str, float] = {}
        self._interval_counts: dict[str, int] = {}
        self._fixed = self._fixed_samples()
        self.discarded_to: Path | None = None
        """Where :meth:`resume` from an earlier checkpoint moved what came after it (None: nothing)."""

    # ---------------------------------------------------------------- helpers
    def _build_optimizers(self) -> tuple[dict[str, torch.optim.Optimizer], dict[str, Any]]:
        """Each network's optimiser and LR schedule. D's takes the text encoder when it trains jointly
        (D's loss trains it) and the parameters of D's loss terms; G's takes the image encoder (trained with
        G through the latents it hands G) and G's loss terms' parameters."""
        d_params = list(self.nets.discriminator.parameters())
        if self.joint_text:
            d_params += list(self.nets.text_encoder.parameters())
        for term in self.nets.losses:  # losses with parameters (e.g. projection heads) train with their network
            (d_params if term.network == "discriminator" else []).extend(term.module.parameters())
        g_params = list(self.nets.generator.parameters()) + [
            p for term in self.nets.losses if term.network == "generator" for p in term.module.parameters()
        ]
        if self.nets.image_encoder is not None:  # trained with G through the latents it hands G
            g_params += list(self.nets.image_encoder.parameters())
        o = self.recipe.optim
        opt = {"generator": build_optimizer(g_params, o.generator), "discriminator": build_optimizer(d_params, o.discriminator)}
        sched = {
            "generator": build_scheduler(opt["generator"], o.generator, self.total_steps, self.steps_per_epoch),
            "discriminator": build_scheduler(opt["discriminator"], o.discriminator, self.total_steps, self.steps_per_epoch),
        }
        return opt, sched

    def _averaged(self, module: torch.nn.Module | None) -> AveragedModel | None:
        """The EMA of ``module``'s weights and buffers (``train.ema_decay``), or None without one."""
        decay = self.recipe.train.ema_decay
        if module is None or decay is None:
            return None
        ema = AveragedModel(module, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
        ema.requires_grad_(False)
        return ema

    def _fixed_samples(self) -> dict[str, Any]:
        s = self.recipe.samples
        g = torch.Generator().manual_seed(self.recipe.train.seed + 2)
        z = make_noise(s.per_caption, self.nets.generator.z_dim, g, s.truncation)
        return {"z": z, **self.data.fixed_captions(s.captions)}

    def _text(self, batch: dict[str, Any]) -> TextBatch:
        return text_batch(batch, self.device)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _images(self, t: torch.Tensor) -> torch.Tensor:
        """A batch of images on the device in [-1, 1]; the stream's uint8 images are converted there."""
        t = t.to(self.device, non_blocking=True)
        if t.dtype == torch.uint8:
            t = to_unit_range(t)
        return t.contiguous(memory_format=self.memory_format)

    def _noise(self, n: int) -> torch.Tensor:
        return make_noise(n, self.nets.generator.z_dim, self.noise_gen).to(self.device)

    def _context(self, phase: str, batch: dict[str, Any], keep_g_graph: bool = False) -> StepContext:
        text = self._text(batch)
        grad = phase == "discriminator" and self.joint_text
        with torch.set_grad_enabled(grad):
            out = self.nets.text_encoder(text)
        real = self._images(batch["images"])
        wrong = batch.get("wrong_images")
        return StepContext(
            phase=phase,  # type: ignore[arg-type]
            generator=self.generator_fn,  # type: ignore[arg-type]
            discriminator=self.nets.discriminator,
            real=real,
            cond=out.sentence.float(),
            z=self._noise(real.shape[0]),
            text=text,
            wrong=self._images(wrong) if wrong is not None else None,
            labels=batch["labels"].to(self.device, non_blocking=True) if batch.get("labels") is not None else None,
            words=out.words,
            input_grad=self.input_grad and phase == "discriminator",
            sample_noise=self._noise,
            keep_g_graph=keep_g_graph,
            image_encoder=self.nets.image_encoder,
            first_order_discriminator=self.first_order_discriminator,  # type: ignore[arg-type]
        )

    def _phase(self, network: str, contexts: list[StepContext]) -> dict[str, torch.Tensor]:
        """Forward + backward of one network's objective over the micro-batches' contexts, then a step.

        Returns the terms as detached tensors: converting them to numbers here
        would synchronise with the GPU every step; :meth:`_flush` does it once
        per logging interval (and checks for NaN/inf before anything is saved).
        """
        logs: dict[str, torch.Tensor] = {}
        terms = self.nets.terms(network)
        extras: dict[str, list[torch.Tensor]] = {}  # what the losses log: averaged over the micro-batches that log it
        accum = len(contexts)
        prefix = network[0]
        for ctx in contexts:
            values = []
            with self._autocast():
                for term in terms:
                    values.append((term, self._loss_value(term, ctx)))
            total = sum(term.weight * v for term, v in values)
            assert isinstance(total, torch.Tensor)
            if self.input_grad and network == "discriminator":
                # a gradient penalty made the real images and sentences leaves that require grad: a plain
                # backward would also fill their gradients (a full-resolution input-gradient pass nobody
                # reads), so only the parameters D's optimiser steps are asked for. Elsewhere a plain
                # backward (``inputs=`` would refuse reentrant activation checkpointing in a plugin)
                leaves = [p for group in self.opt[network].param_groups for p in group["params"] if p.requires_grad]
                torch.autograd.backward(total / accum, inputs=leaves)
            else:
                (total / accum).backward()
            for term, v in values:
                key = f"{prefix}/{term.name}"
                logs[key] = logs.get(key, 0.0) + v.detach() / accum
            logs[f"{prefix}/total"] = logs.get(f"{prefix}/total", 0.0) + total.detach() / accum
            for k, v in ctx.logs.items():
                extras.setdefault(f"{prefix}/{k}", []).append(v)
        logs.update(_means(extras))
        average_gradients((p for group in self.opt[network].param_groups for p in group["params"]), self.procs)
        self.opt[network].step()
        self.opt[network].zero_grad(set_to_none=True)
        module = self.nets.generator if network == "generator" else self.nets.discriminator
        for term in terms:
            term.module.after_step(module)
        return logs

    def _loss_value(self, term: LossTerm, ctx: StepContext) -> torch.Tensor:
        """One term's value, checked on every step to be one number (a term may compute only on some steps, as
        lazy MA-GP does; the check costs microseconds and never synchronises with the GPU). On the process's
        first step an exception is named with its plugin; later ones keep their traceback (a failure hours
        into a run may be ganreg's or the GPU library's, not the plugin's)."""
        if term.info is None:
            return term.module(ctx).float()
        if self._first_step_done:
            value = term.module(ctx)
        else:
            with blame(term.info, f"the first training step (loss {term.info.qualified} of the {term.network})", self.nets):
                value = term.module(ctx)
        check_loss_value(term.info, value)
        return value.float()

    def _flush(self) -> None:
        """Move the steps since the last flush into the logging interval's sums (one GPU sync);
        raises :class:`TrainingDiverged` naming the first step and network whose loss was NaN or
        infinite."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        keys = sorted({k for _, logs in pending for k in logs})  # a loss may log a key only on some steps
        nan = torch.tensor(float("nan"), device=self.device)
        rows = [torch.stack([logs[k].float().reshape(()).to(self.device) if k in logs else nan for k in keys])
                for _, logs in pending]
        table = mean_over_processes(torch.stack(rows), self.procs).cpu()  # every process logs, and stops on, the same
        for (step, logs), row in zip(pending, table):
            values = dict(zip(keys, row.tolist()))
            bad = [k for k in keys if k in logs and not math.isfinite(values[k])]
            totals = [k for k in bad if k.endswith("/total")]
            if totals:
                network = "discriminator" if totals[0].startswith("d/") else "generator"
                terms = [k.split("/", 1)[1] for k in bad if k[0] == totals[0][0] and not k.endswith("/total")]
                kept = "the last good checkpoint is kept" if latest_checkpoint(self.run_dir).is_file() else (
                    "no checkpoint was written before it"
                )
                raise TrainingDiverged(
                    f"the {network} loss became {values[totals[0]]} at step {step}"
                    f" (terms: {', '.join(terms) or 'sum'})",
                    f"lower the learning rate, check the data, or add a regulariser; {kept}",
                )
            for k in logs:
                self._interval_sums[k] = self._interval_sums.get(k, 0.0) + values[k]
                self._interval_counts[k] = self._interval_counts.get(k, 0) + 1

    def _interval_means(self) -> dict[str, float]:
        """Each logged term's mean over the steps since the last record (over the steps that logged
        it), then a fresh interval. A mean, not the last step's value: a term computed every N-th
        step only (lazy MA-GP) would otherwise read 0 whenever the logging interval is a multiple of N."""
        self._flush()
        means = {k: total / self._interval_counts[k] for k, total in self._interval_sums.items()}
        self._interval_sums, self._interval_counts = {}, {}
        return means

    def _step_batches(self) -> list[list[dict[str, Any]]]:
        """The batches of one step (``grad_accum`` per D step), read before any network changes: an image
        that fails to load then stops the run at a whole step, with the stream back at its first batch, so
        the checkpoint :meth:`fit` saves continues exactly there once the file is fixed."""
        t = self.recipe.train
        position = self.stream.state()
        try:
            return [[self.stream.next() for _ in range(t.grad_accum)] for _ in range(t.d_steps)]
        except DataError:
            self.stream.load_state(position)
            raise

    def train_step(self) -> None:
        """One generator step and the ``d_steps`` discriminator steps before it."""
        t = self.recipe.train
        nets = self.nets
        step_batches = self._step_batches()
        for module in nets.modules().values():
            module.train()
        if not (self.joint_text or self.recipe.text_encoder.mode == "joint"):
            nets.text_encoder.eval()
        d_logs: dict[str, list[torch.Tensor]] = {}
        batches: list[dict[str, Any]] = []
        d_contexts: list[StepContext] = []
        for d_step in range(t.d_steps):
            batches = step_batches[d_step]
            keep = t.reuse_fake and d_step == t.d_steps - 1
            d_contexts = [self._context("discriminator", batch, keep_g_graph=keep) for batch in batches]
            for k, v in self._phase("discriminator", d_contexts).items():
                d_logs.setdefault(k, []).append(v)
        logs = _means(d_logs)  # a WGAN critic's 5 steps: the curve is their mean, not the last one's
        if t.reuse_fake:  # the last D step's images, still carrying G's graph
            g_contexts = [ctx.for_generator() for ctx in d_contexts]
        else:
            g_contexts = [self._context("generator", batch) for batch in batches]
        del d_contexts
        nets.discriminator.requires_grad_(False)
        try:
            logs.update(self._phase("generator", g_contexts))
        finally:
            nets.discriminator.requires_grad_(True)
        for sched in self.sched.values():
            sched.step()
        self.step += 1
        for ema, module in ((self.ema, nets.generator), (self.ema_encoder, nets.image_encoder)):
            if ema is None or module is None:
                continue
            if self.step <= t.ema_start:
                ema.module.load_state_dict(module.state_dict())
            else:
                ema.update_parameters(module)
        self._pending.append((self.step, logs))
        self._first_step_done = True

    # -------------------------------------------------------------- artefacts
    def sample_generator(self) -> torch.nn.Module:
        return self.ema.module if self.ema is not None else self.nets.generator

    @torch.no_grad()
    def write_samples(self) -> Path | None:
        """The fixed-noise grid of the (EMA) generator; process 0 only (the others hold the same weights)."""
        if not self.procs.main:
            return None
        fx = self._fixed
        g = self.sample_generator()
        was_training = g.training
        g.eval()
        self.nets.text_encoder.eval()
        cond = self.nets.text_encoder(self._text(fx["batch"])).sentence.float()
        images = grid_images(g, cond, fx["z"])
        g.train(was_training)
        check_image_range(images, self.nets.infos["generator"], f" on the sample grid of step {self.step}")
        path = self.run_dir / "samples" / step_file(self.step, ".png")
        save_grid(images, path, nrow=fx["z"].shape[0], captions=[f"({split}) {c}" for split, c in zip(fx["splits"], fx["captions"])])
        return path

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "format": 1,
            "step": self.step,
            "elapsed": self.elapsed,
            "stream": self.stream.state(),
            "models": {k: m.state_dict() for k, m in self.nets.modules().items()},
            "losses": {t.name: t.module.state_dict() for t in self.nets.losses},
            "optim": {k: o.state_dict() for k, o in self.opt.items()},
            "sched": {k: s.state_dict() for k, s in self.sched.items()},
            "rng": {"torch": torch.get_rng_state(), "noise": self.noise_gen.get_state()},
        }
        if torch.cuda.is_available():
            state["rng"]["cuda"] = torch.cuda.get_rng_state_all()
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        if self.ema_encoder is not None:
            state["ema_image_encoder"] = self.ema_encoder.state_dict()
        if self.procs.distributed:  # each process's own random numbers, for an exact resume
            state["world"] = self.procs.world
            state["rng"]["ranks"] = gather_objects(dict(state["rng"]), self.procs)
        return state

    def load_state_dict(self, state: dict[str, Any], source: Path | None = None) -> None:
        """``source``: the checkpoint file, named if its networks do not fit this run's."""
        for k, m in self.nets.modules().items():  # first: nothing changes when the checkpoint is another recipe's
            load_weights(m, state["models"][k], k, source or Path("the checkpoint"))
        self.step, self.elapsed = int(state["step"]), float(state.get("elapsed", 0.0))
        self.stream.load_state(state["stream"])
        for t in self.nets.losses:
            t.module.load_state_dict(state["losses"].get(t.name, {}))
        for k, o in self.opt.items():
            o.load_state_dict(state["optim"][k])
        for k, s in self.sched.items():
            s.load_state_dict(state["sched"][k])
        rng = state["rng"]
        if int(state.get("world", 1)) != self.procs.world:
            raise UserError(
                f"{source or 'the checkpoint'} was trained by {state.get('world', 1)} process(es), and this is "
                f"{self.procs.world}: each process's share of every batch and its random numbers would differ",
                f"resume with as many processes (torchrun --nproc_per_node {state.get('world', 1)}), or start a new "
                "run from its weights (--set generator.weights=... discriminator.weights=...)",
            )
        if self.procs.distributed:
            rng = rng["ranks"][self.procs.rank]
        torch.set_rng_state(rng["torch"])
        self.noise_gen.set_state(rng["noise"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        if self.ema is not None and "ema" in state:
            self.ema.load_state_dict(state["ema"])
        if self.ema_encoder is not None and "ema_image_encoder" in state:
            self.ema_encoder.load_state_dict(state["ema_image_encoder"])

    def save(self) -> Path:
        """Write a checkpoint (process 0; every process must call it: it gathers their random states)."""
        state = self.state_dict()
        path = latest_checkpoint(self.run_dir)
        if self.procs.main:
            path = save_checkpoint(state, checkpoint_dir(self.run_dir), self.step, self.recipe.intervals.keep_checkpoints)
        return path

    def resume(self, checkpoint: Path) -> None:
        """Continue from ``checkpoint``. From an earlier one than the run's last, what came after it
        (later checkpoints and sample grids, a best checkpoint found later, evaluations, log lines) is moved
        to ``RUN/discarded/after_step_N/`` (:attr:`discarded_to`) and ``latest.pt`` rewritten at once: the
        run then has one history, the one being continued, and the other is set aside, not lost."""
        check_same_data(self.run_dir, self.data.fingerprint())
        # on the CPU: torch takes random states only as CPU tensors; modules and optimisers copy to the device
        self.load_state_dict(load_checkpoint(checkpoint, map_location="cpu"), checkpoint)
        moved: Path | None = None
        if self.procs.main:
            if not (self.run_dir / VOCAB_FILE).is_file():  # deleted: rebuilt as at the start (the weights fit it), kept
                self.data.save_vocab(self.run_dir)  # for generate and eval
            moved = discard_after(self.run_dir, self.step)
            trim_metrics(self.run_dir / "metrics.jsonl", self.step)
        moved_name = broadcast_object(str(moved) if moved is not None else None, self.procs)
        self.discarded_to = Path(moved_name) if moved_name is not None else None
        if self.discarded_to is not None:
            self.save()

    def write_static_files(self) -> None:
        write_run_files(self.run_dir, self.recipe, self.registry, self.nets.infos, self.data.context, self.data.fingerprint())
        self.data.save_vocab(self.run_dir)
        rows = parameter_table(self.nets.modules())
        atomic_write_text(self.run_dir / "params.json", json.dumps(rows, indent=2) + "\n")
        md = ["| network | total | trainable | MB |", "|---|---:|---:|---:|"]
        md += [f"| {r['network']} | {r['total']:,} | {r['trainable']:,} | {r['mb']:.2f} |" for r in rows]
        atomic_write_text(self.run_dir / "params.md", "\n".join(md) + "\n")

    # ------------------------------------------------------------------- loop
    @contextlib.contextmanager
    def _stop_signals_save(self) -> Iterator[None]:
        """Ctrl-C (SIGINT) and SIGTERM finish the current step, save and stop; a second one stops at once.
        SIGTERM is what a cluster's scheduler sends at the time limit or on preemption (Slurm, then SIGKILL
        after its KillWait, 30 s by default), and what torchrun sends its workers on Ctrl-C: without the
        handler, everything since the last checkpoint was lost."""
        def handler(signum: int, frame: Any) -> None:
            if self._stop_requested:
                raise KeyboardInterrupt
            self._stop_requested = True

        stop_signals = (signal.SIGINT, signal.SIGTERM)
        try:
            previous = {sig: signal.signal(sig, handler) for sig in stop_signals}
        except ValueError:  # not in the main thread
            yield
            return
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)

    def _maybe_evaluate(self) -> None:
        """Evaluation during training (``eval.every_epochs``): it logs its own
        ``eval/*`` line to metrics.jsonl and keeps the best checkpoint.

        Under torchrun process 0 evaluates alone while the others wait at their next collective (within
        :data:`~ganreg.train.distributed.TIMEOUT`); every process first gives its random state to the state
        a best checkpoint would hold, since gathering it is a collective that process 0 cannot make alone."""
        from ganreg.metrics.training import should_evaluate

        if not self.recipe.eval.every_epochs or not should_evaluate(self.recipe, self.step, self.steps_per_epoch):
            return
        self._flush()  # a diverged network stops the run here, before it is scored or kept as the best
        state = self.state_dict() if self.procs.distributed and self.recipe.eval.keep_best else None
        if self.procs.main:
            from ganreg.metrics.evaluate import evaluate_during_training

            evaluate_during_training(self, state=state)

    def fit(self, progress: Any = None, stop_after: int | None = None) -> str:
        """Train to the end (``"finished"``), until ``max_minutes`` (``"time limit"``), or until Ctrl-C or
        ``stop_after`` steps (``"interrupted"``); a checkpoint is saved either way."""
        iv, t = self.recipe.intervals, self.recipe.train
        metrics_path = self.run_dir / "metrics.jsonl"
        start = time.perf_counter() - self.elapsed
        last_time, last_images = time.perf_counter(), 0
        images_per_step = t.batch_size * t.grad_accum * t.d_steps * self.procs.world  # real images read, all processes
        status = "finished"
        if self.procs.main and self.step < self.total_steps:  # a resume that trains nothing is no session
            record_session(self.run_dir, self.step, self.device, self.amp_dtype, self.procs.world)
        writes = open(metrics_path, "a", encoding="utf-8") if self.procs.main else contextlib.nullcontext(None)
        with self._stop_signals_save(), writes as metrics:
            if self.step == 0:
                self.write_samples()
            while self.step < self.total_steps:
                try:
                    self.train_step()
                except DataError as exc:
                    raise self._saved_after(exc) from None
                last_images += images_per_step
                self.elapsed = time.perf_counter() - start
                out_of_time = t.max_minutes is not None and self.elapsed > t.max_minutes * 60
                if self.procs.distributed:  # the processes stop together, or the others would wait forever
                    self._stop_requested, out_of_time = any_process((self._stop_requested, out_of_time), self.device, self.procs)
                stopping = self._stop_requested or out_of_time or (stop_after is not None and self.step >= stop_after)
                due = [self.step % n == 0 for n in (iv.log, iv.samples, iv.checkpoint)]
                if any(due) or stopping or self.step == self.total_steps:
                    self._flush()  # checks for NaN/inf before any sample or checkpoint is written
                if due[0] or self.step == self.total_steps:
                    logs = self._interval_means()
                    now = time.perf_counter()
                    record = {
                        "step": self.step,
                        "epoch": self.step / self.steps_per_epoch,
                        "time_s": round(self.elapsed, 3),
                        "images_per_s": round(last_images / max(now - last_time, 1e-9), 2),
                        "lr_g": self.sched["generator"].get_last_lr()[0],
                        "lr_d": self.sched["discriminator"].get_last_lr()[0],
                        **logs,
                    }
                    if metrics is not None:
                        metrics.write(json.dumps(record) + "\n")
                        metrics.flush()
                    last_time, last_images = now, 0
                    if progress is not None:
                        progress(self, record)
                if due[1]:
                    self.write_samples()
                if due[2] and self.step < self.total_steps:
                    self.save()
                self._maybe_evaluate()
                if stopping:
                    status = "interrupted" if not out_of_time else "time limit"
                    break
        if self.step % iv.samples != 0:
            self.write_samples()
        self.save()
        if self.procs.main:
            from ganreg.runfiles import read_metrics
            from ganreg.train.plots import loss_term_names, plot_losses

            terms = loss_term_names(self.recipe.model_dump(mode="json"))
            plot_losses(read_metrics(metrics_path), self.run_dir / "loss_curves.png", terms)
        return status


    def _saved_after(self, exc: DataError) -> DataError:
        """A bad image met mid-run (``--check`` was not run, or the file changed): the steps trained so far are
        saved (one process only: a data-parallel save needs every process, and the others are not here), and
        the error says how to go on once the file is fixed."""
        if self.step == 0 or self.procs.distributed:
            return exc
        self._flush()
        self.save()
        resume = (f"the {self.step} steps trained so far are saved: once it is fixed, "
                  f"ganreg run --resume {shlex.quote(str(self.run_dir))}")
        return DataError(exc.message, f"{exc.fix}; {resume}" if exc.fix else resume)


def _means(values: dict[str, list[torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Each key's mean over the values logged for it (micro-batches, D steps), on the first value's device
    (a loss may log a Python float on one micro-batch and a CUDA tensor on the next)."""
    out: dict[str, torch.Tensor] = {}
    for k, v in values.items():
        if len(v) == 1:  # one micro-batch and one D step, the usual case: no extra work on the hot path
            out[k] = v[0]
            continue
        first = torch.as_tensor(v[0])
        out[k] = torch.stack([torch.as_tensor(x).to(first.device).float().reshape(()) for x in v]).mean()
    return out


def start_or_resume(
    recipe: Recipe, registry: Registry, run_dir: Path, device: str | None, resume: bool, checkpoint: Path | None = None,
    procs: Processes = SINGLE,
) -> Trainer:
    trainer = Trainer(recipe, registry, run_dir, device, start_weights=not resume, procs=procs)
    if resume:
        trainer.resume(checkpoint or latest_checkpoint(run_dir))
    elif procs.main:
        trainer.write_static_files()
    return trainer
