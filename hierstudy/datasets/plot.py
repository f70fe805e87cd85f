"""A grid of example images per branch of a dataset's class hierarchy, with the boxes drawn."""

from __future__ import annotations

import numpy as np

from hierstudy.datasets.base import DatasetError, HierDataset


def plot_examples(
    dataset: HierDataset,
    per_branch: int = 6,
    depth: int = 2,
    seed: int = 0,
    fig=None,
    box_colour: str = "lime",
):
    """One row per hierarchy node at ``depth`` (1 = children of the root), ``per_branch`` images
    of that node's classes in it (its classes taken in turn, images drawn with ``seed``), each
    titled with its class name and its ground-truth boxes drawn. Returns the matplotlib Figure
    (``fig`` if given, else a new constrained-layout one, not registered with pyplot).
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    h = dataset.hierarchy
    branches = [n for n, d in zip(h.nodes, h.depths, strict=True) if d == depth]
    if not branches or per_branch < 1:
        raise DatasetError(
            f"nothing to plot: {len(branches)} nodes at depth {depth}, per_branch={per_branch}"
        )
    ancestors = [set(h.ancestors(c)) for c in h.classes]
    below = {n: [k for k, a in enumerate(ancestors) if n in a] for n in branches}
    branches.sort(key=lambda n: min(below[n], default=len(h.classes)))
    rng = np.random.default_rng(seed)
    # each class's images in a seeded random order, taken in turn: no repeats while they last
    order = np.lexsort((rng.random(len(dataset.labels)), dataset.labels))
    counts = np.bincount(dataset.labels, minlength=len(h.classes))
    by_class = np.split(order, np.cumsum(counts)[:-1])
    if fig is None:
        size = (1.3 * per_branch + 1.5, 1.35 * len(branches))
        fig = Figure(figsize=size, layout="constrained")
    axes = fig.subplots(len(branches), per_branch, squeeze=False)
    for row, node in zip(axes, branches, strict=True):
        classes = [k for k in below[node] if len(by_class[k])]
        for column, ax in enumerate(row):
            ax.set_xticks([])
            ax.set_yticks([])
            if column == 0:
                ax.set_ylabel(h.label(node), rotation=0, ha="right", va="center", fontsize=8)
            if not classes:
                continue
            label = classes[column % len(classes)]
            turn = column // len(classes)
            i = int(by_class[label][turn % len(by_class[label])])
            ax.imshow(dataset.image(i))
            for x0, y0, x1, y1 in dataset.image_boxes(i):
                # pixel j spans [j - 0.5, j + 0.5] in imshow coordinates
                ax.add_patch(
                    Rectangle(
                        (x0 - 0.5, y0 - 0.5),
                        x1 - x0,
                        y1 - y0,
                        fill=False,
                        edgecolor=box_colour,
                        linewidth=1.0,
                    )
                )
            ax.set_title(dataset.classes[label].split("/")[-1], fontsize=6)
    return fig
