"""Temporary re-export for the notebooks (issue 17)."""

from hierstudy.report.plots import plot_examples  # noqa: F401
