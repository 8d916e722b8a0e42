"""Zarr (format 2) store of binned accessibility, readable with ``xarray.open_zarr`` alone.

Layout::

    DATASET.zarr/
      openness   float32 (gene, sample, bin), chunks (chunk_genes, 1, n_bins), Blosc-compressed
      gene, gene_name, gene_type, chrom, strand   str (gene)
      tss        int64 (gene)     0-based position of the TSS base
      sample, group               str (sample)
      complete   bool (sample)    True once a sample's values are fully written
      bin        int64 (bin)      bin index, 0 = farthest upstream
      bin_offset int64 (bin)      bin start relative to the TSS, in the gene's orientation (bp)
      .zattrs    format, flank, bin_size, aggregate, chrom_sizes, provenance, per-sample sources

One sample is one column of chunks, so a sample is (re)written without touching the others, and an
appended sample is marked ``complete`` only after its values are on disk: an interrupted run never
presents a half-written sample as complete (readers here skip incomplete samples, and
``chromexpr bin --append`` recomputes them).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from chromexpr.binning.binner import BinSpec
from chromexpr.errors import InputError

FORMAT = "chromexpr-dataset"
FORMAT_VERSION = 1
DEFAULT_CHUNK_GENES = 256
_GENE_STR_COLUMNS = ("gene_name", "gene_type", "chrom", "strand")


def _compressor() -> Any:
    """The chunk codec: Blosc lz4, level 5, without byte shuffle.

    On 1-kb bins of peak-like signal (mostly zero bins) chunks are 44 % smaller and encode 2.4x
    faster than with shuffle; on dense coverage 11 % larger, as fast (docs/benchmarks.md,
    "Binning").
    """
    import numcodecs

    return numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.NOSHUFFLE)


def _dims(*names: str) -> dict[str, Any]:
    return {"_ARRAY_DIMENSIONS": list(names)}


def create_store(
    path: str | Path,
    genes: pd.DataFrame,
    spec: BinSpec,
    *,
    attrs: dict[str, Any] | None = None,
    chunk_genes: int = DEFAULT_CHUNK_GENES,
) -> None:
    """Create an empty dataset (no samples yet) at ``path``.

    Parameters
    ----------
    path
        Directory to create (must not exist).
    genes
        TSS table: ``name`` (gene id), ``gene_name``, ``gene_type``, ``chrom``, ``start`` (TSS
        base, 0-based), ``strand``; row order is the dataset's gene order.
    spec
        Window geometry.
    attrs
        Extra root attributes (provenance, chromosome sizes...).
    chunk_genes
        Genes per chunk.
    """
    import zarr

    root: Any = zarr.open_group(str(path), mode="w-", zarr_format=2)
    n_genes = len(genes)
    chunk = max(1, min(chunk_genes, n_genes))
    root.create_array(
        "openness",
        shape=(n_genes, 0, spec.n_bins),
        chunks=(chunk, 1, spec.n_bins),
        dtype="float32",
        # no fill value: xarray would decode it as _FillValue and turn every 0 bin into NaN
        fill_value=None,
        compressors=_compressor(),
        attributes={
            **_dims("gene", "sample", "bin"),
            "long_name": "accessibility per bin",
            "units": f"{spec.aggregate} signal per bin",
            "coordinates": "gene_name gene_type chrom tss strand group complete bin_offset",
        },
    )
    gene_chunk = max(1, n_genes)
    root.create_array(
        "gene",
        shape=(n_genes,),
        chunks=(gene_chunk,),
        dtype=str,
        fill_value=None,
        attributes=_dims("gene"),
    )
    root["gene"][:] = genes["name"].astype(str).to_numpy()
    for column in _GENE_STR_COLUMNS:
        source = genes[column] if column in genes else pd.Series(["unknown"] * n_genes)
        root.create_array(
            column,
            shape=(n_genes,),
            chunks=(gene_chunk,),
            dtype=str,
            fill_value=None,
            attributes=_dims("gene"),
        )
        root[column][:] = source.astype(str).to_numpy()
    root.create_array(
        "tss",
        shape=(n_genes,),
        chunks=(gene_chunk,),
        dtype="int64",
        fill_value=None,
        attributes=_dims("gene"),
    )
    root["tss"][:] = genes["start"].to_numpy(dtype=np.int64)
    for name, dtype in (("sample", str), ("group", str), ("complete", "bool")):
        root.create_array(
            name,
            shape=(0,),
            chunks=(4096,),
            dtype=dtype,
            fill_value=None,
            attributes=_dims("sample"),
        )
    root.create_array(
        "bin",
        shape=(spec.n_bins,),
        chunks=(spec.n_bins,),
        dtype="int64",
        fill_value=None,
        attributes=_dims("bin"),
    )
    root["bin"][:] = np.arange(spec.n_bins, dtype=np.int64)
    root.create_array(
        "bin_offset",
        shape=(spec.n_bins,),
        chunks=(spec.n_bins,),
        dtype="int64",
        fill_value=None,
        attributes={**_dims("bin"), "units": "bp from TSS, gene orientation"},
    )
    root["bin_offset"][:] = spec.bin_offsets()
    root.attrs.update(
        {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "flank": spec.flank,
            "bin_size": spec.bin_size,
            "aggregate": spec.aggregate,
            "coordinates": "0-based half-open; bin 0 farthest upstream on both strands",
            "sources": {},
            **(attrs or {}),
        }
    )
    consolidate(path)


def consolidate(path: str | Path) -> None:
    """Refresh the consolidated metadata (``.zmetadata``) that ``xarray.open_zarr`` reads."""
    import zarr

    zarr.consolidate_metadata(str(path))


def _root(path: str | Path, mode: Literal["r", "r+", "a", "w", "w-"] = "r+") -> Any:
    import zarr

    p = Path(path)
    if not p.exists():
        raise InputError("dataset not found", path=p)
    try:
        # writers must not use the consolidated metadata: it goes stale as soon as an array is
        # resized
        root = zarr.open_group(str(p), mode=mode, zarr_format=2, use_consolidated=mode == "r")
    except Exception as exc:  # zarr raises several types for non-stores
        if p.is_file():
            what = "not a chromexpr dataset: a file, where 'chromexpr bin' writes a directory"
        elif isinstance(exc, json.JSONDecodeError | UnicodeDecodeError) or (p / ".zgroup").exists():
            what = "damaged dataset: its Zarr metadata (.zgroup, .zattrs) cannot be read"
        else:
            what = "not a chromexpr dataset (no Zarr group here)"
        raise InputError(what, path=p, fix="give a dataset made by 'chromexpr bin'") from None
    if root.attrs.get("format") != FORMAT:
        raise InputError("not a chromexpr dataset (no 'format' attribute)", path=p)
    return root


def add_samples(path: str | Path, names: Sequence[str], groups: Sequence[str]) -> list[int]:
    """Append samples (marked incomplete) and return their indices along the sample dimension.

    Existing incomplete samples of the same name are reused, so an interrupted run resumes.
    """
    root = _root(path)
    existing = [str(s) for s in root["sample"][:]]
    complete = root["complete"][:]
    indices: list[int] = []
    new_names: list[str] = []
    new_groups: list[str] = []
    for name, group in zip(names, groups, strict=True):
        if name in existing:
            i = existing.index(name)
            if bool(complete[i]):
                raise InputError(
                    f"sample {name!r} is already in the dataset",
                    path=path,
                    fix="use another name, or rebuild the dataset with --force",
                )
            indices.append(i)
            root["group"][i] = group
        else:
            indices.append(len(existing) + len(new_names))
            new_names.append(name)
            new_groups.append(group)
    if new_names:
        n_old = len(existing)
        n_new = n_old + len(new_names)
        openness = root["openness"]
        openness.resize((openness.shape[0], n_new, openness.shape[2]))
        for name, values in (
            ("sample", new_names),
            ("group", new_groups),
            ("complete", [False] * len(new_names)),
        ):
            array = root[name]
            array.resize((n_new,))
            array[n_old:] = np.asarray(values, dtype=bool if name == "complete" else object)
    consolidate(path)
    return indices


def write_sample(path: str | Path, index: int, values: np.ndarray) -> None:
    """Write one sample's ``(n_genes, n_bins)`` float32 values (does not mark it complete).

    On a local store, a few threads encode the sample's chunks with the array's own compressor
    and write them straight into it (the bytes zarr would write; see :func:`_write_chunks`);
    other stores go through zarr.
    """
    root = _root(path)
    openness = root["openness"]
    if values.shape != (openness.shape[0], openness.shape[2]):
        raise ValueError(f"values shape {values.shape} != {(openness.shape[0], openness.shape[2])}")
    values = values.astype(np.float32, copy=False)
    if not 0 <= index < openness.shape[1]:
        raise IndexError(f"sample index {index} out of range for {openness.shape[1]} samples")
    if _direct_chunks(openness):
        _write_chunks(openness, index, values)
    else:
        openness[:, index, :] = values


def _direct_chunks(openness: Any) -> bool:
    """Whether a sample's chunks can be written as files: a local Zarr v2 store with our layout.

    That is: one chunk per (gene block, sample) holding every bin, C order, float32, no filters.
    """
    from zarr.storage import LocalStore

    meta = openness.metadata
    return (
        meta.zarr_format == 2
        and isinstance(openness.store, LocalStore)
        and not meta.filters
        and meta.order == "C"
        and np.dtype(meta.dtype.to_native_dtype()) == np.dtype("<f4")
        and openness.chunks[1] == 1
        and openness.chunks[2] == openness.shape[2]
    )


def _write_chunks(openness: Any, index: int, values: np.ndarray) -> None:
    """Encode and write the chunks ``(g, index, 0)`` of ``openness`` as zarr's LocalStore would.

    Each chunk is ``compressor.encode`` of the C-order block (the edge block padded to the full
    chunk with the fill value, as Zarr v2 stores it), written to a temporary file and renamed into
    place. Unlike zarr (``write_empty_chunks=False``), an all-fill chunk is written rather than
    deleted; both read back the same. Blosc releases the GIL: the threads compress in parallel.
    """
    import uuid
    from concurrent.futures import ThreadPoolExecutor

    meta = openness.metadata
    codec = meta.compressor
    fill = np.float32(meta.fill_value if meta.fill_value is not None else 0.0)
    base = Path(str(openness.store.root)) / openness.path
    n_genes, n_bins = values.shape
    chunk = int(openness.chunks[0])

    def one(block_index: int) -> None:
        lo = block_index * chunk
        block = values[lo : lo + chunk]
        if block.shape[0] < chunk:
            padded = np.full((chunk, n_bins), fill, dtype=np.float32)
            padded[: block.shape[0]] = block
            block = padded
        data = np.ascontiguousarray(block)
        encoded = codec.encode(data) if codec is not None else data.tobytes()
        target = base / meta.encode_chunk_key((block_index, index, 0))
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.name}.{uuid.uuid4().hex}.partial")
        try:
            with tmp.open("wb") as handle:
                handle.write(encoded)
            tmp.replace(target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    if not base.is_dir():  # removed (a discarded partial dataset): do not recreate it
        raise InputError("the dataset was removed while a sample was being written", path=base)
    n_blocks = -(-n_genes // chunk)
    workers = _write_threads()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="chromexpr-store") as pool:
        for future in [pool.submit(one, b) for b in range(n_blocks)]:
            future.result()


def _write_threads() -> int:
    """Threads that compress chunks: usable CPUs, at most ``NUMBA_NUM_THREADS`` (or, when numba
    was imported first, ``OMP_NUM_THREADS``: both set by --threads)."""
    import os

    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    cap = os.environ.get("NUMBA_NUM_THREADS", "") or os.environ.get("OMP_NUM_THREADS", "")
    if cap.isdigit() and int(cap) > 0:
        n = min(n, int(cap))
    return max(1, min(n, 8))


def mark_complete(path: str | Path, index: int, source: dict[str, Any] | None = None) -> None:
    """Flag sample ``index`` as fully written and record where it came from."""
    mark_complete_many(path, {index: source})


def mark_complete_many(
    path: str | Path,
    sources: Mapping[int, dict[str, Any] | None],
    attrs: dict[str, Any] | None = None,
) -> None:
    """Flag several samples as fully written at once, with one metadata write.

    The ``sources`` attribute and the consolidated metadata grow with the number of samples, so
    flagging samples one at a time costs time quadratic in the samples; a run that finishes many
    samples quickly (a Dask cluster) flags them in batches.

    Parameters
    ----------
    path
        The store.
    sources
        Sample index to where it came from (None: nothing to record).
    attrs
        Root attributes to merge in the same write.
    """
    if not sources and not attrs:
        return
    root = _root(path)
    flags = root["complete"]
    if len(sources) == 1:
        flags[next(iter(sources))] = True
    elif sources:
        values = np.asarray(flags[:], dtype=bool)
        values[list(sources)] = True
        flags[:] = values
    updates = json.loads(json.dumps(attrs, default=str)) if attrs else {}
    recorded = {i: s for i, s in sources.items() if s is not None}
    if recorded:
        names = root["sample"]
        merged = dict(root.attrs.get("sources", {}))
        merged.update({str(names[i]): s for i, s in recorded.items()})
        updates["sources"] = merged
    if updates:
        root.attrs.update(updates)
    consolidate(path)


def update_attrs(path: str | Path, attrs: dict[str, Any]) -> None:
    """Merge ``attrs`` into the root attributes."""
    root = _root(path)
    root.attrs.update(json.loads(json.dumps(attrs, default=str)))
    consolidate(path)


@dataclass
class Dataset:
    """A binned dataset opened for reading. Only complete samples are visible.

    Attributes
    ----------
    path
        Store location.
    genes
        One row per gene in store order: ``gene_id, gene_name, gene_type, chrom, tss, strand``.
    samples
        Complete samples, in store order.
    groups
        Group of each sample in :attr:`samples` (empty string if none).
    spec
        Window geometry.
    attrs
        Root attributes (provenance, chrom sizes, sources).
    """

    path: Path
    genes: pd.DataFrame
    samples: list[str]
    groups: list[str]
    spec: BinSpec
    attrs: dict[str, Any]
    _sample_index: np.ndarray
    _openness: Any
    _verified: set[tuple[int, int]] = field(default_factory=set)

    @property
    def n_genes(self) -> int:
        """Number of genes."""
        return len(self.genes)

    @property
    def n_samples(self) -> int:
        """Number of complete samples."""
        return len(self.samples)

    @property
    def n_bins(self) -> int:
        """Bins per gene window."""
        return self.spec.n_bins

    @property
    def chunk_genes(self) -> int:
        """Genes per storage chunk (read in multiples of this for speed)."""
        return int(self._openness.chunks[0])

    def sample_position(self, names: str | Sequence[str]) -> np.ndarray:
        """Positions (in :attr:`samples`) of sample names; unknown names raise InputError."""
        wanted = [names] if isinstance(names, str) else list(names)
        lookup = {s: i for i, s in enumerate(self.samples)}
        missing = [n for n in wanted if n not in lookup]
        if missing:
            raise InputError(
                f"sample(s) not in the dataset: {', '.join(missing[:5])}",
                path=self.path,
                fix=f"available: {', '.join(self.samples[:8])}"
                f"{' ...' if len(self.samples) > 8 else ''}",
            )
        return np.asarray([lookup[n] for n in wanted], dtype=np.int64)

    def read_sample(self, sample: str | int) -> np.ndarray:
        """All genes x bins of one sample, float32 ``(n_genes, n_bins)``."""
        position = int(self.sample_position(sample)[0]) if isinstance(sample, str) else int(sample)
        store_index = int(self._sample_index[position])
        with self._checked(range(self.n_genes), [store_index]):
            return np.asarray(self._openness[:, store_index, :])

    def read_block(self, genes: slice, samples: Sequence[int] | np.ndarray) -> np.ndarray:
        """A contiguous gene range x chosen sample positions.

        Returns float32 ``(n_genes_in_slice, len(samples), n_bins)``.
        """
        store_idx = self._sample_index[np.asarray(samples, dtype=np.int64)]
        if len(store_idx) == 0:
            return np.empty(
                (len(range(*genes.indices(self.n_genes))), 0, self.n_bins), dtype=np.float32
            )
        order = np.argsort(store_idx)
        with self._checked(range(*genes.indices(self.n_genes)), store_idx):
            block = self._openness.get_orthogonal_selection((genes, store_idx[order], slice(None)))
        out = np.empty_like(block)
        out[:, order, :] = block
        return out

    def read_rows(self, gene_idx: np.ndarray, sample_pos: np.ndarray) -> np.ndarray:
        """Rows for (gene, sample) pairs: float32 ``(n_pairs, n_bins)``, in the order given.

        Reads whole chunks once each, so batches that are grouped by gene chunk are fast.
        """
        gene_idx = np.asarray(gene_idx, dtype=np.int64)
        sample_pos = np.asarray(sample_pos, dtype=np.int64)
        out = np.empty((gene_idx.size, self.n_bins), dtype=np.float32)
        chunk = self.chunk_genes
        keys = (gene_idx // chunk) * (self.n_samples + 1) + sample_pos
        for key in np.unique(keys):
            members = np.flatnonzero(keys == key)
            c = int(gene_idx[members[0]] // chunk)
            s = int(self._sample_index[sample_pos[members[0]]])
            lo = c * chunk
            with self._checked(range(lo, min(lo + chunk, self.n_genes)), [s]):
                block = np.asarray(self._openness[lo : lo + chunk, s, :])
            out[members] = block[gene_idx[members] - lo]
        return out

    def read_chunk(self, block: int, position: int, out: np.ndarray | None = None) -> np.ndarray:
        """One stored chunk: genes ``block * chunk_genes ...`` of one sample, all bins.

        On a local store with the standard layout the chunk file is decoded straight into ``out``
        (no zarr machinery; Blosc releases the GIL, so threads decode in parallel); otherwise it
        is read through zarr. Safe to call from several threads.

        Parameters
        ----------
        block
            Gene block (chunk row) index.
        position
            Sample position (in :attr:`samples`).
        out
            float32 C-contiguous ``(chunk_genes, n_bins)`` to decode into (the last block is
            padded on disk to a whole chunk); a new array when ``None``.

        Returns
        -------
        numpy.ndarray
            float32 ``(genes in the block, n_bins)``, a view of ``out``.
        """
        chunk = self.chunk_genes
        n_rows = min(chunk, self.n_genes - block * chunk)
        if n_rows <= 0:
            raise IndexError(f"gene block {block} out of range")
        store_index = int(self._sample_index[int(position)])
        if out is None:
            out = np.empty((chunk, self.n_bins), dtype=np.float32)
        if out.shape != (chunk, self.n_bins) or out.dtype != np.float32:
            raise ValueError(f"out must be float32 {(chunk, self.n_bins)}, got {out.shape}")
        file = self._chunk_file(block, store_index) if _direct_chunks(self._openness) else None
        if file is None:
            lo = block * chunk
            with self._checked(range(lo, lo + n_rows), [store_index]):
                out[:n_rows] = self._openness[lo : lo + n_rows, store_index, :]
            return out[:n_rows]
        try:
            data = _read_file(file)
        except FileNotFoundError:
            raise self._damaged(block, store_index, "is missing") from None
        codec = self._openness.metadata.compressor
        try:
            if codec is None:
                out.reshape(-1).view(np.uint8)[:] = np.frombuffer(data, dtype=np.uint8)
            else:
                codec.decode(data, out=out)
        except (RuntimeError, ValueError, TypeError) as exc:
            reason = f"cannot be decoded ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
            raise self._damaged(block, store_index, reason) from None
        return out[:n_rows]

    def _damaged(self, block: int, store_index: int, reason: str) -> InputError:
        """The error for chunk ``(block, store_index)``, missing or undecodable."""
        chunk = self.chunk_genes
        file = self._chunk_file(block, store_index)
        name = file.name if file is not None else f"{block}.{store_index}.0"
        return InputError(
            f"chunk {name} of sample {self._sample_name(store_index)} (genes "
            f"{block * chunk + 1}-{min((block + 1) * chunk, self.n_genes)}) {reason}: the "
            "dataset is damaged",
            path=self.path,
            fix="restore the dataset from a copy, or bin it again",
        )

    def _chunk_file(self, block: int, store_index: int) -> Path | None:
        """The file of chunk ``(block, sample, 0)`` in a local store (``None``: another store)."""
        from zarr.storage import LocalStore

        if not isinstance(self._openness.store, LocalStore):
            return None
        key = self._openness.metadata.encode_chunk_key((block, store_index, 0))
        return Path(str(self._openness.store.root)) / self._openness.path / key

    def _sample_name(self, store_index: int) -> str:
        hits = np.flatnonzero(self._sample_index == store_index)
        return self.samples[int(hits[0])] if hits.size else f"#{store_index}"

    @contextmanager
    def _checked(self, genes: range, store_samples: Sequence[int] | np.ndarray) -> Iterator[None]:
        """Read chunks of ``genes`` x ``store_samples`` inside this: a complete sample's chunk
        file that is missing (zarr would read it as zeros) or does not decode is an InputError
        naming the dataset, the chunk and the sample.

        Every chunk of a complete sample is on disk: :func:`write_sample` writes all-zero chunks
        too, so a missing one was lost, not left out.
        """
        chunk = self.chunk_genes
        blocks = range(genes.start // chunk, -(-genes.stop // chunk)) if len(genes) else range(0)
        todo = [(b, int(s)) for s in store_samples for b in blocks]
        todo = [key for key in todo if key not in self._verified]
        for b, s in todo:
            file = self._chunk_file(b, s)
            if file is not None and not file.is_file():
                raise self._damaged(b, s, "is missing")
        try:
            yield
        except (RuntimeError, ValueError, TypeError) as exc:
            reason = f"cannot be decoded ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
            for b, s in todo or [(b, int(s)) for s in store_samples for b in blocks]:
                try:
                    self._openness[b * chunk : (b + 1) * chunk, s, :]
                except (RuntimeError, ValueError, TypeError):
                    raise self._damaged(b, s, reason) from None
            raise
        self._verified.update(todo)

    def iter_gene_blocks(
        self, samples: Sequence[int] | np.ndarray | None = None
    ) -> Iterator[tuple[slice, np.ndarray]]:
        """Stream the dataset in chunk-aligned gene blocks.

        Yields ``(gene slice, (genes, samples, bins) array)``.
        """
        positions = (
            np.arange(self.n_samples) if samples is None else np.asarray(samples, dtype=np.int64)
        )
        chunk = self.chunk_genes
        for lo in range(0, self.n_genes, chunk):
            sl = slice(lo, min(lo + chunk, self.n_genes))
            yield sl, self.read_block(sl, positions)

    def to_xarray(self) -> Any:
        """The store as an ``xarray.Dataset`` (lazy), restricted to complete samples.

        Nested attributes (``provenance``, ``sources``, ``chrom_sizes``) are JSON strings here, so
        that ``to_xarray().to_netcdf(path)`` works (netCDF attributes are flat); ``json.loads``
        gives the dictionaries back.
        """
        import json

        import xarray as xr

        ds = xr.open_zarr(str(self.path)).isel(sample=self._sample_index)
        ds.attrs = {
            k: json.dumps(v, default=str) if isinstance(v, (dict, list, bool)) or v is None else v
            for k, v in ds.attrs.items()
        }
        return ds


_READ_BUFFERS = threading.local()


def _read_file(path: Path) -> memoryview:
    """The bytes of ``path`` in this thread's reusable buffer (valid until its next call): no new
    allocation per chunk."""
    buffer: bytearray | None = getattr(_READ_BUFFERS, "buffer", None)
    if buffer is None:
        buffer = _READ_BUFFERS.buffer = bytearray(1 << 20)
    with path.open("rb", buffering=0) as handle:
        n = handle.readinto(buffer)
        while n == len(buffer):  # a file larger than the buffer: a larger one, read the rest
            larger = bytearray(2 * len(buffer))
            larger[:n] = buffer[:n]
            buffer = _READ_BUFFERS.buffer = larger
            n += handle.readinto(memoryview(buffer)[n:])
    return memoryview(buffer)[:n]


def open_dataset(path: str | Path) -> Dataset:
    """Open a chromexpr dataset for reading (only complete samples are exposed).

    Raises
    ------
    InputError
        Missing path, or not a chromexpr dataset.
    """
    root = _root(path, mode="r")
    attrs = dict(root.attrs)
    genes = pd.DataFrame(
        {
            "gene_id": _strings(root["gene"]),
            "gene_name": _strings(root["gene_name"]),
            "gene_type": _strings(root["gene_type"]),
            "chrom": _strings(root["chrom"]),
            "tss": np.asarray(root["tss"][:], dtype=np.int64),
            "strand": _strings(root["strand"]),
        }
    )
    complete = np.asarray(root["complete"][:], dtype=bool)
    names = _strings(root["sample"])
    groups = _strings(root["group"])
    index = np.flatnonzero(complete)
    spec = BinSpec(
        flank=int(attrs["flank"]), bin_size=int(attrs["bin_size"]), aggregate=attrs["aggregate"]
    )
    return Dataset(
        path=Path(path),
        genes=genes,
        samples=[str(names[i]) for i in index],
        groups=[str(groups[i]) for i in index],
        spec=spec,
        attrs=attrs,
        _sample_index=index.astype(np.int64),
        _openness=root["openness"],
    )


def incomplete_samples(path: str | Path) -> list[str]:
    """Samples present in the store but not marked complete (interrupted writes)."""
    root = _root(path, mode="r")
    complete = np.asarray(root["complete"][:], dtype=bool)
    return [s for s, done in zip(_strings(root["sample"]), complete, strict=True) if not done]


def _strings(array: Any) -> list[str]:
    """A zarr string array as Python strings (zarr may return numpy's StringDType)."""
    return [str(v) for v in array[:].tolist()]


def root_attrs(path: str | Path) -> dict[str, Any]:
    """The root attributes as stored now (not the consolidated copy)."""
    return dict(_root(path).attrs)


def remove_attrs(path: str | Path, keys: Sequence[str]) -> None:
    """Delete root attributes (absent keys are ignored)."""
    root = _root(path)
    attrs = {k: v for k, v in root.attrs.items() if k not in set(keys)}
    root.attrs.put(attrs)
    consolidate(path)


def mark_incomplete(path: str | Path, index: int) -> None:
    """Flag sample ``index`` as not (or no longer) fully written, so that a run recomputes it."""
    root = _root(path)
    root["complete"][index] = False
    consolidate(path)


def sample_states(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Every sample in store order, complete or not, and the ``complete`` flags (bool)."""
    root = _root(path)  # not the consolidated copy: the caller may have just written it
    return _strings(root["sample"]), np.asarray(root["complete"][:], dtype=bool)
