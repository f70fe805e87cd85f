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

__all__ = [
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
