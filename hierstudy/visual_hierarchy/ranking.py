"""The hierarchy-aware ranking distance D = D_C + α·D_H: Venkataramanan et al. (ICVS 2023),
eqs. 3, 5 and 6."""

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


def hierarchical_distance(query_leaves, gallery_leaves, hierarchy: Hierarchy | None):
    """[Q, G] D_H = height(LCA(n_q, n_i)) / height(H) (eq. 5), float32.

    Leaves are indices into ``hierarchy.classes``. When nothing merged the paper's tree is the
    bare leaves, of height 0, and eq. 5 is 0/0: ``hierarchy=None`` (or ``max_height == 0``) gives
    D_H = 0, so that eq. 6 falls back to the cosine distance.
    """
    q, g = as_leaves(query_leaves, hierarchy), as_leaves(gallery_leaves, hierarchy)
    table = _height_fraction(hierarchy, torch.float32)
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
) -> torch.Tensor:
    """[Q, G] D = D_C + alpha * D_H (eq. 6), float32 (float64 for float64 features).

    D_C on the given features (eq. 3), D_H between the assigned leaves (eq. 5; see
    ``hierarchical_distance`` for ``hierarchy=None``); computed ``chunk`` query rows at a time.
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
    table = _height_fraction(hierarchy, dtype)
    out = torch.empty(len(q), len(g), dtype=dtype)
    for s in range(0, len(q), chunk):
        out[s : s + chunk] = 1 - qn[s : s + chunk] @ gn.T
        if table is not None:
            out[s : s + chunk] += alpha * table[ql[s : s + chunk, None], gl[None, :]]
    return out


def _height_fraction(hierarchy: Hierarchy | None, dtype) -> torch.Tensor | None:
    """[K, K] height(LCS) / height(H), or None for no hierarchy or one of height 0."""
    if hierarchy is None or hierarchy.max_height == 0:
        return None
    return torch.from_numpy(hierarchy.lcs_height() / hierarchy.max_height).to(dtype)
