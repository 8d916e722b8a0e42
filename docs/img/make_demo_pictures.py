"""Make the IGV and pyGenomeTracks pictures of docs/explain.md from the demo's own output.

    python docs/img/make_demo_pictures.py WORKDIR

1. Runs ``chromexpr demo WORKDIR/demo`` (unless its attribution is already there).
2. Picks the 240 kb region with the most links (``attribution/links.bedpe``) and writes the TSSs
   labelled by gene name (BED6: ``chrom start end gene_name score strand``, what ``chromexpr tss
   --id gene_name`` names them by).
3. IGV 2.16 (Debian ``igv`` under ``xvfb-run``) loads two samples' attribution bigWigs, the
   unaltered ``links.bedpe`` and the TSSs, and saves ``docs/img/demo_igv.png``; any exception in its
   log stops the script.
4. pyGenomeTracks draws the same bigWigs, the links through the documented conversion
   (``cut -f1-6,8 links.bedpe``) and the TSSs, into ``docs/img/demo_pygenometracks.png``
   (``$CHROMEXPR_PYGENOMETRACKS`` or ``pyGenomeTracks`` on the PATH).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
IMG = ROOT / "docs" / "img"
NETWORK_NOISE = re.compile(r"UnknownHost|HttpUtils|oAuth|OAuth|GenomeListManager")


def run_demo(out: Path) -> Path:
    attribution = out / "attribution"
    if not (attribution / "links.bedpe").exists():
        subprocess.run([sys.executable, "-m", "chromexpr", "demo", str(out), "--force"], check=True)
    return attribution


def pick_region(links_bedpe: Path, half: int = 120_000) -> tuple[str, int, int]:
    header = links_bedpe.read_text().splitlines()[0][1:].split("\t")
    links = pd.read_csv(links_bedpe, sep="\t", skiprows=1, names=header)
    best = (-1, "", 0)
    for chrom, rows in links.groupby("chrom1"):
        tss = rows["tss"].to_numpy()
        for centre in sorted(set(tss.tolist())):
            n = int(((tss >= centre - half) & (tss < centre + half)).sum())
            if n > best[0]:
                best = (n, str(chrom), int(centre))
    _, chrom, centre = best
    return chrom, max(centre - half, 0), centre + half


def named_tss(tss_bed: Path, out: Path) -> Path:
    header = tss_bed.read_text().splitlines()[0][1:].split("\t")
    table = pd.read_csv(tss_bed, sep="\t", skiprows=1, names=header)
    table[["chrom", "start", "end", "gene_name", "score", "strand"]].to_csv(
        out, sep="\t", header=False, index=False
    )
    return out


def max_abs_value(tracks: list[Path], locus: str) -> float:
    import pyBigWig

    chrom, span = locus.split(":")
    start, end = (int(x) for x in span.split("-"))
    top = 0.0
    for track in tracks:
        bw = pyBigWig.open(str(track))
        for _, _, value in bw.intervals(chrom, start - 1, end) or ():
            top = max(top, abs(value))
        bw.close()
    return top or 1.0


def igv_picture(work: Path, sizes: Path, tracks: list[Path], links: Path, tss: Path, locus: str):
    work.mkdir(parents=True, exist_ok=True)
    genome = work / "genome.chrom.sizes"  # IGV recognises a chrom.sizes genome by this suffix
    shutil.copyfile(sizes, genome)
    lines = [f"genome {genome}", *(f"load {t}" for t in [*tracks, links, tss])]
    lines += [f"setTrackHeight 150 {links.name}", f"goto {locus}", f"snapshotDirectory {work}"]
    top = max_abs_value(tracks, locus)  # one symmetric scale for both tracks
    lines += [f"setDataRange {-top:.3g},0,{top:.3g} {t.name}" for t in tracks]
    lines += ["maxPanelHeight 300", "snapshot igv.png", "exit"]
    batch = work / "batch.txt"
    batch.write_text("\n".join(lines) + "\n")
    done = subprocess.run(
        ["xvfb-run", "-a", "igv", "-b", str(batch)], capture_output=True, text=True, check=False
    )
    log = done.stdout + done.stderr
    errors = [
        line
        for line in log.splitlines()
        if re.search(r"Exception|SEVERE|ERROR", line) and not NETWORK_NOISE.search(line)
    ]
    if errors or not (work / "igv.png").exists():
        raise SystemExit("IGV failed:\n" + "\n".join(errors or log.splitlines()[-30:]))
    shutil.copyfile(work / "igv.png", IMG / "demo_igv.png")


def pygenometracks_picture(
    work: Path, tracks: list[Path], links: Path, tss: Path, locus: str
) -> None:
    exe = os.environ.get("CHROMEXPR_PYGENOMETRACKS") or shutil.which("pyGenomeTracks")
    if not exe:
        raise SystemExit("pyGenomeTracks not found: set CHROMEXPR_PYGENOMETRACKS")
    arcs = work / "links.arcs"
    with arcs.open("w") as out:
        subprocess.run(["cut", "-f1-6,8", str(links)], stdout=out, check=True)
    sections = [
        f"[{t.stem}]\nfile = {t}\nfile_type = bigwig\ntitle = attribution {t.stem}\n"
        "height = 2.5\ncolor = #b2182b\nnegative_color = #2166ac\n"
        for t in tracks
    ]
    sections.append(
        f"[links]\nfile = {arcs}\nfile_type = links\ntitle = links (cut -f1-6,8)\nheight = 3\n"
        "color = YlOrRd\nline_width = 1.5\n"
    )
    sections.append(
        f"[tss]\nfile = {tss}\nfile_type = bed\ntitle = TSS\nheight = 1.5\nfontsize = 8\n"
    )
    ini = work / "tracks.ini"
    ini.write_text("\n".join(sections))
    png = work / "pgt.png"
    subprocess.run(
        [
            exe,
            "--tracks",
            str(ini),
            "--region",
            locus,
            "-o",
            str(png),
            "--width",
            "24",
            "--dpi",
            "90",
        ],
        check=True,
    )
    shutil.copyfile(png, IMG / "demo_pygenometracks.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", type=Path)
    args = parser.parse_args()
    work = args.workdir.resolve()
    demo = work / "demo"
    attribution = run_demo(demo)
    links = attribution / "links.bedpe"
    tracks = sorted((attribution / "tracks").glob("*.bw"))[:2]
    chrom, start, end = pick_region(links)
    locus = f"{chrom}:{start + 1}-{end}"
    print(f"region {locus}")
    sizes = demo / "data" / "chrom.sizes"
    work.mkdir(parents=True, exist_ok=True)
    tss = named_tss(demo / "tss.bed", work / "tss_names.bed")
    igv_picture(work / "igv", sizes, tracks, links, tss, locus)
    pygenometracks_picture(work, tracks, links, tss, locus)
    for name in ("demo_igv.png", "demo_pygenometracks.png"):
        print(name, (IMG / name).stat().st_size, "bytes")


if __name__ == "__main__":
    main()
