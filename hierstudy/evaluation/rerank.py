"""Hierarchy-aware re-ranking of a classifier's retrieval (Venkataramanan et al., ICVS 2023).

:class:`VisualReranker` fits the paper's visual hierarchy on training features — PCA keeping 95 %
of the variance (Sec. 3), one Gaussian per class, Bhattacharyya merging at a threshold t (eq. 1-2,
Sec. 3.1) — and ranks by D = D_C + alpha * D_H (eq. 6): the cosine distance of the features plus
alpha times the height of the two images' leaves' lowest common ancestor over the tree's height
(eq. 5). An image's leaf is the class of smallest Mahalanobis distance to its features (eq. 4), so
D is a function of two feature matrices: :meth:`VisualReranker.distance` plugs into
``metrics.retrieval_metrics`` and ``metrics.nearest_neighbours`` like any other distance, the
leaves computed from the rows it is given (never from labels). The geometry is
:mod:`hierstudy.visual_hierarchy`; this module only assembles it.
"""

from __future__ import annotations

import numpy as np
import torch

from hierstudy import visual_hierarchy as vh
from hierstudy.hierarchy import Hierarchy

# (t, alpha) of Sec. 4.2: CIFAR-100's, else CUB-200-2011's (the study's default elsewhere)
PAPER_VALUES = {"cifar100": (0.20, 5.0)}
CUB_VALUES = (0.30, 3.0)


def paper_values(dataset: str) -> tuple[float, float]:
    """The paper's (t, alpha) for ``dataset``: (0.20, 5) on CIFAR-100, else CUB's (0.30, 3)."""
    return PAPER_VALUES.get(dataset, CUB_VALUES)


class VisualReranker:
    """The visual hierarchy of a classifier's training features, and eq. 6's distance.

    Args:
        threshold: t, the Bhattacharyya coefficient at which two nodes merge.
        covariance: "class" (the paper: per-class, Ledoit-Wolf shrunk) or "pooled" (the authors'
            code: every class shares the covariance of all samples).
        variance: the PCA keeps the fewest axes explaining this share of the variance.
        shrinkage: as in ``visual_hierarchy.fit_class_gaussians``.

    After :meth:`fit`: ``pca`` (``PCAProjection``), ``visual`` (``VisualHierarchy``: the tree,
    its levels, the leaf Gaussians) and ``classes``.
    """

    def __init__(
        self,
        threshold: float = CUB_VALUES[0],
        *,
        covariance: str = "class",
        variance: float = 0.95,
        shrinkage: str | float = "ledoit-wolf",
    ) -> None:
        self.threshold, self.covariance = threshold, covariance
        self.variance, self.shrinkage = variance, shrinkage

    def fit(self, features, labels, classes) -> VisualReranker:
        """PCA, class Gaussians and merging on [N, D] training ``features`` with [N] ``labels``
        indexing ``classes`` (the tree's leaf names). Deterministic; returns ``self``."""
        self.classes = [str(c) for c in classes]
        self.pca = vh.fit_pca(features, self.variance)
        self.visual = vh.build_visual_hierarchy(
            self.pca.transform(features),
            labels,
            self.classes,
            self.threshold,
            covariance=self.covariance,
            shrinkage=self.shrinkage,
        )
        return self

    @property
    def hierarchy(self) -> Hierarchy | None:
        """The tree of eq. 5, None when nothing merged (then D_H = 0: the cosine ranking)."""
        return self.visual.ranking_hierarchy

    def ward(self) -> Hierarchy:
        """Ward clustering of the class means in the PCA space (the paper's baseline (vi))."""
        return vh.ward_hierarchy(self.visual.gaussians.means, self.classes)

    def leaves(self, features) -> np.ndarray:
        """[N] leaf (class index) of each row of [N, D] ``features``: eq. 4 in the PCA space."""
        return vh.assign_leaves(self.pca.transform(features), self.visual.gaussians)

    def distance(self, alpha: float, hierarchy: Hierarchy | str | None = "visual"):
        """eq. 6, ``distance(query [q, D], gallery [G, D]) -> [q, G]``, D_C + alpha * D_H.

        ``hierarchy``: "visual" (the fitted tree), "ward" (:meth:`ward`), or any tree over the
        same classes (e.g. the semantic taxonomy, baseline (vii)); None gives D_H = 0. The leaves
        of both sides come from their features; the gallery's are computed once per gallery.
        """
        tree = self._tree(hierarchy)
        gallery = _LastLeaves(self.leaves)

        def eq6(query: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
            return vh.ranking_distance(
                query, items, self.leaves(query), gallery(items), tree, alpha
            )

        return eq6

    def hierarchical_distance(self, hierarchy: Hierarchy | str | None = "visual"):
        """D_H alone (eq. 5; the paper's baseline (iii)), a distance like :meth:`distance`'s."""
        tree = self._tree(hierarchy)
        gallery = _LastLeaves(self.leaves)
        return lambda query, items: vh.hierarchical_distance(
            self.leaves(query), gallery(items), tree
        )

    def _tree(self, hierarchy: Hierarchy | str | None) -> Hierarchy | None:
        if hierarchy is None or isinstance(hierarchy, Hierarchy):
            return hierarchy
        if hierarchy in ("visual", "ward"):
            return self.hierarchy if hierarchy == "visual" else self.ward()
        raise vh.VisualHierarchyError(
            f"hierarchy must be 'visual', 'ward', a Hierarchy or None, got {hierarchy!r}"
        )


class _LastLeaves:
    """The leaves of the last gallery seen: the metrics hand a distance the same gallery tensor
    with every chunk of queries, so its leaves are computed once."""

    def __init__(self, leaves) -> None:
        self.leaves, self.gallery, self.value = leaves, None, None

    def __call__(self, gallery: torch.Tensor) -> np.ndarray:
        if gallery is not self.gallery:
            self.gallery, self.value = gallery, self.leaves(gallery)
        return self.value
