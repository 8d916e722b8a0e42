"""Trained models seen through the attribution adapter: inputs and weights reproduce predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from chromexpr.errors import InputError


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from chromexpr.annotation.tss import load_tss
    from chromexpr.binning.pipeline import bin_dataset
    from chromexpr.io.samples import read_sample_sheet
    from chromexpr.models.splits import SplitConfig
    from chromexpr.models.train import TrainOptions, train
    from chromexpr.simulate.config import SimulationConfig
    from chromexpr.simulate.run import simulate

    root = tmp_path_factory.mktemp("adapters")
    simulate(SimulationConfig(n_genes=80, n_samples=10, n_groups=2, seed=3), root / "sim")
    genes = load_tss(root / "sim" / "annotation.gtf.gz")
    dataset = bin_dataset(genes, read_sample_sheet(root / "sim" / "samples.tsv"), root / "ds.zarr")
    expression = root / "sim" / "expression" / "salmon.merged.gene_tpm.tsv"
    out = {"dataset": dataset, "expression": expression}
    for model in ("lasso-gene", "activity"):
        options = TrainOptions(model=model, split=SplitConfig(test_fraction=0.3, seed=3), seed=3)
        train(dataset, expression, root / model, options)
        out[model] = root / model
    return out


@pytest.mark.parametrize("model", ["lasso-gene"])
def test_linear_weights_reproduce_predictions(trained: dict[str, Path], model: str) -> None:
    from chromexpr.dataset import open_dataset
    from chromexpr.explain.adapters import attributable_from_model_dir
    from chromexpr.models.base import load_model
    from chromexpr.models.predict import predict_matrix

    data = open_dataset(trained["dataset"])
    adapter = attributable_from_model_dir(trained[model], data)
    fitted = load_model(trained[model])
    expected = predict_matrix(fitted, data, data.samples)  # (model genes, samples)
    gene_idx = fitted.genes["dataset_index"].to_numpy()[:20]
    local = np.arange(20)
    for s in (0, 4, 9):
        pos = np.full(gene_idx.size, s)
        x = adapter.input_rows(data, gene_idx, pos)
        w = adapter.linear_weights(gene_idx)
        c = adapter.linear_intercepts(gene_idx)
        assert w is not None and c is not None
        assert x.shape == (20, data.n_bins)
        reconstructed = (x.astype(np.float64) * w).sum(axis=1) + c
        np.testing.assert_allclose(reconstructed, expected[local, s], rtol=1e-4, atol=1e-4)
    assert adapter.torch_module() is None


def test_error_target_needs_expression(trained: dict[str, Path]) -> None:
    from chromexpr.dataset import open_dataset
    from chromexpr.explain.adapters import attributable_from_model_dir

    data = open_dataset(trained["dataset"])
    adapter = attributable_from_model_dir(trained["lasso-gene"], data)
    with pytest.raises(InputError, match="--expression"):
        adapter.targets(np.array([0]), np.array([0]))
    with_expr = attributable_from_model_dir(
        trained["lasso-gene"], data, expression=trained["expression"]
    )
    fitted_gene = int(
        __import__("chromexpr.models.base", fromlist=["load_model"])
        .load_model(trained["lasso-gene"])
        .genes["dataset_index"]
        .iloc[0]
    )
    y = with_expr.targets(np.array([fitted_gene]), np.array([0]))
    assert y is not None and np.isfinite(y).all()


def test_activity_module_reproduces_within_gene_differences(trained: dict[str, Path]) -> None:
    """The torch module omits only each gene's constant: differences across samples are exact."""
    import torch

    from chromexpr.dataset import open_dataset
    from chromexpr.explain.adapters import attributable_from_model_dir
    from chromexpr.models.base import load_model
    from chromexpr.models.predict import predict_matrix

    data = open_dataset(trained["dataset"])
    adapter = attributable_from_model_dir(trained["activity"], data)
    fitted = load_model(trained["activity"])
    expected = predict_matrix(fitted, data, data.samples)
    gene_idx = fitted.genes["dataset_index"].to_numpy()[:20]
    module = adapter.torch_module()
    assert module is not None and adapter.linear_weights(gene_idx) is None
    outputs = []
    for s in (0, 5):
        x = adapter.input_rows(data, gene_idx, np.full(gene_idx.size, s))
        with torch.no_grad():
            outputs.append(module(torch.from_numpy(x)).double().numpy())
    np.testing.assert_allclose(
        outputs[0] - outputs[1], expected[:20, 0] - expected[:20, 5], rtol=1e-4, atol=1e-4
    )


def test_truth_checks_recover_planted_links(trained: dict[str, Path], tmp_path: Path) -> None:
    from chromexpr.evaluate.truth import TRUTH_TSV, write_truth_checks

    sim = trained["expression"].parent.parent
    write_truth_checks(
        trained["lasso-gene"],
        trained["dataset"],
        trained["expression"],
        tmp_path,
        truth=sim / "truth" / "links.bedpe",
        noise_free=sim / "truth" / "expression_noise_free.tsv",
    )
    import pandas as pd

    table = pd.read_csv(tmp_path / TRUTH_TSV, sep="\t")
    value = dict(zip(table["check"] + ":" + table["metric"], table["value"], strict=True))
    assert value["links:auprc"] > 3 * value["links:baseline_auprc"]
    assert 0.5 < value["noise_ceiling:gene_pearson_median"] <= 1.0
