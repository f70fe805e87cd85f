"""Visual hierarchies from class overlap, and hierarchy-aware retrieval ranking: Venkataramanan
et al. (ICVS 2023), "Integrating Visual and Semantic Similarity Using Hierarchies for Image
Retrieval".

* :mod:`.gaussians`: PCA, one Gaussian per class, Bhattacharyya distance and coefficient
  (eqs. 1, 2), leaf assignment by Mahalanobis distance (eq. 4);
* :mod:`.merging`: bottom-up merging of the classes whose coefficient reaches t (Sec. 3.1);
* :mod:`.ranking`: D = D_C + α·D_H (eqs. 3, 5, 6).

Ward's tree of the class means (baseline (vi)) and the agreement of two hierarchies are in
:mod:`hierstudy.hierarchy.compare`, the image corruptions of the robustness study (Sec. 3.3, 4.2)
in :mod:`hierstudy.datasets.corruptions`; :class:`hierstudy.evaluation.rerank.VisualReranker`
puts the pieces together.
"""

from ._inputs import VisualHierarchyError
from .gaussians import (
    RIDGE,
    ClassGaussians,
    PCAProjection,
    assign_leaves,
    bhattacharyya_coefficient,
    bhattacharyya_distance,
    fit_class_gaussians,
    fit_pca,
    mahalanobis_distances,
)
from .merging import VisualHierarchy, build_visual_hierarchy
from .ranking import cosine_distance, hierarchical_distance, ranking_distance

# Every convention of the authors' code (vaishwarya96/Hierarchy-image-retrieval, main_img_retrieval.py
# and the functions it calls; docs/conventions.md), as ``rerank.VisualReranker`` keyword arguments:
# their PCA, one covariance of all samples (no ridge), t = 0.20 falling by 0.05 per level, a root
# always on top and ete3's heights. Not options: their ranking by D_H alone (0·D_C + 1·D_H) and
# their fit of the hierarchy on the test set.
AUTHORS = {
    "pca": "authors",
    "covariance": "pooled",
    "ridge": 0.0,
    "threshold": 0.20,
    "threshold_step": 0.05,
    "root": "authors",
    "heights": "ete3",
}

__all__ = [
    "AUTHORS",
    "RIDGE",
    "ClassGaussians",
    "PCAProjection",
    "VisualHierarchy",
    "VisualHierarchyError",
    "assign_leaves",
    "bhattacharyya_coefficient",
    "bhattacharyya_distance",
    "build_visual_hierarchy",
    "cosine_distance",
    "fit_class_gaussians",
    "fit_pca",
    "hierarchical_distance",
    "mahalanobis_distances",
    "ranking_distance",
]
