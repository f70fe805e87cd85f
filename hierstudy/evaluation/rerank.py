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

:func:`merging` describes what the merging built, :func:`rankings` gives eq. 6 with each tree the
paper compares (the visual hierarchy, the semantic taxonomy, Ward's tree) and
:class:`RetrievalScores` the measures of its Fig. 2 (mAP@k, k = 1..20), one table row per ranking.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hierstudy import visual_hierarchy as vh
from hierstudy.evaluation import metrics
from hierstudy.geometry import Distance
from hierstudy.hierarchy import Hierarchy, compare

# (t, alpha) of Sec. 4.2: CIFAR-100's, else CUB-200-2011's (the study's default elsewhere)
PAPER_VALUES = {"cifar100": (0.20, 5.0)}
CUB_VALUES = (0.30, 3.0)
PAPER_THRESHOLDS = {0.30: "CUB-200-2011", 0.20: "CIFAR-100"}  # each t of Sec. 4.2: its dataset


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
        shrinkage, ridge: as in ``visual_hierarchy.fit_class_gaussians``.
        root, threshold_step: as in ``visual_hierarchy.build_visual_hierarchy``; pca: the
            ``convention`` of ``visual_hierarchy.fit_pca``; heights: as in
            ``visual_hierarchy.ranking_distance``. Their "authors" values reproduce the authors'
            code (docs/conventions.md, Visual hierarchy); the defaults are the paper's text.

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
        ridge: float = vh.RIDGE,
        root: str = "paper",
        threshold_step: float = 0.0,
        pca: str = "paper",
        heights: str = "edges",
    ) -> None:
        self.threshold, self.covariance = threshold, covariance
        self.variance, self.shrinkage, self.ridge = variance, shrinkage, ridge
        self.root, self.threshold_step = root, threshold_step
        self.pca_convention, self.heights = pca, heights

    def fit(self, features, labels, classes) -> VisualReranker:
        """PCA, class Gaussians and merging on [N, D] training ``features`` with [N] ``labels``
        indexing ``classes`` (the tree's leaf names). Deterministic; returns ``self``."""
        self.classes = [str(c) for c in classes]
        self.pca = vh.fit_pca(features, self.variance, convention=self.pca_convention)
        self.visual = vh.build_visual_hierarchy(
            self.pca.transform(features),
            labels,
            self.classes,
            self.threshold,
            covariance=self.covariance,
            shrinkage=self.shrinkage,
            ridge=self.ridge,
            root=self.root,
            threshold_step=self.threshold_step,
        )
        return self

    @property
    def hierarchy(self) -> Hierarchy | None:
        """The tree of eq. 5, None when nothing merged (then D_H = 0: the cosine ranking)."""
        return self.visual.ranking_hierarchy

    def ward(self) -> Hierarchy:
        """Ward clustering of the class means in the PCA space (the paper's baseline (vi))."""
        return compare.ward_hierarchy(self.visual.gaussians.means, self.classes)

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
                query, items, self.leaves(query), gallery(items), tree, alpha, heights=self.heights
            )

        return eq6

    def hierarchical_distance(self, hierarchy: Hierarchy | str | None = "visual"):
        """D_H alone (eq. 5; the paper's baseline (iii)), a distance like :meth:`distance`'s."""
        tree = self._tree(hierarchy)
        gallery = _LastLeaves(self.leaves)
        return lambda query, items: vh.hierarchical_distance(
            self.leaves(query), gallery(items), tree, heights=self.heights
        )

    def _tree(self, hierarchy: Hierarchy | str | None) -> Hierarchy | None:
        if hierarchy is None or isinstance(hierarchy, Hierarchy):
            return hierarchy
        if hierarchy in ("visual", "ward"):
            return self.hierarchy if hierarchy == "visual" else self.ward()
        raise vh.VisualHierarchyError(
            f"hierarchy must be 'visual', 'ward', a Hierarchy or None, got {hierarchy!r}"
        )


def merging(reranker: VisualReranker, semantic: Hierarchy) -> dict:
    """What the merging of a fitted re-ranker built (Sec. 3.1): its "covariance" and "t" (with the
    "paper" dataset of that t), the "nodes per level" (the classes first), the "nodes at level 1",
    the "merge levels", whether a root was added above several unmerged nodes, the tree's
    "height", and its ``compare.agreement`` with the ``semantic`` taxonomy."""
    v = reranker.visual
    return {
        "covariance": reranker.covariance,
        "t": reranker.threshold,
        "paper": PAPER_THRESHOLDS.get(reranker.threshold, ""),
        "nodes per level": " → ".join(map(str, v.levels)),
        "nodes at level 1": v.levels[min(1, len(v.levels) - 1)],
        "merge levels": len(v.levels) - 1,
        "root added": v.root_added,
        "height": v.hierarchy.max_height,
        **compare.agreement(v.hierarchy, semantic),
    }


def rankings(
    reranker: VisualReranker, alpha: float, semantic: Hierarchy
) -> dict[str, tuple[str, float, Distance]]:
    """eq. 6 with each tree of Fig. 2: {"cosine + α·D_H (<tree>)": (tree, alpha, distance)} for
    the fitted visual hierarchy (the method), the semantic taxonomy (baseline (vii)) and Ward's
    tree of the class means (baseline (vi)), in that order."""
    trees = {"visual": "visual", "semantic": semantic, "Ward": "ward"}
    return {
        f"cosine + α·D_H ({name})": (name, alpha, reranker.distance(alpha, tree))
        for name, tree in trees.items()
    }


@dataclass(frozen=True)
class RetrievalScores:
    """The measures of Fig. 2 for rankings of one test set, every image querying all the others
    (relevant = same class; ``metrics.retrieval_metrics``).

    ``scores(features, metric)`` gives the columns "mAP", "mAP@k" (k = the last of ``map_ks``),
    "mAP@k (÷k)", "R@1", "mAHP@K" and the curves "map_at_k" and "map_at_k_divk" over ``map_ks``.
    The paper gives mAP@k no normalisation (Sec. 4.3): "mAP@k" is the classical
    Σ_{i≤k} P@i·rel_i / min(k, R), "÷k" the authors' code's, the same sum over k
    (docs/ambiguities.md). mAHP@K is Barz & Denzler (WACV 2019), eq. 11, graded by the semantic
    taxonomy's s_G (their eq. 2).
    """

    labels: np.ndarray  # [N] class indices of the test images
    semantic: Hierarchy  # the taxonomy the labels index (mAHP@K; baseline (vii) of eq. 6)
    K: int  # mAHP@K
    map_ks: tuple[int, ...]  # the k of the mAP@k curves

    @classmethod
    def of(cls, labels, semantic: Hierarchy, k_max: int = 20, K: int = 250) -> RetrievalScores:
        """mAP@k for k = 1..k_max and mAHP@K, both capped at the database size (N - 1)."""
        K = min(K, len(labels) - 1)
        return cls(np.asarray(labels), semantic, K, tuple(range(1, min(k_max, K) + 1)))

    def __call__(self, features, metric: str | Distance) -> dict:
        m = metrics.retrieval_metrics(
            features,
            self.labels,
            similarity=self.semantic.similarity(),
            metric=metric,
            K=self.K,
            recall_ks=(1,),
            map_ks=self.map_ks,
        )
        top = self.map_ks[-1]
        return {
            "mAP": m["map"],
            f"mAP@{top}": m["map_at_k"][top],
            f"mAP@{top} (÷k)": m["map_at_k_divk"][top],
            "R@1": m["recall"][1],
            f"mAHP@{self.K}": m["mahp"],
            "map_at_k": [m["map_at_k"][k] for k in self.map_ks],
            "map_at_k_divk": [m["map_at_k_divk"][k] for k in self.map_ks],
        }

    def rows(self, features, variants: dict, **columns) -> list[dict]:
        """One row per ranking of ``features``: ``variants`` maps a name to (tree, alpha,
        metric), as :func:`rankings` does; ``columns`` (e.g. ``corruption="none"``) follow
        "variant", "hierarchy" and "alpha"."""
        return [
            {"variant": name, "hierarchy": tree, "alpha": a, **columns, **self(features, metric)}
            for name, (tree, a, metric) in variants.items()
        ]


class _LastLeaves:
    """The leaves of the last gallery seen: the metrics hand a distance the same gallery tensor
    with every chunk of queries, so its leaves are computed once."""

    def __init__(self, leaves) -> None:
        self.leaves, self.gallery, self.value = leaves, None, None

    def __call__(self, gallery: torch.Tensor) -> np.ndarray:
        if gallery is not self.gallery:
            self.gallery, self.value = gallery, self.leaves(gallery)
        return self.value
