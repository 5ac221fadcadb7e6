"""Time the built-in shapes generation (not a test: run it by hand).

    python tests/data/bench_shapes.py [--count 10000] [--size 64] [--processes N]

Prints the wall time of drawing the images (no cache involved) and of the
first ``build_dataset`` (generation + writing the cache) and the second one
(memory-mapped from the cache). Target: 10k images at 64 px in < 30 s on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--processes", type=int, default=None)
    args = ap.parse_args()

    from ganreg.data import DataConfig, build_dataset
    from ganreg.data.shapes import generate_images

    t = time.perf_counter()
    images = generate_images(0, args.count, args.size, processes=args.processes)
    draw = time.perf_counter() - t
    print(
        f"draw {args.count} images at {args.size}px: {draw:.2f} s ({images.nbytes / 2**20:.0f} MiB, "
        f"{os.cpu_count()} cpus)"
    )
    with tempfile.TemporaryDirectory() as cache:
        cfg = DataConfig(num_images=args.count, image_size=args.size, cache_dir=cache)
        t = time.perf_counter()
        build_dataset(cfg, "train")
        first = time.perf_counter() - t
        t = time.perf_counter()
        build_dataset(cfg, "test")
        second = time.perf_counter() - t
    print(f"first build_dataset (draw + cache): {first:.2f} s; cached: {second:.2f} s")


if __name__ == "__main__":
    main()
