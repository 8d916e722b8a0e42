"""LASSO benchmark: chromexpr's numba solvers against a loop of scikit-learn ``Lasso`` fits.

What it measures (issue 4, "Scale and speed"):

1. The ``lasso-gene`` core, :func:`chromexpr.models.lasso_solver.lasso_path_per_gene`, over the
   reference workload: 17,794 genes x 160 training samples x 2000 bins (``--quick``: 1,000 genes),
   synthetic planted-sparse accessibility generated in chunks of genes so that memory stays bounded
   (generation is not timed). Every gene is solved: nothing is extrapolated on chromexpr's side.
   Each gene's path is the model's default grid (15 alphas from its own ``alpha_max`` down to
   ``1e-2 alpha_max``, tol 1e-5). scikit-learn runs the same alphas with ``Lasso(warm_start=True)``
   along each gene's path, at the same tol, on the first genes only; its time is extrapolated per
   gene (the table says so). Coefficients are compared on those genes at the benchmark tol and, on a
   few genes, with both solvers converged tightly.
2. The ``lasso`` pooled core: one streaming pass of :class:`GramStats` over 17,794 x 201
   (gene, sample) rows x 2000 bins, generated in batches (``--quick``: 500 genes): the time of the
   ``update`` calls, their throughput and the peak RSS of the process (target < 4 GB); then the time
   to solve a 20-alpha path (``alpha_max`` down to ``1e-3 alpha_max``) on the Gram matrix.

Each part runs in its own subprocess so that its peak RSS is its own. Small timings are medians of
``repeats`` runs; the CPU load of the (shared) machine is recorded with them.

Run::

    python benchmarks/bench_lasso.py            # reference run (15-20 minutes on 2 cores)
    python benchmarks/bench_lasso.py --quick    # smoke version (~1 minute)

Writes ``benchmarks/results/lasso.json`` (``lasso-quick.json``) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TARGETS = {"speedup_vs_sklearn": 10.0, "pooled_peak_rss_gb": 4.0}


@dataclass(frozen=True)
class Workload:
    """Sizes of one benchmark configuration."""

    name: str
    n_genes: int
    chunk_genes: int
    sklearn_genes: int
    tight_genes: int
    pooled_genes: int
    pooled_batch_genes: int
    repeats: int
    n_samples: int = 160
    pooled_samples: int = 201
    n_bins: int = 2000
    gene_n_alphas: int = 15
    gene_eps: float = 1e-2
    gene_tol: float = 1e-5
    gene_max_iter: int = 5_000
    pooled_n_alphas: int = 20
    pooled_eps: float = 1e-3
    seed: int = 20_240_611


FULL = Workload(
    name="reference",
    n_genes=17_794,
    chunk_genes=500,
    sklearn_genes=60,
    tight_genes=3,
    pooled_genes=17_794,
    pooled_batch_genes=50,
    repeats=3,
)
QUICK = Workload(
    name="quick",
    n_genes=1_000,
    chunk_genes=250,
    sklearn_genes=6,
    tight_genes=2,
    pooled_genes=500,
    pooled_batch_genes=50,
    repeats=2,
)


# ------------------------------------------------------------------------------------------------
# Synthetic data (not timed)
# ------------------------------------------------------------------------------------------------


def accessibility(
    rng: np.random.Generator, n_genes: int, n_samples: int, n_bins: int
) -> np.ndarray:
    """(n_genes, n_samples, n_bins) float32 log1p accessibility.

    About 15 % of each window's bins hold a peak (gamma-distributed height) whose strength varies
    across samples (lognormal); the other bins are 0.
    """
    present = rng.random((n_genes, 1, n_bins), dtype=np.float32) < 0.15
    height = rng.gamma(1.5, 2.0, size=(n_genes, 1, n_bins)).astype(np.float32)
    x = rng.standard_normal((n_genes, n_samples, n_bins), dtype=np.float32)
    x *= 0.7
    np.exp(x, out=x)
    x *= height * present
    np.log1p(x, out=x)
    return x


def planted_gene_chunk(
    workload: Workload, chunk: int, n_genes: int
) -> tuple[np.ndarray, np.ndarray]:
    """One chunk of per-gene problems.

    Each gene's expression depends on 5 bins within 100 kb of its TSS (random signs and sizes), plus
    noise at 30 % of the signal's standard deviation.
    """
    rng = np.random.default_rng([workload.seed, chunk])
    x = accessibility(rng, n_genes, workload.n_samples, workload.n_bins)
    centre = workload.n_bins // 2
    idx = centre + rng.integers(-100, 100, size=(n_genes, 5))
    w = rng.normal(0.0, 1.0, size=(n_genes, 5))
    signal = np.einsum("gsk,gk->gs", np.take_along_axis(x, idx[:, None, :], axis=2), w)
    noise = rng.normal(size=signal.shape) * (0.3 * signal.std(axis=1, keepdims=True) + 1e-3)
    return x, (1.0 + signal + noise)


def pooled_batch(workload: Workload, batch: int, n_genes: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the pooled model: x (rows, n_bins) float32 and y (rows,) float64.

    One shared weight profile (decaying with distance to the TSS), a per-gene offset and noise.
    """
    rng = np.random.default_rng([workload.seed, 1_000_000 + batch])
    x = accessibility(rng, n_genes, workload.pooled_samples, workload.n_bins)
    offsets = np.arange(workload.n_bins) - workload.n_bins // 2
    profile = 0.3 * np.exp(-np.abs(offsets) / 20.0)
    profile[np.abs(offsets) > 100] = 0.0
    y = x @ profile.astype(np.float32) + rng.normal(size=(n_genes, 1)) * 0.5
    y = y + rng.normal(size=y.shape) * 0.5
    return x.reshape(-1, workload.n_bins), y.reshape(-1).astype(np.float64)


# ------------------------------------------------------------------------------------------------
# Measurement helpers
# ------------------------------------------------------------------------------------------------


def cpu_busy(interval: float = 0.3) -> float:
    """Fraction of all CPUs busy over ``interval`` s (from /proc/stat; NaN where unavailable)."""

    def snapshot() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return sum(fields), fields[3] + (fields[4] if len(fields) > 4 else 0)

    try:
        total0, idle0 = snapshot()
        time.sleep(interval)
        total1, idle1 = snapshot()
    except OSError:
        return float("nan")
    return 1.0 - (idle1 - idle0) / max(1, total1 - total0)


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------
# Part 1: one model per gene
# ------------------------------------------------------------------------------------------------


def sklearn_path(
    x: np.ndarray, y: np.ndarray, alphas: np.ndarray, tol: float, max_iter: int
) -> np.ndarray:
    """scikit-learn's coefficients along ``alphas`` (warm starts), (n_alphas, p)."""
    from sklearn.linear_model import Lasso

    model = Lasso(alpha=float(alphas[0]), tol=tol, max_iter=max_iter, warm_start=True)
    out = np.empty((alphas.size, x.shape[1]))
    for k, alpha in enumerate(alphas):
        model.set_params(alpha=float(alpha))
        model.fit(x, y)
        out[k] = model.coef_
    return out


def run_per_gene(workload: Workload) -> dict[str, Any]:
    import numba

    from chromexpr.models.lasso_solver import (
        ConvergenceWarning,
        alpha_grid,
        alpha_max_per_gene,
        lasso_path_per_gene,
    )

    ratios = alpha_grid(1.0, workload.gene_n_alphas, workload.gene_eps)
    opts = {"tol": workload.gene_tol, "max_iter": workload.gene_max_iter}
    # compile (or load the cached kernels) outside the timings
    x, y = planted_gene_chunk(workload, 10**6, 4)
    lasso_path_per_gene(x, y, alpha_max_per_gene(x, y)[:, None] * ratios, **opts)

    threads = numba.get_num_threads()
    chunk_ms: list[float] = []
    alpha_max_s = 0.0
    solve_s = 0.0
    busy: list[float] = []
    not_converged = 0
    nnz: list[np.ndarray] = []
    first: dict[str, Any] = {}
    n_chunks = -(-workload.n_genes // workload.chunk_genes)
    for c in range(n_chunks):
        n = min(workload.chunk_genes, workload.n_genes - c * workload.chunk_genes)
        x, y = planted_gene_chunk(workload, c, n)
        busy.append(cpu_busy(0.1))
        t0 = time.perf_counter()
        amax = alpha_max_per_gene(x, y)
        t1 = time.perf_counter()
        alphas = amax[:, None] * ratios[None, :]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            coefs, _ = lasso_path_per_gene(x, y, alphas, **opts)
        t2 = time.perf_counter()
        for w in caught:
            not_converged += int(str(w.message).split(" of ")[0])
        alpha_max_s += t1 - t0
        solve_s += t2 - t1
        chunk_ms.append((t2 - t1) / n * 1000)
        nnz.append((coefs != 0).sum(axis=2))
        if c == 0:
            first = {
                "x": x[: workload.sklearn_genes].copy(),
                "y": y[: workload.sklearn_genes].copy(),
            }
            first["alphas"] = alphas[: workload.sklearn_genes].copy()
            first["coefs"] = coefs[: workload.sklearn_genes].copy()
        log(f"  chunk {c + 1}/{n_chunks}: {chunk_ms[-1]:.2f} ms/gene")
        del x, y, coefs

    # The same genes through both solvers: chromexpr (all threads, then one thread) and a
    # scikit-learn loop (single-threaded), same alphas and tol, warm starts along each path.
    sub = (first["x"], first["y"], first["alphas"])
    n_sub = workload.sklearn_genes
    ours_sub: dict[int, float] = {}
    for n_threads in sorted({threads, 1}, reverse=True):
        numba.set_num_threads(n_threads)
        runs = []
        for _ in range(workload.repeats):
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                lasso_path_per_gene(*sub, **opts)
            runs.append(time.perf_counter() - t0)
        ours_sub[n_threads] = statistics.median(runs) / n_sub * 1000
    numba.set_num_threads(threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sklearn_path(sub[0][0].astype(np.float64), sub[1][0], sub[2][0], **opts)  # warm-up
    sk_ms: list[float] = []
    max_diff = 0.0
    for g in range(n_sub):
        xg = first["x"][g].astype(np.float64)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sk = sklearn_path(xg, first["y"][g], first["alphas"][g], **opts)
        sk_ms.append((time.perf_counter() - t0) * 1000)
        max_diff = max(max_diff, float(np.abs(sk - first["coefs"][g]).max()))
    # both converged tightly on a few genes: the coefficients themselves agree
    tight = {"tol": 1e-10, "max_iter": 200_000}
    g_tight = slice(0, workload.tight_genes)
    ours_tight, _ = lasso_path_per_gene(
        first["x"][g_tight], first["y"][g_tight], first["alphas"][g_tight], **tight
    )
    tight_diff = 0.0
    for g in range(workload.tight_genes):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sk = sklearn_path(
                first["x"][g].astype(np.float64), first["y"][g], first["alphas"][g], **tight
            )
        tight_diff = max(tight_diff, float(np.abs(sk - ours_tight[g]).max()))

    nnz_all = np.concatenate(nnz)
    ours_ms = solve_s / workload.n_genes * 1000
    sk_mean = statistics.fmean(sk_ms)
    return {
        "genes": workload.n_genes,
        "samples": workload.n_samples,
        "bins": workload.n_bins,
        "n_alphas": workload.gene_n_alphas,
        "eps": workload.gene_eps,
        "tol": workload.gene_tol,
        "threads": threads,
        "solve_s": solve_s,
        "alpha_max_s": alpha_max_s,
        "ms_per_gene": ours_ms,
        "ms_per_gene_chunk_median": statistics.median(chunk_ms),
        "cpu_busy_median": statistics.median(busy),
        "genes_not_converged": not_converged,
        "nnz_median_by_alpha": np.median(nnz_all, axis=0).tolist(),
        "sklearn_genes": n_sub,
        "sklearn_ms_per_gene_mean": sk_mean,
        "sklearn_ms_per_gene_median": statistics.median(sk_ms),
        "sklearn_ms_per_gene": sk_ms,
        "sklearn_extrapolated_s": sk_mean * workload.n_genes / 1000,
        "subset_ms_per_gene": ours_sub[threads],
        "subset_ms_per_gene_1_thread": ours_sub[1],
        "speedup_per_gene": sk_mean / ours_sub[threads],
        "speedup_per_core": sk_mean / ours_sub[1],
        "max_abs_coef_diff_at_tol": max_diff,
        "tight_genes": workload.tight_genes,
        "max_abs_coef_diff_tight": tight_diff,
        "peak_rss_mb": peak_rss_mb(),
    }


# ------------------------------------------------------------------------------------------------
# Part 2: pooled model
# ------------------------------------------------------------------------------------------------


def run_pooled(workload: Workload) -> dict[str, Any]:
    from chromexpr.models.lasso_solver import (
        GramStats,
        alpha_grid,
        alpha_max_gram,
        lasso_path_gram,
    )

    stats = GramStats.empty(workload.n_bins)
    update_s = 0.0
    generate_s = 0.0
    busy: list[float] = []
    n_batches = -(-workload.pooled_genes // workload.pooled_batch_genes)
    for b in range(n_batches):
        n = min(
            workload.pooled_batch_genes, workload.pooled_genes - b * workload.pooled_batch_genes
        )
        t0 = time.perf_counter()
        x, y = pooled_batch(workload, b, n)
        t1 = time.perf_counter()
        stats.update(x, y)
        t2 = time.perf_counter()
        generate_s += t1 - t0
        update_s += t2 - t1
        if b % 20 == 0:
            busy.append(cpu_busy(0.1))
            log(f"  batch {b + 1}/{n_batches}: {stats.n:,} rows, {update_s:.0f} s in update()")
        del x, y
    rows = stats.n
    rss = peak_rss_mb()

    amax = alpha_max_gram(stats)
    alphas = alpha_grid(amax, workload.pooled_n_alphas, workload.pooled_eps)
    lasso_path_gram(stats, alphas[:2])  # compile / load the cached kernel
    solve: dict[str, Any] = {}
    for tol in (1e-4, 1e-8):
        times = []
        for _ in range(workload.repeats):
            t0 = time.perf_counter()
            coefs, _ = lasso_path_gram(stats, alphas, tol=tol)
            times.append(time.perf_counter() - t0)
        solve[f"{tol:g}"] = {
            "median_s": statistics.median(times),
            "runs_s": times,
            "nnz_by_alpha": (coefs != 0).sum(axis=1).tolist(),
        }
    return {
        "genes": workload.pooled_genes,
        "samples": workload.pooled_samples,
        "rows": rows,
        "bins": workload.n_bins,
        "update_s": update_s,
        "generate_s": generate_s,
        "rows_per_s": rows / update_s,
        "gb_per_s_float32": rows * workload.n_bins * 4 / update_s / 1e9,
        "peak_rss_mb": rss,
        "cpu_busy_median": statistics.median(busy) if busy else float("nan"),
        "n_alphas": workload.pooled_n_alphas,
        "eps": workload.pooled_eps,
        "solve": solve,
    }


# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------


def environment() -> dict[str, Any]:
    import importlib.metadata as md

    versions = {}
    for package in ("chromexpr", "numpy", "numba", "scikit-learn"):
        try:
            versions[package] = md.version(package)
        except md.PackageNotFoundError:
            versions[package] = None
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpus": cpus,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "versions": versions,
    }


def markdown(results: dict[str, Any]) -> str:
    g, p = results["per_gene"], results["pooled"]
    name, cpus = results["workload"]["name"], results["environment"]["cpus"]
    rows = [
        (
            f"`lasso_path_per_gene`: {g['genes']:,} genes x {g['samples']} samples x {g['bins']} "
            f"bins, {g['n_alphas']} alphas, tol {g['tol']:g}",
            f"{g['solve_s']:.1f} s ({g['ms_per_gene']:.2f} ms/gene; median over chunks "
            f"{g['ms_per_gene_chunk_median']:.2f}; {g['threads']} threads)",
        ),
        ("per-gene `alpha_max` for the grids", f"{g['alpha_max_s']:.1f} s"),
        (
            f"the same {g['sklearn_genes']} genes: scikit-learn `Lasso` loop (warm starts, same "
            f"alphas and tol) / chromexpr ({g['threads']} threads) / chromexpr (1 thread)",
            f"{g['sklearn_ms_per_gene_mean']:.1f} / {g['subset_ms_per_gene']:.2f} / "
            f"{g['subset_ms_per_gene_1_thread']:.2f} ms/gene (mean; scikit-learn's median "
            f"{g['sklearn_ms_per_gene_median']:.1f})",
        ),
        (
            "speed-up per gene: wall clock / per core",
            f"**{g['speedup_per_gene']:.1f}x** / {g['speedup_per_core']:.1f}x",
        ),
        (
            "scikit-learn over all genes, extrapolated from its mean on the subset",
            f"{g['sklearn_extrapolated_s'] / 60:.0f} min",
        ),
        (
            f"max abs coefficient difference vs scikit-learn: at tol {g['tol']:g} / both at 1e-10 "
            f"({g['tight_genes']} genes)",
            f"{g['max_abs_coef_diff_at_tol']:.1e} / {g['max_abs_coef_diff_tight']:.1e}",
        ),
        ("genes that hit max_iter", f"{g['genes_not_converged']}"),
        (
            f"`GramStats.update`, one pass over {p['genes']:,} x {p['samples']} = {p['rows']:,} "
            f"rows x {p['bins']} bins",
            f"{p['update_s']:.0f} s ({p['rows_per_s']:,.0f} rows/s; generating the data took "
            f"{p['generate_s']:.0f} s more, not counted)",
        ),
        ("peak RSS of the pooled pass (whole process)", f"{p['peak_rss_mb'] / 1024:.2f} GB"),
    ]
    for tol, s in p["solve"].items():
        rows.append(
            (
                f"`lasso_path_gram`, {p['n_alphas']} alphas down to {p['eps']:g} alpha_max, "
                f"tol {tol}",
                f"{s['median_s']:.2f} s (median of {len(s['runs_s'])}; "
                f"{s['nnz_by_alpha'][-1]} nonzero at the smallest alpha)",
            )
        )
    lines = [f"### LASSO solvers ({name} workload, {cpus} CPUs)", "", "| measurement | value |"]
    lines += ["|---|---|"] + [f"| {what} | {value} |" for what, value in rows]
    lines += [
        "",
        f"Median CPU load of the shared machine from other processes during the runs: per-gene "
        f"{g['cpu_busy_median']:.0%}, pooled {p['cpu_busy_median']:.0%}.",
        "",
        "| target | value | met |",
        "|---|---|---|",
    ]
    for t in results["targets"].values():
        met = "yes" if t["met"] else "no"
        lines.append(f"| {t['what']} {t['target']} | {t['value']:.2f} | {met} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke version")
    parser.add_argument("--part", choices=["per_gene", "pooled"], help=argparse.SUPPRESS)
    parser.add_argument(
        "--only",
        choices=["per_gene", "pooled"],
        help="rerun one part, keeping the other from the existing results file",
    )
    args = parser.parse_args(argv)
    workload = QUICK if args.quick else FULL
    if args.part:  # child process: run one part, print its JSON on stdout
        result = run_per_gene(workload) if args.part == "per_gene" else run_pooled(workload)
        print(json.dumps(result))
        return 0

    out = RESULTS / ("lasso-quick.json" if args.quick else "lasso.json")
    results: dict[str, Any] = {"workload": asdict(workload), "environment": environment()}
    parts: tuple[str, ...] = ("per_gene", "pooled")
    if args.only:
        previous = json.loads(out.read_text())
        results.update({k: previous[k] for k in parts if k != args.only})
        parts = (args.only,)
    for part in parts:
        log(f"{part} ...")
        cmd = [sys.executable, str(Path(__file__).resolve()), "--part", part]
        cmd += ["--quick"] if args.quick else []
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
        results[part] = json.loads(proc.stdout.strip().splitlines()[-1])
    g, p = results["per_gene"], results["pooled"]
    results["targets"] = {
        "speedup": {
            "what": "per-gene speed-up over scikit-learn",
            "target": f">= {TARGETS['speedup_vs_sklearn']:.0f}x",
            "value": g["speedup_per_gene"],
            "met": g["speedup_per_gene"] >= TARGETS["speedup_vs_sklearn"],
        },
        "pooled_rss": {
            "what": "pooled pass peak RSS (GB)",
            "target": f"< {TARGETS['pooled_peak_rss_gb']:.0f}",
            "value": p["peak_rss_mb"] / 1024,
            "met": p["peak_rss_mb"] / 1024 < TARGETS["pooled_peak_rss_gb"],
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(markdown(results))
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
