"""Temporary re-export for the notebooks (issue 17)."""

from hierstudy.report.plots import draw_tree, heatmap, poincare_disk, tree_layout  # noqa: F401
