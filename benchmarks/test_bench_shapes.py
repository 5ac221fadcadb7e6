"""Built-in captioned shapes: drawing time (issue target: 10k images at 64 px in < 30 s on 2 cores).

    pytest benchmarks/test_bench_shapes.py --benchmark-enable

Draws ``GANREG_BENCH_SHAPES`` images (default 10,000; CI's smoke run sets fewer) without the
cache, and records images/s and the extrapolated time for 10k in ``extra_info``.
"""

from __future__ import annotations

import os

from ganreg.data.shapes import generate_images

COUNT = int(os.environ.get("GANREG_BENCH_SHAPES", "10000"))


def test_draw_shapes_64px(benchmark) -> None:  # type: ignore[no-untyped-def]
    images = benchmark.pedantic(generate_images, args=(0, COUNT, 64), rounds=1, iterations=1)
    assert images.shape == (COUNT, 64, 64, 3)
    if benchmark.stats is None:  # --benchmark-disable: a smoke run, nothing measured
        return
    seconds = benchmark.stats.stats.mean
    benchmark.extra_info.update(
        {"images": COUNT, "images_per_s": COUNT / seconds, "seconds_for_10k": 10_000 * seconds / COUNT, "cpus": os.cpu_count()}
    )
