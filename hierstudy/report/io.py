"""The only way notebooks write results: figures, tables and metrics with provenance.

Every file lands in ``figures/<profile>/`` under the notebook's prefix (``01_stats.csv``), is
written atomically (temporary file + ``os.replace``: an interrupted run never leaves half a file)
and carries provenance (profile, dataset, seed, git commit, package version, and for outputs made
from runs the commit their weights were trained at, if given). Nothing in it
depends on the clock, so rerunning a notebook gives byte-identical tables.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import re
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

import matplotlib

from hierstudy import __version__
from hierstudy.config import Profile, project_root
from hierstudy.files import atomic_write

STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "font.size": 9,
    "svg.hashsalt": "hierstudy",
    "pdf.compression": 6,
}


def use_style() -> None:
    """Apply the study's shared matplotlib style, and show floats in tables to three significant
    digits (:func:`hierstudy.report.display.table_format`)."""
    from hierstudy.report.display import table_format

    matplotlib.rcParams.update(STYLE)
    table_format()


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The commit of the working tree, ``+dirty`` when tracked files differ from it (``unknown``
    outside git). The study's own outputs — ``figures/`` and the README it rewrites — do not
    count: a rerun rewrites them notebook by notebook while the code stays at the commit."""

    def git(*args):
        return subprocess.run(
            ["git", *args], cwd=project_root(), capture_output=True, text=True, timeout=10
        )

    try:
        head, status = (
            git("rev-parse", "--short=12", "HEAD"),
            git(
                "status",
                "--porcelain",
                "-uno",
                "--",
                ".",
                ":(exclude)figures",
                ":(exclude)README.md",
            ),
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    if head.returncode != 0:
        return "unknown"
    return head.stdout.strip() + ("+dirty" if status.stdout.strip() else "")


def provenance(
    profile: Profile,
    dataset: str | None = None,
    seed: int | str | None = None,
    weights: str | Iterable | None = None,
):
    """The stamp every output carries. ``weights``: the runs (:class:`hierstudy.runs.Run`) the
    output is made from, or the commit their weights were trained at, stamped as ``weights``
    besides the ``commit`` the output is drawn at; by default the runs this process has trained
    or loaded so far (:func:`hierstudy.runs.used_runs`; none: no ``weights``)."""
    stamp = {
        "profile": profile.name,
        "dataset": dataset or profile.dataset,
        "seed": "-" if seed is None else seed,
        "commit": git_commit(),
        "hierstudy": __version__,
    }
    if weights is None:
        from hierstudy.runs import used_runs  # torch: only where runs were used

        weights = used_runs() or None
    if weights is not None:
        stamp["weights"] = weights if isinstance(weights, str) else trained_at(weights)
    return stamp


def trained_at(runs: Iterable) -> str:
    """The commits the runs' weights were trained at (``+dirty``: their training source differed;
    ``unknown``: not recorded), `` (stale)`` if a run was reused although other code made it."""
    runs = list(runs)
    made = {(r.record.commit or "unknown") + ("+dirty" if r.record.dirty else "") for r in runs}
    return " ".join(sorted(made)) + (" (stale)" if any(r.stale for r in runs) else "")


# always looked up, besides the dependencies hierstudy's installed metadata names (which may be
# missing or stale in a source checkout); opencv comes as either wheel
LIBRARIES = (
    "numpy",
    "scipy",
    "pandas",
    "matplotlib",
    "scikit-learn",
    "torch",
    "torchvision",
    "timm",
    "pytorch-metric-learning",
    "grad-cam",
    "opencv-python",
    "opencv-python-headless",
    "umap-learn",
    "nltk",
    "papermill",
    "jupytext",
)


def library_versions() -> dict[str, str]:
    """Installed versions of hierstudy's dependencies and optional extras (not the dev tools)."""
    from importlib import metadata

    try:
        requires = metadata.requires("hierstudy") or []
    except metadata.PackageNotFoundError:
        requires = []
    names = {
        re.match(r"[A-Za-z0-9._-]+", r).group(0) for r in requires if 'extra == "dev"' not in r
    }
    versions = {}
    for name in sorted(names.union(LIBRARIES), key=str.lower):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass  # an optional extra or the other opencv wheel
    return versions


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def environment(device: str = "cpu") -> dict:
    """Python, platform, torch, the device's name (GPU or CPU model) and the library versions."""
    import torch

    if str(device).startswith("cuda") and torch.cuda.is_available():
        name = f"{torch.cuda.get_device_name(torch.device(device))}, CUDA {torch.version.cuda}"
    else:
        name = f"{_cpu_name()}, {os.cpu_count()} logical cores, {torch.get_num_threads()} threads"
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "device": str(device),
        "device_name": name,
        "libraries": library_versions(),
    }


def stamp_text(stamp: Mapping[str, object]) -> str:
    return ", ".join(f"{k} {v}" for k, v in stamp.items())


class FigureError(ValueError):
    """A figure a reader cannot read: an axis without a label, a heatmap without a colour bar."""


def _labelled(ax, which: str) -> bool:
    """The x or y axis of ``ax`` says what it shows: a label (its own, a shared sibling's or the
    figure's sup-label) or categorical tick labels (class names, method names)."""
    fig = ax.get_figure(root=True)
    sup = getattr(fig, f"_sup{which}label", None)
    siblings = getattr(ax, f"get_shared_{which}_axes")().get_siblings(ax)
    if (sup is not None and sup.get_text()) or any(
        getattr(a, f"get_{which}label")() for a in siblings
    ):
        return True
    ticks = [t.get_text() for t in getattr(ax, f"get_{which}ticklabels")()]

    def number(text: str) -> bool:
        try:
            float(text.replace("\N{MINUS SIGN}", "-").strip("$").replace("{", "").replace("}", ""))
        except ValueError:
            return "^" in text  # mathtext powers: 10^{2}
        return True

    return any(t and not number(t) for t in ticks)


def check_figure(fig, name: str) -> None:
    """Refuse a figure with a plotted axis that says nothing of what it shows (see
    :func:`_labelled`; axes turned off and image panels — RGB pictures — need none) or a heatmap
    (``imshow`` / ``pcolormesh`` of a matrix) without a colour bar: its own, or one of the figure
    with the same colour map and limits."""
    from matplotlib.collections import QuadMesh

    axes = [a for a in fig.axes if a.get_visible() and a.get_label() != "<colorbar>"]
    mappables = [m for a in axes for m in (*a.images, *a.collections) if isinstance(m, QuadMesh)]
    mappables += [m for a in axes for m in a.images if m.get_array().ndim == 2]
    barred = [a._colorbar.mappable for a in fig.axes if a.get_label() == "<colorbar>"]

    def scale(m):
        return m.get_cmap().name, m.norm.vmin, m.norm.vmax

    problems = [
        f"a heatmap in {m.axes.get_title() or 'an untitled panel'!r} has no colour bar"
        for m in mappables
        if m.colorbar is None and scale(m) not in {scale(b) for b in barred}
    ]
    for ax in axes:
        pictures = any(i.get_array().ndim == 3 for i in ax.images)
        if ax.axison and ax.has_data() and not pictures:
            problems += [
                f"the {w} axis of {ax.get_title() or 'an untitled panel'!r} has no label"
                for w in ("x", "y")
                if not _labelled(ax, w)
            ]
    if problems:
        raise FigureError(
            f"figure {name}: {'; '.join(problems)} (set_xlabel / set_ylabel, fig.colorbar; "
            "save_figure(..., unchecked='why') for a figure that needs neither)"
        )


def save_figure(
    fig, name: str, profile: Profile, *, dataset=None, seed=None, weights=None, unchecked: str = ""
) -> Path:
    """Save ``fig`` as ``figures/<profile>/<name>.png`` and ``.pdf`` with a provenance footer
    (``weights``: see :func:`provenance`), after :func:`check_figure` unless ``unchecked`` says
    why the figure needs no axis labels or colour bars."""
    import io

    if not unchecked:
        check_figure(fig, name)
    stamp = provenance(profile, dataset, seed, weights)
    fig.text(0.995, -0.01, stamp_text(stamp), ha="right", va="top", fontsize=6, alpha=0.6)  # below
    target = profile.figures_dir / f"{name}.png"
    for fmt, metadata in (
        ("png", {"Software": None, "Description": stamp_text(stamp)}),
        (
            "pdf",
            {"Creator": None, "Producer": None, "CreationDate": None, "Subject": stamp_text(stamp)},
        ),
    ):
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt, metadata=metadata)
        atomic_write(target.with_suffix(f".{fmt}"), buffer.getvalue())
    return target


def save_table(
    table, name: str, profile: Profile, *, dataset=None, seed=None, floatfmt=".4f", weights=None
):
    """Save a DataFrame as ``<name>.csv`` and ``<name>.md`` (markdown with a provenance line)."""
    stamp = provenance(profile, dataset, seed, weights)
    target = profile.figures_dir / f"{name}.csv"
    csv = table.to_csv(index=False, float_format="%.6g")
    markdown = (
        f"{table.to_markdown(index=False, floatfmt=floatfmt)}\n\n<sub>{stamp_text(stamp)}</sub>\n"
    )
    atomic_write(target, csv.encode())
    atomic_write(target.with_suffix(".md"), markdown.encode())
    return target


def save_metrics(
    metrics: Mapping[str, object],
    name: str,
    profile: Profile,
    *,
    dataset=None,
    seed=None,
    weights=None,
):
    """Save headline numbers as ``<name>.json`` (sorted keys, provenance under ``_provenance``)."""
    payload = {"_provenance": provenance(profile, dataset, seed, weights), **metrics}
    target = profile.figures_dir / f"{name}.json"
    atomic_write(
        target, (json.dumps(payload, indent=2, sort_keys=True, default=float) + "\n").encode()
    )
    return target


def load_metrics(name: str, profile: Profile) -> dict:
    """Read back what :func:`save_metrics` wrote."""
    path = profile.figures_dir / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: run the notebook that writes it first")
    return json.loads(path.read_text())
