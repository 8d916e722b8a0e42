"""Benchmark: read every interval of a bigWig into numpy arrays.

Builds a bigWig of about 3,000,000 bedGraph intervals over hg38-sized chr1 and chr2 (written
with pyBigWig in a temporary directory), then reports the median of 5 wall-clock timings of

1. ``chromexpr.io.bigwig.read_bigwig`` (default thread pool, and one thread),
2. pyBigWig ``intervals()`` per chromosome, converted to numpy arrays,
3. pybigtools ``records()`` per chromosome, converted to numpy arrays,

as a small markdown table (pyBigWig's ``intervals()`` without the conversion is listed too).

Run: ``python benchmarks/bench_bigwig_read.py [--n 3000000] [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pybigtools
import pyBigWig

import chromexpr.io.bigwig as bigwig_module
from chromexpr.io.bigwig import read_bigwig

HG38 = {"chr1": 248_956_422, "chr2": 242_193_529}
RECORD = np.dtype([("start", np.int64), ("end", np.int64), ("value", np.float32)])
Arrays = dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]


def build(path: Path, n: int, seed: int = 0) -> None:
    """Write ``n`` sorted, non-overlapping bedGraph intervals split over chr1 and chr2."""
    rng = np.random.default_rng(seed)
    total = sum(HG38.values())
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader(list(HG38.items()), maxZooms=0)
    for chrom, size in HG38.items():
        k = round(n * size / total)
        slots = size // 64  # intervals start on a 64-bp grid and are 1-64 bp long
        starts = np.sort(rng.choice(slots - 1, size=k, replace=False)).astype(np.int64) * 64
        ends = starts + rng.integers(1, 65, size=k)
        values = rng.poisson(3.0, size=k).astype(np.float64)
        bw.addEntries(np.full(k, chrom), starts, ends=ends, values=values, validate=False)
    bw.close()


def with_chromexpr(path: Path) -> Arrays:
    r = read_bigwig(path)
    out: Arrays = {}
    for i, chrom in enumerate(r.chroms):
        rows = slice(r.offsets[i], r.offsets[i + 1])
        out[chrom] = (r.starts[rows], r.ends[rows], r.values[rows])
    return out


def with_chromexpr_one_thread(path: Path) -> Arrays:
    saved = bigwig_module._n_workers
    bigwig_module._n_workers = lambda: 1
    try:
        return with_chromexpr(path)
    finally:
        bigwig_module._n_workers = saved


def pybigwig_tuples_only(path: Path) -> Arrays:
    bw = pyBigWig.open(str(path))
    for chrom in bw.chroms():
        bw.intervals(chrom)
    bw.close()
    return {}


def with_pybigwig(path: Path) -> Arrays:
    out: Arrays = {}
    bw = pyBigWig.open(str(path))
    for chrom in bw.chroms():
        iv = bw.intervals(chrom) or ()
        rec = np.fromiter(iv, dtype=RECORD, count=len(iv))
        out[chrom] = (rec["start"].copy(), rec["end"].copy(), rec["value"].copy())
    bw.close()
    return out


def with_pybigtools(path: Path) -> Arrays:
    out: Arrays = {}
    bw = pybigtools.open(str(path))
    for chrom in bw.chroms():
        rec = np.fromiter(bw.records(chrom), dtype=RECORD)
        out[chrom] = (rec["start"].copy(), rec["end"].copy(), rec["value"].copy())
    bw.close()
    return out


def median_time(fn: Callable[[Path], Arrays], path: Path, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(path)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3_000_000, help="number of intervals")
    parser.add_argument("--repeats", type=int, default=5, help="timings per reader")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.bw"
        t0 = time.perf_counter()
        build(path, args.n)
        build_s = time.perf_counter() - t0

        readers: dict[str, Callable[[Path], Arrays]] = {
            "chromexpr read_bigwig": with_chromexpr,
            "chromexpr read_bigwig, 1 thread": with_chromexpr_one_thread,
            "pyBigWig intervals() + numpy": with_pybigwig,
            "pyBigWig intervals() only (tuples, no numpy)": pybigwig_tuples_only,
            "pybigtools records() + numpy": with_pybigtools,
        }
        # Same intervals from every reader.
        results = {name: fn(path) for name, fn in readers.items() if "only" not in name}
        reference = results["pyBigWig intervals() + numpy"]
        for name, arrays in results.items():
            assert arrays.keys() == reference.keys(), name
            for chrom, cols in arrays.items():
                for a, b in zip(cols, reference[chrom], strict=True):
                    np.testing.assert_array_equal(a, b, err_msg=f"{name} {chrom}")
        n_intervals = sum(len(c[0]) for c in reference.values())

        timings = {name: median_time(fn, path, args.repeats) for name, fn in readers.items()}
        size_mb = path.stat().st_size / 1e6

    ours = timings["chromexpr read_bigwig"]
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"bigWig: {n_intervals:,} bedGraph intervals on chr1+chr2 (hg38 sizes), "
        f"{size_mb:.1f} MB, built in {build_s:.1f} s; {cpus} CPUs, Python "
        f"{platform.python_version()}, numpy {np.__version__}; median of {args.repeats} runs\n"
    )
    print("| reader | median time (s) | intervals / s | time / chromexpr |")
    print("|---|---:|---:|---:|")
    for name, t in timings.items():
        print(f"| {name} | {t:.3f} | {n_intervals / t / 1e6:.1f} M | {t / ours:.1f}x |")


if __name__ == "__main__":
    main()
