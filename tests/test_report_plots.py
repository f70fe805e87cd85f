import matplotlib
import numpy as np
import pytest
import torch

from hierstudy.datasets import DatasetError, HierShapes
from hierstudy.datasets.selection import ScoredImages
from hierstudy.evaluation.localisation import cam_thresholds
from hierstudy.report.plots import boxacc_curves, cam_grid, cam_panel, plot_examples

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
