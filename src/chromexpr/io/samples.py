"""Which samples to bin and where their signal comes from: positional files or a sample sheet."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from chromexpr.errors import InputError
from chromexpr.io.text import data_lines, strip_compression_suffix

SourceKind = Literal["bigwig", "bedgraph", "peaks", "counts"]

_KIND_BY_SUFFIX: dict[str, SourceKind] = {
    ".bw": "bigwig",
    ".bigwig": "bigwig",
    ".bedgraph": "bedgraph",
    ".bdg": "bedgraph",
    ".bg": "bedgraph",
    ".narrowpeak": "peaks",
    ".broadpeak": "peaks",
    ".bed": "peaks",
    ".featurecounts.txt": "counts",
    ".counts.tsv": "counts",
    ".counts.txt": "counts",
}


@dataclass(frozen=True)
class SampleSource:
    """One sample's accessibility input.

    Attributes
    ----------
    name
        Sample name (unique).
    path
        The input file.
    kind
        Input format.
    group
        Optional group (cell-type family) from the sample sheet.
    column
        For count matrices: the sample's column.
    """

    name: str
    path: Path
    kind: SourceKind
    group: str = ""
    column: str | None = None


def source_kind(path: str | Path) -> SourceKind:
    """Input format from the file name (``.gz`` allowed for text formats).

    Raises
    ------
    InputError
        Unknown extension.
    """
    raw = Path(path).name.lower()
    name = strip_compression_suffix(raw)
    for suffix, kind in sorted(_KIND_BY_SUFFIX.items(), key=lambda kv: -len(kv[0])):
        if name.endswith(suffix):
            if kind == "bigwig" and name != raw:
                break
            return kind
    raise InputError(
        "unknown accessibility file type",
        path=path,
        fix=(
            "use .bw/.bigWig, .bedGraph/.bdg(.gz), .bed/.narrowPeak/.broadPeak(.gz),"
            " or a *.featureCounts.txt matrix"
        ),
    )


#: File-name suffix that :func:`source_kind` maps back to each kind (for unnamed inputs).
KIND_SUFFIX: dict[SourceKind, str] = {
    "bigwig": ".bw",
    "bedgraph": ".bedGraph",
    "peaks": ".bed",
    "counts": ".featureCounts.txt",
}


def content_suffix(path: str | Path) -> str:
    """A file-name suffix for an input whose name says nothing (standard input), from its content.

    bigWig by its signature; a featureCounts matrix by its ``Geneid`` header; ``.narrowPeak`` for
    ENCODE peak columns (so ``--peak-value auto`` reads their signal); ``.bedGraph`` for 4 columns
    with a numeric fourth; ``.bed`` (peaks) for any other BED-like line.

    Raises
    ------
    InputError
        Content of no known accessibility format.
    """
    from chromexpr.io.peaks import looks_like_encode_peaks
    from chromexpr.io.text import open_text

    with Path(path).open("rb") as handle:
        head = handle.read(4)
    if head in (b"\x26\xfc\x8f\x88", b"\x88\x8f\xfc\x26"):
        return KIND_SUFFIX["bigwig"]
    with open_text(path) as text:
        for line in text:
            if not line.strip() or line.startswith(("#", "track", "browser")):
                continue
            fields = line.rstrip("\n\r").split("\t")
            if fields[0] == "Geneid":
                return KIND_SUFFIX["counts"]
            if len(fields) >= 3 and fields[1].isdigit() and fields[2].isdigit():
                if looks_like_encode_peaks(fields):
                    return ".narrowPeak"
                if len(fields) == 4 and _is_float(fields[3]):
                    return KIND_SUFFIX["bedgraph"]
                return KIND_SUFFIX["peaks"]
            break
    raise InputError(
        "cannot tell the format of this input from its content",
        path=path,
        fix="give a named file (.bw, .bedGraph, .narrowPeak, .bed, .featureCounts.txt)",
    )


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def sample_name(path: str | Path) -> str:
    """Sample name from a file name: the stem without format/compression suffixes.

    Examples
    --------
    >>> sample_name("/data/K562_rep1.narrowPeak.gz")
    'K562_rep1'
    """
    name = strip_compression_suffix(Path(path).name)
    lower = name.lower()
    for suffix in sorted(_KIND_BY_SUFFIX, key=len, reverse=True):
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def _require_file(path: Path, *, sheet: Path | None = None, line: int | None = None) -> None:
    if not path.exists():
        raise InputError(f"accessibility file not found: {path}", path=sheet, line=line)
    if not path.is_file():
        raise InputError(f"not a file: {path}", path=sheet, line=line)


def expand_count_matrix(
    path: Path, *, regions: Path | None = None, group: str = ""
) -> list[SampleSource]:
    """One :class:`SampleSource` per sample column of a count matrix."""
    from chromexpr.io.counts import read_count_matrix

    matrix = read_count_matrix(path, regions)
    return [
        SampleSource(name=s, path=path, kind="counts", group=group, column=s)
        for s in matrix.samples
    ]


def samples_from_paths(paths: list[Path], *, regions: Path | None = None) -> list[SampleSource]:
    """Samples named by file stems (count matrices contribute one sample per column)."""
    sources: list[SampleSource] = []
    for path in paths:
        _require_file(Path(path))
        kind = source_kind(path)
        if kind == "counts":
            sources.extend(expand_count_matrix(Path(path), regions=regions))
        else:
            sources.append(SampleSource(name=sample_name(path), path=Path(path), kind=kind))
    check_unique(sources)
    return sources


def read_sample_sheet(sheet: str | Path, *, regions: Path | None = None) -> list[SampleSource]:
    """Read ``sample<TAB>path[<TAB>group]`` lines.

    The header line is optional; relative paths are relative to the sheet.

    A count-matrix path takes the column named like the sample.

    Raises
    ------
    InputError
        Malformed lines, duplicate names, missing files, unknown extensions (each with file and
        line).
    """
    sheet = Path(sheet)
    sources: list[SampleSource] = []
    first = True
    for number, line in data_lines(sheet):
        fields = [f.strip() for f in line.split("\t")]
        if (
            first
            and fields[0].lower() == "sample"
            and len(fields) > 1
            and fields[1].lower() == "path"
        ):
            first = False
            continue
        first = False
        if len(fields) < 2 or not fields[0] or not fields[1]:
            raise InputError("expected 'sample<TAB>path[<TAB>group]'", path=sheet, line=number)
        path = Path(fields[1])
        if not path.is_absolute():
            path = sheet.parent / path
        _require_file(path, sheet=sheet, line=number)
        try:
            kind = source_kind(path)
        except InputError as exc:
            raise InputError(str(exc), path=sheet, line=number) from None
        group = fields[2] if len(fields) > 2 else ""
        column = fields[0] if kind == "counts" else None
        sources.append(
            SampleSource(name=fields[0], path=path, kind=kind, group=group, column=column)
        )
    if not sources:
        raise InputError("empty sample sheet", path=sheet)
    check_unique(sources, sheet=sheet)
    return sources


def check_unique(sources: list[SampleSource], *, sheet: Path | None = None) -> None:
    """Duplicate sample names are an error."""
    seen: dict[str, Path] = {}
    for source in sources:
        if source.name in seen:
            first = seen[source.name]
            where = f"{first} and {source.path}" if first != source.path else str(first)
            raise InputError(
                f"duplicate sample name {source.name!r} ({where})",
                path=sheet,
                fix="give each sample a unique name (a sample sheet sets names explicitly)",
            )
        seen[source.name] = source.path
