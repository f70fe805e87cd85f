"""The hierarchy that HIER's proxies imply: does HIER discover the class taxonomy?

HIER (Kim et al. (HIER, CVPR 2023); docs/hier.md) trains its proxies to act as lowest common
ancestors, and ancestors sit nearer the origin of the Poincaré ball than their descendants. The
paper shows this only qualitatively (UMAP with ancestor links, Fig. 3-4). The study reads a tree
off the proxies with the rule its Fig. 3 draws: every point hangs from its nearest proxy of
smaller norm. This is the study's own analysis, not a procedure of the paper.

:func:`proxy_tree` reads the tree off given points; :func:`hier_proxy_tree` off a finished
``hier`` run (its trained proxies and training features).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .geometry import C, pairwise_distance
from .hierarchy import Hierarchy
from .runs import Run, RunError

TREE_SAMPLES = 4000  # training samples (a seeded draw when more) that vote for the classes' parents


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


def hier_proxy_tree(run: Run, classes: Sequence[str]) -> Hierarchy:
    """:func:`proxy_tree` of a finished ``hier`` run: its trained proxies (``run.loss("hier")``)
    and the embedding of its training samples, at most ``TREE_SAMPLES`` of them (the sorted first
    ``TREE_SAMPLES`` of ``numpy.random.default_rng(0).permutation``), in the run's ball.
    ``classes``: the names of its training classes, in label order. A HIERsph run (no ball: its
    proxies all have norm 1, the smaller-norm rule does not apply) raises :class:`RunError`."""
    if len(classes) != run.record.train_classes:
        raise RunError(
            f"run {run.name!r} trained on {run.record.train_classes} classes, got {len(classes)}"
        )
    if run.record.recipe.curvature is None:
        raise RunError(f"run {run.name!r} has no Poincaré ball to read a proxy tree in")
    with torch.no_grad():
        proxies = run.loss("hier").proxy_points().double()
    train = run.features("train")
    keep = np.sort(np.random.default_rng(0).permutation(len(train["labels"]))[:TREE_SAMPLES])
    samples = torch.from_numpy(train["embedding"][keep]).double()
    return proxy_tree(samples, train["labels"][keep], proxies, classes, run.record.recipe.curvature)
