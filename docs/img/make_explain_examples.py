"""Regenerate the example outputs shown in docs/explain.md (run from the repository root).

    python docs/img/make_explain_examples.py WORKDIR [--igv]

1. Bins the real K562 DNase-seq fixtures (chr22:17-19.5 Mb, ENCODE ENCFF860XAE: MACS2 peaks and
   candidate-region counts, two "samples") around the 37 ABC genes of that window (±1 Mb, 1 kb
   bins).
2. Attributes a transparent linear model to them: each gene's prediction is the ArchR-style gene
   activity ``sum_k w_k log1p(x_k)`` with ``w_k = exp(-|d_k| / 20 kb)`` for bins within 200 kb of
   the TSS (0 beyond), ``d_k`` the bin centre's distance. Its input x gradient is exactly
   ``w_k log1p(x_k)``, so the tracks show accessible sites weighted by their distance to nearby
   TSSs.
3. With ``--igv``, loads both samples' bigWigs, the BEDPE links and the TSSs in IGV (Debian package
   ``igv`` 2.16, headless under ``xvfb-run``) and saves docs/img/igv_attribution.png.
4. Renders the report figures from fake-but-realistic EVAL_DIRs (the test suite's writer, until
   ``chromexpr evaluate`` output is available) plus the real attribution profile, and copies a few
   to docs/img/report_*.png.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "data" / "fixtures"
IMG = ROOT / "docs" / "img"
REGION = "chr22:17,040,000-17,290,000"


class ActivityModel:
    """Gene activity as a linear model over log1p(openness) (attribution in closed form)."""

    name = "gene-activity (example)"

    def __init__(self, dataset, *, d0: float = 20_000.0, reach: float = 200_000.0) -> None:
        centre = dataset.spec.bin_offsets() + dataset.spec.bin_size / 2
        w = np.where(np.abs(centre) <= reach, np.exp(-np.abs(centre) / d0), 0.0).astype(np.float32)
        self.w = w
        self.n_inputs = dataset.n_bins
        x = np.log1p(np.stack([dataset.read_sample(i) for i in range(dataset.n_samples)], axis=1))
        self.mean = x.mean(axis=1).astype(np.float32)

    def input_rows(self, dataset, gene_idx, sample_pos):
        return np.log1p(dataset.read_rows(gene_idx, sample_pos))

    def baseline_rows(self, gene_idx):
        return self.mean[gene_idx]

    def torch_module(self):
        return None

    def linear_weights(self, gene_idx):
        return np.tile(self.w, (len(gene_idx), 1))

    def linear_intercepts(self, gene_idx):
        return np.zeros(len(gene_idx), dtype=np.float32)

    def targets(self, gene_idx, sample_pos):
        return None


def run(cmd: list[str], **kwargs) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kwargs)


def main(work: Path, igv: bool) -> None:
    from chromexpr.dataset.store import open_dataset
    from chromexpr.explain.run import attribute

    work.mkdir(parents=True, exist_ok=True)
    sizes = work / "chr22.chrom.sizes"  # IGV recognises the .chrom.sizes extension
    lines = (FIXTURES / "ABC_GRCh38.no_alt.chrom.sizes.tsv").read_text().splitlines()
    sizes.write_text("".join(f"{line}\n" for line in lines if line.split("\t")[0] == "chr22"))
    sheet = work / "samples.tsv"
    sheet.write_text(
        f"K562_peaks\t{FIXTURES / 'ABC_K562_DNase_chr22_17-19.5Mb.narrowPeak.gz'}\tK562\n"
        f"K562_counts\t{FIXTURES / 'ABC_K562_DNase_chr22_17-19.5Mb_counts.bedGraph'}\tK562\n"
    )
    cli = [sys.executable, "-m", "chromexpr"]
    run(
        [
            *cli,
            "tss",
            str(FIXTURES / "ABC_CollapsedGeneBounds.hg38.chr22_17-19.5Mb.bed"),
            "-o",
            str(work / "tss.bed"),
            "-q",
            "-f",
        ]
    )
    run(
        [
            *cli,
            "bin",
            str(work / "tss.bed"),
            "--samples",
            str(sheet),
            "--chrom-sizes",
            str(sizes),
            "-o",
            str(work / "ds.zarr"),
            "-q",
            "-f",
        ]
    )
    dataset = open_dataset(work / "ds.zarr")
    paths = attribute(
        ActivityModel(dataset),
        dataset,
        work / "attribution",
        method="input_x_gradient",
        combine="sum",
        top_k=5,
        device="cpu",
        force=True,
    )
    print("tracks:", *paths.tracks)

    if igv:
        snapshots = work / "igv"
        snapshots.mkdir(exist_ok=True)
        batch = work / "igv_batch.txt"
        # Debian's igv 2.16 ignores -g when a batch script runs: the genome command comes first
        tracks = "".join(f"load {t}\n" for t in paths.tracks)
        heights = "".join(f"setTrackHeight 110 {t.name}\n" for t in paths.tracks)
        batch.write_text(
            f"genome {sizes}\n{tracks}load {paths.links_bedpe}\nload {work / 'tss.bed'}\n{heights}"
            f"setTrackHeight 160 {paths.links_bedpe.name}\nsetColor 178,24,43 "
            f"{paths.tracks[0].name}\nsetColor 33,102,172 {paths.tracks[-1].name}\ngoto "
            f"{REGION}\nsnapshotDirectory {snapshots}\nsnapshot igv_attribution.png\nexit\n"
        )
        run(["xvfb-run", "-a", "-s", "-screen 0 1300x800x24", "igv", "-b", str(batch)], timeout=300)
        shutil.copy(snapshots / "igv_attribution.png", IMG / "igv_attribution.png")

    sys.path.insert(0, str(ROOT / "tests"))
    from chromexpr.report.run import make_report
    from explain_toys import write_fake_eval_dir

    evals = work / "eval"
    shutil.rmtree(evals, ignore_errors=True)
    lasso = write_fake_eval_dir(
        evals / "lasso",
        "lasso",
        skill=0.5,
        noise=0.45,
        history=False,
        seed=1,
        n_genes=2000,
        n_samples=30,
    )
    fc = write_fake_eval_dir(
        evals / "fc", "fc", skill=0.85, noise=0.35, seed=2, n_genes=2000, n_samples=30
    )
    report = make_report(
        [lasso, fc], work / "report" / "report.html", attribution_dirs=[paths.directory], force=True
    )
    for name in (
        "predicted_vs_observed",
        "per_sample_error",
        "gene_correlation",
        "attribution_profile",
        "loss_curves",
        "model_comparison",
    ):
        shutil.copy(report.with_name("report_figures") / f"{name}.png", IMG / f"report_{name}.png")
    print("report:", report)


if __name__ == "__main__":
    main(Path(sys.argv[1]), "--igv" in sys.argv[2:])
