"""The README's main job.

``chromexpr demo`` runs the whole pipeline green and writes every output.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from chromexpr.cli import app


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    from chromexpr.demo import run_demo

    messages: list[str] = []
    result = run_demo(
        tmp_path / "demo", n_genes=150, n_samples=16, n_groups=4, echo=messages.append
    )
    assert result.report.is_file() and result.report.stat().st_size > 10_000
    html = result.report.read_text()
    assert "<img" in html or "<svg" in html
    assert set(result.models) == {"mean", "activity", "neighbors", "lasso-gene", "hybrid", "fc"}
    for name, path in result.evaluations.items():
        assert (path / "metrics.tsv").is_file(), name
        assert (path / "per_gene.tsv").is_file(), name
    # the models that are not baselines are scored beside the refitted baselines
    comparison = pd.read_csv(result.evaluations["hybrid"] / "comparison.tsv", sep="\t")
    assert set(comparison["baseline"]) == {"activity (baseline)", "neighbors (baseline)"}
    assert comparison["strongest"].sum() == 1
    assert (comparison["ci_low"] <= comparison["difference"]).all()
    assert (comparison["difference"] <= comparison["ci_high"]).all()
    assert not (result.evaluations["neighbors"] / "comparison.tsv").read_text().strip().count("\n")
    assert "strongest baseline" in result.summary[1]
    # the report quotes the gap to the strongest baseline and shows each refitted baseline once
    assert "over the strongest baseline" in html
    assert html.count("for the <code>neighbors</code> baseline") == 1
    assert result.attribution is not None
    tracks = list((result.attribution / "tracks").glob("*.bw"))
    assert len(tracks) == 16
    assert (result.attribution / "links.bedpe").stat().st_size > 0
    assert len(result.summary) == 5
    assert any(m.startswith("[7/7]") for m in messages)


def test_demo_refuses_to_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "demo"
    target.mkdir()
    run = CliRunner().invoke(app, ["demo", str(target), "--quiet"])
    assert run.exit_code == 2
    assert "--force" in run.output
