"""The hierarchy that HIER's proxies imply: does HIER discover the class taxonomy?

HIER (Kim et al. (HIER, CVPR 2023); docs/hier.md) trains its proxies to act as lowest common
ancestors, and ancestors sit nearer the origin of the Poincaré ball than their descendants. The
paper shows this only qualitatively (UMAP with ancestor links, Fig. 3-4). The study reads a tree
off the proxies with the rule its Fig. 3 draws: every point hangs from its nearest proxy of
smaller norm. This is the study's own analysis, not a procedure of the paper.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .geometry import C, pairwise_distance
from .hierarchy import Hierarchy


def nearest_smaller_proxy(points: torch.Tensor, proxies: torch.Tensor, c: float = C) -> np.ndarray:
    """[N] index of the nearest proxy (hyperbolic distance) of smaller norm than each point; -1
    when no proxy is nearer the origin. points [N, D], proxies [P, D] in the ball."""
    d = pairwise_distance(points.double(), proxies.double(), c)
    smaller = proxies.double().norm(dim=1)[None, :] < points.double().norm(dim=1)[:, None]
    d = torch.where(smaller, d, torch.full_like(d, torch.inf))
    parent = d.argmin(dim=1).numpy()
    parent[~smaller.any(dim=1).numpy()] = -1
    return parent


def proxy_tree(
    samples: torch.Tensor,
    labels: np.ndarray,
    proxies: torch.Tensor,
    classes: Sequence[str],
    c: float = C,
) -> Hierarchy:
    """A tree over ``classes``: proxies hang from their nearest smaller-norm proxy (the proxy
    nearest the origin is the root); a class hangs from the proxy that most of its samples hang
    from; proxies above no class are pruned. samples [N, D], labels [N] in 0..len(classes)-1."""
    labels = np.asarray(labels)
    root = int(proxies.norm(dim=1).argmin())
    parent = nearest_smaller_proxy(proxies, proxies, c)
    edges = [(f"p{parent[p]}", f"p{p}") for p in range(len(proxies)) if p != root]
    sample_parent = nearest_smaller_proxy(samples, proxies, c)
    sample_parent[sample_parent < 0] = root
    for k, name in enumerate(classes):
        votes = np.bincount(sample_parent[labels == k], minlength=len(proxies))
        edges.append((f"p{int(votes.argmax())}", name))
    return Hierarchy(edges, list(classes)).restrict(list(classes))
