import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from toy_hierarchies import TWO_BY_TWO, random_hierarchy

from hierstudy.hierarchy import Hierarchy, compare
from hierstudy.report import check_figure, legible

matplotlib.use("Agg")

FLAT = Hierarchy([("r", f"c{i}") for i in range(4)])
PAIR_01 = Hierarchy([("r", "a"), ("a", "c0"), ("a", "c1"), ("r", "c2"), ("r", "c3")])
PAIR_23 = Hierarchy([("r", "c0"), ("r", "b"), ("b", "c3"), ("b", "c2"), ("r", "c1")])


def test_coincident_finds_equal_curves_and_only_those():
    x = np.linspace(0, 1, 5)
    curves = {"a": x, "b": x + 1e-3, "c": x.copy(), "d": x + 1e-12, "e": x + 1e-3}
    assert legible.coincident(curves) == {"c": "a", "d": "a", "e": "b"}
    assert legible.coincident({"a": x, "b": x[:3]}) == {}


def test_draw_curves_draws_equal_and_near_curves_dashed_on_top_and_labels_them():
    ax = Figure().subplots()
    x = np.arange(4.0)
    curves = {"visual": x, "cosine": x.copy(), "ward": x + 0.02, "sem": x + 0.5}
    colours = dict.fromkeys(["euclid", "visual", "cosine", "ward", "sem"], "k")
    marked = legible.draw_curves(ax, x, curves, colours)  # y range 3.5: "near" is 0.035
    assert marked == {"cosine": ("visual", 0.0), "ward": ("visual", pytest.approx(0.02))}
    lines = {line.get_label(): line for line in ax.lines}
    assert set(lines) == {"visual", "cosine ≡ visual", "ward ≈ visual", "sem"}
    top = lines["cosine ≡ visual"]
    assert top.get_linestyle() == "--" and top.get_zorder() > lines["visual"].get_zorder()
    assert lines["visual"].get_marker() == "s" and lines["sem"].get_marker() == "v"  # by colours
    ax = Figure().subplots()
    assert legible.draw_curves(ax, x, curves, colours, near=0) == {"cosine": ("visual", 0.0)}
    ax = Figure().subplots()  # on an axis of range 1, 0.02 is not hidden
    assert legible.draw_curves(ax, x, curves, colours, yrange=1) == {"cosine": ("visual", 0.0)}
    ax = Figure().subplots()  # a shorter curve: over the first points of x
    assert legible.draw_curves(ax, x, {"visual": x, "sem": x[:2]}, colours) == {}
    assert ax.lines[1].get_xdata().tolist() == [0.0, 1.0]


def test_resolved_in_both_is_the_share_both_trees_resolve():
    assert legible.resolved_in_both(TWO_BY_TWO, TWO_BY_TWO) == compare.resolved_triplets(TWO_BY_TWO)
    assert legible.resolved_in_both(TWO_BY_TWO, FLAT) == 0.0
    # each resolves half of the four triplets, never the same ones: no support at all
    assert compare.resolved_triplets(PAIR_01) == compare.resolved_triplets(PAIR_23) == 0.5
    assert legible.resolved_in_both(PAIR_01, PAIR_23) == 0.0
    assert legible.resolved_in_both(PAIR_01, TWO_BY_TWO) == 0.5
    assert np.isnan(legible.resolved_in_both(PAIR_01, TWO_BY_TWO.restrict(["c0", "c1", "c2"])))
    for seed in range(5):  # a tree with itself: the share compare.resolved_triplets counts
        tree = random_hierarchy(np.random.default_rng(seed), nodes=14)
        assert legible.resolved_in_both(tree, tree) == pytest.approx(
            compare.resolved_triplets(tree)
        )
    m = legible.support_matrix({"a": PAIR_01, "b": PAIR_23, "c": TWO_BY_TWO})
    np.testing.assert_array_equal(m, [[0.5, 0, 0.5], [0, 0.5, 0.5], [0.5, 0.5, 1]])


def test_agreement_heatmap_greys_out_weak_cells_and_prints_the_support():
    fig = Figure()
    ax = fig.subplots()
    values = np.array([[1.0, 1.0, np.nan], [1.0, 1.0, 0.4], [np.nan, 0.4, 1.0]])
    support = np.array([[0.9, 0.08, 0.0], [0.08, 0.5, 0.3], [0.0, 0.3, 1.0]])
    image, weak = legible.agreement_heatmap(ax, values, ["a", "b", "c"], support=support)
    assert weak.tolist() == [[False, True, False], [True, False, False], [False, False, False]]
    assert np.ma.getmaskarray(image.get_array())[0, 1] and image.get_array()[1, 2] == 0.4
    texts = [t.get_text() for t in ax.texts]
    assert (
        texts[1] == "(1.00)\n8% res." and texts[2] == "—\n0% res." and texts[5] == "0.40\n30% res."
    )
    fig.colorbar(image, ax=ax)
    check_figure(fig, "agreement")


def test_log_overlap_shows_log10_bc_and_outlines_the_pairs_reaching_t():
    fig = Figure()
    ax = fig.subplots()
    bc = np.array([[1.0, 0.25, 0.0], [0.25, 1.0, 0.35], [0.0, 0.35, 1.0]])
    image = legible.log_overlap(bc, ax, thresholds=(0.3, 0.2), labels=["x", "y", "z"])
    np.testing.assert_allclose(image.get_array()[0], [0, np.log10(0.25), -4])
    outlined = [(p.get_xy(), p.get_linestyle()) for p in ax.patches]
    # t = 0.2 (dashed): both off-diagonal pairs, each twice; t = 0.3 (solid): only y-z
    assert sorted(outlined) == sorted(
        [((0.5, -0.5), "--"), ((-0.5, 0.5), "--"), ((1.5, 0.5), "--"), ((0.5, 1.5), "--")]
        + [((1.5, 0.5), "-"), ((0.5, 1.5), "-")]
    )
    bar = legible.threshold_colorbar(fig, image, ax, (0.2, 0.3))
    assert [t.get_text() for t in bar.ax.texts] == ["t = 0.2, 0.3"]
    check_figure(fig, "bc")


def test_seed_bars_groups_by_seeds_and_marks_rows_that_merged_nothing():
    table = pd.DataFrame(
        {
            "run": ["sweep", "a", "flat", "partial"],
            "cov": "class",
            "Δ": [0.05, 0.02, 0.0, 0.01],
            "Δ (std)": [np.nan, 0.01, 0.0, 0.02],
            "seeds": [1, 5, 5, 5],
            "merged": [1, 5, 0, 3],
        }
    )
    ax = Figure().subplots()
    rows = legible.seed_bars(ax, table, "Δ", series="cov", colours={"class": "C0"})
    assert rows == ["a", "flat", "partial", "sweep"]
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "a (n = 5)",
        "flat (n = 5)",
        "partial (n = 5, class merged 3/5)",
        "sweep (n = 1)",
    ]
    from matplotlib.container import BarContainer

    bars = [c for c in ax.containers if isinstance(c, BarContainer)]  # none for "flat"
    assert len(bars) == 3
    assert [b.errorbar is not None for b in bars] == [True, True, False]
    texts = [t.get_text().strip() for t in ax.texts]
    assert texts == ["no merge"]


def test_common_span_gives_every_panel_the_largest_range():
    axes = Figure().subplots(1, 2)
    axes[0].plot([0, 1], [0.50, 0.504])  # a tiny change
    axes[1].plot([0, 1], [0.2, 0.3])
    span = legible.common_span(a for a in axes)  # any iterable of axes, e.g. axes.flat
    assert span == pytest.approx(0.11)
    assert axes[0].get_ylim() == pytest.approx((0.502 - 0.055, 0.502 + 0.055))
    assert axes[1].get_ylim() == pytest.approx((0.195, 0.305))
    assert legible.common_span(axes, minimum=0.5) == 0.5
