"""The lineage tree over cell-type groups, and Gaussian traits that evolve along it.

Cell types are related: sister populations share most of their regulatory state, distant lineages
little. The simulator puts the ``G`` groups at the leaves of a rooted tree and draws group-level
traits (the latent switch of a group-specific peak, a gene's trans-acting expression programme) as
a Brownian motion along it: every edge adds an independent ``N(0, length)`` step, so two groups
share the steps above their last common ancestor. Branch lengths make every root-to-leaf path of
length 1 (an ultrametric tree), so each trait has variance 1 in every group and the covariance of
two groups is ``1 - height(LCA)``. The model is stated in ``docs/simulation.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

Lineage = Literal["tree", "independent"]
#: Choices of ``SimulationConfig.lineage``.
LINEAGES: tuple[Lineage, ...] = get_args(Lineage)


#: Rows of traits drawn at a time by :meth:`LineageTree.draw`.
_DRAW_CHUNK = 65_536


@dataclass(frozen=True, eq=False)
class LineageTree:
    """A rooted tree whose leaves ``0..n_leaves-1`` are the groups, in group order.

    Attributes
    ----------
    parent : numpy.ndarray
        ``int64 (n_nodes,)``: parent of each node (``-1`` for the root). Leaves are nodes
        ``0..n_leaves-1``; every parent has a larger index than its children, and the root is the
        last node.
    height : numpy.ndarray
        ``float64 (n_nodes,)``: height above the leaves (leaves 0, root 1); the branch above node
        ``i`` has length ``height[parent[i]] - height[i]``.
    n_leaves : int
        Number of groups.
    """

    parent: np.ndarray
    height: np.ndarray
    n_leaves: int

    @property
    def n_nodes(self) -> int:
        """Leaves plus internal nodes."""
        return int(self.parent.shape[0])

    def branch_length(self) -> np.ndarray:
        """``float64 (n_nodes,)``: length of the branch above each node (0 for the root)."""
        up = np.where(self.parent >= 0, self.height[np.maximum(self.parent, 0)], self.height)
        return up - self.height

    def ancestors(self, node: int) -> list[int]:
        """``node`` and its ancestors up to the root, bottom-up."""
        path = [node]
        while self.parent[path[-1]] >= 0:
            path.append(int(self.parent[path[-1]]))
        return path

    def covariance(self) -> np.ndarray:
        """``float64 (n_leaves, n_leaves)``: covariance of a unit trait between groups.

        ``1 - height(LCA)``: 1 on the diagonal, 0 between groups whose last common ancestor is
        the root.

        Examples
        --------
        >>> balanced_tree(4, strength=0.8).covariance().round(2).tolist()
        [[1.0, 0.8, 0.0, 0.0], [0.8, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.8], [0.0, 0.0, 0.8, 1.0]]
        """
        paths = [set(self.ancestors(i)) for i in range(self.n_leaves)]
        cov = np.eye(self.n_leaves)
        for i in range(self.n_leaves):
            for j in range(i + 1, self.n_leaves):
                lca = min(paths[i] & paths[j])  # parents have larger indices than children
                cov[i, j] = cov[j, i] = 1.0 - self.height[lca]
        return cov

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` independent traits evolved along the tree (Brownian motion from 0 at the root).

        Rows are drawn in chunks of :data:`_DRAW_CHUNK` (bounded memory), node by node within a
        chunk.

        Returns
        -------
        numpy.ndarray
            ``float64 (n, n_leaves)``: each row ``~ N(0, covariance())``.
        """
        out = np.empty((n, self.n_leaves))
        scale = np.sqrt(self.branch_length())[:, None]
        for lo in range(0, n, _DRAW_CHUNK):
            m = min(_DRAW_CHUNK, n - lo)
            value = rng.standard_normal((self.n_nodes, m)) * scale  # one contiguous row per node
            for node in range(self.n_nodes - 2, -1, -1):  # root (last) first: parents before
                value[node] += value[self.parent[node]]  # children; the root's step is 0
            out[lo : lo + m] = value[: self.n_leaves].T
        return out

    def newick(self, names: list[str]) -> str:
        """The tree in Newick format, leaves named ``names``, branch lengths to 4 decimals.

        Examples
        --------
        >>> balanced_tree(3, strength=0.5).newick(["a", "b", "c"])
        '((a:0.5,b:0.5):0.5,c:1);'
        """
        first_leaf = np.arange(self.n_nodes)  # children come before parents: one pass
        children: list[list[int]] = [[] for _ in range(self.n_nodes)]
        for node in range(self.n_nodes):
            up = int(self.parent[node])
            if up >= 0:
                first_leaf[up] = min(first_leaf[up], first_leaf[node])
                children[up].append(node)
        for kids in children:
            kids.sort(key=lambda c: first_leaf[c])
        length = self.branch_length()

        def text(node: int) -> str:
            label = (
                names[node]
                if node < self.n_leaves
                else "(" + ",".join(text(c) for c in children[node]) + ")"
            )
            return label if self.parent[node] < 0 else f"{label}:{length[node]:.4g}"

        return text(self.n_nodes - 1) + ";"


def star_tree(n_leaves: int) -> LineageTree:
    """Every group a child of the root: independent groups (identity covariance).

    Examples
    --------
    >>> star_tree(3).newick(["a", "b", "c"])
    '(a:1,b:1,c:1);'
    """
    parent = np.full(n_leaves + 1, n_leaves, dtype=np.int64)
    parent[n_leaves] = -1
    height = np.zeros(n_leaves + 1)
    height[n_leaves] = 1.0
    return LineageTree(parent=parent, height=height, n_leaves=n_leaves)


def balanced_tree(n_leaves: int, *, strength: float) -> LineageTree:
    """A balanced binary tree over groups ``0..n_leaves-1`` in order.

    Each internal node splits its groups into a first half of ``ceil(m / 2)`` and the rest, so
    neighbouring groups (``ct01`` and ``ct02``...) are siblings. Heights: leaves 0, root 1, and
    an internal node ``k`` splits above its deepest leaf ``1 - strength + strength * (k - 1) /
    (K - 1)``, where ``K`` is the root's; so two sibling groups share ``strength`` of their
    variance, and groups that meet only at the root share nothing.

    Parameters
    ----------
    n_leaves
        Number of groups (at least 1).
    strength
        Covariance of sibling groups, in ``[0, 1]`` (0: independent groups).

    Examples
    --------
    >>> balanced_tree(4, strength=0.6).newick(["a", "b", "c", "d"])
    '((a:0.4,b:0.4):0.6,(c:0.4,d:0.4):0.6);'
    """
    parent: list[int] = [-1] * n_leaves
    levels: list[int] = [0] * n_leaves

    def build(leaves: list[int]) -> int:
        if len(leaves) == 1:
            return leaves[0]
        half = (len(leaves) + 1) // 2
        kids = [build(leaves[:half]), build(leaves[half:])]
        node = len(parent)
        parent.append(-1)
        levels.append(1 + max(levels[k] for k in kids))
        for k in kids:
            parent[k] = node
        return node

    root = build(list(range(n_leaves)))
    if n_leaves == 1:  # a lone group is its own root: add one above it
        parent.append(-1)
        levels.append(1)
        parent[root] = 1
    top = max(levels)
    level = np.asarray(levels, dtype=np.float64)
    if top > 1:
        height = 1.0 - strength + strength * (level - 1.0) / (top - 1.0)
    else:
        height = np.ones_like(level)
    height[level == 0] = 0.0
    height[-1] = 1.0
    return LineageTree(parent=np.asarray(parent, dtype=np.int64), height=height, n_leaves=n_leaves)


def lineage_tree(kind: Lineage, n_groups: int, *, strength: float) -> LineageTree:
    """The tree of ``SimulationConfig.lineage``: balanced (``"tree"``) or a star
    (``"independent"``)."""
    if kind == "independent":
        return star_tree(n_groups)
    return balanced_tree(n_groups, strength=strength)
