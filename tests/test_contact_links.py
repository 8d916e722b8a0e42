"""Contact-aware link scores (activity x contact x model evidence), as ``attribute`` writes them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chromexpr.dataset import store
from chromexpr.dataset.store import Dataset, open_dataset
from chromexpr.errors import InputError
from chromexpr.explain.contact import (
    ScoreParams,
    contact_link_scores,
    model_evidence,
    power_law_contact,
)
from chromexpr.explain.coordinates import bin_intervals, bin_midpoints
from chromexpr.explain.run import attribute
from explain_toys import CHROM_SIZES, GENES, GROUPS, SAMPLES, SPEC, LinearToy


@pytest.fixture(scope="module")
def sparse(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """5 genes x 4 samples x 10 bins; about half the bins have no accessibility in any sample."""
    path = tmp_path_factory.mktemp("contact") / "ds.zarr"
    rng = np.random.default_rng(4)
    open_bins = rng.random((len(GENES), SPEC.n_bins)) < 0.5
    store.create_store(path, GENES, SPEC, attrs={"chrom_sizes": CHROM_SIZES})
    for i in store.add_samples(path, SAMPLES, GROUPS):
        values = rng.gamma(2.0, 1.0, size=(len(GENES), SPEC.n_bins)) * open_bins
        store.write_sample(path, i, values.astype(np.float32))
        store.mark_complete(path, i)
    return open_dataset(path)


def _open_valid(dataset: Dataset) -> np.ndarray:
    """``(genes, bins)``: open in some sample and inside the chromosome."""
    x = np.stack([dataset.read_sample(i) for i in range(dataset.n_samples)], axis=1)
    starts, ends = bin_intervals(
        dataset.genes["tss"],
        dataset.genes["strand"] == "-",
        SPEC,
        chrom_size=dataset.genes["chrom"].map(CHROM_SIZES).to_numpy(),
    )
    return (x.sum(axis=1) > 0) & (ends > starts)


def _read(path: Path) -> pd.DataFrame:
    header = path.read_text().splitlines()[0]
    return pd.read_csv(path, sep="\t", skiprows=1, names=header[1:].split("\t"), na_values=".")


def test_scores_are_per_gene_shares_of_activity_contact_evidence() -> None:
    params = ScoreParams(activity_exponent=0.5, gamma=1.0, min_distance=2000.0, evidence_weight=2)
    activity = np.array([[4.0, 0.0, 9.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    distance = np.array([[500.0, 3000.0, 4000.0, 8000.0], [1.0, 2.0, 3.0, 4.0]])
    evidence = np.array([[0.0, 1.0, 0.5, 1.0], [1.0, 1.0, 1.0, 1.0]])
    out = contact_link_scores(activity, distance, params=params, evidence=evidence)
    raw = np.array([2.0 / 2000 * 1, 0.0, 3.0 / 4000 * 2, 1.0 / 8000 * 3])
    np.testing.assert_allclose(out["score"][0], raw / raw.sum())
    assert out["score"][1].tolist() == [0.0, 0.0, 0.0, 0.0]  # nothing open: no link
    np.testing.assert_allclose(out["contact"][0], [1 / 2000, 1 / 3000, 1 / 4000, 1 / 8000])
    valid = np.array([[True, True, False, True], [True] * 4])
    masked = contact_link_scores(activity, distance, params=params, evidence=evidence, valid=valid)
    assert masked["score"][0, 2] == 0.0
    assert masked["score"][0].sum() == pytest.approx(1.0)


def test_measured_contacts_replace_the_power_law_where_known() -> None:
    activity = np.ones((1, 3))
    distance = np.array([[1000.0, 10_000.0, 100_000.0]])
    measured = np.array([[0.5, np.nan, 0.25]])
    params = ScoreParams(activity_exponent=1.0, gamma=1.0, min_distance=1000.0, evidence_weight=0)
    out = contact_link_scores(activity, distance, params=params, contact=measured)
    np.testing.assert_allclose(out["contact"][0], [0.5, 1e-4, 0.25])
    with pytest.raises(InputError, match="differ in shape"):
        contact_link_scores(activity, distance, contact=np.ones((2, 3)))


def test_power_law_and_evidence_helpers() -> None:
    d = np.array([0.0, 2000.0, 8000.0])
    np.testing.assert_allclose(
        power_law_contact(d, gamma=0.5, min_distance=2000.0), [2000**-0.5, 2000**-0.5, 8000**-0.5]
    )
    imp = np.array([[1.0, -3.0, 2.0]])
    assert model_evidence(imp).tolist() == [[1 / 3, 1.0, 2 / 3]]
    assert model_evidence(imp, np.array([[True, False, True]])).tolist() == [[0.5, 0.0, 1.0]]
    with pytest.raises(InputError, match="gamma"):
        ScoreParams(gamma=-1)


def test_attribute_default_links_follow_the_formula(sparse: Dataset, tmp_path: Path) -> None:
    model = LinearToy(sparse)
    params = ScoreParams(activity_exponent=0.5, gamma=0.7, min_distance=1500.0, evidence_weight=1)
    paths = attribute(
        model,
        sparse,
        tmp_path / "a",
        method="input_x_gradient",
        top_k=3,
        score_params=params,
        device="cpu",
    )
    links = _read(paths.links_bedpe)
    # independent recomputation: input x gradient of a linear model with a zero baseline is w * x
    x = np.stack([sparse.read_sample(i) for i in range(sparse.n_samples)], axis=1)
    attr = model.w[:, None, :] * np.log1p(x)
    starts, ends = bin_intervals(
        sparse.genes["tss"],
        sparse.genes["strand"] == "-",
        SPEC,
        chrom_size=sparse.genes["chrom"].map(CHROM_SIZES).to_numpy(),
    )
    valid = ends > starts
    importance = np.where(valid, np.abs(attr).mean(axis=1), 0.0)
    evidence = importance / importance.max(axis=1, keepdims=True)
    activity = x.mean(axis=1)
    distance = np.abs(bin_midpoints(starts, ends) - (sparse.genes["tss"].to_numpy()[:, None] + 0.5))
    raw = activity**0.5 * np.maximum(distance, 1500.0) ** -0.7 * (1 + evidence)
    raw = np.where(valid, raw, 0.0)
    expected = raw / raw.sum(axis=1, keepdims=True)
    row = links["gene_id"].map({g: i for i, g in enumerate(sparse.genes["gene_id"])}).to_numpy()
    b = ((links["bin_offset"] + SPEC.flank) // SPEC.bin_size).to_numpy()
    # minus-strand genes count bins from their own upstream end
    np.testing.assert_allclose(links["raw_score"], expected[row, b], rtol=1e-5)
    np.testing.assert_allclose(links["activity"], activity[row, b], rtol=1e-5)
    np.testing.assert_allclose(links["evidence"], evidence[row, b], rtol=1e-5)
    np.testing.assert_allclose(links["mean_abs_attribution"], importance[row, b], rtol=1e-5)
    # each gene's links are its 3 best bins by that score
    for gene, group in links.groupby("gene_id"):
        i = int(row[links["gene_id"] == gene][0])
        assert sorted(group["raw_score"], reverse=True) == pytest.approx(
            np.sort(expected[i])[::-1][:3], rel=1e-5
        )
    meta = paths.provenance.read_text()
    assert '"link_score": "contact"' in meta and '"activity_exponent": 0.5' in meta


def test_all_links_cover_every_open_bin(sparse: Dataset, tmp_path: Path) -> None:
    paths = attribute(
        LinearToy(sparse), sparse, tmp_path / "a", method="input_x_gradient", all_links=True
    )
    links = _read(paths.links_bedpe)
    open_valid = _open_valid(sparse)
    per_gene = links.groupby("gene_id").size().reindex(sparse.genes["gene_id"], fill_value=0)
    assert per_gene.tolist() == open_valid.sum(axis=1).tolist()
    assert (links["activity"] > 0).all()
    # a gene's links are all its scored bins: their shares sum to 1 (6 digits in the file)
    assert links.groupby("gene_id")["raw_score"].sum().to_numpy() == pytest.approx(1.0, rel=1e-4)


def test_attribution_link_score_keeps_the_earlier_links(sparse: Dataset, tmp_path: Path) -> None:
    model = LinearToy(sparse)
    paths = attribute(
        model,
        sparse,
        tmp_path / "a",
        method="input_x_gradient",
        top_k=2,
        link_score="attribution",
        device="cpu",
    )
    links = _read(paths.links_bedpe)
    np.testing.assert_allclose(links["raw_score"], links["mean_abs_attribution"])
    assert links["activity"].isna().all() and links["contact"].isna().all()
    with pytest.raises(InputError, match="unknown link score"):
        attribute(model, sparse, tmp_path / "b", link_score="magic")  # type: ignore[arg-type]


def test_cli_attribute_link_options_with_a_trained_model(
    cli, sparse: Dataset, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    expression = pd.DataFrame(rng.gamma(2.0, 5.0, size=(len(GENES), len(SAMPLES))), columns=SAMPLES)
    expression.insert(0, "gene_id", sparse.genes["gene_id"].tolist())
    expression.to_csv(tmp_path / "expr.tsv", sep="\t", index=False)
    cli(
        "train",
        sparse.path,
        "-e",
        tmp_path / "expr.tsv",
        "--model",
        "lasso",
        "-o",
        tmp_path / "model",
        "--quiet",
    )
    cli(
        "attribute",
        tmp_path / "model",
        sparse.path,
        "-o",
        tmp_path / "all",
        "--all-links",
        "--method",
        "input_x_gradient",
        "--quiet",
    )
    every = _read(tmp_path / "all" / "links.bedpe")
    assert len(every) == int(_open_valid(sparse).sum())
    cli(
        "attribute",
        tmp_path / "model",
        sparse.path,
        "-o",
        tmp_path / "attr",
        "--link-score",
        "attribution",
        "--top-k",
        "2",
        "--method",
        "input_x_gradient",
        "--quiet",
    )
    top = _read(tmp_path / "attr" / "links.bedpe")
    assert top.groupby("gene_id").size().max() == 2
    assert top["contact"].isna().all()
    bad = cli(
        "attribute",
        tmp_path / "model",
        sparse.path,
        "-o",
        tmp_path / "x",
        "--link-score",
        "magic",
        expect=2,
    )
    assert "magic" in bad.stderr


def _make_cool(path: Path) -> Path:
    """A 1-kb contact map of the toy genome: contact(i, j) = 100 / (1 + |i - j|) within 10 bins."""
    cooler = pytest.importorskip("cooler")
    bins = pd.concat(
        [
            pd.DataFrame(
                {
                    "chrom": chrom,
                    "start": np.arange(0, size, 1000),
                    "end": np.minimum(np.arange(0, size, 1000) + 1000, size),
                }
            )
            for chrom, size in CHROM_SIZES.items()
        ],
        ignore_index=True,
    )
    first = {c: int(np.flatnonzero(bins["chrom"] == c)[0]) for c in CHROM_SIZES}
    rows = []
    for chrom in CHROM_SIZES:
        n = int((bins["chrom"] == chrom).sum())
        for i in range(n):
            for j in range(i, min(n, i + 11)):
                rows.append((first[chrom] + i, first[chrom] + j, 100.0 / (1 + j - i)))
    pixels = pd.DataFrame(rows, columns=["bin1_id", "bin2_id", "count"])
    cooler.create_cooler(str(path), bins, pixels, dtypes={"count": float}, ordered=True)
    return path


def test_contact_map_replaces_the_power_law(sparse: Dataset, tmp_path: Path) -> None:
    cool = _make_cool(tmp_path / "toy.cool")
    params = ScoreParams(activity_exponent=1.0, gamma=1.0, min_distance=1000.0, evidence_weight=0)
    paths = attribute(
        LinearToy(sparse),
        sparse,
        tmp_path / "a",
        method="input_x_gradient",
        all_links=True,
        score_params=params,
        contacts=cool,
    )
    links = _read(paths.links_bedpe)
    bin_mid = np.where(
        links["end1"] - links["start1"] == 1,
        (links["start2"] + links["end2"]) // 2,
        (links["start1"] + links["end1"]) // 2,
    )
    tss_map = links["tss"].to_numpy() // 1000
    gap = np.abs(bin_mid // 1000 - tss_map)
    shape = np.where(gap == 0, 50.0, 100.0 / (1 + gap))  # the diagonal takes its neighbour's value
    shape = np.where(gap <= 10, shape, np.nan)
    # per gene, scaled to the power law's sum over the same bins (every toy bin is in the map)
    for gene, rows in links.groupby("gene_id").groups.items():
        idx = np.asarray([links.index.get_loc(r) for r in rows])
        got = links["contact"].to_numpy()[idx]
        assert np.isfinite(shape[idx]).all(), gene
        ratio = got / shape[idx]
        np.testing.assert_allclose(ratio, ratio[0], rtol=1e-4)  # same shape as the map
    meta = paths.provenance.read_text()
    assert "toy.cool" in meta
    with pytest.raises(InputError, match="contact map not found"):
        attribute(LinearToy(sparse), sparse, tmp_path / "b", contacts=tmp_path / "none.cool")


def test_read_contacts_values_and_gaps(tmp_path: Path) -> None:
    from chromexpr.io.contacts import open_contact_map, read_contacts

    clr = open_contact_map(_make_cool(tmp_path / "toy.cool"), bin_size=1000)
    tss = np.array([5_500])
    mids = np.array([[500, 4_500, 5_500, 6_500, 20_500, 40_000]])  # last: off chrA (30 kb)
    power = np.ones((1, 6))
    got = read_contacts(clr, "chrA", tss, mids, power_law=power)
    raw = np.array([100 / 6, 50.0, 50.0, 50.0, np.nan, np.nan])  # gap 15 > 10: no pixel -> 0
    raw[4] = 0.0
    np.testing.assert_allclose(got[0], raw * (5 / raw[:5].sum()), rtol=1e-6)
    assert np.isnan(got[0, 5])
    # "A" matches "chrA"; a chromosome the map lacks gives NaN (the power law fills it)
    np.testing.assert_allclose(read_contacts(clr, "A", tss, mids, power_law=power), got)
    assert np.isnan(read_contacts(clr, "chrZ", tss, mids, power_law=power)).all()


def test_links_file_recovery_ranks_every_bin(sparse: Dataset, tmp_path: Path) -> None:
    from chromexpr.evaluate.truth import links_file_recovery

    paths = attribute(
        LinearToy(sparse), sparse, tmp_path / "a", method="input_x_gradient", all_links=True
    )
    links = _read(paths.links_bedpe)
    # planted truth = the links scoring above the median: a perfect ranking
    strong = links[links["raw_score"] > links["raw_score"].median()]
    bin_first = strong["end1"] - strong["start1"] > 1
    truth = pd.DataFrame(
        {
            "chrom1": strong["chrom1"],
            "start1": np.where(bin_first, strong["start1"], strong["start2"]),
            "end1": np.where(bin_first, strong["end1"], strong["end2"]),
            "chrom2": strong["chrom1"],
            "start2": strong["tss"],
            "end2": strong["tss"] + 1,
            "strand1": ".",
            "strand2": strong["strand"],
            "gene_id": strong["gene_id"],
            "gene_name": strong["gene_name"],
            "effect": 1.0,
        }
    )
    truth_path = tmp_path / "truth.bedpe"
    with truth_path.open("w") as handle:
        handle.write("#" + "\t".join(truth.columns) + "\n")
        truth.to_csv(handle, sep="\t", index=False, header=False)
    result = links_file_recovery(paths.links_bedpe, truth_path, sparse)
    assert result["auprc"] == 1.0
    n_candidates = int(_valid(sparse).sum())
    assert result["n_bins"] == n_candidates  # every in-genome bin, linked or not
    assert result["n_positive"] == len(strong)
    assert result["baseline_auprc"] == pytest.approx(len(strong) / n_candidates)
    assert 0 < result["distance_auprc"] < 1


def _valid(dataset: Dataset) -> np.ndarray:
    starts, ends = bin_intervals(
        dataset.genes["tss"],
        dataset.genes["strand"] == "-",
        SPEC,
        chrom_size=dataset.genes["chrom"].map(CHROM_SIZES).to_numpy(),
    )
    return ends > starts
