"""Tests of hierstudy.hierarchy.compare: Ward's tree against scipy, the agreement measures against
literal one-triplet-at-a-time definitions, class means against the per-class loop."""

import itertools

import numpy as np
import pytest
from scipy.cluster.hierarchy import linkage, to_tree

from hierstudy.hierarchy import Hierarchy, HierarchyError, compare
from hierstudy.hierarchy.compare import (
    agreement,
    chance_triplet_agreement,
    class_means,
    cophenetic_correlation,
    families,
    random_tree_agreements,
    resolved_triplets,
    triplet_agreement,
    ward_hierarchy,
)


def classes_below(h: Hierarchy, node: str) -> frozenset:
    """The classes of which ``node`` is an ancestor (or which it is)."""
    return frozenset(c for c in h.classes if node in h.ancestors(c))


def small_tree() -> Hierarchy:
    return Hierarchy(
        [("r", "m"), ("r", "e"), ("m", "a"), ("m", "b"), ("e", "f"), ("f", "c"), ("f", "d")]
    )


def merged_pairs_tree(pairs) -> Hierarchy:
    """What build_visual_hierarchy makes of three overlapping pairs of which two overlap:
    the pairs (level 1), the first two merged and the third alone (level 2), an added root."""
    edges = [("L3:0", "L2:0"), ("L3:0", "L2:1"), ("L2:0", "L1:0"), ("L2:0", "L1:1")]
    edges += [("L2:1", "L1:2")] + [(f"L1:{k}", c) for k, pair in enumerate(pairs) for c in pair]
    return Hierarchy(edges)


def test_ward_hierarchy_has_the_clusters_of_scipy():
    rng = np.random.default_rng(15)
    means = np.concatenate([rng.normal(size=(4, 3)), rng.normal(size=(3, 3)) + 20])
    classes = [f"k{i}" for i in range(7)]
    h = ward_hierarchy(means, classes)
    assert h.is_tree and len(h.nodes) == 13 and h.root == "W6"
    ours = {classes_below(h, n) for n in h.nodes if n.startswith("W")}
    root = to_tree(linkage(means, "ward"))
    stack, theirs = [root], set()
    while stack:
        node = stack.pop()
        if not node.is_leaf():
            theirs.add(frozenset(classes[i] for i in node.pre_order()))
            stack += [node.get_left(), node.get_right()]
    assert ours == theirs
    assert {classes_below(h, c) for c in h.children("W6")} == {
        frozenset(classes[:4]),
        frozenset(classes[4:]),
    }
    with pytest.raises(HierarchyError, match="clash"):
        ward_hierarchy(means[:2], ["W1", "b"])


def literal_triplets(first: Hierarchy, second: Hierarchy, among: str) -> float:
    def closest(h, a, b, c):
        pairs = [(a, b), (a, c), (b, c)]
        hs = [h.height(h.lcs(u, v)) for u, v in pairs]
        best = min(hs)
        return pairs[hs.index(best)] if hs.count(best) == 1 else None

    same = total = 0
    for a, b, c in itertools.combinations(first.classes, 3):
        x, y = closest(first, a, b, c), closest(second, a, b, c)
        if among == "both" and (x is None or y is None):
            continue
        if among == "either" and x is None and y is None:
            continue
        same += x == y
        total += 1
    return same / total


def test_agreement_measures_match_literal_definitions():
    rng = np.random.default_rng(16)
    classes = [f"c{i}" for i in range(6)]
    visual = merged_pairs_tree([("c0", "c3"), ("c1", "c4"), ("c2", "c5")])
    ward = ward_hierarchy(rng.normal(size=(6, 2)), classes[::-1])  # other class order
    for among in ("both", "either", "all"):
        fast = triplet_agreement(visual, ward, among=among)
        assert fast == pytest.approx(literal_triplets(visual, ward, among))
        assert triplet_agreement(visual, visual, among=among) == 1.0
        assert triplet_agreement(ward, ward, among=among) == 1.0
    a = visual.lcs_height()
    order = ward.class_indices(visual.classes)
    b = ward.lcs_height()[np.ix_(order, order)]
    i, j = np.triu_indices(6, 1)
    expected = np.corrcoef(a[i, j], b[i, j])[0, 1]
    assert cophenetic_correlation(visual, ward) == pytest.approx(expected)
    assert cophenetic_correlation(ward, ward) == pytest.approx(1.0)


def literal_resolved(h: Hierarchy) -> float:
    """Share of class triplets with a unique lowest LCS, one triplet at a time."""
    triplets = list(itertools.combinations(h.classes, 3))
    unique = 0
    for a, b, c in triplets:
        heights = [h.height(h.lcs(u, v)) for u, v in ((a, b), (a, c), (b, c))]
        unique += heights.count(min(heights)) == 1
    return unique / len(triplets)


def test_resolved_triplets_matches_the_literal_count():
    rng = np.random.default_rng(17)
    classes = [f"c{i}" for i in range(6)]
    visual = merged_pairs_tree([("c0", "c1"), ("c2", "c4"), ("c3", "c5")])
    ward = ward_hierarchy(rng.normal(size=(6, 2)), classes)
    flat = Hierarchy([("r", c) for c in classes])
    polytomy = Hierarchy([("r", "m"), ("m", "a"), ("m", "b"), ("m", "c"), ("r", "d")])
    for h in (visual, ward, flat, polytomy, small_tree()):
        assert resolved_triplets(h) == pytest.approx(literal_resolved(h))
    assert resolved_triplets(ward) == 1.0 and resolved_triplets(flat) == 0.0
    assert resolved_triplets(polytomy) == 0.75  # {a, b, c} meet at one node
    assert np.isnan(resolved_triplets(Hierarchy([("r", "a"), ("r", "b")])))


def test_pairwise_agreement_compares_every_pair_on_the_common_and_on_all_classes():
    rng = np.random.default_rng(19)
    classes = [f"c{i}" for i in range(6)]
    ward = ward_hierarchy(rng.normal(size=(6, 2)), classes)
    visual = merged_pairs_tree([("c0", "c3"), ("c1", "c4"), ("c2", "c5")])
    half = Hierarchy([("r", "m"), ("m", "c0"), ("m", "c2"), ("r", "n"), ("n", "c1"), ("n", "c3")])
    trees, common = {"ward": ward, "visual": visual, "half": half}, ["c0", "c1", "c2", "c3"]
    rows = compare.pairwise_agreement(trees, common, classes)
    names = ["ward", "visual", "half"]
    assert [(r["first"], r["second"]) for r in rows] == [
        (a, b) for i, a in enumerate(names) for b in names[i:]
    ]
    measures = {
        "triplet agreement": triplet_agreement,
        "cophenetic correlation": literal_cophenetic,
    }
    for r in rows:
        first, second = trees[r["first"]], trees[r["second"]]
        assert list(r)[2:] == [f"{m} ({s} classes)" for m in measures for s in ("common", "all")]
        for name, measure in measures.items():
            on = measure(first.restrict(common), second.restrict(common))
            assert r[f"{name} (common classes)"] == pytest.approx(on, nan_ok=True)
            if "half" in (r["first"], r["second"]):  # not over all classes: nothing to compare
                assert np.isnan(r[f"{name} (all classes)"])
            else:
                assert r[f"{name} (all classes)"] == pytest.approx(measure(first, second))
    assert rows[0]["triplet agreement (all classes)"] == 1.0  # Ward's tree with itself


def literal_cophenetic(first: Hierarchy, second: Hierarchy) -> float:
    """Pearson correlation of the LCS heights of every class pair, NaN when one is constant."""
    pairs = list(itertools.combinations(first.classes, 2))
    x = [first.height(first.lcs(u, v)) for u, v in pairs]
    y = [second.height(second.lcs(u, v)) for u, v in pairs]
    return float(np.corrcoef(x, y)[0, 1]) if np.std(x) and np.std(y) else float("nan")


def test_agreement_edge_cases():
    h = small_tree()
    flat = Hierarchy([("r", c) for c in "abcd"])
    assert np.isnan(cophenetic_correlation(h, flat))
    assert triplet_agreement(flat, flat, among="all") == 1.0  # all unresolved in both
    assert np.isnan(triplet_agreement(flat, flat))
    assert np.isnan(triplet_agreement(flat, h))
    assert triplet_agreement(flat, h, among="either") == 0.0  # h resolves every triplet
    with pytest.raises(HierarchyError, match="among"):
        triplet_agreement(h, h, among="some")
    with pytest.raises(HierarchyError, match="different classes"):
        triplet_agreement(h, Hierarchy([("r", c) for c in "abcz"]))


def test_agreement_gathers_the_measures_under_the_tables_column_names():
    rng = np.random.default_rng(18)
    visual = merged_pairs_tree([("c0", "c3"), ("c1", "c4"), ("c2", "c5")])
    ward = ward_hierarchy(rng.normal(size=(6, 2)), [f"c{i}" for i in range(6)])
    assert agreement(visual, ward) == {
        "triplet agreement (resolved in both)": literal_triplets(visual, ward, "both"),
        "triplet agreement (resolved in either)": literal_triplets(visual, ward, "either"),
        "cophenetic correlation": cophenetic_correlation(visual, ward),
    }
    flat = Hierarchy([("r", c) for c in "abcd"])
    values = agreement(flat, small_tree())
    assert np.isnan(values["triplet agreement (resolved in both)"])
    assert values["triplet agreement (resolved in either)"] == 0.0


def test_families_are_the_nodes_of_the_first_depth_that_splits_the_classes():
    assert families(small_tree()) == {"a": "m", "b": "m", "c": "e", "d": "e"}
    # a single child under the root splits nothing: the families are one level further down
    chain = Hierarchy([("top", "r"), *small_tree().edges()])
    assert families(chain) == families(small_tree())
    flat = Hierarchy([("r", c) for c in "abc"])
    assert families(flat) == {"a": "a", "b": "b", "c": "c"}
    # a class directly under the root is its own family beside the groups
    assert families(Hierarchy([("r", "m"), ("m", "a"), ("m", "b"), ("r", "c")])) == {
        "a": "m",
        "b": "m",
        "c": "c",
    }


def test_class_means_equal_the_per_class_loop_bit_for_bit():
    rng = np.random.default_rng(18)
    x = rng.normal(size=(50, 3)).astype(np.float32)
    y = rng.permutation(np.arange(50) % 4)
    means = class_means(x, y, 4)
    np.testing.assert_array_equal(means, np.stack([x[y == k].mean(0) for k in range(4)]))
    assert means.dtype == np.float32
    for bad in (y % 3, y + 1):  # a class without samples; a label beyond the classes
        with pytest.raises(HierarchyError, match="cover exactly"):
            class_means(x, bad, 4)


def test_chance_agreement_is_the_mean_over_trees_with_shuffled_class_names():
    rng = np.random.default_rng(19)
    classes = [f"c{i}" for i in range(6)]
    visual = merged_pairs_tree([("c0", "c3"), ("c1", "c4"), ("c2", "c5")])
    ward = ward_hierarchy(rng.normal(size=(6, 2)), classes[::-1])
    for among in ("both", "either"):
        expected = []
        perms = np.random.default_rng(7)  # the draws of seed=7, one permutation each
        for _ in range(5):
            perm = perms.permutation(6)
            rename = {visual.classes[p]: visual.classes[i] for i, p in enumerate(perm)}
            shuffled = Hierarchy([(rename.get(u, u), rename.get(v, v)) for u, v in ward.edges()])
            expected.append(literal_triplets(visual, shuffled, among))
        chance = chance_triplet_agreement(visual, ward, among=among, draws=5, seed=7)
        assert chance == pytest.approx(np.mean(expected))
        draws = random_tree_agreements(visual, ward, among=among, draws=5, seed=7)
        np.testing.assert_allclose(draws, expected)
    # two binary trees on three classes agree on the one triplet for 2 of the 6 permutations
    three = Hierarchy([("r", "m"), ("m", "a"), ("m", "b"), ("r", "c")])
    assert chance_triplet_agreement(three, three, draws=3000) == pytest.approx(1 / 3, abs=0.03)
    assert triplet_agreement(three, three) == 1.0
    flat = Hierarchy([("r", c) for c in "abc"])
    assert np.isnan(chance_triplet_agreement(three, flat))  # no tree of flat's shape resolves any
