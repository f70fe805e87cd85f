"""Class hierarchies: a rooted DAG (often a tree) over named nodes, with an explicit class order.

Every distance the study uses between two classes comes from here:

* the LCS height matrix and Barz & Denzler's d_G / s_G (WACV 2019, eq. 1-2);
* KFR's tree pseudo-distance d_T with edge weight k (Zhao et al. (KFR, 2024), eq. 1);
* the node height / depth helpers the other papers need (D_H of Venkataramanan et al.
  (ICVS 2023), mistake severity).

Conventions (docs/ambiguities.md):

* height(v) is the length of the longest path from v down to a leaf; depth(v) the length of the
  shortest path from the root down to v (the two coincide with the usual ones on a tree);
* the lowest common subsumer (LCS) of two classes is, by ``lcs_rule``, their common ancestor of
  least height (``"least_height"``, the default) or of greatest depth, the longest path from the
  root (``"deepest"``: the Barz authors' code, cvjena/semantic-embeddings, ``class_hierarchy.py``,
  ``ClassHierarchy.lcs`` with ``use_min_depth=False``); the two agree on a tree. Ties (possible
  only in a DAG) go to the smallest node id, never to set iteration order (the authors' ``max``
  over a ``set`` of string ids follows Python's hash seed); :meth:`Hierarchy.lcs_ties` lists them;
* the path distance of two classes is the fewest edges of a path that climbs from one class to a
  common ancestor and descends to the other (in a tree: through their LCA), times k.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from hierstudy.files import NotUTF8Error, read_utf8

LCS_RULES = ("least_height", "deepest")  # Hierarchy(lcs_rule=...): module doc


class HierarchyError(ValueError):
    """A hierarchy is malformed, or a class asked of it is not in it."""


class Hierarchy:
    """A rooted DAG of string node ids with an ordered list of classes.

    Args:
        edges: ``(parent, child)`` pairs; duplicates are ignored.
        classes: the class order used by every matrix; defaults to the sorted leaves.
        names: optional display names per node id (e.g. WordNet lemma per wnid).
        heights: optional node heights to use instead of those of this graph (the Barz authors'
            "whole WordNet" convention, see ``hierstudy.hierarchy.wordnet``); must cover every node.
        max_height: the d_G denominator that goes with ``heights`` (default: their maximum).
        lcs_rule: ``"least_height"`` or ``"deepest"`` (module doc, ``LCS_RULES``).
    """

    def __init__(
        self,
        edges: Iterable[tuple[str, str]],
        classes: Sequence[str] | None = None,
        *,
        names: Mapping[str, str] | None = None,
        heights: Mapping[str, int] | None = None,
        max_height: int | None = None,
        lcs_rule: str = "least_height",
    ) -> None:
        if lcs_rule not in LCS_RULES:
            raise HierarchyError(f"lcs_rule must be one of {LCS_RULES}, not {lcs_rule!r}")
        self.lcs_rule = lcs_rule
        parents: dict[str, set[str]] = {}
        children: dict[str, set[str]] = {}
        for edge in edges:
            if isinstance(edge, str) or len(edge) != 2:
                raise HierarchyError(f"an edge is a (parent, child) pair, got {edge!r}")
            parent, child = str(edge[0]), str(edge[1])
            if parent == child:
                raise HierarchyError(f"node {parent!r} is its own parent (a cycle of length 1)")
            parents.setdefault(child, set()).add(parent)
            parents.setdefault(parent, set())
            children.setdefault(parent, set()).add(child)
            children.setdefault(child, set())
        if not parents:
            raise HierarchyError("the hierarchy has no edges")
        self.nodes: tuple[str, ...] = tuple(sorted(parents))
        self.index: dict[str, int] = {n: i for i, n in enumerate(self.nodes)}
        self._parents = {n: tuple(sorted(p)) for n, p in parents.items()}
        self._children = {n: tuple(sorted(c)) for n, c in children.items()}
        roots = [n for n in self.nodes if not self._parents[n]]
        self._topo = self._topological_order()
        if len(roots) != 1:
            raise HierarchyError(
                f"a hierarchy needs exactly one root, found {len(roots)}: {roots[:10]}"
            )
        self.root: str = roots[0]
        self.names: dict[str, str] = dict(names or {})

        if classes is None:
            classes = [n for n in self.nodes if not self._children[n]]
        self.classes: tuple[str, ...] = tuple(str(c) for c in classes)
        missing = [c for c in self.classes if c not in self.index]
        if missing:
            raise HierarchyError(f"classes not in the hierarchy: {missing[:10]}")
        duplicated = sorted({c for c in self.classes if self.classes.count(c) > 1})
        if duplicated:
            raise HierarchyError(f"classes listed twice: {duplicated[:10]}")
        self.class_index: dict[str, int] = {c: i for i, c in enumerate(self.classes)}

        own = self._own_heights()
        if heights is None:
            self.heights = own
        else:
            unknown = [n for n in self.nodes if n not in heights]
            if unknown:
                raise HierarchyError(f"heights given for some nodes but not for {unknown[:10]}")
            self.heights = np.array([heights[n] for n in self.nodes], dtype=np.int64)
        self.max_height = int(self.heights.max() if max_height is None else max_height)
        if self.max_height < self.heights.max():
            raise HierarchyError(
                f"max_height = {max_height} is below the greatest node height "
                f"{int(self.heights.max())}: d_G would exceed 1 and s_G turn negative"
            )
        self.depths = self._depths()
        self.longest_depths = self._depths(longest=True)
        self._up = self._upward_distances()

    # ----------------------------------------------------------------------------- builders
    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]], classes=None, **kwargs) -> Hierarchy:
        """Build from ``(parent, child)`` pairs."""
        return cls(pairs, classes, **kwargs)

    @classmethod
    def from_file(cls, path: str | Path, classes=None, **kwargs) -> Hierarchy:
        """Build from a UTF-8 text file of ``parent child`` lines (``#`` comments and blanks
        skipped; a leading byte-order mark is dropped). Errors name the file."""
        path = Path(path)
        if not path.is_file():
            raise HierarchyError(f"hierarchy file {path} does not exist")
        try:
            text = read_utf8(path)
        except NotUTF8Error as error:
            raise HierarchyError(f"hierarchy file {error}") from None
        pairs = []
        for number, line in enumerate(text.splitlines(), 1):
            fields = line.split("#", 1)[0].split()
            if not fields:
                continue
            if len(fields) != 2:
                raise HierarchyError(
                    f"{path}:{number}: expected 'parent child', got {line.strip()!r}"
                )
            pairs.append((fields[0], fields[1]))
        try:
            return cls(pairs, classes, **kwargs)
        except HierarchyError as error:
            raise type(error)(f"hierarchy file {path}: {error}") from None

    def restrict(self, classes: Sequence[str]) -> Hierarchy:
        """The sub-hierarchy spanned by ``classes`` and their ancestors (own heights)."""
        keep = set()
        for c in classes:
            keep.update(self.ancestors(c))
        edges = [(p, n) for n in keep for p in self._parents[n] if p in keep]
        return Hierarchy(sorted(edges), classes, names=self.names, lcs_rule=self.lcs_rule)

    # ---------------------------------------------------------------------------- structure
    def parents(self, node: str) -> tuple[str, ...]:
        return self._parents[self._check(node)]

    def children(self, node: str) -> tuple[str, ...]:
        return self._children[self._check(node)]

    def ancestors(self, node: str) -> list[str]:
        """``node`` and all its ancestors, nearest first (breadth-first, sorted ties)."""
        self._check(node)
        seen, queue, order = {node}, deque([node]), []
        while queue:
            n = queue.popleft()
            order.append(n)
            for p in self._parents[n]:
                if p not in seen:
                    seen.add(p)
                    queue.append(p)
        return order

    @property
    def leaves(self) -> tuple[str, ...]:
        return tuple(n for n in self.nodes if not self._children[n])

    @property
    def is_tree(self) -> bool:
        return all(len(p) <= 1 for p in self._parents.values())

    def height(self, node: str) -> int:
        return int(self.heights[self.index[self._check(node)]])

    def depth(self, node: str) -> int:
        return int(self.depths[self.index[self._check(node)]])

    def label(self, node: str) -> str:
        """Display name of a node (its id when no name was given)."""
        return self.names.get(node, node)

    def class_indices(self, classes: Iterable[str]) -> np.ndarray:
        """Positions of class names in the class order; unknown names raise."""
        out = []
        for c in classes:
            if c not in self.class_index:
                raise HierarchyError(f"unknown class {c!r}: not one of this hierarchy's classes")
            out.append(self.class_index[c])
        return np.asarray(out, dtype=np.int64)

    def require_leaf_classes(self) -> None:
        """Raise unless every class is a leaf (d_G is a metric only then: Barz, Appendix A)."""
        inner = [c for c in self.classes if self._children[c]]
        if inner:
            raise HierarchyError(
                f"classes that are not leaves: {inner[:10]}; this metric needs leaf classes"
            )

    def leaf_order(self) -> np.ndarray:
        """Class indices in depth-first order from the root (children sorted), for plots."""
        order, seen, stack = [], set(), [self.root]
        while stack:
            n = stack.pop()
            if n in seen:
                continue
            seen.add(n)
            if n in self.class_index:
                order.append(self.class_index[n])
            stack.extend(reversed(self._children[n]))
        return np.asarray(order, dtype=np.int64)

    def edges(self) -> list[tuple[str, str]]:
        return [(p, n) for n in self.nodes for p in self._parents[n]]

    # ----------------------------------------------------------------------------- matrices
    def lcs(self, u: str, v: str) -> str:
        """Lowest common subsumer of two classes by ``lcs_rule``, then smallest id."""
        i, j = self.class_indices([u, v])
        return self.nodes[self.lcs_matrix()[i, j]]

    def lcs_matrix(self) -> np.ndarray:
        """[n, n] node index of the LCS of every class pair.

        Vectorised over pairs: nodes are visited from the least preferred to the most preferred
        (``_lcs_rank``) and each writes itself into the block of classes below it, so the most
        preferred common subsumer wins.
        """
        below = self._up >= 0  # [classes, nodes]
        out = np.full((len(self.classes),) * 2, -1, dtype=np.int64)
        for node in np.argsort(self._lcs_rank())[::-1]:
            members = np.flatnonzero(below[:, node])
            if members.size:
                out[np.ix_(members, members)] = node
        return out

    def lcs_ties(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """The class pairs ``(u, v, candidates)``, u before v in the class order, whose LCS is
        tied under ``lcs_rule``: two or more common subsumers share the least height
        (``"least_height"``) or the greatest depth (``"deepest"``); the first candidate (smallest
        id) is the one :meth:`lcs` returns. Empty on a tree."""
        rank = self._lcs_rank()
        key = self.heights if self.lcs_rule == "least_height" else -self.longest_depths
        below = self._up >= 0
        out = []
        for i in range(len(self.classes)):  # one vectorised [n, nodes] slice per class
            common = below[i] & below[i + 1 :]
            best = np.where(common, key, np.iinfo(np.int64).max).min(axis=1)
            tied = common & (key == best[:, None])
            for j in np.flatnonzero(tied.sum(axis=1) > 1):
                nodes = np.flatnonzero(tied[j])
                names = tuple(self.nodes[n] for n in nodes[np.argsort(rank[nodes])])
                out.append((self.classes[i], self.classes[i + 1 + j], names))
        return out

    def lcs_height(self) -> np.ndarray:
        """[n, n] height of the LCS of every class pair."""
        return self.heights[self.lcs_matrix()].astype(np.float64)

    def dissimilarity(self) -> np.ndarray:
        """Barz d_G (Barz & Denzler (WACV 2019), eq. 1): height(lcs(u, v)) / max_w height(w)."""
        if self.max_height == 0:
            raise HierarchyError("the hierarchy has height 0: d_G is undefined")
        return self.lcs_height() / self.max_height

    def similarity(self) -> np.ndarray:
        """Barz s_G (Barz & Denzler (WACV 2019), eq. 2): 1 - d_G."""
        return 1.0 - self.dissimilarity()

    def path_distance(self, k: float = 1.0) -> np.ndarray:
        """KFR d_T (Zhao et al. (KFR, 2024), eq. 1): edges between two classes times k.

        The path climbs from one class to a common ancestor and descends to the other; the fewest
        edges over all common ancestors (on a tree: through the LCA). Vectorised over pairs.
        """
        if not (np.isfinite(k) and k > 0):
            raise HierarchyError(f"the edge weight k must be finite and > 0, got {k}")
        n = len(self.classes)
        out = np.full((n, n), np.iinfo(np.int64).max, dtype=np.int64)
        for node in range(len(self.nodes)):
            members = np.flatnonzero(self._up[:, node] >= 0)
            if members.size:
                up = self._up[members, node]
                block = np.ix_(members, members)
                out[block] = np.minimum(out[block], up[:, None] + up[None, :])
        return out.astype(np.float64) * k

    # ------------------------------------------------------------------------------ checks
    def triangle_violations(
        self, distance: np.ndarray | None = None, tol: float = 1e-12, limit: int = 20
    ) -> tuple[int, list[tuple[str, str, str, float]]]:
        """Count triples with d(u, w) > d(u, v) + d(v, w) + tol (default d = d_G).

        Returns the number of violating ordered triples and up to ``limit`` of the worst as
        ``(u, v, w, excess)``. The Barz appendix (Fig. 4b) shows DAGs can break the inequality.
        """
        d = self.dissimilarity() if distance is None else np.asarray(distance, dtype=np.float64)
        count, worst = 0, []
        for v in range(d.shape[0]):  # O(n^3) work in n vectorised [n, n] slices
            excess = d - (d[:, v, None] + d[None, v, :])
            bad = np.argwhere(excess > tol)
            count += len(bad)
            worst.extend((excess[u, w], u, v, w) for u, w in bad[:limit])
            worst = sorted(worst, reverse=True)[:limit]
        c = self.classes
        return count, [(c[u], c[v], c[w], float(e)) for e, u, v, w in worst]

    def stats(self) -> dict[str, object]:
        """A summary row: classes, nodes, height, tree or not, d_G triangle violations."""
        violations, _ = self.triangle_violations(limit=0) if len(self.classes) <= 1500 else (-1, [])
        return {
            "classes": len(self.classes),
            "nodes": len(self.nodes),
            "height": self.max_height,
            "tree": self.is_tree,
            "leaf classes": all(not self._children[c] for c in self.classes),
            "triangle violations (d_G)": violations,
        }

    # ---------------------------------------------------------------------------- internals
    def _check(self, node: str) -> str:
        if node not in self.index:
            raise HierarchyError(f"unknown node {node!r}")
        return node

    def _topological_order(self) -> list[str]:
        indegree = {n: len(p) for n, p in self._parents.items()}
        queue = deque(n for n in self.nodes if indegree[n] == 0)
        order = []
        while queue:
            n = queue.popleft()
            order.append(n)
            for c in self._children[n]:
                indegree[c] -= 1
                if indegree[c] == 0:
                    queue.append(c)
        if len(order) != len(self.nodes):
            raise HierarchyError(f"the hierarchy has a cycle through {self._find_cycle(indegree)}")
        return order

    def _find_cycle(self, indegree: Mapping[str, int]) -> list[str]:
        """One cycle among the nodes Kahn's algorithm could not order, as a node list."""
        left = {n for n, d in indegree.items() if d > 0}
        node = min(left)
        path, position = [], {}
        while node not in position:
            position[node] = len(path)
            path.append(node)
            node = min(p for p in self._parents[node] if p in left)
        cycle = path[position[node] :]
        return list(reversed(cycle)) + [cycle[-1]]

    def _own_heights(self) -> np.ndarray:
        heights = np.zeros(len(self.nodes), dtype=np.int64)
        for n in reversed(self._topo):
            kids = self._children[n]
            if kids:
                heights[self.index[n]] = 1 + max(heights[self.index[c]] for c in kids)
        return heights

    def _depths(self, longest: bool = False) -> np.ndarray:
        """Shortest (or ``longest``) path length from the root to each node (root 0)."""
        depths = np.full(len(self.nodes), -1, dtype=np.int64)
        depths[self.index[self.root]] = 0
        better = np.greater if longest else np.less
        for n in self._topo:
            for c in self._children[n]:
                d = depths[self.index[n]] + 1
                if depths[self.index[c]] < 0 or better(d, depths[self.index[c]]):
                    depths[self.index[c]] = d
        return depths

    def _lcs_rank(self) -> np.ndarray:
        """[nodes] rank of each node as an LCS under ``lcs_rule``: 0 is the most preferred."""
        ids = np.arange(len(self.nodes))
        if self.lcs_rule == "least_height":
            order = np.lexsort((ids, self.heights))  # ascending (height, id)
        else:
            order = np.lexsort((ids, -self.longest_depths))  # descending depth, then id
        rank = np.empty_like(order)
        rank[order] = ids
        return rank

    def _upward_distances(self) -> np.ndarray:
        """[classes, nodes] fewest edges from each class up to each node; -1 if not above it."""
        up = np.full((len(self.classes), len(self.nodes)), -1, dtype=np.int64)
        for i, c in enumerate(self.classes):
            up[i, self.index[c]] = 0
            queue = deque([c])
            while queue:
                n = queue.popleft()
                for p in self._parents[n]:
                    if up[i, self.index[p]] < 0:
                        up[i, self.index[p]] = up[i, self.index[n]] + 1
                        queue.append(p)
        return up

    def __repr__(self) -> str:
        kind = "tree" if self.is_tree else "DAG"
        return (
            f"Hierarchy({kind}, {len(self.classes)} classes, {len(self.nodes)} nodes, "
            f"height {self.max_height}, root {self.label(self.root)!r}"
            + ("" if self.lcs_rule == "least_height" else f", LCS {self.lcs_rule}")
            + ")"
        )


def toy_hierarchy() -> Hierarchy:
    """The toy tree of Barz & Denzler (WACV 2019), Fig. 2a: total height 3,
    d_G(dog, cat) = 1/3 (LCS mammal), d_G(dog, trout) = 2/3 (LCS animal)."""
    pairs = [
        ("entity", "animal"),
        ("entity", "vehicle"),
        ("animal", "mammal"),
        ("animal", "fish"),
        ("mammal", "dog"),
        ("mammal", "cat"),
        ("fish", "trout"),
        ("vehicle", "car"),
    ]
    return Hierarchy(pairs, ["dog", "cat", "trout", "car"])
