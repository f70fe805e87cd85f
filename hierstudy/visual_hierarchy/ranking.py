"""The hierarchy-aware ranking distance D = D_C + α·D_H: Venkataramanan et al. (ICVS 2023),
eqs. 3, 5 and 6.

``heights="ete3"`` is the authors' height (vaishwarya96/Hierarchy-image-retrieval,
hierarchy_utils/img_retrieval.py, ``HierarchyRetrieval.get_height``): ete3's
``get_distance(leaf, topology_only=True)`` counts the nodes strictly between a node and a leaf,
so an inner node's height is its edge height − 1 (leaves 0). Classes merged at the first level
then have D_H = 0, and a tree of height 1 (nothing merged, one root) divides by zero there
(ZeroDivisionError); here that raises ``VisualHierarchyError`` (docs/conventions.md).
"""

from __future__ import annotations

import numpy as np
import torch

from hierstudy.hierarchy import Hierarchy

from ._inputs import VisualHierarchyError, as_leaves, as_torch_features


# -------------------------------------------------------------------------------- ranking
def cosine_distance(query, gallery) -> torch.Tensor:
    """[Q, G] D_C = 1 - cos(x_q, x_i) (eq. 3); a zero vector is at distance 1."""
    q, g = as_torch_features(query, "query"), as_torch_features(gallery, "gallery")
    if q.shape[1] != g.shape[1]:
        raise VisualHierarchyError(f"query has {q.shape[1]} dimensions, gallery {g.shape[1]}")
    return 1 - torch.nn.functional.normalize(q, dim=1) @ torch.nn.functional.normalize(g, dim=1).T


def hierarchical_distance(
    query_leaves, gallery_leaves, hierarchy: Hierarchy | None, *, heights: str = "edges"
):
    """[Q, G] D_H = height(LCA(n_q, n_i)) / height(H) (eq. 5), float32.

    Leaves are indices into ``hierarchy.classes``. When nothing merged the paper's tree is the
    bare leaves, of height 0, and eq. 5 is 0/0: ``hierarchy=None`` (or ``max_height == 0``) gives
    D_H = 0, so that eq. 6 falls back to the cosine distance. ``heights``: "edges" (the paper)
    or "ete3" (the authors' code, see the module docstring).
    """
    q, g = as_leaves(query_leaves, hierarchy), as_leaves(gallery_leaves, hierarchy)
    table = _height_fraction(hierarchy, torch.float32, heights)
    return torch.zeros(len(q), len(g)) if table is None else table[q[:, None], g[None, :]]


def ranking_distance(
    query_feats,
    gallery_feats,
    query_leaves,
    gallery_leaves,
    hierarchy: Hierarchy | None,
    alpha: float,
    *,
    chunk: int = 4096,
    heights: str = "edges",
) -> torch.Tensor:
    """[Q, G] D = D_C + alpha * D_H (eq. 6), float32 (float64 for float64 features).

    D_C on the given features (eq. 3), D_H between the assigned leaves (eq. 5; see
    ``hierarchical_distance`` for ``hierarchy=None`` and ``heights``); computed ``chunk`` query
    rows at a time.
    Sort each row ascending to rank the gallery.
    """
    if not (np.isfinite(alpha) and alpha >= 0):
        raise VisualHierarchyError(f"alpha must be finite and >= 0, got {alpha}")
    q, g = as_torch_features(query_feats, "query"), as_torch_features(gallery_feats, "gallery")
    ql, gl = as_leaves(query_leaves, hierarchy), as_leaves(gallery_leaves, hierarchy)
    if len(ql) != len(q) or len(gl) != len(g):
        raise VisualHierarchyError(
            f"{len(q)} query features but {len(ql)} leaves, {len(g)} gallery features but "
            f"{len(gl)} leaves"
        )
    if q.shape[1] != g.shape[1]:
        raise VisualHierarchyError(f"query has {q.shape[1]} dimensions, gallery {g.shape[1]}")
    dtype = torch.promote_types(q.dtype, torch.float32)
    qn = torch.nn.functional.normalize(q.to(dtype), dim=1)
    gn = torch.nn.functional.normalize(g.to(dtype), dim=1)
    table = _height_fraction(hierarchy, dtype, heights)
    out = torch.empty(len(q), len(g), dtype=dtype)
    for s in range(0, len(q), chunk):
        out[s : s + chunk] = 1 - qn[s : s + chunk] @ gn.T
        if table is not None:
            out[s : s + chunk] += alpha * table[ql[s : s + chunk, None], gl[None, :]]
    return out


def _height_fraction(hierarchy: Hierarchy | None, dtype, heights: str) -> torch.Tensor | None:
    """[K, K] height(LCS) / height(H), or None for no hierarchy or one of height 0."""
    if heights not in ("edges", "ete3"):
        raise VisualHierarchyError(f"heights must be 'edges' or 'ete3', got {heights!r}")
    if hierarchy is None or hierarchy.max_height == 0:
        return None
    lcs, top = np.asarray(hierarchy.lcs_height(), dtype=np.float64), hierarchy.max_height
    if heights == "ete3":  # nodes strictly between: edge height − 1 on inner nodes, 0 on leaves
        lcs, top = np.maximum(lcs - 1, 0), top - 1
        if top == 0:
            raise VisualHierarchyError(
                "heights='ete3' on a tree of height 1 (nothing merged) is 0/0: the authors' "
                "code raises ZeroDivisionError there"
            )
    return torch.from_numpy(lcs / top).to(dtype)
