"""Checks of the visual-hierarchy functions' inputs, with errors that say what is wrong."""

from __future__ import annotations

import numpy as np
import torch

from hierstudy.hierarchy import Hierarchy


class VisualHierarchyError(ValueError):
    """Bad input to a visual-hierarchy function."""


# ------------------------------------------------------------------------------ validation
def as_features(values, what: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise VisualHierarchyError(f"{what} must be a non-empty [N, d] array, got {x.shape}")
    if not np.isfinite(x).all():
        raise VisualHierarchyError(f"{what} contain NaN or infinite values")
    return np.ascontiguousarray(x)


def as_torch_features(values, what: str) -> torch.Tensor:
    x = values if isinstance(values, torch.Tensor) else torch.as_tensor(np.asarray(values))
    if x.ndim != 2 or not x.is_floating_point():
        raise VisualHierarchyError(f"{what} must be a floating [N, d] array, got {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise VisualHierarchyError(f"{what} contain NaN or infinite values")
    return x.detach().cpu()


def as_labels(values, n: int, n_classes: int | None) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    y = np.asarray(values)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise VisualHierarchyError(f"labels must be {n} integers, got {y.dtype} {y.shape}")
    limit = n_classes if n_classes is not None else y.max() + 1
    if y.min() < 0 or y.max() >= limit:
        raise VisualHierarchyError(f"labels must lie in [0, {limit}), got [{y.min()}, {y.max()}]")
    return y.astype(np.int64)


def as_leaves(values, hierarchy: Hierarchy | None) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    y = np.asarray(values)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise VisualHierarchyError(f"leaves must be a 1-D integer array, got {y.dtype} {y.shape}")
    limit = len(hierarchy.classes) if hierarchy is not None else np.iinfo(np.int64).max
    if len(y) and (y.min() < 0 or y.max() >= limit):
        raise VisualHierarchyError(f"leaves must index the {limit} classes of the hierarchy")
    return torch.from_numpy(y.astype(np.int64))
