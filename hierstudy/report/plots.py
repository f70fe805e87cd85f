"""Plots shared by several notebooks: hierarchy drawings, class-by-class heatmaps (on a log scale
for errors; side by side on one shared scale for affinities), the Poincaré disk of HIER's proxies
at their true radii, a grid of example images per branch of a dataset's hierarchy, and class
activation maps over their images with the boxes and BoxAcc against the CAM threshold."""

from __future__ import annotations

import numpy as np

from hierstudy.datasets.base import DatasetError, HierDataset
from hierstudy.evaluation.localisation import (
    IOU_THRESHOLDS,
    KFR_POINT,
    box_iou,
    cam_boxes,
    cam_thresholds,
)
from hierstudy.geometry import C
from hierstudy.hierarchy import Hierarchy


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
    names: dict[str, str] | None = None,
    color_labels: bool = False,
) -> None:
    """Draw a hierarchy left to right: root at x = 0, classes on the right, labelled.

    Inner nodes down to ``label_depth`` are labelled too; ``colors`` maps class → colour (of its
    dot, and of its label with ``color_labels``); ``names`` maps node → label instead of
    ``hierarchy.label``.
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
                (names or {}).get(node, hierarchy.label(node)).split(".")[0],
                fontsize=fontsize,
                va="center",
                ha="left",
                color=(colors or {}).get(node) if color_labels else None,
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
    axis_label: str = "class",
    fontsize: float = 5,
):
    """A class-by-class matrix, rows and columns permuted by ``order`` (e.g. ``leaf_order()``),
    both axes labelled ``axis_label`` (class names at ``fontsize`` up to 40 classes); returns the
    image, for its colour bar."""
    order = np.arange(len(matrix)) if order is None else np.asarray(order)
    image = ax.imshow(
        matrix[np.ix_(order, order)], cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest"
    )
    if labels is not None and len(order) <= 40:
        names = [labels[i] for i in order]
        ax.set_xticks(range(len(order)), names, rotation=90, fontsize=fontsize)
        ax.set_yticks(range(len(order)), names, fontsize=fontsize)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    ax.grid(False)
    ax.set(title=title, xlabel=axis_label, ylabel=axis_label)
    return image


def log_abs_heatmap(
    matrix: np.ndarray,
    ax,
    *,
    order=None,
    title: str = "",
    cmap: str = "magma",
    vmin=None,
    vmax=None,
):
    """:func:`heatmap` of log10 |``matrix``| (colour limits ``vmin``, ``vmax`` in log10), for
    errors whose scale is the point (e.g. rounding noise of ~1e-16, which a linear diverging map
    shows as structure); exact zeros (log = −∞) are drawn white and the title says so. Returns the
    image, for its colour bar."""
    import matplotlib

    with np.errstate(divide="ignore"):
        values = np.log10(np.abs(np.asarray(matrix, dtype=float)))
    exact = np.isneginf(values)
    values[exact] = np.nan  # drawn in the map's "bad" colour
    if exact.any():
        title = f"{title}\n(white: exactly 0, {exact.mean():.0%} of entries)"
    colours = matplotlib.colormaps[cmap].with_extremes(bad="white")
    return heatmap(values, ax, order=order, title=title, cmap=colours, vmin=vmin, vmax=vmax)


def affinity_panels(
    fig, axes, matrices: dict, *, order, names, groups, label: str, group_name: str = "family"
):
    """Class-by-class matrices (``title: [K, K]``) side by side on ONE colour scale, 0 to 1, with
    one colour bar labelled ``label``, class ``names`` on the ticks and, right of each matrix, a
    sidebar coloured by ``groups`` (one per class, named ``group_name``) with its legend. ``order``
    permutes the classes (e.g. ``leaf_order()``). ``fig`` needs the constrained layout (the
    legend goes below the panels). Returns the shared image norm's (vmin, vmax)."""
    from matplotlib.patches import Patch

    palette = group_colours(groups)
    order = np.asarray(order)
    for ax, (title, matrix) in zip(axes, matrices.items(), strict=True):
        image = heatmap(matrix, ax, order=order, labels=names, title=title, vmin=0, vmax=1)
        ax.scatter(
            np.full(len(order), len(order) - 0.5 + 0.8),
            np.arange(len(order)),
            c=[palette[groups[i]] for i in order],
            marker="s",
            s=14,
            clip_on=False,
        )
    bar = fig.colorbar(image, ax=list(axes), shrink=0.8)
    bar.set_label(label)
    handles = [Patch(color=colour, label=g) for g, colour in palette.items()]
    fig.legend(
        handles=handles, loc="outside lower left", ncol=len(handles), title=f"sidebar: {group_name}"
    )
    return image.norm.vmin, image.norm.vmax


def group_colours(groups, cmap: str = "Dark2") -> dict:
    """group → colour of the qualitative map ``cmap``, in order of first appearance (cycled)."""
    import matplotlib

    colours = matplotlib.colormaps[cmap].colors
    return {g: colours[i % len(colours)] for i, g in enumerate(dict.fromkeys(groups))}


def disk_coordinates(points, angles, c: float = C) -> np.ndarray:
    """[N, 2] positions in the unit disk of ``points`` [N, D] of the Poincaré ball of curvature
    −``c``: radius ‖z‖·√c (the point's true norm relative to the ball's radius 1/√c, so the
    distance to the origin, 2/√c·artanh(‖z‖√c), is exact), at the given ``angles`` [N]."""
    radius = np.linalg.norm(np.asarray(points, dtype=float), axis=1) * np.sqrt(c)
    return radius[:, None] * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def direction_angles(points, seed: int = 0) -> np.ndarray:
    """[N] angles for :func:`disk_coordinates`: UMAP of the points' directions z/‖z‖ (cosine
    distance) into the plane, each point's angle about the layout's centre. Only an arrangement:
    points of similar direction get similar angles."""
    import umap

    x = np.asarray(points, dtype=float)
    directions = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    mapper = umap.UMAP(metric="cosine", random_state=seed, init="random", n_jobs=1)
    layout = mapper.fit_transform(directions)
    layout -= layout.mean(axis=0)
    return np.arctan2(layout[:, 1], layout[:, 0])


def poincare_disk(
    ax,
    z,
    labels: np.ndarray,
    proxies,
    *,
    c: float = C,
    names=None,
    link_every: int = 10,
    seed: int = 0,
    legend: bool = True,
) -> np.ndarray:
    """The view of Kim et al. (HIER, CVPR 2023), Figs. 3 and 4, with the true radii: samples
    ``z`` [N, D] (coloured by class, ``names[k]`` in the legend) and their *ancestor* proxies
    (each sample's nearest proxy of smaller norm,
    :func:`~hierstudy.proxy_tree.nearest_smaller_proxy`) at radius ‖z‖·√c in the unit disk
    (:func:`disk_coordinates`; the ball's boundary drawn, circles of radius 0.25, 0.5, 0.75
    dotted) and at the angle of :func:`direction_angles`; thin grey links join every
    ``link_every``-th sample to its ancestor. Returns the indices of the ancestor proxies."""
    import matplotlib.pyplot as plt
    import torch

    from hierstudy.proxy_tree import nearest_smaller_proxy

    z, proxies = torch.as_tensor(z).double(), torch.as_tensor(proxies).double()
    labels = np.asarray(labels)
    parent = nearest_smaller_proxy(z, proxies, c=c)
    used = np.unique(parent[parent >= 0])
    points = torch.cat([z, proxies[used]]).numpy()
    disk = disk_coordinates(points, direction_angles(points, seed), c)
    ax.add_patch(plt.Circle((0, 0), 1, fill=False, color="0.2", lw=1))
    for r in (0.25, 0.5, 0.75):
        ax.add_patch(plt.Circle((0, 0), r, fill=False, color="0.8", lw=0.5, ls=":"))
        ax.text(0, r, f"{r:g}", fontsize=5, color="0.5", ha="center", va="bottom")
    ax.text(0, 1.01, "‖z‖√c = 1 (boundary)", fontsize=5, color="0.3", ha="center", va="bottom")
    where = {p: len(z) + i for i, p in enumerate(used)}
    for i in np.flatnonzero(parent >= 0)[::link_every]:
        ax.plot(*disk[[i, where[parent[i]]]].T, color="0.6", lw=0.25, alpha=0.4, zorder=1)
    colours = group_colours(range(int(labels.max()) + 1), "tab20")
    for k in np.unique(labels):
        name = str(k) if names is None else names[k]
        at = disk[: len(z)][labels == k]
        ax.scatter(*at.T, color=colours[k], s=5, zorder=2, label=name)
    ax.scatter(
        *disk[len(z) :].T,
        c="deeppink",
        edgecolors="k",
        linewidths=0.3,
        s=40,
        marker="*",
        zorder=3,
        label="ancestor proxy",
    )
    ax.set(aspect="equal", xlim=(-1.05, 1.05), ylim=(-1.05, 1.08))
    if legend:
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=6, frameon=False)
    ax.set_axis_off()
    return used


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


def draw_box(ax, box, **style) -> None:
    """An unfilled box ``(x0, y0, x1, y1)`` (continuous pixel edges, exclusive ends) over an image
    drawn by ``imshow``, which puts pixel centres on integers; ``style``: matplotlib's."""
    from matplotlib.patches import Rectangle

    x0, y0, x1, y1 = box
    ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, lw=1.2, **style))


def cam_panel(ax, image, boxes, cam=None, *, point: tuple[float, float] = KFR_POINT) -> None:
    """A panel of Zhao et al. (KFR, 2024), Fig. 4: ``image`` [H, W, 3] with its ground-truth
    ``boxes`` [k, 4] (green) and, given a map ``cam`` [H, W] in [0, 1], the map over it (jet, red
    = high) and, dashed white, its contour box at τ that overlaps a ground-truth box most
    (:func:`~hierstudy.evaluation.localisation.cam_boxes`), titled with that IoU (✓ when ≥ δ:
    localised) or "empty" (no box at τ); ``point`` = (τ, δ), KFR's by default."""
    tau, delta = point
    ax.imshow(image)
    if cam is not None:
        ax.imshow(cam, cmap="jet", alpha=0.5, vmin=0, vmax=1)
    for box in boxes:
        draw_box(ax, box, color="lime")
    ax.set(xticks=[], yticks=[])
    ax.grid(False)
    if cam is None:
        return
    found = cam_boxes(cam, tau)
    if not cam.any() or not len(found):
        ax.set_title("empty", fontsize=6)
        return
    iou = box_iou(found, boxes).max(axis=1)
    draw_box(ax, found[iou.argmax()], color="white", ls="--")
    ax.set_title(f"IoU {iou.max():.2f}{' ✓' if iou.max() >= delta else ''}", fontsize=6)


def cam_grid(rows, shown, titles, *, point: tuple[float, float] = KFR_POINT):
    """Zhao et al. (KFR, 2024), Fig. 4: one row of :func:`cam_panel` per ``(name, images, maps)``
    of ``rows`` on the images ``shown`` (indices), ``images`` a
    :class:`~hierstudy.datasets.selection.ScoredImages` and ``maps`` [N, H, W] their CAMs (None:
    the images with their boxes only, titled with ``titles``, one per column), with the maps'
    colour bar. Returns a new constrained-layout Figure (not registered with pyplot)."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1.2 * len(shown) + 0.6, 1.3 * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), len(shown), squeeze=False)
    for row, (name, images, maps) in zip(axes, rows, strict=True):
        row[0].set_ylabel(name, fontsize=6)
        for ax, i, title in zip(row, shown, titles, strict=True):
            cam = None if maps is None else maps[i]
            cam_panel(ax, images.display(i), images.boxes[i], cam, point=point)
            if maps is None:
                ax.set_title(title, fontsize=6)
    if any(maps is not None for _, _, maps in rows):  # cam_panel draws maps on jet, 0 to 1
        bar = fig.colorbar(ScalarMappable(Normalize(0, 1), "jet"), ax=axes, shrink=0.6, aspect=30)
        bar.set_label("Grad-CAM", fontsize=6)
        bar.ax.tick_params(labelsize=5)
    return fig


def boxacc_curves(best: dict, *, dotted=(), tau: float = KFR_POINT[0]):
    """BoxAcc(τ, δ) against the CAM threshold τ, one panel per δ of MaxBoxAccV2 (Choe et al.
    (CVPR 2020)): one curve per ``label: iou`` of ``best``, ``iou`` [N, T] the largest IoU per
    image at each τ of :func:`~hierstudy.evaluation.localisation.cam_thresholds`
    (:func:`~hierstudy.evaluation.localisation.best_iou`), whose share ≥ δ is BoxAcc; the labels
    in ``dotted`` (references) dotted grey; a dotted line at ``tau`` (KFR's). Returns a new Figure
    (not registered with pyplot) with the legend below the panels."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 3.4))
    axes = fig.subplots(1, len(IOU_THRESHOLDS), sharey=True)
    taus = cam_thresholds()
    for ax, delta in zip(axes, IOU_THRESHOLDS, strict=True):
        for label, iou in best.items():
            style = {"ls": ":", "color": "0.3"} if label in dotted else {}
            ax.plot(taus, (iou >= delta).mean(axis=0), lw=1.1, label=label, **style)
        ax.axvline(tau, color="0.5", ls=":", lw=0.8)
        ax.set(xlabel="CAM threshold τ", title=f"δ = {round(100 * delta)} %", ylim=(0, 1))
    axes[0].set_ylabel("BoxAcc(τ, δ)")
    handles = axes[0].get_legend_handles_labels()
    ncol = min(len(best), 6)
    fig.legend(*handles, loc="lower center", ncol=ncol, fontsize=7, bbox_to_anchor=(0.5, -0.02))
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig
