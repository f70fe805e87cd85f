"""Temporary re-export for the notebooks (issue 17)."""

from hierstudy.evaluation.metrics import (  # noqa: F401
    MetricError,
    accuracy,
    balanced_accuracy,
    hierarchical_distance_at_k,
    mistake_severity,
    nearest_neighbours,
    retrieval_metrics,
)
