"""``chromexpr train``: dataset + expression -> MODEL_DIR (model, transforms, split, history,
predictions)."""

from __future__ import annotations

from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from chromexpr.cli._app import app, command_context
from chromexpr.cli._options import (
    CompileChoice,
    DataOnDeviceChoice,
    Debug,
    DeviceChoice,
    Force,
    Quiet,
    Seed,
    Threads,
)


class ModelChoice(str, Enum):
    auto = "auto"
    hybrid = "hybrid"
    mean = "mean"
    activity = "activity"
    neighbors = "neighbors"
    lasso = "lasso"
    lasso_gene = "lasso-gene"
    fc = "fc"


class FormulationChoice(str, Enum):
    auto = "auto"
    deviation = "deviation"
    raw = "raw"


class ExprTransformChoice(str, Enum):
    log2p1 = "log2p1"
    log1p = "log1p"
    none = "none"


class SplitChoice(str, Enum):
    sample = "sample"
    chromosome = "chromosome"
    sample_chromosome = "sample+chromosome"
    random = "random"


class GroupsChoice(str, Enum):
    auto = "auto"
    sheet = "sheet"
    none = "none"


class AlphaSelectionChoice(str, Enum):
    global_ = "global"
    gene = "gene"


class PriorChoice(str, Enum):
    profile = "profile"
    none = "none"


class BackboneChoice(str, Enum):
    lasso_gene = "lasso-gene"
    none = "none"


def _items(text: str | None) -> tuple[str, ...]:
    """``"a,b"`` -> ``("a", "b")``."""
    return tuple(t.strip() for t in (text or "").split(",") if t.strip())


def _numbers(text: str, option: str, kind: type = float) -> tuple[Any, ...]:
    try:
        return tuple(kind(t) for t in _items(text))
    except ValueError:
        raise typer.BadParameter(f"{option} takes comma-separated numbers, got {text!r}") from None


MODEL_HELP = "Model options (each applies to the models that have it)"
FC_HELP = "fc options"
SCALE_HELP = "Scale-out (lasso statistics pass)"


@app.command("train")
def train_command(
    dataset: Annotated[Path, typer.Argument(help="Dataset directory (from 'chromexpr bin').")],
    expression: Annotated[
        Path,
        typer.Option("--expression", "-e", help="Expression TSV: gene_id[, gene_name], samples..."),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="MODEL_DIR to create.")] = Path(
        "model"
    ),
    model: Annotated[
        ModelChoice,
        typer.Option(
            "--model",
            "-m",
            help="Model (hybrid: cross-sample similarity + per-gene LASSO); auto: best by CV.",
        ),
    ] = (ModelChoice.hybrid),
    formulation: Annotated[
        FormulationChoice,
        typer.Option(
            help="deviation: within-gene deviations from training means; raw: values as they are."
        ),
    ] = FormulationChoice.auto,
    expr_transform: Annotated[
        ExprTransformChoice, typer.Option("--expr-transform", help="Expression transform.")
    ] = ExprTransformChoice.log2p1,
    standardize: Annotated[
        bool,
        typer.Option(
            "--standardize/--no-standardize", help="Per-gene standardisation (training stats)."
        ),
    ] = False,
    depth: Annotated[
        bool, typer.Option("--depth/--no-depth", help="Per-sample depth scaling.")
    ] = True,
    log1p: Annotated[bool, typer.Option("--log1p/--no-log1p", help="log1p of openness.")] = True,
    quantile: Annotated[
        bool,
        typer.Option(
            "--quantile-normalize/--no-quantile-normalize",
            help="Quantile-normalise openness onto training reference quantiles.",
        ),
    ] = False,
    split: Annotated[SplitChoice, typer.Option(help="What is held out.")] = SplitChoice.sample,
    dev_fraction: Annotated[
        float | None, typer.Option("--dev-fraction", help="[default: 0.1 for fc, else 0]")
    ] = None,
    test_fraction: Annotated[float, typer.Option("--test-fraction", min=0.0, max=1.0)] = 0.2,
    dev_samples: Annotated[
        str | None, typer.Option("--dev-samples", help="Comma-separated.")
    ] = None,
    test_samples: Annotated[
        str | None, typer.Option("--test-samples", help="Comma-separated.")
    ] = None,
    dev_chroms: Annotated[str | None, typer.Option("--dev-chroms", help="Comma-separated.")] = None,
    test_chroms: Annotated[
        str | None, typer.Option("--test-chroms", help="Comma-separated.")
    ] = None,
    folds: Annotated[
        int | None,
        typer.Option(
            "--folds",
            "-k",
            min=2,
            help="K-fold CV over samples (K = n samples: leave-one-out).",
        ),
    ] = None,
    groups: Annotated[
        GroupsChoice | None,
        typer.Option(
            help="Sample groups: auto (expression PCA + k-means), sheet, none [default: sheet "
            "if the dataset has groups]."
        ),
    ] = None,
    inner_folds: Annotated[
        int, typer.Option("--inner-folds", min=2, help="Inner CV folds (alpha, auto).")
    ] = 5,
    auto_candidates: Annotated[
        str, typer.Option("--auto-candidates", help="Models --model auto compares.")
    ] = "activity,neighbors,lasso-gene,hybrid",
    alpha: Annotated[
        float | None,
        typer.Option(min=0.0, help="lasso: fixed alpha (no CV).", rich_help_panel=MODEL_HELP),
    ] = None,
    window: Annotated[
        int | None,
        typer.Option(
            min=1, help="Bins within this distance of the TSS (bp).", rich_help_panel=MODEL_HELP
        ),
    ] = None,
    distance_scale: Annotated[
        float | None,
        typer.Option(
            "--distance-scale",
            min=0.0,
            help="Penalty factor 1 + d / scale (0: uniform).",
            rich_help_panel=MODEL_HELP,
        ),
    ] = None,
    alpha_selection: Annotated[
        AlphaSelectionChoice | None,
        typer.Option(
            "--alpha-selection",
            help="lasso-gene: one alpha position for all genes, or per gene.",
            rich_help_panel=MODEL_HELP,
        ),
    ] = None,
    prior: Annotated[
        PriorChoice | None,
        typer.Option(
            help="lasso-gene: pooled distance profile under the per-gene models.",
            rich_help_panel=MODEL_HELP,
        ),
    ] = None,
    d0: Annotated[
        float | None,
        typer.Option(help="activity: decay length (bp), > 0.", rich_help_panel=MODEL_HELP),
    ] = None,
    hidden: Annotated[
        str | None, typer.Option(help="Hidden widths, e.g. 1000,500,250.", rich_help_panel=FC_HELP)
    ] = None,
    dropout: Annotated[
        float | None, typer.Option(min=0.0, help="[0, 1)", rich_help_panel=FC_HELP)
    ] = None,
    l1: Annotated[float | None, typer.Option(min=0.0, rich_help_panel=FC_HELP)] = None,
    l2: Annotated[float | None, typer.Option(min=0.0, rich_help_panel=FC_HELP)] = None,
    lr: Annotated[
        float | None, typer.Option(help="[default: 1e-3]", rich_help_panel=FC_HELP)
    ] = None,
    betas: Annotated[
        str | None, typer.Option(help="[default: 0.9,0.999]", rich_help_panel=FC_HELP)
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size",
            min=1,
            help="[default: 10000, fewer on small data]",
            rich_help_panel=FC_HELP,
        ),
    ] = None,
    epochs: Annotated[int | None, typer.Option(min=1, rich_help_panel=FC_HELP)] = None,
    patience: Annotated[
        int | None,
        typer.Option(min=0, help="Early-stopping patience (0: none).", rich_help_panel=FC_HELP),
    ] = None,
    device: Annotated[DeviceChoice | None, typer.Option(rich_help_panel=FC_HELP)] = None,
    data_on_device: Annotated[
        DataOnDeviceChoice | None,
        typer.Option(
            "--data-on-device",
            help="fc: hold the training rows in the device's memory (auto: when they fit, "
            "float32 or else float16; the log says which) or stream them from the store "
            "[default: auto]",
            rich_help_panel=FC_HELP,
        ),
    ] = None,
    compile_step: Annotated[
        CompileChoice | None,
        typer.Option(
            "--compile",
            help="fc: torch.compile the training step [default: auto = on CUDA]",
            rich_help_panel=FC_HELP,
        ),
    ] = None,
    backbone: Annotated[
        BackboneChoice | None,
        typer.Option(
            help="fc: learn what a lasso-gene model leaves [default: lasso-gene]",
            rich_help_panel=FC_HELP,
        ),
    ] = None,
    group_input: Annotated[
        bool,
        typer.Option(
            "--group-input", help="Feed the sample group as an embedding.", rich_help_panel=FC_HELP
        ),
    ] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue an interrupted fc run.")
    ] = False,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            help="lasso: compute the statistics pass on this Dask cluster (tcp://host:port or a "
            "scheduler JSON file; workers must read the dataset path). Needs chromexpr[dask].",
            rich_help_panel=SCALE_HELP,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            help="lasso: compute the statistics pass on a local Dask cluster of N processes. "
            "Needs chromexpr[dask].",
            rich_help_panel=SCALE_HELP,
        ),
    ] = None,
    seed: Seed = 0,
    force: Force = False,
    quiet: Quiet = False,
    debug: Debug = False,
    threads: Threads = None,
) -> None:
    """Train a model (mean, activity, lasso, lasso-gene, fc, or auto) and write MODEL_DIR."""
    with command_context(quiet=quiet, debug=debug, threads=threads):
        from chromexpr.models.splits import SplitConfig
        from chromexpr.models.train import TrainOptions, train
        from chromexpr.models.transforms import OpennessConfig

        params: dict[str, Any] = {}
        simple = {
            "alpha": alpha,
            "window": window,
            "d0": d0,
            "dropout": dropout,
            "l1": l1,
            "l2": l2,
            "lr": lr,
            "batch_size": batch_size,
            "epochs": epochs,
            "patience": patience,
        }
        params.update({k: v for k, v in simple.items() if v is not None})
        if distance_scale is not None:
            params["distance_scale"] = distance_scale if distance_scale > 0 else None
        if alpha_selection is not None:
            params["alpha_selection"] = alpha_selection.value
        if prior is not None:
            params["prior"] = prior.value
        if hidden is not None:
            params["hidden"] = _numbers(hidden, "--hidden", int)
        if betas is not None:
            params["betas"] = _numbers(betas, "--betas")
        if device is not None:
            params["device"] = device.value
        if data_on_device is not None:
            params["data_on_device"] = data_on_device.value
        if compile_step is not None:
            params["compile"] = compile_step.value
        if backbone is not None:
            params["backbone"] = backbone.value
        if group_input:
            params["group_input"] = True
        options = TrainOptions(
            model=model.value,
            params=params,
            formulation=formulation.value,
            expr_transform=expr_transform.value,
            standardize=standardize,
            openness=OpennessConfig(depth=depth, log1p=log1p, quantile=quantile),
            split=SplitConfig(
                kind=split.value,
                dev_fraction=dev_fraction,
                test_fraction=test_fraction,
                dev_samples=_items(dev_samples),
                test_samples=_items(test_samples),
                dev_chroms=_items(dev_chroms),
                test_chroms=_items(test_chroms),
                seed=seed,
            ),
            folds=folds,
            groups=None if groups is None else groups.value,
            inner_folds=inner_folds,
            auto_candidates=_items(auto_candidates),
            seed=seed,
        )
        _check_scale_out(scheduler, workers, model.value, options.auto_candidates)
        _check_params(params, dev_fraction)
        if workers is None:
            if scheduler is not None:
                options = replace(options, runtime={"scheduler": scheduler})
            train(dataset, expression, output, options, force=force, resume=resume)
            return
        from chromexpr.dask_cluster import local_cluster

        with local_cluster(workers) as address:  # one cluster for every fit of the run
            options = replace(options, runtime={"scheduler": address})
            train(dataset, expression, output, options, force=force, resume=resume)


def _check_params(params: dict[str, Any], dev_fraction: float | None) -> None:
    """What the option ranges cannot say, checked before any data is read."""
    if dev_fraction is not None and not 0.0 <= dev_fraction < 1.0:
        raise typer.BadParameter(f"--dev-fraction must be in [0, 1), got {dev_fraction}")
    if "dropout" in params and not params["dropout"] < 1.0:
        raise typer.BadParameter(f"--dropout must be in [0, 1), got {params['dropout']}")
    if "lr" in params and not params["lr"] > 0:
        raise typer.BadParameter(f"--lr must be > 0, got {params['lr']}")
    if "d0" in params and not params["d0"] > 0:
        raise typer.BadParameter(f"--d0 must be > 0, got {params['d0']}")
    hidden = params.get("hidden")
    if hidden is not None and (not hidden or min(hidden) < 1):
        raise typer.BadParameter(f"--hidden takes layer widths >= 1, got {list(hidden)}")
    betas = params.get("betas")
    if betas is not None and (len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas)):
        raise typer.BadParameter(f"--betas takes two numbers in [0, 1), got {list(betas)}")
    if params.get("device") == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise typer.BadParameter("--device cuda: no CUDA device is available here")


def _check_scale_out(
    scheduler: str | None, workers: int | None, model: str, candidates: tuple[str, ...]
) -> None:
    """``--scheduler`` / ``--workers`` apply to the pooled lasso only: refuse them elsewhere."""
    if scheduler is None and workers is None:
        return
    if scheduler is not None and workers is not None:
        raise typer.BadParameter("give --scheduler or --workers, not both")
    if workers is not None and workers < 1:
        raise typer.BadParameter("--workers must be at least 1")
    if model != "lasso" and not (model == "auto" and "lasso" in candidates):
        raise typer.BadParameter(
            "--scheduler/--workers apply to the statistics pass of --model lasso only "
            f"(or auto with lasso among its candidates), not {model}"
        )
