"""Data-parallel training under torchrun, on the CPU (gloo): each process its own slice of every batch,
gradients averaged, one writer of the run directory, resume with the same number of processes only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from ganreg.data.build import SeededRandomSampler


def test_processes_share_every_batch_disjointly() -> None:
    n, world, chunk = 50, 3, 4
    whole = list(SeededRandomSampler(n, seed=7))
    parts = [list(SeededRandomSampler(n, seed=7, rank=r, world=world, chunk=chunk)) for r in range(world)]
    span = world * chunk
    assert all(len(p) == n // span * chunk for p in parts)
    for b in range(n // span):  # global batch b is the permutation's b-th span, process r its r-th chunk
        for r in range(world):
            assert parts[r][b * chunk : (b + 1) * chunk] == whole[b * span + r * chunk : b * span + (r + 1) * chunk]
    resumed = SeededRandomSampler(n, seed=7, rank=1, world=world, chunk=chunk)
    resumed.set_epoch(0, start=chunk)
    assert list(resumed) == parts[1][chunk:] and len(resumed) == len(parts[1]) - chunk


WORKER = """
import sys
import torch
import torch.distributed as dist
from ganreg.train.distributed import Processes, average_gradients

rank, world, store, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
a = torch.nn.Parameter(torch.zeros(3))
b = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
skipped = torch.nn.Parameter(torch.zeros(1))
a.grad = torch.full((3,), float(rank + 1))
if rank == 0:  # a gradient only one process has (a term computed on some steps): the others send zeros
    b.grad = torch.ones(2, dtype=torch.float64)
average_gradients([a, b, skipped], Processes(rank, world, rank))
torch.save({"a": a.grad, "b": b.grad, "skipped": skipped.grad}, f"{out}.{rank}")
dist.destroy_process_group()
"""


def test_gradients_are_averaged_over_the_processes(tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    procs = [subprocess.Popen([sys.executable, str(script), str(r), "2", str(tmp_path / "store"), str(tmp_path / "grads")],
                              stderr=subprocess.PIPE, text=True) for r in range(2)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read() if proc.stderr else ""
    for rank in range(2):
        got = torch.load(tmp_path / f"grads.{rank}")
        assert torch.equal(got["a"], torch.full((3,), 1.5))
        assert torch.equal(got["b"], torch.full((2,), 0.5, dtype=torch.float64))
        assert got["skipped"] is None


def _torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "GANREG_NO_PLUGIN_AUTOLOAD"}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "ganreg.cli", "run", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=400)


def test_torchrun_trains_one_run_directory_and_resumes(write_recipe, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from ganreg.train.checkpoint import load_checkpoint

    recipe = write_recipe(**{"train.steps": 3, "train.batch_size": 4, "intervals.checkpoint": 2, "intervals.samples": 3})
    out = tmp_path / "run"
    res = _torchrun(str(recipe), "--out", str(out), "--device", "cpu", cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert res.stdout.count("finished at step 3/3") == 1  # process 0 reports
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 2, 3]  # one writer
    state = load_checkpoint(out / "checkpoints" / "latest.pt")
    assert state["world"] == 2 and len(state["rng"]["ranks"]) == 2
    assert not torch.equal(state["rng"]["ranks"][0]["noise"], state["rng"]["ranks"][1]["noise"])
    # 2 processes x 4 images a step: each process is 3 of its own batches in
    assert state["stream"] == {"epoch": 0, "batch": 3}
    assert sorted(p.name for p in (out / "samples").glob("*.png")) == ["step_0000000.png", "step_0000003.png"]

    more = _torchrun("--resume", str(out), "--set", "train.steps=5", "--device", "cpu", cwd=tmp_path)
    assert more.returncode == 0, more.stdout[-3000:] + more.stderr[-3000:]
    assert [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4, 5]

    env = {k: v for k, v in os.environ.items() if k != "GANREG_NO_PLUGIN_AUTOLOAD"}
    alone = subprocess.run([sys.executable, "-m", "ganreg.cli", "run", "--resume", str(out), "--set", "train.steps=6",
                            "--device", "cpu"], capture_output=True, text=True, env=env, timeout=300)
    assert alone.returncode == 2 and "trained by 2 process(es)" in " ".join(alone.stderr.split())
    assert "Traceback" not in alone.stderr


def test_torchrun_evaluates_during_training_on_process_0(write_recipe, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """eval.every_epochs under torchrun: process 0 evaluates, the other waits, and the best checkpoint holds both
    processes' random states (gathered by both, so resuming from it is exact)."""
    from ganreg.train.checkpoint import load_checkpoint

    recipe = write_recipe(**{
        "train.steps": 12, "train.batch_size": 4, "intervals.checkpoint": 12, "intervals.samples": 12,
        "eval": {"every_epochs": 1, "metrics": ["diversity"], "samples": 16, "keep_best": "diversity_pixels"},
    })
    out = tmp_path / "run"
    res = _torchrun(str(recipe), "--out", str(out), "--device", "cpu", cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in lines if "eval/diversity_pixels" in r]
    assert len(evals) == 1 and evals[0]["epoch"] == 1.0  # one writer, once an epoch
    assert [r["step"] for r in lines if "eval/diversity_pixels" not in r] == list(range(1, 13))
    best = json.loads((out / "best.json").read_text())
    assert best["metric"] == "diversity_pixels" and best["step"] == evals[0]["step"]
    state = load_checkpoint(out / "checkpoints" / "best.pt")
    assert state["step"] == best["step"] and state["world"] == 2 and len(state["rng"]["ranks"]) == 2
