"""Train/dev/test splits, cross-validation folds and sample groups; seeded and recorded in the
model.

Split kinds (every one reproducible from its :class:`SplitConfig` and the sample/gene lists):

``sample`` (default)
    Hold out whole samples: the question "what is the expression of a new cell type?". When samples
    have groups, whole groups are held out together, so no near-duplicate of a test sample is
    trained on.
``chromosome``
    Hold out the genes of some chromosomes (``±1 Mb`` windows of neighbouring genes overlap, so a
    random gene split would share inputs between training and test).
``sample+chromosome``
    Both: a (gene, sample) pair is trained on only if its sample and its chromosome are training
    ones, and tested only if both are held out (the strictest).
``random``
    Over (gene, sample) pairs, as in the original recipe. It leaks (the same window and the same
    sample are on both sides) and a warning says so.

Roles are int8 codes :data:`TRAIN`, :data:`DEV`, :data:`TEST` and :data:`UNUSED`.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from chromexpr.errors import InputError
from chromexpr.log import logger

__all__ = [
    "DEV",
    "SPLIT_KINDS",
    "TEST",
    "TRAIN",
    "UNUSED",
    "Split",
    "SplitConfig",
    "auto_groups",
    "make_folds",
    "make_split",
]

SplitKind = Literal["sample", "chromosome", "sample+chromosome", "random"]
SPLIT_KINDS: tuple[str, ...] = ("sample", "chromosome", "sample+chromosome", "random")
TRAIN, DEV, TEST, UNUSED = 0, 1, 2, -1
ROLE_NAMES = {TRAIN: "train", DEV: "dev", TEST: "test"}
_ROLE_CODES = {"train": TRAIN, "dev": DEV, "test": TEST}


@dataclass(frozen=True)
class SplitConfig:
    """How to split.

    Attributes
    ----------
    kind
        ``sample``, ``chromosome``, ``sample+chromosome`` or ``random``.
    dev_fraction, test_fraction
        Fractions of samples (or genes, for chromosomes; pairs for ``random``) held out, used when
        no explicit list is given. ``dev_fraction=None``: 0.1 for models that use a dev set (early
        stopping), 0 for the others (resolved by the train API).
    dev_samples, test_samples
        Explicit held-out samples (the rest train).
    dev_chroms, test_chroms
        Explicit held-out chromosomes.
    seed
        Random seed.
    """

    kind: SplitKind = "sample"
    dev_fraction: float | None = None
    test_fraction: float = 0.2
    dev_samples: tuple[str, ...] = ()
    test_samples: tuple[str, ...] = ()
    dev_chroms: tuple[str, ...] = ()
    test_chroms: tuple[str, ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in SPLIT_KINDS:
            raise InputError(
                f"unknown split {self.kind!r}", fix=f"use one of {', '.join(SPLIT_KINDS)}"
            )
        for name in ("dev_fraction", "test_fraction"):
            v = getattr(self, name)
            if v is not None and not 0.0 <= v < 1.0:
                raise InputError(f"--{name.replace('_', '-')} must be in [0, 1), got {v}")
        if (self.dev_fraction or 0.0) + self.test_fraction >= 1.0:
            raise InputError("dev and test fractions leave no training data")

    @property
    def by_sample(self) -> bool:
        """Whether samples are held out."""
        return self.kind in ("sample", "sample+chromosome")

    @property
    def by_chromosome(self) -> bool:
        """Whether chromosomes are held out."""
        return self.kind in ("chromosome", "sample+chromosome")


@dataclass(frozen=True)
class Split:
    """A resolved split.

    Attributes
    ----------
    config
        How it was made.
    sample_roles
        Role name of every sample with expression (``train``/``dev``/``test``); all ``train`` for
        ``chromosome`` and ``random`` splits.
    chrom_roles
        Role name of every chromosome (empty unless chromosomes are held out).
    fold
        Index of the cross-validation fold this split is (``None`` for a plain split).
    grouped
        Whether whole sample groups were held out (inner cross-validation then holds out whole
        groups too, so that it asks the same question as the outer split).
    """

    config: SplitConfig
    sample_roles: dict[str, str]
    chrom_roles: dict[str, str] = field(default_factory=dict)
    fold: int | None = None
    grouped: bool = False

    def samples_with_role(self, role: str) -> list[str]:
        """Samples whose role is ``role``, in recorded order."""
        return [s for s, r in self.sample_roles.items() if r == role]

    @property
    def train_samples(self) -> list[str]:
        """Samples that contribute training rows."""
        return self.samples_with_role("train")

    def sample_codes(self, samples: Sequence[str]) -> np.ndarray:
        """int8 role code of each sample (:data:`UNUSED` for samples the split does not know)."""
        return np.asarray(
            [_ROLE_CODES.get(self.sample_roles.get(s, ""), UNUSED) for s in samples], dtype=np.int8
        )

    def gene_codes(self, chroms: Sequence[str]) -> np.ndarray:
        """int8 role code of each gene from its chromosome (all TRAIN unless chromosomes are held
        out)."""
        if not self.config.by_chromosome:
            return np.zeros(len(chroms), dtype=np.int8)
        return np.asarray(
            [_ROLE_CODES.get(self.chrom_roles.get(str(c), "train"), TRAIN) for c in chroms],
            dtype=np.int8,
        )

    def roles(
        self,
        gene_ids: Sequence[str],
        gene_chroms: Sequence[str],
        samples: Sequence[str],
    ) -> np.ndarray:
        """Role of every (gene, sample) pair: int8 ``(n_genes, n_samples)``.

        Samples the split does not know (no expression when it was made) are :data:`UNUSED` for
        sample-based kinds and :data:`TEST` otherwise: they were never trained on.
        """
        s_codes = self.sample_codes(samples)
        unknown = np.asarray([s not in self.sample_roles for s in samples], dtype=bool)
        kind = self.config.kind
        n_genes = len(gene_ids)
        if kind == "random":
            out = _pair_roles(gene_ids, samples, self.config)
            out[:, unknown] = TEST
            return out
        g_codes = self.gene_codes(gene_chroms)
        if kind == "sample":
            out = np.broadcast_to(s_codes[None, :], (n_genes, len(samples))).copy()
            out[:, unknown] = TEST
            return out
        if kind == "chromosome":
            out = np.broadcast_to(g_codes[:, None], (n_genes, len(samples))).copy()
            out[:, unknown] = TEST
            return out
        s = np.where(unknown, TEST, s_codes)
        out = np.full((n_genes, len(samples)), UNUSED, dtype=np.int8)
        same = g_codes[:, None] == s[None, :]
        out[same] = np.broadcast_to(s[None, :], out.shape)[same]
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (round-trips through :meth:`from_dict`)."""
        return {
            "config": asdict(self.config),
            "sample_roles": dict(self.sample_roles),
            "chrom_roles": dict(self.chrom_roles),
            "fold": self.fold,
            "grouped": self.grouped,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Split:
        """Rebuild from :meth:`to_dict`."""
        cfg = dict(data["config"])
        for key in ("dev_samples", "test_samples", "dev_chroms", "test_chroms"):
            cfg[key] = tuple(cfg.get(key, ()))
        return cls(
            config=SplitConfig(**cfg),
            sample_roles=dict(data["sample_roles"]),
            chrom_roles=dict(data.get("chrom_roles", {})),
            fold=data.get("fold"),
            grouped=bool(data.get("grouped", False)),
        )


def _hash_unit(values: np.ndarray) -> np.ndarray:
    """splitmix64 of uint64 values -> uniform floats in [0, 1)."""
    with np.errstate(over="ignore"):
        z = values + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _name_codes(names: Sequence[str]) -> np.ndarray:
    return np.asarray([zlib.crc32(str(n).encode()) for n in names], dtype=np.uint64)


def _pair_roles(gene_ids: Sequence[str], samples: Sequence[str], config: SplitConfig) -> np.ndarray:
    """Roles of (gene, sample) pairs for a random split: a hash of (seed, gene id, sample name)."""
    g = _name_codes(gene_ids)
    s = _name_codes(samples)
    with np.errstate(over="ignore"):
        key = (
            (g[:, None] << np.uint64(32))
            ^ s[None, :]
            ^ (np.uint64(config.seed) * np.uint64(0x2545F491))
        )
    u = _hash_unit(key)
    out = np.full(u.shape, TRAIN, dtype=np.int8)
    out[u < config.test_fraction + (config.dev_fraction or 0.0)] = DEV
    out[u < config.test_fraction] = TEST
    return out


def _take_fraction(
    units: list[str], sizes: dict[str, int], fraction: float, rng: np.random.Generator, keep: int
) -> list[str]:
    """Randomly chosen units whose total size first reaches ``fraction`` of all (at least one unit
    when
    ``fraction > 0``), leaving at least ``keep`` units unchosen."""
    if fraction <= 0 or len(units) <= keep:
        return []
    total = sum(sizes[u] for u in units)
    order = [units[i] for i in rng.permutation(len(units))]
    chosen: list[str] = []
    size = 0
    for u in order:
        if size >= fraction * total - 1e-9 and chosen:
            break
        if len(units) - len(chosen) <= keep:
            break
        chosen.append(u)
        size += sizes[u]
    return chosen


def make_split(
    config: SplitConfig,
    samples: Sequence[str],
    groups: Sequence[str],
    gene_chroms: Sequence[str],
) -> Split:
    """Resolve a split over the samples with expression and the genes' chromosomes.

    Parameters
    ----------
    config
        How to split.
    samples
        Samples with expression.
    groups
        Group of each sample (``""``: none). With groups, whole groups are held out together.
    gene_chroms
        Chromosome of every modelled gene (for chromosome splits: fractions count genes).

    Raises
    ------
    InputError
        Unknown explicit samples or chromosomes, or nothing left to train on.

    Examples
    --------
    >>> config = SplitConfig(test_fraction=0.5, dev_fraction=0.0)
    >>> s = make_split(config, ["a", "b", "c", "d"], [""] * 4, ["chr1"])
    >>> sorted(s.sample_roles.values())
    ['test', 'test', 'train', 'train']
    """
    rng = np.random.default_rng(config.seed)
    samples = [str(s) for s in samples]
    roles = dict.fromkeys(samples, "train")
    if config.kind == "random":
        logger.warning(
            "--split random holds out (gene, sample) pairs: the same samples and overlapping "
            "windows are "
            "on both sides, so its scores are optimistic (use --split sample or chromosome)"
        )
    if config.by_sample:
        roles = _sample_roles(config, samples, groups, rng)
    chrom_roles: dict[str, str] = {}
    if config.by_chromosome:
        chrom_roles = _chrom_roles(config, gene_chroms, rng)
    held = [s for s, r in roles.items() if r != "train"]
    grouped = config.by_sample and groups_kept_whole(samples, groups, [held])
    split = Split(config=config, sample_roles=roles, chrom_roles=chrom_roles, grouped=grouped)
    if not split.train_samples:
        raise InputError(
            "the split leaves no training sample", fix="lower --test-fraction/--dev-fraction"
        )
    return split


def _check_known(names: Sequence[str], known: Sequence[str], what: str) -> None:
    missing = sorted(set(names) - set(known))
    if missing:
        raise InputError(
            f"{what} not among the samples with expression: {', '.join(missing[:5])}",
            fix=f"choose from {', '.join(list(known)[:8])}",
        )


def _sample_roles(
    config: SplitConfig, samples: list[str], groups: Sequence[str], rng: np.random.Generator
) -> dict[str, str]:
    roles = dict.fromkeys(samples, "train")
    if config.dev_samples or config.test_samples:
        _check_known(config.dev_samples, samples, "--dev-samples")
        _check_known(config.test_samples, samples, "--test-samples")
        both = set(config.dev_samples) & set(config.test_samples)
        if both:
            raise InputError(
                f"sample(s) both in --dev-samples and --test-samples: {sorted(both)[:3]}"
            )
        for s in config.test_samples:
            roles[s] = "test"
        for s in config.dev_samples:
            roles[s] = "dev"
        return roles
    group_of = {s: (g or f"\0{s}") for s, g in zip(samples, groups, strict=True)}
    units = list(dict.fromkeys(group_of[s] for s in samples))
    sizes = {u: 0 for u in units}
    for s in samples:
        sizes[group_of[s]] += 1
    if len(units) < 3 and any(g for g in groups):
        logger.warning(
            "only %d sample group(s) among the %d sample(s) with expression: holding out single "
            "samples instead of groups",
            len(units),
            len(samples),
        )
        group_of = {s: s for s in samples}
        units = list(samples)
        sizes = dict.fromkeys(units, 1)
    test = _take_fraction(units, sizes, config.test_fraction, rng, keep=1)
    rest = [u for u in units if u not in set(test)]
    dev = _take_fraction(rest, sizes, config.dev_fraction or 0.0, rng, keep=1)
    for s in samples:
        if group_of[s] in set(test):
            roles[s] = "test"
        elif group_of[s] in set(dev):
            roles[s] = "dev"
    return roles


def _chrom_roles(
    config: SplitConfig, gene_chroms: Sequence[str], rng: np.random.Generator
) -> dict[str, str]:
    chroms = list(dict.fromkeys(str(c) for c in gene_chroms))
    roles = dict.fromkeys(chroms, "train")
    if config.dev_chroms or config.test_chroms:
        for name, given in (
            ("--dev-chroms", config.dev_chroms),
            ("--test-chroms", config.test_chroms),
        ):
            missing = sorted(set(given) - set(chroms))
            if missing:
                raise InputError(f"{name}: no modelled gene on {', '.join(missing[:5])}")
        for c in config.test_chroms:
            roles[c] = "test"
        for c in config.dev_chroms:
            roles[c] = "dev"
    else:
        sizes = dict.fromkeys(chroms, 0)
        for c in gene_chroms:
            sizes[str(c)] += 1
        if len(chroms) < 2:
            raise InputError(
                "a chromosome split needs genes on at least two chromosomes",
                fix="use --split sample",
            )
        test = _take_fraction(chroms, sizes, config.test_fraction, rng, keep=1)
        rest = [c for c in chroms if c not in set(test)]
        dev = _take_fraction(rest, sizes, config.dev_fraction or 0.0, rng, keep=1)
        for c in test:
            roles[c] = "test"
        for c in dev:
            roles[c] = "dev"
    if all(r != "train" for r in roles.values()):
        raise InputError("the chromosome split leaves no training chromosome")
    return roles


def groups_kept_whole(
    samples: Sequence[str], groups: Sequence[str], held_out: Sequence[Sequence[str]]
) -> bool:
    """Whether each held-out set contains whole groups (and some group has several samples).

    Examples
    --------
    >>> groups_kept_whole(["a", "b", "c"], ["x", "x", "y"], [["a", "b"]])
    True
    >>> groups_kept_whole(["a", "b", "c"], ["x", "x", "y"], [["a"]])
    False
    """
    members: dict[str, set[str]] = {}
    for s, g in zip(samples, groups, strict=True):
        if g:
            members.setdefault(g, set()).add(str(s))
    if not any(len(m) > 1 for m in members.values()):
        return False
    for part in held_out:
        chosen = set(part)
        for m in members.values():
            if m & chosen and not m <= chosen:
                return False
    return True


def make_folds(
    samples: Sequence[str],
    groups: Sequence[str],
    k: int,
    *,
    seed: int = 0,
) -> list[list[str]]:
    """``k`` cross-validation folds over samples (whole groups kept together when possible).

    Parameters
    ----------
    samples
        Samples to split.
    groups
        Group of each sample (``""``: none).
    k
        Number of folds, 2..n_samples. ``k = n_samples`` is leave-one-sample-out (groups ignored).
    seed
        Random seed for the assignment.

    Returns
    -------
    list of list of str
        The samples of each fold (every sample in exactly one fold; folds non-empty).

    Notes
    -----
    Groups are assigned largest first to the currently smallest fold (ties broken at random), which
    keeps folds balanced. With fewer groups than folds, samples are assigned singly instead
    (logged).

    Examples
    --------
    >>> make_folds(["a", "b", "c"], ["", "", ""], 3)
    [['a'], ['b'], ['c']]
    """
    samples = [str(s) for s in samples]
    n = len(samples)
    if not 2 <= k <= n:
        raise InputError(f"--folds must be between 2 and the number of samples ({n}), got {k}")
    if k == n:
        return [[s] for s in samples]
    rng = np.random.default_rng(seed)
    group_of = {s: (g or f"\0{s}") for s, g in zip(samples, groups, strict=True)}
    units = list(dict.fromkeys(group_of[s] for s in samples))
    if len(units) < k:
        logger.warning("%d group(s) for %d folds: assigning samples to folds singly", len(units), k)
        group_of = {s: s for s in samples}
        units = list(samples)
    members: dict[str, list[str]] = {u: [] for u in units}
    for s in samples:
        members[group_of[s]].append(s)
    tiebreak = rng.permutation(len(units))
    order = sorted(range(len(units)), key=lambda i: (-len(members[units[i]]), tiebreak[i]))
    folds: list[list[str]] = [[] for _ in range(k)]
    for i in order:
        sizes = np.asarray([len(f) for f in folds])
        candidates = np.flatnonzero(sizes == sizes.min())
        target = int(candidates[rng.integers(candidates.size)])
        folds[target].extend(members[units[i]])
    position = {s: i for i, s in enumerate(samples)}
    return [sorted(f, key=position.__getitem__) for f in folds]


def auto_groups(
    y: np.ndarray, samples: Sequence[str], *, seed: int = 0, max_k: int = 10
) -> list[str]:
    """Cluster samples by their expression: PCA, then k-means with k chosen by mean silhouette.

    Parameters
    ----------
    y
        ``(n_genes, n_samples)`` expression on the modelling (log) scale.
    samples
        Sample names (for the log).
    seed
        Random seed of the k-means restarts.
    max_k
        Largest k tried.

    Returns
    -------
    list of str
        ``"g1"``, ``"g2"``... per sample (all ``""`` for fewer than 4 samples).

    Notes
    -----
    The rule: genes are centred; the samples are projected on the fewest principal components that
    explain 80% of the variance (at most 10); k-means (10 k-means++ restarts) is run for every k in
    ``2..min(max_k, n_samples // 2)`` and the k with the largest mean silhouette is kept.
    """
    x = np.asarray(y, dtype=np.float64).T
    n = x.shape[0]
    if n < 4:
        return [""] * n
    x = x - x.mean(axis=0)
    x = x[:, x.std(axis=0) > 0]
    if x.shape[1] == 0:
        return [""] * n
    u, sv, _ = np.linalg.svd(x, full_matrices=False)
    explained = np.cumsum(sv**2) / np.sum(sv**2)
    n_pc = int(min(10, np.searchsorted(explained, 0.8) + 1, sv.shape[0]))
    z = u[:, :n_pc] * sv[:n_pc]
    rng = np.random.default_rng(seed)
    best: tuple[float, np.ndarray] = (-np.inf, np.zeros(n, dtype=np.int64))
    for k in range(2, min(max_k, n // 2) + 1):
        labels = kmeans(z, k, rng=rng)
        score = silhouette(z, labels)
        if score > best[0] + 1e-12:
            best = (score, labels)
    labels = best[1]
    logger.info(
        "auto groups: %d group(s) over %d samples (mean silhouette %.2f on %d PCs)",
        len(np.unique(labels)),
        n,
        best[0],
        n_pc,
    )
    del samples
    return [f"g{int(v) + 1}" for v in labels]


def kmeans(
    z: np.ndarray, k: int, *, rng: np.random.Generator, restarts: int = 10, iters: int = 100
) -> np.ndarray:
    """Lloyd's k-means with k-means++ starts; the labels of the restart with the least inertia."""
    best_inertia = np.inf
    best = np.zeros(z.shape[0], dtype=np.int64)
    for _ in range(restarts):
        centres = [z[rng.integers(z.shape[0])]]
        for _ in range(1, k):
            d2 = np.min(((z[:, None, :] - np.asarray(centres)[None]) ** 2).sum(-1), axis=1)
            p = d2 / d2.sum() if d2.sum() > 0 else np.full(z.shape[0], 1 / z.shape[0])
            centres.append(z[rng.choice(z.shape[0], p=p)])
        c = np.asarray(centres)
        labels = np.zeros(z.shape[0], dtype=np.int64)
        for _ in range(iters):
            d2 = ((z[:, None, :] - c[None]) ** 2).sum(-1)
            new = d2.argmin(axis=1)
            if _ > 0 and np.array_equal(new, labels):
                break
            labels = new
            for j in range(k):
                if (labels == j).any():
                    c[j] = z[labels == j].mean(axis=0)
        inertia = float(((z - c[labels]) ** 2).sum())
        if inertia < best_inertia:
            best_inertia, best = inertia, labels.copy()
    # relabel in order of first appearance, so labels do not depend on restart order
    _, first = np.unique(best, return_index=True)
    order = np.argsort(first)
    remap = np.empty(order.size, dtype=np.int64)
    remap[np.unique(best)[order]] = np.arange(order.size)
    return remap[best]


def silhouette(z: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette coefficient (Euclidean); 0 for samples alone in their cluster."""
    d = np.sqrt(((z[:, None, :] - z[None]) ** 2).sum(-1))
    uniq = np.unique(labels)
    if uniq.size < 2:
        return -1.0
    s = np.zeros(z.shape[0])
    for i in range(z.shape[0]):
        own = labels == labels[i]
        if own.sum() <= 1:
            continue
        a = d[i, own].sum() / (own.sum() - 1)
        b = min(d[i, labels == c].mean() for c in uniq if c != labels[i])
        s[i] = (b - a) / max(a, b) if max(a, b) > 0 else 0.0
    return float(s.mean())
