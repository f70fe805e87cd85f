import matplotlib
import numpy as np
import pytest
import torch

from hierstudy.datasets import DatasetError, HierShapes
from hierstudy.datasets.selection import ScoredImages
from hierstudy.evaluation.localisation import cam_thresholds
from hierstudy.hierarchy import Hierarchy
from hierstudy.report.io import check_figure
from hierstudy.report.plots import (
    affinity_panels,
    boxacc_curves,
    cam_grid,
    cam_panel,
    disk_coordinates,
    draw_tree,
    log_abs_heatmap,
    plot_examples,
    poincare_disk,
)

matplotlib.use("Agg")

SIZE = 32


def test_plot_examples_draws_one_row_per_branch_with_boxes():
    ds = HierShapes(None, "val", image_size=SIZE, n_per_class=1, cache=False)
    fig = plot_examples(ds, per_branch=3, depth=1)
    axes = fig.axes
    assert len(axes) == 3 * 3
    assert [axes[3 * r].get_ylabel() for r in range(3)] == [
        "round shapes",
        "angular shapes",
        "line-art shapes",
    ]
    assert all(len(ax.images) == 1 and len(ax.patches) == 1 for ax in axes)
    assert axes[0].get_title() == "red-solid" and axes[1].get_title() == "orange-solid"
    with pytest.raises(DatasetError, match="nothing to plot"):
        plot_examples(ds, depth=7)


def test_cam_panel_draws_the_boxes_and_titles_the_best_iou_at_tau():
    from matplotlib.figure import Figure

    image, boxes = np.zeros((20, 20, 3)), np.array([[0.0, 0.0, 10.0, 10.0]])
    cam = np.zeros((20, 20))
    cam[0:10, 0:8] = 1.0  # a box (0, 0, 8, 10): IoU 0.8 with the ground truth
    axes = Figure().subplots(1, 3)
    cam_panel(axes[0], image, boxes, cam)
    cam_panel(axes[1], image, boxes, np.zeros((20, 20)))
    cam_panel(axes[2], image, boxes)
    assert axes[0].get_title() == "IoU 0.80 ✓" and len(axes[0].images) == 2
    green, found = axes[0].patches  # ground truth, then the best box, dashed
    assert (green.get_x(), green.get_width()) == (-0.5, 10) and found.get_width() == 8
    assert found.get_linestyle() == "--"
    assert axes[1].get_title() == "empty" and len(axes[1].patches) == 1
    assert axes[2].get_title() == "" and len(axes[2].images) == 1 and len(axes[2].patches) == 1
    cam_panel(axes[0], image, boxes, cam, point=(0.15, 0.9))
    assert axes[0].get_title() == "IoU 0.80"  # below δ = 0.9: not localised


def test_cam_grid_and_boxacc_curves_lay_out_one_panel_per_row_and_column():
    boxes = [np.array([[0.0, 0.0, 4.0, 4.0]])] * 3
    images = ScoredImages(
        np.arange(3), torch.zeros(3, 3, 8, 8, dtype=torch.uint8), [0, 1, 2], boxes
    )
    maps = np.random.default_rng(0).random((3, 8, 8))
    fig = cam_grid([("images", images, None), ("model", images, maps)], [0, 2], ["a", "c"])
    assert len(fig.axes) == 5 and [ax.get_title() for ax in fig.axes[:2]] == ["a", "c"]
    assert fig.axes[4].get_label() == "<colorbar>" and fig.axes[4].get_ylabel() == "Grad-CAM"
    assert fig.axes[0].get_ylabel() == "images" and fig.axes[2].get_ylabel() == "model"
    assert all(t.startswith(("IoU", "empty")) for t in (ax.get_title() for ax in fig.axes[2:4]))
    taus = cam_thresholds()  # best IoU per image and τ: 0.6; 0.6 below τ = 0.5, then 0.2; 0
    m = np.stack([np.full(len(taus), 0.6), np.where(taus < 0.5, 0.6, 0.2), np.zeros(len(taus))])
    fig = boxacc_curves({"m": m, "ref": np.zeros((3, len(taus)))}, dotted=["ref"])
    assert [ax.get_title() for ax in fig.axes] == ["δ = 30 %", "δ = 50 %", "δ = 70 %"]
    m, ref, kfr = fig.axes[1].lines  # δ = 0.5
    np.testing.assert_array_equal(m.get_xdata(), taus)
    np.testing.assert_allclose(m.get_ydata(), np.where(taus < 0.5, 2 / 3, 1 / 3))
    assert not fig.axes[2].lines[0].get_ydata().any()  # δ = 0.7: none
    assert list(kfr.get_xdata()) == [0.15, 0.15]  # KFR's τ
    assert ref.get_linestyle() == ":" and not ref.get_ydata().any()


def test_affinity_panels_share_one_colour_scale_and_one_colour_bar():
    from matplotlib.figure import Figure

    fig = Figure(layout="constrained")
    axes = fig.subplots(1, 2)
    small = np.array([[0.09, 0.01, 0.0], [0.01, 0.08, 0.02], [0.0, 0.02, 0.07]])
    shown = {"a": small, "b": 10 * small}  # on their own scales both would look the same
    limits = affinity_panels(
        fig, axes, shown, order=[2, 0, 1], names=["x", "y", "z"], groups=["F", "F", "G"], label="s"
    )
    assert limits == (0, 1)
    assert [(im.norm.vmin, im.norm.vmax) for ax in axes for im in ax.images] == [(0, 1), (0, 1)]
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 1 and bars[0].get_ylabel() == "s"
    assert [t.get_text() for t in axes[0].get_yticklabels()] == ["z", "x", "y"]
    np.testing.assert_array_equal(
        axes[1].images[0].get_array(), 10 * small[np.ix_([2, 0, 1], [2, 0, 1])]
    )
    sidebar = axes[0].collections[0].get_facecolors()  # z is G, x and y are F
    assert (sidebar[1] == sidebar[2]).all() and not (sidebar[0] == sidebar[1]).all()
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["F", "G"]
    check_figure(fig, "affinity")


def test_log_abs_heatmap_shows_the_orders_of_magnitude_and_exact_zeros_apart():
    from matplotlib.figure import Figure

    ax = Figure().subplots()
    error = np.array([[0.0, 1e-16], [-1e-3, 2e-16]])
    image = log_abs_heatmap(error, ax, title="E")
    shown = image.get_array()
    assert shown.mask[0, 0] and not shown.mask[1:, :].any()
    np.testing.assert_allclose([shown[0, 1], shown[1, 0]], [-16, -3])
    assert ax.get_title() == "E\n(white: exactly 0, 25% of entries)"
    assert tuple(image.get_cmap().get_bad()) == (1.0, 1.0, 1.0, 1.0)
    fixed = log_abs_heatmap(error, Figure().subplots(), vmin=-18, vmax=0)
    assert (fixed.norm.vmin, fixed.norm.vmax) == (-18, 0)


def test_the_disk_draws_every_point_at_its_true_norm():
    c = 0.1
    angles = np.array([0.0, np.pi / 2, np.pi])
    points = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 1.0], [0.5, 0.5, 0.5]])
    xy = disk_coordinates(points, angles, c)
    np.testing.assert_allclose(np.hypot(*xy.T), np.linalg.norm(points, axis=1) * np.sqrt(c))
    np.testing.assert_allclose(np.arctan2(xy[:, 1], xy[:, 0]), angles, atol=1e-12)


def test_poincare_disk_puts_samples_and_ancestor_proxies_at_their_true_radii():
    from matplotlib.figure import Figure

    c, rng = 0.1, np.random.default_rng(0)
    directions = rng.normal(size=(40, 8))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    z = 1.9 * directions  # every sample at norm 1.9: radius 0.60 of the ball's 1/sqrt(c)
    labels = np.repeat([0, 1], 20)
    proxies = np.stack([1.0 * directions[0], 1.5 * directions[25], 2.5 * directions[1]])
    ax = Figure().subplots()
    used = poincare_disk(ax, z, labels, proxies, c=c, names=["a", "b"])
    assert len(used) and set(used) <= {0, 1}  # the proxy of norm 2.5 is no sample's ancestor
    a, b, stars = (col.get_offsets() for col in ax.collections)
    np.testing.assert_allclose(np.hypot(*np.vstack([a, b]).T), 1.9 * np.sqrt(c))
    np.testing.assert_allclose(
        np.hypot(*stars.T), np.linalg.norm(proxies[used], axis=1) * np.sqrt(c)
    )
    labels_shown = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels_shown == ["a", "b", "ancestor proxy"]
    assert 1.0 in [p.radius for p in ax.patches]  # the ball's boundary


def test_draw_tree_takes_names_and_colours_the_labels():
    from matplotlib.figure import Figure

    h = Hierarchy([("r", "a"), ("r", "b")], ["a", "b"])
    ax = Figure().subplots()
    draw_tree(h, ax, label_depth=-1, colors={"a": "red"}, names={"a": "Alpha"}, color_labels=True)
    texts = {t.get_text(): t.get_color() for t in ax.texts}
    assert texts == {"Alpha": "red", "b": matplotlib.rcParams["text.color"]}
