"""Figures that show what they hold at a glance: curves that coincide drawn so that both stay
visible, overlap matrices on a log scale with their thresholds marked, agreement matrices whose
cells carry their support, and bars that say how many seeds they average and when a tree merged
nothing (a zero by construction, not an effect)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations

import numpy as np
import pandas as pd

from hierstudy.hierarchy import Hierarchy
from hierstudy.report.plots import heatmap

MARKERS = "osD^vP<>"  # one hollow shape per curve
OUTLINE = "cyan"  # the merge thresholds on the magma map
SAME = {"ls": (0, (3, 2)), "lw": 1.6, "marker": "x", "ms": 4, "zorder": 5}  # a coincident curve


def coincident(curves: Mapping[str, Sequence[float]], *, atol: float = 1e-9) -> dict[str, str]:
    """{label: the first earlier label of ``curves`` whose curve equals it at every point (within
    ``atol``)}; a label that coincides with no earlier curve is absent."""
    same: dict[str, str] = {}
    seen: list[tuple[str, np.ndarray]] = []
    for label, y in curves.items():
        y = np.asarray(y, dtype=np.float64)
        match = next(
            (
                a
                for a, b in seen
                if a not in same and b.shape == y.shape and np.allclose(b, y, rtol=0, atol=atol)
            ),
            None,
        )
        if match is None:
            seen.append((label, y))
        else:
            same[label] = match
    return same


def draw_curves(
    ax,
    x,
    curves: Mapping[str, Sequence[float]],
    colours: Mapping[str, object],
    *,
    atol: float = 1e-9,
    near: float = 0.01,
    yrange: float | None = None,
    linestyles: Mapping[str, str] | None = None,
    markevery: int | None = None,
) -> dict[str, tuple[str, float]]:
    """Plot every curve of ``curves`` (label → y over ``x``, or over its first points for a
    shorter curve) in its colour, with the hollow marker of its place in ``colours`` (the same in
    every panel; curves that nearly meet stay visible). A curve equal to an earlier one
    (:func:`coincident` within ``atol``) is drawn dashed with crosses on top of it, labelled
    "<label> ≡ <earlier>"; one within ``near`` × the panel's y range (``yrange``, default the
    curves' own) of an earlier one (hidden under it at a glance) likewise, labelled "<label> ≈
    <earlier>". ``linestyles``: label → line style (default solid); ``markevery``: matplotlib's,
    for long curves. Returns {label: (earlier, largest |difference|)} of those curves."""
    ys = {label: np.asarray(y, dtype=np.float64) for label, y in curves.items()}
    span = yrange or max(y.max() for y in ys.values()) - min(y.min() for y in ys.values())
    same = coincident(ys, atol=atol)
    close = coincident(ys, atol=max(atol, near * span))  # includes `same`
    partner = {label: same.get(label, earlier) for label, earlier in close.items()}
    order, x = list(colours), np.asarray(x)
    for label, y in ys.items():
        at = x[: len(y)]
        if label in partner:
            name = f"{label} {'≡' if label in same else '≈'} {partner[label]}"
            ax.plot(at, y, color=colours[label], label=name, markevery=markevery, **SAME)
        else:
            marker = MARKERS[order.index(label) % len(MARKERS)]
            style = {"marker": marker, "ms": 4, "mfc": "none", "lw": 1.2, "zorder": 2}
            style |= {"ls": (linestyles or {}).get(label, "-"), "markevery": markevery}
            ax.plot(at, y, color=colours[label], label=label, **style)
    return {
        label: (earlier, float(np.abs(ys[label] - ys[earlier]).max()))
        for label, earlier in partner.items()
    }


def log_overlap(
    matrix,
    ax,
    *,
    thresholds: Sequence[float],
    order=None,
    labels=None,
    floor: float = 1e-4,
    title: str = "",
    axis_label: str = "class",
):
    """A class-by-class Bhattacharyya coefficient matrix as log10(BC) (values below ``floor``
    shown at ``floor``), rows and columns permuted by ``order``, each off-diagonal cell that
    reaches a merge threshold t of ``thresholds`` outlined in cyan (the lowest t dashed, the
    others solid and thicker). Returns the image, for :func:`threshold_colorbar`."""
    from matplotlib.patches import Rectangle

    order = np.arange(len(matrix)) if order is None else np.asarray(order)
    bc = np.asarray(matrix, dtype=np.float64)
    image = heatmap(
        np.log10(np.clip(bc, floor, 1.0)),
        ax,
        order=order,
        labels=labels,
        title=title,
        cmap="magma",
        vmin=np.log10(floor),
        vmax=0,
        axis_label=axis_label,
        fontsize=6,
    )
    bc = bc[np.ix_(order, order)]
    for rank, t in enumerate(sorted(thresholds)):
        style = {"ls": "--", "lw": 0.8} if rank == 0 else {"ls": "-", "lw": 1.0 + 0.4 * rank}
        for i, j in np.argwhere((bc >= t) & ~np.eye(len(bc), dtype=bool)):
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec=OUTLINE, **style))
    return image


def threshold_colorbar(fig, image, ax, thresholds: Sequence[float], **kwargs):
    """The colour bar of :func:`log_overlap` in BC (ticks at powers of ten, at most seven) with a
    cyan line at each threshold t, labelled "t = ..." once."""
    bar = fig.colorbar(image, ax=ax, **kwargs)
    low = int(np.floor(image.norm.vmin))
    powers = range(0, low - 1, -max(1, -(low // 6)))[::-1]
    bar.set_ticks(
        list(powers), labels=[f"$10^{{{p}}}$" if p < -2 else f"{10.0**p:g}" for p in powers]
    )
    for t in thresholds:
        bar.ax.axhline(np.log10(t), color=OUTLINE, lw=1.5)
    bar.ax.text(  # one label: the thresholds lie close together on a log scale
        -0.15,
        np.log10(min(thresholds)),
        "t = " + ", ".join(f"{t:g}" for t in sorted(thresholds)),
        transform=bar.ax.get_yaxis_transform(),
        ha="right",
        va="center",
        fontsize=7,
    )
    bar.set_label("Bhattacharyya coefficient (log scale)")
    return bar


def resolved_in_both(first: Hierarchy, second: Hierarchy) -> float:
    """Share of class triplets that both hierarchies resolve (one pair's LCS strictly the lowest,
    as in :func:`~hierstudy.hierarchy.compare.triplet_agreement`): the support of their triplet
    agreement over the triplets resolved in both. NaN for fewer than 3 classes or other classes."""
    if set(first.classes) != set(second.classes) or len(first.classes) < 3:
        return float("nan")
    order = second.class_indices(first.classes)
    t = np.array(list(combinations(range(len(order)), 3)))
    pairs = [(0, 1), (0, 2), (1, 2)]
    resolved = np.ones(len(t), dtype=bool)
    for h in (first.lcs_height(), second.lcs_height()[np.ix_(order, order)]):
        d = np.stack([h[t[:, a], t[:, b]] for a, b in pairs], axis=1)
        resolved &= (d == d.min(axis=1, keepdims=True)).sum(axis=1) == 1
    return float(resolved.mean())


def support_matrix(trees: Mapping[str, Hierarchy]) -> np.ndarray:
    """[T, T] :func:`resolved_in_both` of every pair of ``trees`` (same classes), in order."""
    names = list(trees)
    m = np.full((len(names), len(names)), np.nan)
    for i, a in enumerate(names):
        for j in range(i, len(names)):
            m[i, j] = m[j, i] = resolved_in_both(trees[a], trees[names[j]])
    return m


def agreement_heatmap(
    ax,
    values,
    labels: Sequence[str],
    *,
    support=None,
    min_support: float = 0.2,
    vmin: float = 0.0,
    vmax: float = 1.0,
):
    """A pairwise agreement matrix ``values`` [T, T] (NaN: undefined, "—"), each cell with its
    value and, given ``support`` [T, T] (share of triplets behind it), that share; a cell backed
    by less than ``min_support`` is greyed out and its value shown in parentheses. Returns the
    image, for the colour bar, and the boolean mask of the cells greyed out."""
    from matplotlib import colormaps

    values = np.asarray(values, dtype=np.float64)
    weak = (
        np.zeros(values.shape, bool) if support is None else ~(np.asarray(support) >= min_support)
    )
    weak &= ~np.isnan(values)
    cmap = colormaps["viridis"].with_extremes(bad="0.88")  # greyed out: undefined or weak
    image = ax.imshow(np.where(weak, np.nan, values), cmap=cmap, vmin=vmin, vmax=vmax)
    for (i, j), v in np.ndenumerate(values):
        if np.isnan(v):
            text, colour = "—", "0.5"
        elif weak[i, j]:
            text, colour = f"({v:.2f})", "0.45"
        else:
            text, colour = f"{v:.2f}", "white" if (v - vmin) / (vmax - vmin) < 0.5 else "black"
        if support is not None and not np.isnan(support[i, j]):
            text += f"\n{support[i, j]:.0%} res."
        ax.text(j, i, text, ha="center", va="center", fontsize=6.5, color=colour)
    ax.set_xticks(range(len(labels)), labels, rotation=40, ha="right", fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.grid(False)
    return image, weak


def seed_bars(
    ax,
    table: pd.DataFrame,
    value: str,
    *,
    series: str,
    colours: Mapping[str, object],
    label: str = "run",
) -> list[str]:
    """Horizontal bars of ``value`` per ``label`` row and ``series`` level of ``table`` (columns
    ``value``, "<value> (std)", "seeds" and "merged": seeds whose tree merged anything), grouped
    by seed count, most seeds first (a dashed line between groups), each row named
    "<row> (n = seeds)"; error bars (± std) only on rows of several seeds; where no seed merged,
    a cross at 0 and "no merge" instead of a bar (the change is zero by construction); where only
    some did, "<level> merged m/n" in the row's name. Returns the rows in the order drawn, top
    to bottom."""
    levels = list(dict.fromkeys(table[series]))
    cells = table.set_index([label, series])
    first = table.drop_duplicates(label).set_index(label)
    rows = sorted(first.index, key=lambda r: -first.loc[r, "seeds"])  # stable: keeps the order
    y, at, previous = {}, 0.0, None
    for r in rows:
        if previous is not None and first.loc[r, "seeds"] != previous:
            at += 0.8  # a gap between groups of different seed counts
            ax.axhline(at - 0.9, color="0.5", lw=0.6, ls="--")
        y[r], previous, at = at, first.loc[r, "seeds"], at + 1
    names = {r: [f"n = {first.loc[r, 'seeds']}"] for r in rows}
    h = 0.8 / len(levels)
    for j, level in enumerate(levels):
        offset = (j - (len(levels) - 1) / 2) * h
        for r in rows:
            if (r, level) not in cells.index:
                continue
            c = cells.loc[(r, level)]
            n, merged, at = int(c["seeds"]), int(c["merged"]), y[r] + offset
            if merged == 0:
                ax.plot(0, at, "x", color=colours[level], ms=6, mew=2)
                ax.text(0, at, "  no merge", va="center", fontsize=6, color=colours[level])
                continue
            error = c[f"{value} (std)"] if n > 1 else None
            ax.barh(at, c[value], height=h, color=colours[level], xerr=error, ecolor="0.2")
            if merged < n:
                names[r].append(f"{level} merged {merged}/{n}")
    ax.set_yticks([y[r] for r in rows], [f"{r} ({', '.join(names[r])})" for r in rows])
    ax.set_ylim(max(y.values()) + 0.7, -0.7)
    ax.axvline(0, color="0.3", lw=0.8)
    return rows


def common_span(axes, *, minimum: float = 0.0) -> float:
    """Give every axis of ``axes`` the same y span (the largest data range among them, 10 %
    padded, at least ``minimum``), each centred on its own data, so that equal slopes mean equal
    changes from panel to panel. Returns the span."""
    axes, ranges = list(axes), []
    for ax in axes:
        y = np.concatenate([np.asarray(line.get_ydata(), dtype=np.float64) for line in ax.lines])
        ranges.append((np.nanmin(y), np.nanmax(y)))
    span = max(minimum, 1.1 * max(high - low for low, high in ranges))
    for ax, (low, high) in zip(axes, ranges, strict=True):
        centre = (low + high) / 2
        ax.set_ylim(centre - span / 2, centre + span / 2)
    return span
