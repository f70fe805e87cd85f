"""Everything the notebooks write and how their tables read: files with provenance
(:mod:`.io`), findings and tables as a notebook shows them (:mod:`.display`), the cells of tables
over seeds (:mod:`.tables`), shared plots (:mod:`.plots`), figure aids that keep overlaps and
weak support visible (:mod:`.legible`), the central table in words (:mod:`.central`) and the
claims ledger (:mod:`.claims`, its registry :mod:`.claims_registry`); the last five imported on
their own (``from hierstudy.report import plots``)."""

from hierstudy.report.display import findings, readable
from hierstudy.report.io import (
    LIBRARIES,
    STYLE,
    FigureError,
    check_figure,
    environment,
    git_commit,
    library_versions,
    load_metrics,
    provenance,
    save_figure,
    save_metrics,
    save_table,
    stamp_text,
    use_style,
)
from hierstudy.report.tables import (
    MISSING,
    PairedDifference,
    json_records,
    mean_std,
    paired_by_seed,
)

__all__ = [
    "LIBRARIES",
    "MISSING",
    "STYLE",
    "FigureError",
    "PairedDifference",
    "check_figure",
    "environment",
    "findings",
    "git_commit",
    "json_records",
    "library_versions",
    "load_metrics",
    "mean_std",
    "paired_by_seed",
    "provenance",
    "readable",
    "save_figure",
    "save_metrics",
    "save_table",
    "stamp_text",
    "use_style",
]
