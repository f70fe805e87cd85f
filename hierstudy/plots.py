"""Plots shared by several notebooks: hierarchy drawings and class-by-class heatmaps."""

from __future__ import annotations

import numpy as np

from .hierarchy import Hierarchy


def tree_layout(hierarchy: Hierarchy) -> dict[str, tuple[float, float]]:
    """(x = depth, y) positions: classes evenly spaced in depth-first order, parents centred.

    A DAG is drawn through each node's first parent (its other edges are drawn too, dashed).
    """
    y: dict[str, float] = {}
    order = [hierarchy.classes[i] for i in hierarchy.leaf_order()]
    for position, c in enumerate(order):
        y[c] = float(position)
    for node in sorted(hierarchy.nodes, key=hierarchy.height):
        if node not in y:
            kids = [y[k] for k in hierarchy.children(node) if k in y]
            y[node] = float(np.mean(kids)) if kids else 0.0
    return {n: (float(hierarchy.depth(n)), y[n]) for n in hierarchy.nodes}


def draw_tree(
    hierarchy: Hierarchy,
    ax,
    *,
    label_classes: bool = True,
    label_depth: int = 2,
    colors: dict[str, str] | None = None,
    fontsize: float = 6,
) -> None:
    """Draw a hierarchy left to right: root at x = 0, classes on the right, labelled.

    Inner nodes down to ``label_depth`` are labelled too; ``colors`` maps class → colour.
    """
    pos = tree_layout(hierarchy)
    for parent, child in hierarchy.edges():
        (x0, y0), (x1, y1) = pos[parent], pos[child]
        first = hierarchy.parents(child)[0] == parent
        ax.plot([x0, x0, x1], [y0, y1, y1], color="0.55", lw=0.6, ls="-" if first else ":")
    for node, (x, y) in pos.items():
        is_class = node in hierarchy.class_index
        ax.plot(x, y, "o", ms=2.5 if is_class else 2, color=(colors or {}).get(node, "0.2"))
        if (is_class and label_classes) or (not is_class and hierarchy.depth(node) <= label_depth):
            ax.text(
                x + 0.15,
                y,
                hierarchy.label(node).split(".")[0],
                fontsize=fontsize,
                va="center",
                ha="left",
            )
    ax.set_axis_off()
    ax.invert_yaxis()


def heatmap(
    matrix: np.ndarray,
    ax,
    *,
    order: np.ndarray | None = None,
    labels=None,
    title: str = "",
    cmap: str = "viridis",
    vmin=None,
    vmax=None,
):
    """A class-by-class matrix, rows and columns permuted by ``order`` (e.g. ``leaf_order()``)."""
    order = np.arange(len(matrix)) if order is None else np.asarray(order)
    image = ax.imshow(
        matrix[np.ix_(order, order)], cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest"
    )
    if labels is not None and len(order) <= 40:
        names = [labels[i] for i in order]
        ax.set_xticks(range(len(order)), names, rotation=90, fontsize=5)
        ax.set_yticks(range(len(order)), names, fontsize=5)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    ax.grid(False)
    ax.set_title(title)
    return image


def poincare_disk(
    ax,
    z,
    labels: np.ndarray,
    proxies,
    *,
    c: float = 0.1,
    link_every: int = 3,
    seed: int = 0,
    legend: bool = True,
) -> np.ndarray:
    """HIER's Fig. 3 / 4 view: UMAP of samples ``z`` [N, D] and of their *ancestor* proxies (each
    sample's nearest proxy of smaller norm, :func:`~hierstudy.proxy_tree.nearest_smaller_proxy`),
    the Poincaré distance at curvature ``c`` as input metric and a hyperbolic output space drawn
    as the Poincaré disk; grey links join every ``link_every``-th sample to its ancestor.
    Returns the indices of the ancestor proxies drawn."""
    import matplotlib.pyplot as plt
    import torch
    import umap

    from .geometry import pairwise_distance
    from .proxy_tree import nearest_smaller_proxy

    z, proxies = torch.as_tensor(z).double(), torch.as_tensor(proxies).double()
    parent = nearest_smaller_proxy(z, proxies, c=c)
    used = np.unique(parent[parent >= 0])
    points = torch.cat([z, proxies[used]])
    distances = pairwise_distance(points, points, c=c).numpy()
    mapper = umap.UMAP(
        metric="precomputed", output_metric="hyperboloid", random_state=seed, init="random"
    )
    emb = mapper.fit_transform(distances)
    disk = emb / (1 + np.sqrt(1 + (emb**2).sum(1, keepdims=True)))  # hyperboloid -> Poincaré disk
    ax.add_patch(plt.Circle((0, 0), 1, fill=False, color="0.6"))
    where = {p: len(z) + i for i, p in enumerate(used)}
    for i in np.flatnonzero(parent >= 0)[::link_every]:
        ax.plot(*disk[[i, where[parent[i]]]].T, color="0.75", lw=0.4, zorder=1)
    ax.scatter(*disk[: len(z)].T, c=labels, cmap="tab20", s=6, zorder=2)
    ax.scatter(
        *disk[len(z) :].T, c="deeppink", s=30, marker="*", zorder=3, label="ancestor proxies"
    )
    ax.set(aspect="equal", xlim=(-1.05, 1.05), ylim=(-1.05, 1.05))
    if legend:
        ax.legend(loc="lower right")
    ax.set_axis_off()
    return used
