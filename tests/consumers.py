"""Run the programs users open chromexpr's outputs with (IGV, kent's bigBed reader, pyGenomeTracks).

Each helper skips the calling test with the install command when its program is absent; ``.ci/run``
installs them all, so CI runs every such test.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

#: IGV log lines that are about the network (no genome server offline), not about our files.
_OFFLINE_NOISE = re.compile(r"UnknownHost|HttpUtils|oAuth|OAuth|genome list|GenomeListManager")


@dataclass(frozen=True)
class IgvRun:
    """A headless IGV batch run: its snapshot and everything it logged."""

    png: Path
    log: str

    def errors(self) -> list[str]:
        """Logged exceptions and SEVERE/ERROR lines, network noise left out."""
        return [
            line
            for line in self.log.splitlines()
            if re.search(r"Exception|SEVERE|ERROR", line)
            and not _OFFLINE_NOISE.search(line)
            and not line.lstrip().startswith("at ")
        ]


def run_igv(
    work: Path,
    chrom_sizes: Mapping[str, int],
    tracks: Sequence[Path],
    locus: str,
    *,
    commands: Sequence[str] = (),
    preferences: Sequence[str] = (),
) -> IgvRun:
    """Load ``tracks`` in IGV (Debian's ``igv`` under ``xvfb-run``), go to ``locus``, snapshot.

    The genome is a ``.chrom.sizes`` file given in the batch script (IGV ignores ``-g`` in batch
    mode). ``commands`` are extra batch lines run before the snapshot; ``preferences`` are
    ``KEY VALUE`` pairs set before anything is loaded (``ARC_TYPE PROPORTIONAL_ARC``).
    """
    if shutil.which("igv") is None or shutil.which("xvfb-run") is None:
        pytest.skip("IGV is not installed: apt-get install -y igv xvfb xauth")
    work.mkdir(parents=True, exist_ok=True)
    genome = work / "genome.chrom.sizes"
    genome.write_text("".join(f"{c}\t{s}\n" for c, s in chrom_sizes.items()))
    lines = [f"preference {p}" for p in preferences] + [f"genome {genome.resolve()}"]
    lines += [f"load {Path(t).resolve()}" for t in tracks]
    lines += [f"goto {locus}", *commands, f"snapshotDirectory {work.resolve()}"]
    lines += ["snapshot igv.png", "exit"]
    batch = work / "batch.txt"
    batch.write_text("\n".join(lines) + "\n")
    done = subprocess.run(
        ["xvfb-run", "-a", "igv", "-b", str(batch)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    png = work / "igv.png"
    assert png.exists(), f"IGV wrote no snapshot:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return IgvRun(png=png, log=done.stdout + done.stderr)


def read_png(path: Path) -> np.ndarray:
    """``(height, width, 3)`` RGB in 0-255 (matplotlib's PNG reader)."""
    import matplotlib.image

    rgb = matplotlib.image.imread(str(path))[..., :3]
    return np.rint(rgb * 255).astype(np.int64)


def coloured_pixels(image: np.ndarray, rgb: tuple[int, int, int], *, tol: int = 40) -> np.ndarray:
    """Boolean mask of the pixels within ``tol`` (per channel) of ``rgb``."""
    return np.all(np.abs(image - np.asarray(rgb)) <= tol, axis=-1)


def read_bigbed_with_kent(path: Path) -> tuple[dict, dict[str, list[tuple]]]:
    """Parse a bigBed's autoSql and read every record with kent's C library (pybbi).

    Runs in a child interpreter: kent's parser ends the process (``errAbort``) on bad autoSql,
    which would otherwise take pytest down with it. Returns ``(schema, {chrom: records})``.
    """
    pytest.importorskip("bbi", reason="pybbi (kent's bigBed reader) is not installed")
    script = (
        "import bbi, json, sys\n"
        "f = bbi.open(sys.argv[1])\n"
        "schema = f.schema\n"
        "out = {}\n"
        "for chrom, size in f.chromsizes.items():\n"
        "    frame = f.fetch_intervals(chrom, 0, size)\n"
        "    out[chrom] = frame.astype(str).values.tolist()\n"
        "print(json.dumps({'schema': schema, 'records': out}, default=str))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"kent could not read {path.name}: {done.stderr[-2000:]}"
    import json

    parsed = json.loads(done.stdout)
    return parsed["schema"], {c: [tuple(r) for r in rows] for c, rows in parsed["records"].items()}
