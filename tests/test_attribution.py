"""Attribution on models with known answers, the attribute run, its BEDPE/interact outputs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from chromexpr.dataset.store import Dataset
from chromexpr.errors import InputError, OutputExistsError
from chromexpr.explain.attribution import (
    Attributable,
    AttributionOptions,
    Attributor,
    attribute_pairs,
)
from chromexpr.explain.coordinates import bin_intervals
from chromexpr.explain.links import BEDPE_COLUMNS, INTERACT_COLUMNS
from chromexpr.explain.run import attribute, select_genes
from explain_toys import (
    CHROM_SIZES,
    SPEC,
    LinearToy,
    PooledLinearModule,
    TorchToy,
    make_dataset,
    relu_mlp,
    small_mlp,
)

METHODS = ["saliency", "input_x_gradient", "integrated_gradients", "deeplift"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """Read-only: tests write only their outputs (under their own tmp_path)."""
    return make_dataset(tmp_path_factory.mktemp("attribution") / "ds.zarr")


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request: pytest.FixtureRequest) -> str:
    if request.param == "cuda" and not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    return str(request.param)


def all_rows(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    g, s = np.meshgrid(np.arange(dataset.n_genes), np.arange(dataset.n_samples), indexing="ij")
    return g.ravel(), s.ravel()


# --------------------------------------------------------------------------------------------
# Known answers
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pooled", [False, True])
def test_linear_input_x_gradient_is_coefficient_times_input(dataset: Dataset, pooled: bool) -> None:
    model = LinearToy(dataset, pooled=pooled)
    assert isinstance(model, Attributable)
    g, s = all_rows(dataset)
    attr = attribute_pairs(
        model, dataset, g, s, AttributionOptions(method="input_x_gradient", device="cpu")
    )
    x = np.log1p(dataset.read_rows(g, s))
    w = model.linear_weights(g)
    np.testing.assert_allclose(attr, w * x, rtol=1e-6)


def test_linear_error_target_closed_form(dataset: Dataset) -> None:
    """input x gradient of (f - y)^2 is 2 (f(x) - y) w (x - b), b the mean baseline."""
    model = LinearToy(dataset)
    g, s = all_rows(dataset)
    options = AttributionOptions(
        method="input_x_gradient", target="error", baseline="mean", device="cpu"
    )
    attr = attribute_pairs(model, dataset, g, s, options)
    x = np.log1p(dataset.read_rows(g, s)).astype(np.float64)
    b = model.mean[g]
    f = model.predict(x, g)
    expected = 2 * (f - model.y[g, s])[:, None] * model.w[g] * (x - b)
    np.testing.assert_allclose(attr, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("target", ["prediction", "error"])
@pytest.mark.parametrize("baseline", ["zeros", "mean"])
def test_closed_form_equals_captum_on_a_linear_module(
    dataset: Dataset, method: str, target: str, baseline: str
) -> None:
    """The same pooled linear model, attributed in closed form and by Captum through torch."""
    linear = LinearToy(dataset, pooled=True)
    as_torch = TorchToy(dataset, PooledLinearModule(linear.w[0], float(linear.c[0])))
    as_torch.y = linear.y
    g, s = all_rows(dataset)
    options = AttributionOptions(
        method=method,
        target=target,
        baseline=baseline,
        n_steps=8,  # type: ignore[arg-type]
        device="cpu",
    )
    closed = attribute_pairs(linear, dataset, g, s, options)
    captum = attribute_pairs(as_torch, dataset, g, s, options)
    np.testing.assert_allclose(captum, closed, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("target", ["prediction", "error"])
def test_integrated_gradients_completeness(dataset: Dataset, target: str, device: str) -> None:
    """Sum of attributions = F(x) - F(b) for F the prediction or the squared error."""
    model = TorchToy(dataset, small_mlp(dataset.n_bins))
    g, s = all_rows(dataset)
    options = AttributionOptions(
        method="integrated_gradients",
        target=target,
        baseline="mean",
        n_steps=64,
        batch_size=7,
        device=device,
    )
    attr = attribute_pairs(model, dataset, g, s, options).astype(np.float64)
    x = torch.as_tensor(np.log1p(dataset.read_rows(g, s)))
    b = torch.as_tensor(model.mean[g])
    with torch.no_grad():
        fx, fb = model.module(x).double().numpy(), model.module(b).double().numpy()
    y = model.y[g, s]
    delta = fx - fb if target == "prediction" else (fx - y) ** 2 - (fb - y) ** 2
    np.testing.assert_allclose(attr.sum(axis=1), delta, rtol=1e-3, atol=1e-4)
    assert np.abs(delta).max() > 1e-2  # not trivially zero


@pytest.mark.parametrize("target", ["prediction", "error"])
def test_deeplift_sums_to_delta(dataset: Dataset, target: str) -> None:
    model = TorchToy(dataset, relu_mlp(dataset.n_bins))
    g, s = all_rows(dataset)
    options = AttributionOptions(method="deeplift", target=target, baseline="mean", device="cpu")
    attr = attribute_pairs(model, dataset, g, s, options).astype(np.float64)
    x = torch.as_tensor(np.log1p(dataset.read_rows(g, s)))
    b = torch.as_tensor(model.mean[g])
    with torch.no_grad():
        fx, fb = model.module(x).double().numpy(), model.module(b).double().numpy()
    y = model.y[g, s]
    delta = fx - fb if target == "prediction" else (fx - y) ** 2 - (fb - y) ** 2
    np.testing.assert_allclose(attr.sum(axis=1), delta, rtol=1e-4, atol=1e-5)


def test_saliency_is_absolute_gradient(dataset: Dataset) -> None:
    model = TorchToy(dataset, small_mlp(dataset.n_bins))
    g, s = all_rows(dataset)
    attr = attribute_pairs(
        model, dataset, g, s, AttributionOptions(method="saliency", device="cpu")
    )
    x = torch.as_tensor(np.log1p(dataset.read_rows(g, s))).requires_grad_(True)
    (grad,) = torch.autograd.grad(model.module(x).sum(), x)
    np.testing.assert_allclose(attr, grad.abs().numpy(), rtol=1e-5, atol=1e-7)


def test_batches_do_not_change_results(dataset: Dataset) -> None:
    model = TorchToy(dataset, small_mlp(dataset.n_bins))
    g, s = all_rows(dataset)
    one = attribute_pairs(
        model, dataset, g, s, AttributionOptions(batch_size=3, n_steps=16, device="cpu")
    )
    many = attribute_pairs(
        model, dataset, g, s, AttributionOptions(batch_size=64, n_steps=16, device="cpu")
    )
    np.testing.assert_allclose(one, many, rtol=1e-5, atol=1e-6)


def test_bad_options_and_missing_targets(dataset: Dataset) -> None:
    with pytest.raises(InputError, match="unknown method"):
        AttributionOptions(method="gradcam")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="batch size"):
        AttributionOptions(batch_size=0)
    model = LinearToy(dataset)
    model.targets = lambda g, s: None  # type: ignore[method-assign]
    with pytest.raises(InputError, match="target error needs"):
        attribute_pairs(
            model,
            dataset,
            np.array([0]),
            np.array([0]),
            AttributionOptions(target="error", device="cpu"),
        )
    with pytest.raises(InputError, match=r"CUDA is not available|unknown device"):
        if torch.cuda.is_available():
            raise InputError("unknown device")
        Attributor(TorchToy(dataset, small_mlp(dataset.n_bins)), AttributionOptions(device="cuda"))


# --------------------------------------------------------------------------------------------
# The attribute run: tables, links and their formats
# --------------------------------------------------------------------------------------------


def test_run_outputs_and_summaries(dataset: Dataset, tmp_path: Path) -> None:
    model = LinearToy(dataset)
    out = tmp_path / "attr"
    paths = attribute(
        model, dataset, out, method="integrated_gradients", baseline="mean", top_k=3, device="cpu"
    )
    assert paths.directory == out and not list(out.glob(".*"))  # no part files left behind
    meta = json.loads(paths.provenance.read_text())
    assert meta["format"] == "chromexpr-attribution" and meta["linear_closed_form"] is True
    assert meta["provenance"]["parameters"]["method"] == "integrated_gradients"
    assert "sum of the attributions" in meta["combine_rule"]

    g, s = all_rows(dataset)
    options = AttributionOptions(method="integrated_gradients", baseline="mean", device="cpu")
    attr = attribute_pairs(model, dataset, g, s, options).reshape(
        dataset.n_genes, dataset.n_samples, -1
    )
    starts, ends = bin_intervals(
        dataset.genes["tss"],
        dataset.genes["strand"] == "-",
        SPEC,
        chrom_size=dataset.genes["chrom"].map(CHROM_SIZES).to_numpy(),
    )
    valid = ends > starts
    importance = np.where(valid, np.abs(attr).mean(axis=1), 0.0)

    profile = pd.read_csv(paths.profile, sep="\t")
    assert list(profile.columns) == [
        "group",
        "bin",
        "bin_offset",
        "n",
        "mean_abs_attribution",
        "mean_attribution",
    ]
    assert set(profile["group"]) == {"all", "B", "T"}
    overall = profile[profile["group"] == "all"]
    masked = np.where(valid[:, None, :], np.abs(attr), np.nan)
    np.testing.assert_allclose(
        overall["mean_abs_attribution"], np.nanmean(masked, axis=(0, 1)), rtol=1e-5
    )
    assert overall["bin_offset"].tolist() == SPEC.bin_offsets().tolist()
    group_t = profile[profile["group"] == "T"]
    np.testing.assert_allclose(
        group_t["mean_abs_attribution"], np.nanmean(masked[:, 2:], axis=(0, 1)), rtol=1e-5
    )

    per_gene = pd.read_csv(paths.per_gene, sep="\t")
    assert per_gene["gene_id"].tolist() == ["G1", "G2", "G3", "G4", "G5"]
    np.testing.assert_allclose(per_gene["total_abs_attribution"], importance.sum(axis=1), rtol=1e-5)
    best = importance.argmax(axis=1)
    assert per_gene["best_bin_offset"].tolist() == SPEC.bin_offsets()[best].tolist()
    np.testing.assert_allclose(
        per_gene["best_share"], importance.max(axis=1) / importance.sum(axis=1), rtol=1e-5
    )
    shares = per_gene["top_bin_shares"].str.split(",").map(lambda v: sum(float(x) for x in v))
    np.testing.assert_allclose(per_gene["top_share"], shares, rtol=1e-3)
    assert (per_gene["top_share"] <= 1 + 1e-9).all()


def read_bedpe(path: Path) -> pd.DataFrame:
    lines = path.read_text().splitlines()
    assert lines[0].startswith("#chrom1\t")
    rows = [line.split("\t") for line in lines[1:]]
    assert all(len(r) == len(BEDPE_COLUMNS) for r in rows)
    return pd.read_csv(path, sep="\t", header=None, names=BEDPE_COLUMNS, skiprows=1)


def test_bedpe_columns_are_valid(dataset: Dataset, tmp_path: Path) -> None:
    paths = attribute(
        LinearToy(dataset),
        dataset,
        tmp_path / "a",
        method="input_x_gradient",
        top_k=4,
        device="cpu",
    )
    bedpe = read_bedpe(paths.links_bedpe)
    assert len(bedpe) == 5 * 4
    for col in ("start1", "end1", "start2", "end2", "tss", "distance", "rank", "bin_offset"):
        assert pd.api.types.is_integer_dtype(bedpe[col]), col
    assert (bedpe["chrom1"] == bedpe["chrom2"]).all()
    assert (bedpe["start1"] <= bedpe["start2"]).all()  # lower coordinate first
    assert (
        (bedpe["start1"] >= 0)
        & (bedpe["end1"] > bedpe["start1"])
        & (bedpe["end2"] > bedpe["start2"])
    ).all()
    assert (bedpe["end2"] <= bedpe["chrom2"].map(CHROM_SIZES)).all()
    assert bedpe["strand"].isin(["+", "-"]).all()
    assert set(bedpe["strand1"]) | set(bedpe["strand2"]) <= {"+", "-", "."}
    # one anchor is the TSS base, and it carries the gene's strand
    tss_is_1 = (bedpe["start1"] == bedpe["tss"]) & (bedpe["end1"] == bedpe["tss"] + 1)
    tss_is_2 = (bedpe["start2"] == bedpe["tss"]) & (bedpe["end2"] == bedpe["tss"] + 1)
    assert (tss_is_1 | tss_is_2).all()
    assert (
        bedpe.loc[tss_is_1 & ~tss_is_2, "strand1"] == bedpe.loc[tss_is_1 & ~tss_is_2, "strand"]
    ).all()
    # sorted by chromosome (header order) then start
    key = list(zip(bedpe["chrom1"].map(list(CHROM_SIZES).index), bedpe["start1"], strict=True))
    assert key == sorted(key)
    assert (bedpe["rank"].between(1, 4)).all() and (bedpe["score"] >= 0).all()


def test_interact_is_bed5_plus_13(dataset: Dataset, tmp_path: Path) -> None:
    paths = attribute(
        LinearToy(dataset),
        dataset,
        tmp_path / "a",
        method="input_x_gradient",
        top_k=2,
        target="error",
        device="cpu",
    )
    lines = paths.links_interact.read_text().splitlines()
    assert lines[0].startswith("track type=interact ") and "interactDirectional=true" in lines[0]
    rows = [line.split("\t") for line in lines[1:]]
    assert len(rows) == 10 and all(len(r) == 18 for r in rows)
    uint = re.compile(r"^\d+$")
    for r in rows:
        row = dict(zip(INTERACT_COLUMNS, r, strict=True))
        for col in (
            "chromStart",
            "chromEnd",
            "score",
            "sourceStart",
            "sourceEnd",
            "targetStart",
            "targetEnd",
        ):
            assert uint.match(row[col]), (col, row[col])
        assert 0 <= int(row["score"]) <= 1000
        float(row["value"])
        assert re.match(r"^#[0-9a-f]{6}$", row["color"])
        assert row["sourceStrand"] in {"+", "-", "."} and row["targetStrand"] in {"+", "-"}
        assert row["chrom"] == row["sourceChrom"] == row["targetChrom"]
        assert int(row["chromStart"]) == min(int(row["sourceStart"]), int(row["targetStart"]))
        assert int(row["chromEnd"]) == max(int(row["sourceEnd"]), int(row["targetEnd"]))
        assert int(row["targetEnd"]) == int(row["targetStart"]) + 1
        assert re.match(r"^[+-]\d+$", row["sourceName"])
        assert row["name"].split("/")[0].startswith("G")
    assert max(int(r[4]) for r in rows) == 1000
    autosql = paths.interact_as.read_text()
    assert autosql.startswith("table interact") and autosql.count(";") == 18


def test_select_genes_and_samples(dataset: Dataset, tmp_path: Path) -> None:
    assert select_genes(dataset, ["G3", "ALPHA"]).tolist() == [0, 2]
    with pytest.raises(InputError, match="not in the dataset: NOPE"):
        select_genes(dataset, ["NOPE"])
    paths = attribute(
        LinearToy(dataset),
        dataset,
        tmp_path / "a",
        genes=["GAMMA", "G4"],
        samples=["s2"],
        device="cpu",
    )
    assert [p.name for p in paths.tracks] == ["s2.bw"]
    assert pd.read_csv(paths.per_gene, sep="\t")["gene_id"].tolist() == ["G3", "G4"]
    with pytest.raises(OutputExistsError):
        attribute(LinearToy(dataset), dataset, tmp_path / "a", device="cpu")
    with pytest.raises(InputError, match="sample"):
        attribute(LinearToy(dataset), dataset, tmp_path / "b", samples=["nope"], device="cpu")
    assert not (tmp_path / "b").exists()


def test_torch_model_run_on_device(dataset: Dataset, tmp_path: Path, device: str) -> None:
    model = TorchToy(dataset, relu_mlp(dataset.n_bins))
    paths = attribute(
        model,
        dataset,
        tmp_path / "a",
        method="deeplift",
        target="error",
        baseline="mean",
        per_group=True,
        batch_size=3,
        device=device,
    )
    meta = json.loads(paths.provenance.read_text())
    assert meta["device"].startswith(device) and meta["linear_closed_form"] is False
    assert len(paths.tracks) == 2 and all(p.stat().st_size > 0 for p in paths.tracks)


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def test_cli_attribute(dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import chromexpr.cli.attribute  # noqa: F401  (registers the command)
    from chromexpr.cli._app import app
    from chromexpr.explain import adapters

    monkeypatch.setattr(
        adapters, "attributable_from_model_dir", lambda model_dir, ds, **_: LinearToy(ds)
    )
    out = tmp_path / "cli"
    result = CliRunner().invoke(
        app,
        [
            "attribute",
            str(tmp_path / "model"),
            str(dataset.path),
            "-o",
            str(out),
            "--method",
            "deeplift",
            "--target",
            "error",
            "--baseline",
            "mean",
            "--samples",
            "s1,s3",
            "--combine",
            "mean",
            "--top-k",
            "2",
            "--device",
            "cpu",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (out / "tracks").glob("*.bw")) == ["s1.bw", "s3.bw"]
    again = CliRunner().invoke(
        app, ["attribute", str(tmp_path / "model"), str(dataset.path), "-o", str(out)]
    )
    assert again.exit_code == 2 and "--force" in again.output


def test_adapter_rejects_a_directory_that_is_not_a_model(tmp_path: Path, dataset: Dataset) -> None:
    from chromexpr.explain.adapters import attributable_from_model_dir

    with pytest.raises(InputError, match="model directory not found"):
        attributable_from_model_dir(tmp_path / "model", dataset)
