"""Temporary re-export for the notebooks (issue 17)."""

from .datasets.study_splits import (
    StudyData,
    evaluation_set,
    hiershapes_splits,
    splits,
    study_data,
    tensors,
)
from .methods import hier_proxies
from .runs import (
    SNAPSHOT_IMAGES,
    Run,
    datasets_with_runs,
    finished_runs,
    run_name,
    snapshots,
    train,
)
from .setups import setup_for

__all__ = [
    "SNAPSHOT_IMAGES",
    "Run",
    "StudyData",
    "datasets_with_runs",
    "evaluation_set",
    "finished_runs",
    "hier_proxies",
    "hiershapes_splits",
    "run_name",
    "setup_for",
    "snapshots",
    "splits",
    "study_data",
    "tensors",
    "train",
]
