"""Readers of ``chromexpr evaluate`` / ``attribute`` outputs and the writer of the report.

EVAL_DIR (from ``chromexpr evaluate``): ``metrics.tsv`` (required), and optionally ``per_gene.tsv``,
``per_sample.tsv``, ``predictions.tsv``, ``history.tsv``, ``model.json``. Attribution directory
(from ``chromexpr attribute``): ``profile.tsv`` and ``attribution.json``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from chromexpr.atomic import atomic_path, check_writable
from chromexpr.errors import InputError

__all__ = ["EvalTables", "read_attribution_dir", "read_eval_dir", "write_report"]

#: Columns each table must have (others are optional and used when present).
REQUIRED = {
    "metrics.tsv": ["model", "split", "metric", "value"],
    "per_gene.tsv": ["model", "split", "gene_id"],
    "per_sample.tsv": ["model", "split", "sample", "mse"],
    "predictions.tsv": ["gene_id", "sample", "split", "observed", "predicted", "model"],
    "history.tsv": ["epoch", "train_mse"],
    "comparison.tsv": ["model", "split", "baseline", "difference", "ci_low", "ci_high"],
    "truth.tsv": ["check", "metric", "value"],
    "profile.tsv": ["bin_offset", "group", "mean_abs_attribution"],
}

_PREDICTION_COLUMNS = [
    "gene_id",
    "sample",
    "group",
    "split",
    "observed",
    "predicted",
    "train_mean",
    "model",
]
_FLOAT32 = {"observed": "float32", "predicted": "float32", "train_mean": "float32"}


@dataclass
class EvalTables:
    """The tables of one EVAL_DIR (``None`` for absent optional files)."""

    path: Path
    metrics: pd.DataFrame
    per_gene: pd.DataFrame | None = None
    per_sample: pd.DataFrame | None = None
    predictions: pd.DataFrame | None = None
    history: pd.DataFrame | None = None
    model_info: dict[str, Any] = field(default_factory=dict)
    comparison: pd.DataFrame | None = None
    truth: pd.DataFrame | None = None


def _read(path: Path, name: str, **kwargs: Any) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, sep="\t", **kwargs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(
            f"cannot read as a tab-separated table ({type(exc).__name__}: {exc})", path=path
        ) from exc
    missing = [c for c in REQUIRED[name] if c not in frame.columns]
    if missing:
        raise InputError(
            f"missing column(s) {', '.join(missing)}",
            path=path,
            fix=f"{name} needs {', '.join(REQUIRED[name])}",
        )
    return frame


def _optional(directory: Path, name: str, **kwargs: Any) -> pd.DataFrame | None:
    path = directory / name
    return _read(path, name, **kwargs) if path.is_file() else None


def read_eval_dir(path: str | Path) -> EvalTables:
    """Read an EVAL_DIR; ``metrics.tsv`` is required, the rest optional.

    ``predictions.tsv`` (possibly millions of rows) is read with only the columns the report uses
    and float32 values.
    """
    directory = Path(path)
    if not directory.is_dir():
        raise InputError(
            "evaluation directory not found",
            path=directory,
            fix="give the -o directory of 'chromexpr evaluate'",
        )
    metrics_path = directory / "metrics.tsv"
    if not metrics_path.is_file():
        raise InputError("no metrics.tsv in the evaluation directory", path=directory)
    info: dict[str, Any] = {}
    if (directory / "model.json").is_file():
        try:
            info = dict(json.loads((directory / "model.json").read_text()))
        except (json.JSONDecodeError, TypeError, ValueError) as exc:
            raise InputError(
                f"model.json is not a JSON object ({exc})", path=directory / "model.json"
            ) from exc
    predictions = None
    if (directory / "predictions.tsv").is_file():
        header = pd.read_csv(directory / "predictions.tsv", sep="\t", nrows=0).columns
        usecols = [c for c in _PREDICTION_COLUMNS if c in header]
        predictions = _read(
            directory / "predictions.tsv",
            "predictions.tsv",
            usecols=usecols,
            dtype={k: v for k, v in _FLOAT32.items() if k in usecols},
        )
    return EvalTables(
        path=directory,
        metrics=_read(metrics_path, "metrics.tsv"),
        per_gene=_optional(directory, "per_gene.tsv"),
        per_sample=_optional(directory, "per_sample.tsv"),
        predictions=predictions,
        history=_optional(directory, "history.tsv"),
        model_info=info,
        comparison=_optional(directory, "comparison.tsv"),
        truth=_optional(directory, "truth.tsv"),
    )


def read_attribution_dir(path: str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``profile.tsv`` and ``attribution.json`` (empty dict if absent) of an attribution dir."""
    directory = Path(path)
    profile = directory / "profile.tsv"
    if not profile.is_file():
        raise InputError(
            "no profile.tsv in the attribution directory",
            path=directory,
            fix="give the -o directory of 'chromexpr attribute'",
        )
    meta: dict[str, Any] = {}
    if (directory / "attribution.json").is_file():
        try:
            meta = dict(json.loads((directory / "attribution.json").read_text()))
        except (json.JSONDecodeError, TypeError, ValueError):
            meta = {}
    return _read(profile, "profile.tsv"), meta


def figure_directory(output: Path) -> Path:
    """Folder of the figures, beside the HTML: ``report.html`` -> ``report_figures/``."""
    return output.with_name(output.stem + "_figures")


def write_report(
    output: str | Path,
    html: str,
    figures: Mapping[str, tuple[bytes, str]],
    *,
    force: bool = False,
) -> Path:
    """Write the HTML file and every figure as ``NAME.png`` and ``NAME.svg`` in the figure folder.

    Both are written atomically; existing outputs are replaced only with ``force``.

    Returns
    -------
    pathlib.Path
        The figure folder.
    """
    final = Path(output)
    folder = figure_directory(final)
    check_writable(final, force=force)
    check_writable(folder, force=force)
    with atomic_path(folder, force=force) as tmp:
        tmp.mkdir(parents=True)
        for name, (png, svg) in figures.items():
            (tmp / f"{name}.png").write_bytes(png)
            (tmp / f"{name}.svg").write_text(svg)
    with atomic_path(final, force=force) as tmp:
        tmp.write_text(html, encoding="utf-8")
    return folder
