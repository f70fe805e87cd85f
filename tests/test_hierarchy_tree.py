import codecs

import numpy as np
import pytest
from reference_hierarchy import literal_lcs_deepest, literal_matrices
from toy_hierarchies import random_hierarchy

from hierstudy.hierarchy import Hierarchy, HierarchyError, toy_hierarchy


def test_toy_example_of_barz_fig2():
    h = toy_hierarchy()
    d = h.dissimilarity()
    i = h.class_index
    assert h.max_height == 3
    assert d[i["dog"], i["cat"]] == pytest.approx(1 / 3)
    assert d[i["dog"], i["trout"]] == pytest.approx(2 / 3)
    assert h.lcs("dog", "cat") == "mammal" and h.lcs("dog", "trout") == "animal"
    assert h.similarity()[i["dog"], i["cat"]] == pytest.approx(2 / 3)
    t = h.path_distance(k=2.0)
    assert (
        t[i["dog"], i["cat"]] == 4 and t[i["dog"], i["trout"]] == 8 and t[i["dog"], i["car"]] == 10
    )


@pytest.mark.parametrize("seed", range(6))
def test_matrices_match_literal_pairwise_reference(seed):
    rng = np.random.default_rng(seed)
    h = random_hierarchy(rng, nodes=60, dag_edges=8 if seed % 2 else 0)
    lcs_height, d_g, d_t = literal_matrices(h, k=1.5)
    np.testing.assert_array_equal(h.lcs_height(), lcs_height)
    np.testing.assert_allclose(h.dissimilarity(), d_g, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(h.path_distance(k=1.5), d_t)


@pytest.mark.parametrize("seed", range(4))
def test_tree_distances_are_symmetric_zero_diagonal_and_metric(seed):
    h = random_hierarchy(np.random.default_rng(seed), nodes=50)
    assert h.is_tree
    for m in (h.dissimilarity(), h.path_distance()):
        np.testing.assert_array_equal(m, m.T)
        assert np.all(np.diag(m) == 0) and np.all(m[~np.eye(len(m), dtype=bool)] > 0)
        assert h.triangle_violations(m)[0] == 0


def test_dag_triangle_violation_is_reported():
    # Barz Fig. 4b in spirit: "golf cart" is both a vehicle and golf equipment.
    pairs = [
        ("root", "vehicle"),
        ("root", "equipment"),
        ("vehicle", "car"),
        ("vehicle", "cart"),
        ("equipment", "cart"),
        ("equipment", "ball"),
        ("root", "z1"),
        ("z1", "z2"),
        ("z2", "z3"),
    ]
    h = Hierarchy(pairs)
    count, worst = h.triangle_violations()
    assert not h.is_tree and count > 0
    u, v, w, excess = worst[0]  # d(car, ball) = 3/3 > d(car, cart) + d(cart, ball) = 2/3
    assert v == "cart" and {u, w} == {"ball", "car"} and excess > 0


def test_lcs_tie_is_broken_by_least_height_then_smallest_id():
    # a and b share two parents of equal height: the smaller id wins, whatever the edge order.
    for pairs in (
        [("r", "p2"), ("r", "p1"), ("p1", "a"), ("p2", "a"), ("p1", "b"), ("p2", "b")],
        [("p2", "b"), ("p1", "b"), ("p2", "a"), ("p1", "a"), ("r", "p1"), ("r", "p2")],
    ):
        assert Hierarchy(pairs).lcs("a", "b") == "p1"


# A DAG where the two LCS rules part: u and v share D (depth 1, height 1) and C (depth 3 by the
# longest path r-A-B-C, height 2 through C-E-z); r has height 5 (r-A-B-C-E-z).
DEEP_DAG = [
    ("r", "D"),
    ("D", "u"),
    ("D", "v"),
    ("r", "A"),
    ("A", "B"),
    ("B", "C"),
    ("r", "C"),  # a short second path: C's shortest depth is 1, its longest 3
    ("C", "u"),
    ("C", "v"),
    ("C", "E"),
    ("E", "z"),
]


def test_deepest_lcs_rule_of_the_barz_authors_differs_from_least_height():
    least = Hierarchy(DEEP_DAG, ["u", "v", "z"])
    deepest = Hierarchy(DEEP_DAG, ["u", "v", "z"], lcs_rule="deepest")
    assert least.max_height == deepest.max_height == 5
    assert least.lcs("u", "v") == "D" and deepest.lcs("u", "v") == "C"
    assert least.dissimilarity()[0, 1] == pytest.approx(1 / 5)
    assert deepest.dissimilarity()[0, 1] == pytest.approx(2 / 5)
    assert deepest.similarity()[0, 1] == pytest.approx(3 / 5)
    assert least.lcs("u", "z") == deepest.lcs("u", "z") == "C"  # the only common one below r
    assert deepest.depth("C") == 1 and deepest.longest_depths[deepest.index["C"]] == 3
    assert least.lcs_ties() == deepest.lcs_ties() == []
    assert deepest.restrict(["u", "v"]).lcs_rule == "deepest"
    with pytest.raises(HierarchyError, match="lcs_rule"):
        Hierarchy(DEEP_DAG, lcs_rule="shallowest")


def test_tied_lcs_pairs_are_listed_and_broken_by_smallest_id():
    # p1 and p2 tie under both rules; q (depth 2, height 2) is deeper than both and higher.
    pairs = [("r", "p2"), ("r", "p1"), ("p1", "a"), ("p2", "a"), ("p1", "b"), ("p2", "b")]
    for rule in ("least_height", "deepest"):
        h = Hierarchy(pairs, ["a", "b"], lcs_rule=rule)
        assert h.lcs("a", "b") == "p1"
        assert h.lcs_ties() == [("a", "b", ("p1", "p2"))]
    deep = Hierarchy(
        pairs + [("r", "s"), ("s", "q"), ("q", "a"), ("q", "b"), ("q", "x"), ("x", "y")]
    )
    assert deep.lcs_ties() == [("a", "b", ("p1", "p2"))]
    deep = Hierarchy(deep.edges(), lcs_rule="deepest")
    assert deep.lcs("a", "b") == "q" and deep.lcs_ties() == []


@pytest.mark.parametrize("seed", range(4))
def test_deepest_rule_matches_literal_pairwise_reference(seed):
    h = random_hierarchy(np.random.default_rng(seed), nodes=50, dag_edges=10)
    h = Hierarchy(h.edges(), lcs_rule="deepest")
    expected = literal_lcs_deepest(h)
    got = np.array(h.nodes, dtype=object)[h.lcs_matrix()]
    assert (got == expected).all()


def test_heights_depths_and_leaf_order():
    h = toy_hierarchy()
    assert h.height("entity") == 3 and h.height("vehicle") == 1 and h.height("dog") == 0
    assert h.depth("entity") == 0 and h.depth("trout") == 3
    assert [h.classes[i] for i in h.leaf_order()] == ["trout", "cat", "dog", "car"]


def test_from_file_and_classes_default_to_sorted_leaves(tmp_path):
    f = tmp_path / "h.txt"
    f.write_text("# comment\nroot a\nroot b  # trailing comment\n\na a1\na a2\n")
    h = Hierarchy.from_file(f)
    assert h.classes == ("a1", "a2", "b") and h.root == "root"


def test_restrict_keeps_only_the_classes_ancestors():
    h = toy_hierarchy().restrict(["dog", "cat"])
    assert set(h.nodes) == {"entity", "animal", "mammal", "dog", "cat"}
    assert h.dissimilarity()[0, 1] == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    ("pairs", "classes", "message"),
    [
        ([("a", "b"), ("b", "c"), ("c", "a"), ("r", "a")], None, "cycle through"),
        ([("a", "a")], None, "its own parent"),
        ([("r1", "a"), ("r2", "b")], None, "exactly one root"),
        ([("r", "a")], ["a", "zebra"], "not in the hierarchy: ['zebra']"),
        ([("r", "a"), ("r", "b")], ["a", "a"], "listed twice"),
        ([], None, "no edges"),
    ],
)
def test_bad_hierarchies_raise_naming_the_problem(pairs, classes, message):
    with pytest.raises(HierarchyError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Hierarchy(pairs, classes)


def test_cycle_error_names_the_cycle_nodes():
    with pytest.raises(HierarchyError) as error:
        Hierarchy([("r", "x"), ("x", "a"), ("a", "b"), ("b", "c"), ("c", "a")])
    assert all(n in str(error.value) for n in "abc") and "'x'" not in str(error.value)


def test_malformed_file_line_is_named(tmp_path):
    f = tmp_path / "bad.txt"
    f.write_text("root a\nroot b c\n")
    with pytest.raises(HierarchyError, match=r"bad.txt:2: expected 'parent child'"):
        Hierarchy.from_file(f)
    with pytest.raises(HierarchyError, match="does not exist"):
        Hierarchy.from_file(tmp_path / "missing.txt")


def test_file_in_utf8_with_bom_has_one_root_and_other_encodings_are_named(tmp_path):
    f = tmp_path / "h.txt"
    f.write_bytes(codecs.BOM_UTF8 + "r a\nr b\nb café\n".encode())
    h = Hierarchy.from_file(f)
    assert h.root == "r" and h.classes == ("a", "café")
    f.write_bytes("r a\nr b\nb café\n".encode("latin-1"))
    with pytest.raises(HierarchyError, match=r"h.txt is not UTF-8 text \(byte 0xe9 on line 3\)"):
        Hierarchy.from_file(f)


def test_structural_error_of_a_file_names_the_file(tmp_path):
    f = tmp_path / "two_roots.txt"
    f.write_text("r a\nq b\n")
    with pytest.raises(HierarchyError, match=r"two_roots.txt: a hierarchy needs exactly one root"):
        Hierarchy.from_file(f)


def test_unknown_and_non_leaf_classes():
    h = Hierarchy([("r", "a"), ("a", "b")], ["a", "b"])
    with pytest.raises(HierarchyError, match="not leaves: \\['a'\\]"):
        h.require_leaf_classes()
    with pytest.raises(HierarchyError, match="unknown class 'zebra'"):
        h.class_indices(["zebra"])
    with pytest.raises(HierarchyError, match="unknown node"):
        h.height("zebra")


def test_bad_arguments_raise_naming_the_problem():
    with pytest.raises(
        HierarchyError, match=r"an edge is a \(parent, child\) pair, got \('r', 'a', 'b'\)"
    ):
        Hierarchy([("r", "a", "b")])
    with pytest.raises(HierarchyError, match="max_height = 1 is below the greatest node height 2"):
        Hierarchy([("r", "a"), ("a", "x"), ("r", "z")], max_height=1)
    toy = toy_hierarchy()
    for k in (-1.0, 0.0, float("nan"), float("inf")):
        with pytest.raises(HierarchyError, match="the edge weight k must be finite and > 0"):
            toy.path_distance(k=k)
