"""The HTML report: every figure from fake-but-realistic EVAL_DIRs, valid files, offline page."""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import AxesImage
from typer.testing import CliRunner

from chromexpr.errors import InputError, OutputExistsError
from chromexpr.explain.run import attribute
from chromexpr.io.report_files import read_eval_dir
from chromexpr.report import figures as F
from chromexpr.report.html import svg_inline, trust_summary
from chromexpr.report.run import collect, make_report
from explain_toys import LinearToy, make_dataset, write_fake_eval_dir

FIGURES = [
    "model_comparison",
    "loss_curves",
    "predicted_vs_observed",
    "error_vs_observed",
    "per_sample_error",
    "error_removal",
    "gene_correlation",
    "attribution_profile",
    "sample_pca",
]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# anything a browser would fetch: absolute or protocol-relative URLs, scripts, style sheets, url()
# not to "#id"
EXTERNAL = re.compile(
    r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}|<script|<link|@import|url\((?!#)", re.IGNORECASE
)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("report_inputs")
    lasso = write_fake_eval_dir(
        root / "eval_lasso", "lasso", skill=0.5, noise=0.45, history=False, seed=1
    )
    fc = write_fake_eval_dir(
        root / "eval_fc", "fc", skill=0.85, noise=0.35, baseline_per_gene=False, seed=2
    )
    dataset = make_dataset(root / "ds.zarr")
    attr = attribute(
        LinearToy(dataset),
        dataset,
        root / "attr",
        method="integrated_gradients",
        baseline="mean",
        device="cpu",
    ).directory
    return {"lasso": lasso, "fc": fc, "attr": attr, "root": root}


@pytest.fixture(scope="module")
def report(inputs: dict[str, Path]) -> Path:
    return make_report(
        [inputs["lasso"], inputs["fc"]],
        inputs["root"] / "out" / "report.html",
        attribution_dirs=[inputs["attr"]],
    )


@pytest.fixture(scope="module")
def bare(inputs: dict[str, Path]) -> Path:
    """An EVAL_DIR with metrics.tsv only (e.g. an evaluation that wrote no predictions)."""
    path = inputs["root"] / "bare"
    path.mkdir()
    (path / "metrics.tsv").write_text((inputs["lasso"] / "metrics.tsv").read_text())
    return path


def test_every_figure_is_written_as_valid_png_and_svg(report: Path) -> None:
    folder = report.with_name("report_figures")
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [f"{n}.png" for n in FIGURES] + [f"{n}.svg" for n in FIGURES]
    )
    for name in FIGURES:
        png = (folder / f"{name}.png").read_bytes()
        assert png.startswith(PNG_MAGIC) and len(png) > 5000, name
        width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
        assert width > 300 and height > 150, name
        root = ET.parse(folder / f"{name}.svg").getroot()
        assert root.tag.endswith("svg") and len(list(root.iter())) > 50, name


def test_html_is_self_contained_with_every_figure(report: Path) -> None:
    page = report.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    for name in FIGURES:
        block = re.search(rf'<figure id="fig-{name}">(.*?)</figure>', page, re.DOTALL)
        assert block is not None, name
        assert 'src="data:image/png;base64,' in block.group(1)
        assert "<figcaption>" in block.group(1)
    assert "Not shown" not in page
    assert EXTERNAL.search(page) is None
    # the one-minute summary names the better model and compares it with the mean baseline
    summary = re.search(r'<ul class="summary">(.*?)</ul>', page, re.DOTALL).group(1)  # type: ignore[union-attr]
    assert "Trust <code>fc</code>" in summary and "mean baseline" in summary
    assert "<code>s07</code> (T)" in summary  # the planted outlier sample
    # metrics table: one row per model and split, the baseline included
    table = page[page.index("<table>") : page.index("</table>")]
    assert table.count('<td class="l">mean (baseline)</td><td class="l">test</td>') == 1
    assert table.count('<tr class="held"><td class="l">fc</td>') == 1
    assert table.count("<tr") == 1 + 3 * 2  # header + (lasso, fc, baseline) x (train, test)


def test_inline_svg_embedding_is_offline(bare: Path, tmp_path: Path) -> None:
    out = make_report([bare], tmp_path / "r.html", embed="svg")
    page = out.read_text()
    assert (
        page.count("<svg") == 2
    )  # model comparison and (empty) loss curves; the rest need other files
    assert re.search(r'<figure id="fig-model_comparison">\s*<h3>[^<]*</h3>\s*<svg', page)
    assert EXTERNAL.search(page) is None
    assert "xmlns" not in page and "<!DOCTYPE svg" not in page


def test_missing_optional_files_and_existing_output(bare: Path, tmp_path: Path) -> None:
    out = make_report([bare], tmp_path / "bare.html")
    page = out.read_text()
    assert "fig-model_comparison" in page and "fig-loss_curves" in page
    assert "Not shown" in page and "predictions.tsv" in page  # says what is missing
    with pytest.raises(OutputExistsError):
        make_report([bare], tmp_path / "bare.html")
    with pytest.raises(InputError, match=r"no metrics\.tsv"):
        make_report([tmp_path], tmp_path / "x.html")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "metrics.tsv").write_text("model\tvalue\nfc\t1\n")
    with pytest.raises(InputError, match="missing column"):
        make_report([broken], tmp_path / "y.html")


def test_colliding_model_names_are_told_apart(inputs: dict[str, Path]) -> None:
    data = collect([read_eval_dir(inputs["fc"]), read_eval_dir(inputs["fc"])])
    assert data.models == ["fc", "fc (eval_fc)"]
    assert set(data.history["model"]) == {"fc", "fc (eval_fc)"}
    assert (data.metrics["model"] == "mean (baseline)").sum() == (
        pd.read_csv(inputs["fc"] / "metrics.tsv", sep="\t")["model"] == "mean (baseline)"
    ).sum()


def test_summary_refuses_a_model_that_does_not_beat_the_baseline(tmp_path: Path) -> None:
    bad = write_fake_eval_dir(tmp_path / "bad", "fc", skill=-0.4, noise=0.3, seed=3)
    lines = trust_summary(collect([read_eval_dir(bad)]))
    assert lines[0].startswith("<b>Do not trust any model within genes.</b>")


def test_dense_predictions_render_as_a_histogram_fast() -> None:
    rng = np.random.default_rng(0)
    n = 1_000_000
    obs = rng.normal(4, 2, n)
    frame = pd.DataFrame(
        {
            "model": "fc",
            "observed": obs,
            "predicted": obs + rng.normal(0, 0.5, n),
            "train_mean": obs + rng.normal(0, 1, n),
        }
    )
    start = time.perf_counter()
    fig = F.predicted_vs_observed(frame, ["fc"])
    fig.savefig(__import__("io").BytesIO(), format="png", dpi=60)
    assert time.perf_counter() - start < 10
    images = [a for ax in fig.axes for a in ax.get_children() if isinstance(a, AxesImage)]
    assert len(images) == 2  # model and baseline panels, each one raster image, no scatter


def test_svg_inline_strips_everything_fetchable() -> None:
    svg = (
        '<?xml version="1.0" encoding="utf-8" standalone="no"?>\n'
        '<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n'
        '<svg xmlns:xlink="http://www.w3.org/1999/xlink" width="1" xmlns="http://www.w3.org/2000/svg">'
        "<metadata><rdf:RDF/></metadata><g/></svg>"
    )
    assert svg_inline(svg) == '<svg width="1"><g/></svg>'


def test_cli_report(bare: Path, tmp_path: Path) -> None:
    import chromexpr.cli.report  # noqa: F401  (registers the command)
    from chromexpr.cli._app import app

    out = tmp_path / "cli.html"
    result = CliRunner().invoke(
        app, ["report", str(bare), "-o", str(out), "--quiet", "--embed", "svg"]
    )
    assert result.exit_code == 0, result.output
    assert out.is_file() and (tmp_path / "cli_figures" / "model_comparison.svg").is_file()
    again = CliRunner().invoke(app, ["report", str(bare), "-o", str(out)])
    assert again.exit_code == 2 and "--force" in again.output
    missing = CliRunner().invoke(
        app, ["report", str(tmp_path / "nope"), "-o", str(tmp_path / "n.html")]
    )
    assert missing.exit_code == 2 and "not found" in missing.output
