#!/usr/bin/env bash
# Everything issue 6 measures on a GPU, in one call (a lent machine's time is scarce):
#   the CUDA-only tests, the whole DF-GAN training step (64 / 256 px), a profile of the fastest 256-px
#   step (where the rest of the time goes) and the DFBLK kernel benchmarks.
#
#   OUT=/some/folder bash benchmarks/gpu_check.sh [PART ...]
#
# PART: tests, step, profile, dfblk (default: all four, in that order). A lent machine allows 10 minutes
# per command: where the four together may not fit, run them in two calls (e.g. "tests step", then
# "profile dfblk"); each part writes its own files, so the second call adds to the first's.
# Results (at most 8 files, flat, as the device tool brings back): env.txt, gpu-tests.txt,
# train-step.json/.txt, profile.txt, dfblk.json/.md/.txt. On a machine that already has torch (and triton),
# the project is installed with --no-deps; pydantic & co. come from wheels in .whl/ when the
# machine's index lacks them (pip download -d .whl pydantic on a machine with internet).
# Runs on the CPU too (GPU tests skip, benchmarks take their small CPU shapes): a dry run.
set -uo pipefail
parts=${*:-tests step profile dfblk}
for part in $parts; do
    case $part in tests|step|profile|dfblk) ;; *) echo "unknown part '$part': use tests, step, profile, dfblk" >&2; exit 2;; esac
done
wants() { [[ " $parts " == *" $1 "* ]]; }

OUT=${OUT:-/tmp/ganreg-gpu-check}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."

if ! python -c "import ganreg, ganreg_dfgan" 2>/dev/null; then
    if [ -d .whl ]; then pip install -q --no-index --find-links .whl pydantic >/dev/null 2>&1 || true; fi
    pip install -q --no-deps -e . -e plugins/dfgan -e plugins/dcgan-cls -e plugins/losses -e plugins/cbn-resnet -e plugins/stackgan -e plugins/lstm-attention -e plugins/patchgan -e plugins/source-encoder -e plugins/unet -e plugins/rdb >/dev/null
fi
{
    date -u
    nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv 2>/dev/null || echo "no nvidia-smi"
    python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"
    python -c "import triton; print('triton', triton.__version__)" 2>/dev/null || echo "no triton"
    git log --oneline -1 2>/dev/null
} > "$OUT/env.txt" 2>&1

status=0
if wants tests; then
    python -m pytest -q -m gpu tests plugins > "$OUT/gpu-tests.txt" 2>&1 || status=1
fi
if wants step; then
    python -m pytest -q benchmarks/test_bench_train_step.py --benchmark-enable \
        --benchmark-json="$OUT/train-step.json" > "$OUT/train-step.txt" 2>&1 || status=1
fi
if wants profile; then
    python benchmarks/profile_train_step.py --out "$OUT/profile.txt" > /dev/null 2> "$OUT/profile-err.txt" || {
        status=1; cat "$OUT/profile-err.txt" >> "$OUT/profile.txt"; }
    rm -f "$OUT/profile-err.txt"
fi
if wants dfblk; then
    GANREG_BENCH_TABLE="$OUT/dfblk.md" python -m pytest -q benchmarks/test_bench_dfblk.py --benchmark-enable \
        --benchmark-json="$OUT/dfblk.json" > "$OUT/dfblk.txt" 2>&1 || status=1
    rm -f "$OUT/dfblk.md.json"  # the raw rows are in dfblk.json already; keep to 8 files
fi
for f in gpu-tests.txt train-step.txt dfblk.txt; do
    if [ -f "$OUT/$f" ]; then tail -n 3 "$OUT/$f"; fi
done
exit $status
