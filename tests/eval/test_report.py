"""``ganreg report``: a self-contained page that a browser renders with its grid and plots;
``ganreg compare``: the side-by-side table and the overlaid curves."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from ganreg.report.compare import compare_runs
from ganreg.report.html import build_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
PROBE = """<script>window.addEventListener('load', () => {
  const out = [...document.images].map(i => { const r = i.getBoundingClientRect();
    return {alt: i.alt, w: i.naturalWidth, h: i.naturalHeight, x: r.left, y: r.top + window.scrollY, dw: r.width, dh: r.height}; });
  document.body.setAttribute('data-probe', JSON.stringify(out)); });</script>"""


@pytest.fixture(scope="module")
def report(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ganreg import plugins

    plugins.reset_registry()
    mp = pytest.MonkeyPatch()
    mp.delenv("GANREG_NO_PLUGIN_AUTOLOAD", raising=False)
    try:
        return build_report(tiny_run, tmp_path_factory.mktemp("report") / "report.html", tsne_samples=40, device="cpu")
    finally:
        mp.undo()
        plugins.reset_registry()


def test_report_is_self_contained(report: Path) -> None:
    page = report.read_text()
    for section in ("Summary", "Loss curves", "Metric curves", "Samples over training", "t-SNE", "Parameters", "Recipe"):
        assert f"<h2>{section}</h2>" in page
    sources = re.findall(r"src='([^']*)'", page)
    assert len(sources) >= 4 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "<link" not in page and "http://" not in page and "https://" not in page
    assert "t-SNE skipped" not in page
    assert "dfgan:dfgan" in page and "generator" in page  # components and parameter table
    assert re.search(r"From the checkpoint of step 2 \(ema generator weights\).*(noise truncated at|untruncated N)", page)  # t-SNE
    assert re.search(r"<td>trained on</td><td>cpu \([^)]*\), amp (off|bfloat16)</td>", page)  # run.json's sessions


@pytest.mark.parametrize("n", [9, 10, 18, 48, 200, 1000])
def test_tsne_classes_never_share_a_colour(n: int) -> None:
    """The shapes data's 48 classes drew from tab20 by i % 20: held-out classes shared colours with no legend."""
    from ganreg.metrics.tsne import class_colours

    colours = class_colours(list(range(n)))
    assert len({tuple(round(v, 4) for v in c) for c in colours.values()}) == n
    assert not any(c[0] == c[1] == c[2] for c in colours.values())  # grey marks the training captions


def test_figures_leave_a_notebooks_matplotlib_backend_alone(tmp_path: Path) -> None:
    """matplotlib.use("Agg") on import replaced a notebook's inline backend: its own plots stopped showing once a
    run had trained. Checked in a fresh interpreter, as the backend is the process's."""
    import sys

    code = f"""
import matplotlib, numpy as np
from pathlib import Path
matplotlib.use("svg")
from ganreg.train.plots import plot_losses
from ganreg.report.figures import plot_metric_curves
from ganreg.metrics.tsne import Panel, plot_panels
out = Path({str(tmp_path)!r})
rows = [{{"step": s, "d/total": 1.0 / s, "g/total": float(s), "eval/fid": 9.0 - s}} for s in (1, 2, 3)]
plot_losses(rows, out / "losses.png")
plot_metric_curves(rows, out / "metrics.png")
rng = np.random.default_rng(0)
plot_panels([Panel("text", rng.normal(size=(40, 8)), np.arange(40) % 4)], ["a", "b", "c", "d"], out / "tsne.png")
print(matplotlib.get_backend())
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "svg"
    for name in ("losses", "metrics", "tsne"):
        assert Image.open(tmp_path / f"{name}.png").size[0] > 300


def _chromium(args: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp / 'profile'}", *args], capture_output=True, text=True, timeout=120,
    )


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (CI's .ci/run installs it with apt)")
def test_report_renders_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    probe_page = tmp_path / "probe.html"
    probe_page.write_text(report.read_text().replace("</body>", PROBE + "</body>"))
    dom = _chromium(["--virtual-time-budget=5000", "--window-size=1280,4000", "--dump-dom", probe_page.as_uri()], tmp_path)
    match = re.search(r"data-probe=\"([^\"]*)\"", dom.stdout)
    assert match, dom.stderr[-2000:]
    images = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    kinds = {i["alt"] for i in images}
    assert {"loss curves", "t-SNE maps"} <= kinds and any(a.startswith("samples at step") for a in kinds)
    assert all(i["w"] > 0 and i["h"] > 0 and i["dw"] > 50 for i in images), images  # every image decoded and laid out

    shot = tmp_path / "shot.png"
    _chromium([f"--screenshot={shot}", "--window-size=1280,4000", report.as_uri()], tmp_path)
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float32)
    assert pixels.shape[:2] == (4000, 1280)
    checked = 0
    for i in images:  # each image's box in the screenshot holds a picture, not blank page
        x0, y0 = int(i["x"]), int(i["y"])
        x1, y1 = min(int(i["x"] + i["dw"]), 1280), min(int(i["y"] + i["dh"]), 4000)
        if y1 - y0 < 50:
            continue
        box = pixels[y0:y1, x0:x1]
        assert box.std() > 10 and (np.abs(box - 255).sum(-1) > 30).mean() > 0.01, i["alt"]
        checked += 1
    assert checked >= 3
    grid = next(i for i in images if i["alt"].startswith("samples at step"))
    assert grid["dw"] == pytest.approx(520, abs=2)  # the grid is shown large, as styled


def _eval_json(run: Path, fid: float, protocol: str, weights: str = "ema") -> None:
    (run / "eval.json").write_text(json.dumps({
        "metrics": {"fid": fid, "align": 0.5}, "chance": {"align": 0.1},
        "metric_protocol": {"fid": {"id": protocol}, "align": {"id": "align20-classifier:0-test-32px"}},
        "protocol": {"split": "test", "run": {"step": 2, "generator_weights": weights}},
    }))


def test_compare_warns_when_ema_meets_raw_weights(tiny_run: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for run in (a, b):
        shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("checkpoints", "report"))
    _eval_json(a, 12.5, "fid10k-classifier:0123abcd-test-32px")
    _eval_json(b, 30.25, "fid10k-classifier:0123abcd-test-32px", weights="raw")
    cmp = compare_runs([a, b])
    assert {r[0]: r[1:] for r in cmp.rows}["eval weights"] == ["ema", "raw"]
    assert any("different generator weights" in w for w in cmp.warnings)


def test_compare_two_runs(tiny_run: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for run in (a, b):
        shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("checkpoints", "report"))
    _eval_json(a, 12.5, "fid10k-classifier:0123abcd-test-32px")
    _eval_json(b, 30.25, "fid10k-inception:deadbeef-test-32px")
    out = tmp_path / "compare.png"
    cmp = compare_runs([a, b], out)
    assert cmp.header == ["", "a", "b"]
    rows = {r[0]: r[1:] for r in cmp.rows}
    assert rows["steps"] == [2, 2] and "final d/total" in rows and "wall time (min)" in rows
    assert rows["fid"] == [12.5, 30.25] and rows["params generator"][0] == rows["params generator"][1] > 0
    assert out.is_file() and Image.open(out).size[0] > 500
    assert [w for w in cmp.warnings if w.startswith("fid:") and "different protocols" in w]
    assert not [w for w in cmp.warnings if w.startswith("align:")]


def test_cli_report_and_compare(tiny_run: Path, tmp_path: Path, autoload: Any) -> None:
    from click.testing import CliRunner

    from ganreg.cli import cli

    page = tmp_path / "r.html"
    result = CliRunner().invoke(cli, ["report", str(tiny_run), "--out", str(page), "--no-tsne"])
    assert result.exit_code == 0, result.output
    assert page.is_file() and "t-SNE" not in page.read_text()
    twin = tmp_path / "twin"
    shutil.copytree(tiny_run, twin, ignore=shutil.ignore_patterns("checkpoints", "report"))
    result = CliRunner().invoke(cli, ["compare", str(tiny_run), str(twin), "--out", str(tmp_path / "c.png"), "--json"])
    assert result.exit_code == 0, result.output
    table = json.loads(result.output)
    assert table["plot"] == str(tmp_path / "c.png")
    steps = next(row for row in table["rows"] if row[0] == "steps")
    assert steps[1:] == [2, 2]  # numbers, not text


def test_damaged_run_files_are_named_or_skipped_never_a_traceback(tiny_run: Path, tmp_path: Path) -> None:
    """A damaged metrics.jsonl line is skipped like a torn one; a damaged eval.json is named; a run given
    twice is refused; one grid is a valid --max-grids."""
    import shutil

    from ganreg.errors import UserError
    from ganreg.report.compare import compare_runs
    from ganreg.report.html import build_report

    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(tiny_run, a)
    shutil.copytree(tiny_run, b)
    with (a / "metrics.jsonl").open("a") as fh:
        fh.write('null\n{"step": "x"}\n{"step": 3, "d/total": "abc"}\n{"step": 7, "d/to')  # the last torn by a kill
    (a / "loss_curves.png").unlink()  # a killed run never drew them: the report plots the log it has
    assert compare_runs([a, b]).rows
    assert "loss curves" in build_report(a, tmp_path / "a.html", False, max_grids=1).read_text()
    (b / "metrics.jsonl").unlink()
    assert any("b: metrics.jsonl is missing" in w for w in compare_runs([a, b]).warnings)
    (b / "eval.json").write_text('{"metrics": {"fid": "abc"}}')
    with pytest.raises(UserError, match="eval.json is damaged"):
        compare_runs([a, b])
    with pytest.raises(UserError, match="given twice"):
        compare_runs([a, tmp_path / "a" / ".." / "a"])


def test_report_draws_the_loss_curves_from_the_log_not_a_stale_picture(tiny_run: Path, tmp_path: Path) -> None:
    """RUN/loss_curves.png is drawn when a run ends: a run resumed from an earlier step (its log trimmed) or one
    still training would show curves the log no longer has."""
    from ganreg.report.html import data_uri

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("report"))
    Image.new("RGB", (40, 30), (255, 0, 0)).save(run / "loss_curves.png")  # stale: not what the log holds
    page = build_report(run, tmp_path / "r.html", False).read_text()
    assert data_uri(run / "loss_curves.png") not in page
    assert "alt='loss curves'" in page


def test_report_says_which_step_its_evaluation_is_of(tiny_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("report"))
    _eval_json(run, 12.5, "fid10k-classifier:0123abcd-test-32px")
    record = json.loads((run / "eval.json").read_text())
    record["protocol"]["run"]["step"] = 1
    (run / "eval.json").write_text(json.dumps(record))
    page = build_report(run, tmp_path / "r.html", False).read_text()
    assert "step 1 (the run is at step 2), test captions, ema generator weights" in page


def test_compare_json_gives_each_runs_protocol_ids(tiny_run: Path, tmp_path: Path, registry: Any, eval_cache: Path) -> None:
    """Scripts check comparability from --json: each run's metric protocol ids and evaluation settings, from
    eval.json, or from eval_during_training.json for numbers logged during training."""
    from click.testing import CliRunner

    from ganreg.cli import cli
    from ganreg.metrics.evaluate import evaluate_during_training

    from .conftest import make_trainer

    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for run in (a, b):
        shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("checkpoints", "report", "eval.json", "evals"))
    trainer = make_trainer(registry, c, eval_cache, **{"train.steps": 1})  # c: evaluated during training only
    trainer.fit()
    evaluate_during_training(trainer, log=lambda msg: None)
    _eval_json(a, 12.5, "fid10k-classifier:0123abcd-test-32px")
    _eval_json(b, 30.25, "fid2k-classifier:0123abcd-test-32px", weights="raw")
    res = CliRunner().invoke(cli, ["compare", str(a), str(b), str(c), "--out", str(tmp_path / "c.png"), "--json"])
    assert res.exit_code == 0, res.output
    runs = {r["name"]: r for r in json.loads(res.output)["runs"]}
    assert runs["a"]["protocol_ids"] == {"fid": "fid10k-classifier:0123abcd-test-32px", "align": "align20-classifier:0-test-32px"}
    assert runs["b"]["protocol_ids"]["fid"] == "fid2k-classifier:0123abcd-test-32px"
    assert runs["a"]["eval"]["generator_weights"] == "ema" and runs["b"]["eval"]["generator_weights"] == "raw"
    assert runs["a"]["eval_source"] == "eval.json" and runs["a"]["eval"]["step"] == 2 and runs["a"]["path"] == str(a)
    trained = json.loads((c / "eval_during_training.json").read_text())
    assert runs["c"]["eval_source"] == "metrics.jsonl (during training)"
    assert runs["c"]["protocol_ids"] == {m: p["id"] for m, p in trained["metric_protocol"].items()}
    assert set(runs["c"]["protocol_ids"]) == {"fid", "kid", "is", "align"}
    assert runs["c"]["eval"]["step"] == 1 and runs["c"]["eval"]["generated_samples"] == trained["protocol"]["generated_samples"]


def _record(run: Path, name: str, step: int, split: str, fid: float, weights: str = "ema", truncation: float | None = None) -> dict:
    record = {
        "format": "ganreg-eval", "version": 1, "metrics": {"fid": fid, "align": 0.25, "align_colour": 0.5}, "chance": {},
        "metric_protocol": {"fid": {"id": f"fid24-classifier:0-{split}-32px"}},
        "protocol": {"split": split, "seed": 7, "truncation": truncation, "generated_samples": 24,
                     "extractor": {"name": "classifier"}, "run": {"step": step, "generator_weights": weights}},
        "warnings": [],
    }
    (run / "evals").mkdir(exist_ok=True)
    (run / "evals" / name).write_text(json.dumps(record))
    return record


def test_report_shows_every_evaluation_kept_in_evals(tiny_run: Path, tmp_path: Path) -> None:
    import os

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("report", "eval.json", "evals"))
    _record(run, "test-step0000001-aaaa.json", 1, "test", 40.5)
    _record(run, "train-step0000002-bbbb.json", 2, "train", 20.25, truncation=0.7)
    latest = _record(run, "test-step0000002-cccc.json", 2, "test", 30.125, weights="raw")
    os.utime(run / "evals" / "train-step0000002-bbbb.json", (1, 1))  # of one step, the most recently written first
    (run / "evals" / "broken.json").write_text('{"metrics": ')
    (run / "eval.json").write_text(json.dumps(latest))
    page = build_report(run, tmp_path / "r.html", False).read_text()
    assert "The latest <code>ganreg eval</code>: step 2" in page  # the main section stays
    section = page[page.index("Every evaluation in evals/ (3)"):]
    rows = [re.findall(r"<td[^>]*>([^<]*)</td>", r) for r in re.findall(r"<tr>(.*?)</tr>", section.split("</table>")[0])[1:]]
    header = re.findall(r"<th>([^<]*)</th>", section)[:11]
    assert header == ["", "step", "split", "weights", "truncation", "seed", "samples", "features", "fid", "align", "align_colour"]
    assert [r[:8] for r in rows] == [
        ["latest", "2", "test", "raw", "none", "7", "24", "classifier"],
        ["", "2", "train", "ema", "0.7", "7", "24", "classifier"],
        ["", "1", "test", "ema", "none", "7", "24", "classifier"],
    ]
    assert [r[8:] for r in rows] == [["30.12", "25.0%", "50.0%"], ["20.25", "25.0%", "50.0%"], ["40.5", "25.0%", "50.0%"]]
    assert "broken.json" in section.split("</table>")[1]  # named, not a failed report
