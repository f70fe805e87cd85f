"""Bottom-up merging of the classes whose Bhattacharyya coefficient reaches a threshold t:
Venkataramanan et al. (ICVS 2023), Sec. 3.1.

Two conventions of the authors' code (vaishwarya96/Hierarchy-image-retrieval,
hierarchy_utils/h_utils.py, ``create_xmeans_hierarchy`` and ``get_networkx_graph``) are options
(docs/conventions.md, Visual hierarchy): ``root="authors"`` (a root above the last level, always)
and ``threshold_step`` (their threshold falls by 0.05 at every level, from 0.20).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from hierstudy.hierarchy import Hierarchy

from ._inputs import VisualHierarchyError, as_features, as_labels
from .gaussians import RIDGE, ClassGaussians, bhattacharyya_coefficient, fit_class_gaussians


# ------------------------------------------------------------------------------- merging
@dataclass(frozen=True)
class VisualHierarchy:
    """The result of ``build_visual_hierarchy``.

    Attributes:
        hierarchy: a tree over the classes; the node of level l >= 1 with index k is ``L{l}:{k}``.
        levels: nodes per level; ``levels[0]`` is the number of classes, one entry per merge.
        assignments: per level, [K] index of the node of that level above each class.
        coefficients: the [n, n] BC matrix computed at each level (the last one merged nothing,
            unless one node was left).
        root_added: a root ``L{L+1}:0`` was added above the last level (it had several nodes,
            or ``root="authors"``).
        threshold: t (at the first level; level l merges at t − l·threshold_step).
        gaussians: the leaf (class) Gaussians, for ``assign_leaves``.
        root: "paper" or "authors", see ``build_visual_hierarchy``.
        threshold_step: the decrease of the threshold per level.
    """

    hierarchy: Hierarchy
    levels: tuple[int, ...]
    assignments: tuple[np.ndarray, ...]
    coefficients: tuple[np.ndarray, ...]
    root_added: bool
    threshold: float
    gaussians: ClassGaussians
    root: str = "paper"
    threshold_step: float = 0.0

    @property
    def merged(self) -> bool:
        """Whether any two classes merged."""
        return len(self.levels) > 1

    @property
    def ranking_hierarchy(self) -> Hierarchy | None:
        """The hierarchy for eq. 5. ``root="paper"``: None when nothing merged (the paper's tree
        is then the bare leaves, of height 0, and D_H = 0). ``root="authors"``: always the tree
        with its root, so with no merge D_H = 0 for the same leaf and 1 otherwise."""
        return self.hierarchy if self.merged or self.root == "authors" else None


def build_visual_hierarchy(
    features,
    labels,
    classes: Sequence[str],
    threshold: float,
    *,
    covariance: str = "class",
    shrinkage: str | float = "ledoit-wolf",
    method: str = "auto",
    root: str = "paper",
    threshold_step: float = 0.0,
    ridge: float = RIDGE,
) -> VisualHierarchy:
    """Bottom-up merging of overlapping classes into a tree (Sec. 3.1).

    At each level: Gaussians of the current nodes from their training samples, BC of every pair
    (eq. 1-2), a link for each BC >= t, and each connected component (every cluster of classes
    linked directly or through others) becomes one node of the next level; a node that overlaps
    nothing gets a one-child parent, so a node of level l has height l and D_H counts levels, as
    in the authors' tree. Repeat until nothing merges or one node is left. If several nodes
    remain, a root ``L{L+1}:0`` is added above them (the authors' code does the same), so classes
    that never merged meet at the root: D_H = 1. With no merge at all the returned tree is that
    flat root over the classes; ``ranking_hierarchy`` is then None (see there).

    Args:
        features: [N, d] training features (PCA space). labels: [N] indices into ``classes``.
        threshold: t in [0, 1] (paper: 0.30 CUB, 0.20 CIFAR-100).
        covariance, shrinkage, ridge: as in ``fit_class_gaussians``. method: as in
            ``bhattacharyya_distance``.
        root: "paper" (default) or "authors": the authors' code always ends with a root above
            the last level, also a one-child root when everything merged into one node, and
            ranks with it even when nothing merged (h_utils.py, ``create_xmeans_hierarchy``
            appends ``{0: all nodes}`` when a level merges nothing).
        threshold_step: level l (0 = the classes) links BC >= t − l·threshold_step; the authors'
            code starts at 0.20 and subtracts 0.05 per level (``margin -= 0.05``), so from the
            fifth level on every pair links. 0 (default): the paper's one t.
    """
    classes = [str(c) for c in classes]
    if len(classes) < 2:
        raise VisualHierarchyError("a hierarchy needs at least 2 classes")
    if not 0.0 <= threshold <= 1.0:
        raise VisualHierarchyError(f"threshold t must be in [0, 1], got {threshold}")
    if root not in ("paper", "authors"):
        raise VisualHierarchyError(f"root must be 'paper' or 'authors', got {root!r}")
    if not (np.isfinite(threshold_step) and threshold_step >= 0):
        raise VisualHierarchyError(f"threshold_step must be finite and >= 0, got {threshold_step}")
    clash = [c for c in classes if re.fullmatch(r"L\d+:\d+", c)]
    if clash:
        raise VisualHierarchyError(f"class names clash with internal node names L<l>:<k>: {clash}")
    x = as_features(features, "features")
    y = as_labels(labels, x.shape[0], len(classes))
    fit = {"covariance": covariance, "shrinkage": shrinkage, "ridge": ridge}
    leaf = fit_class_gaussians(x, y, len(classes), **fit)
    node = np.arange(len(classes))
    levels, assignments, coefficients = [len(classes)], [node], []
    names, edges, gaussians = list(classes), [], leaf
    cut = threshold
    while levels[-1] > 1:
        bc = bhattacharyya_coefficient(gaussians, method=method)
        coefficients.append(bc)
        linked = bc >= cut
        cut -= threshold_step  # subtracted level by level, as the authors' ``margin -= 0.05``
        np.fill_diagonal(linked, False)
        count, parent = connected_components(csr_matrix(linked), directed=False)
        if count == levels[-1]:
            break
        level = len(levels)
        parents = [f"L{level}:{p}" for p in parent]
        edges += list(zip(parents, names, strict=True))
        names = [f"L{level}:{p}" for p in range(count)]
        node = parent[node]
        levels.append(count)
        assignments.append(node)
        if count > 1:
            gaussians = fit_class_gaussians(x, node[y], count, **fit)
    root_added = levels[-1] > 1 or root == "authors"
    if root_added:
        edges += [(f"L{len(levels)}:0", n) for n in names]
    hierarchy = Hierarchy(edges, classes)
    return VisualHierarchy(
        hierarchy,
        tuple(levels),
        tuple(assignments),
        tuple(coefficients),
        root_added,
        float(threshold),
        leaf,
        root,
        float(threshold_step),
    )
