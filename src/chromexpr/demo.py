"""``chromexpr demo``: the whole pipeline on a small simulated data set, step by step.

simulate -> tss -> bin -> train (mean, activity, neighbors, lasso-gene, hybrid, a small fc; one fold
per cell-type group) -> evaluate (beside the refitted baselines) -> attribute -> report. Every step
calls the same library function as its command, so the demo doubles as an end-to-end check of the
product.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

logger = logging.getLogger("chromexpr")

T = TypeVar("T")

#: Models trained by the demo (4 folds each); the demo takes under 2 minutes on 2 cores.
DEMO_MODELS: dict[str, dict[str, Any]] = {
    "mean": {},
    "activity": {},
    "neighbors": {},
    "lasso-gene": {},
    "hybrid": {},
    "fc": {"hidden": (64, 32), "epochs": 6, "dropout": 0.1, "window": 100_000},
}
#: Models the demo reports as baselines (no regulatory model of any gene).
DEMO_BASELINES = ("mean", "activity", "neighbors")


@dataclass
class DemoResult:
    """Paths written by the demo and its headline numbers."""

    output: Path
    report: Path
    dataset: Path
    models: dict[str, Path] = field(default_factory=dict)
    evaluations: dict[str, Path] = field(default_factory=dict)
    attribution: Path | None = None
    summary: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _step(
    number: int, total: int, title: str, action: Callable[[], T], echo: Callable[[str], None]
) -> T:
    start = time.perf_counter()
    echo(f"[{number}/{total}] {title} ...")
    result = action()
    echo(f"[{number}/{total}] {title}: done in {time.perf_counter() - start:.1f} s")
    return result


def _headline(metrics: pd.DataFrame, model: str, split: str) -> dict[str, float]:
    rows = metrics[
        (metrics["model"] == model) & (metrics["split"] == split) & (metrics["group"] == "all")
    ]
    return dict(zip(rows["metric"], rows["value"].astype(float), strict=False))


def run_demo(
    output: str | Path,
    *,
    force: bool = False,
    seed: int = 0,
    n_genes: int = 300,
    n_samples: int = 24,
    n_groups: int = 4,
    echo: Callable[[str], None] = print,
) -> DemoResult:
    """Run the demo pipeline into ``output``.

    Parameters
    ----------
    output
        Directory for everything the demo writes (``data/``, ``dataset.zarr``, ``models/``,
        ``eval/``, ``attribution/``, ``report.html``).
    force
        Replace an existing demo directory.
    seed
        Seed of the simulation and of every model.
    n_genes, n_samples, n_groups
        Size of the simulated data set.
    echo
        Where step messages go (stdout by default).
    """
    from chromexpr.annotation.tss import load_tss
    from chromexpr.atomic import check_writable
    from chromexpr.binning.pipeline import bin_dataset
    from chromexpr.dataset import open_dataset
    from chromexpr.evaluate.run import evaluate
    from chromexpr.evaluate.truth import TRUTH_TSV, write_truth_checks
    from chromexpr.explain.adapters import attributable_from_model_dir
    from chromexpr.explain.run import attribute
    from chromexpr.io.evaluation_files import read_evaluation
    from chromexpr.io.samples import read_sample_sheet
    from chromexpr.io.tss_bed import write_tss_bed
    from chromexpr.models.train import TrainOptions, train
    from chromexpr.report.run import make_report
    from chromexpr.simulate.config import SimulationConfig
    from chromexpr.simulate.run import simulate

    started = time.perf_counter()
    out = Path(output)
    check_writable(out, force=force)
    if out.exists():
        import shutil

        shutil.rmtree(out)
    out.mkdir(parents=True)
    total = 7
    data_dir = out / "data"
    config = SimulationConfig(n_genes=n_genes, n_samples=n_samples, n_groups=n_groups, seed=seed)
    sim = _step(
        1,
        total,
        f"simulate {n_genes} genes x {n_samples} samples with planted links",
        lambda: simulate(config, data_dir),
        echo,
    )
    tss_path = out / "tss.bed"

    def make_tss() -> pd.DataFrame:
        table = load_tss(data_dir / "annotation.gtf.gz")
        write_tss_bed(table, tss_path)
        return table

    genes = _step(2, total, "tss: one TSS per gene from the simulated GTF", make_tss, echo)
    dataset = out / "dataset.zarr"
    _step(
        3,
        total,
        "bin: bigWigs -> dataset (2000 x 1 kb bins around each TSS)",
        lambda: bin_dataset(genes, read_sample_sheet(data_dir / "samples.tsv"), dataset),
        echo,
    )
    expression = data_dir / "expression" / "salmon.merged.gene_tpm.tsv"
    result = DemoResult(output=out, report=out / "report.html", dataset=dataset)

    def train_all() -> None:
        # one fold per group: every sample is predicted by a model that never saw its cell type
        for name, params in DEMO_MODELS.items():
            options = TrainOptions(model=name, params=dict(params), folds=n_groups, seed=seed)
            target = out / "models" / name
            train(dataset, expression, target, options)
            result.models[name] = target
            echo(f"      trained {name}")

    _step(
        4,
        total,
        f"train: {', '.join(DEMO_MODELS)} ({n_groups} folds, one cell-type group held out each)",
        train_all,
        echo,
    )

    def evaluate_all() -> None:
        for name, model_dir in result.models.items():
            target = out / "eval" / name
            # the refitted baselines stand beside the models that are not baselines themselves
            baselines = () if name in DEMO_BASELINES else ("activity", "neighbors")
            evaluate(model_dir, dataset, expression, target, baselines=baselines)
            write_truth_checks(
                model_dir,
                dataset,
                expression,
                target,
                truth=data_dir / "truth" / "links.bedpe",
                noise_free=data_dir / "truth" / "expression_noise_free.tsv",
            )
            result.evaluations[name] = target

    _step(
        5,
        total,
        "evaluate: held-out metrics beside the baselines, noise ceiling, planted-link recovery",
        evaluate_all,
        echo,
    )
    tables = {name: read_evaluation(path)["metrics"] for name, path in result.evaluations.items()}
    held_out = "oof"
    scores = {
        name: _headline(table, name, held_out).get("gene_pearson_deviation_median", float("nan"))
        for name, table in tables.items()
        if name != "mean"
    }
    best = max(
        (m for m in scores if m not in DEMO_BASELINES),
        key=lambda m: (scores[m] == scores[m], scores[m]),
    )
    # attribution and link recovery use the best model whose attributions are exact (linear)
    explained = max(("hybrid", "lasso-gene"), key=lambda m: (scores[m] == scores[m], scores[m]))
    data = open_dataset(dataset)

    def attribute_best() -> Path:
        model = attributable_from_model_dir(result.models[explained], data)
        target = out / "attribution"
        attribute(model, data, target, method="input_x_gradient", baseline="mean", top_k=5)
        return target

    result.attribution = _step(
        6, total, f"attribute: which bins drive {explained}'s predictions", attribute_best, echo
    )
    _step(
        7,
        total,
        "report: HTML with every figure",
        lambda: make_report(
            [result.evaluations[m] for m in result.evaluations],
            result.report,
            attribution_dirs=[result.attribution] if result.attribution else [],
            title="chromexpr demo on simulated data",
        ),
        echo,
    )
    result.seconds = time.perf_counter() - started
    best_metrics = _headline(tables[best], best, held_out)
    truth = pd.read_csv(result.evaluations[explained] / TRUTH_TSV, sep="\t")
    check = dict(zip(truth["check"] + ":" + truth["metric"], truth["value"], strict=True))
    comparison = read_evaluation(result.evaluations[best]).get("comparison", pd.DataFrame())
    strongest = comparison[comparison["strongest"].astype(bool)] if len(comparison) else comparison
    if len(strongest):
        row = strongest.iloc[0]
        versus = (
            f"strongest baseline {row['baseline']} {row['baseline_median']:.2f}: "
            f"{row['difference']:+.2f} [95% CI {row['ci_low']:+.2f}, {row['ci_high']:+.2f}]"
        )
    else:
        versus = f"activity baseline {scores.get('activity', float('nan')):.2f}"
    result.summary = [
        f"data: {sim.n_genes} genes x {sim.n_samples} samples in {n_groups} groups "
        f"(outlier sample: {sim.outlier}); {data.n_bins} bins per gene",
        f"best model on held-out groups: {best} — median within-gene r (deviation) "
        f"{scores[best]:.2f}; {versus}",
        "within-gene r (deviation) by model: "
        + ", ".join(f"{m} {v:.2f}" for m, v in sorted(scores.items(), key=lambda kv: -kv[1])),
        f"noise ceiling (truth vs observed) within-gene r "
        f"{check.get('noise_ceiling:gene_pearson_median', float('nan')):.2f}; {best} across-gene "
        f"r {best_metrics.get('pearson', float('nan')):.2f}; {explained} planted-link AUPRC "
        f"{check.get('links:auprc', float('nan')):.3f} (distance-only "
        f"{check.get('links:distance_auprc', float('nan')):.3f}, random "
        f"{check.get('links:baseline_auprc', float('nan')):.3f})",
        f"attribution tracks (bigWig) and links in {result.attribution}; "
        f"total {result.seconds:.0f} s",
    ]
    return result
