import matplotlib
import pytest

from hierstudy.datasets import DatasetError, HierShapes
from hierstudy.report.plots import plot_examples

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
