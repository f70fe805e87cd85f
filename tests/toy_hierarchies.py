"""Hierarchies for the tests and benchmarks: four hand-made trees and two random generators."""

import numpy as np

from hierstudy.hierarchy import Hierarchy

# Fig. 2a-like toy tree of Barz & Denzler (WACV 2019): height 3, lcs(dog, cat) = mammal (d_G 1/3),
# lcs(dog, trout) = animal (2/3). (parent, child) edges, to choose the classes or the heights.
TOY_EDGES = [
    ("root", "animal"),
    ("root", "plant"),
    ("animal", "mammal"),
    ("animal", "fish"),
    ("mammal", "dog"),
    ("mammal", "cat"),
    ("fish", "trout"),
    ("plant", "flower"),
    ("flower", "rose"),
]

# root -> a -> {c0, c1}, root -> b -> {c2, c3}: LCS height 0 (same), 1 (siblings), 2 (cousins)
TWO_BY_TWO = Hierarchy([("r", "a"), ("r", "b"), ("a", "c0"), ("a", "c1"), ("b", "c2"), ("b", "c3")])

# r -> a, r -> x -> {b, c}: a leaf beside a pair of siblings, classes a, b, c
LEAF_AND_PAIR = Hierarchy([("r", "a"), ("r", "x"), ("x", "b"), ("x", "c")], ["a", "b", "c"])

# r -> m -> {a, b}, r -> e -> f -> {c, d}: leaves at depths 2 and 3
UNEVEN = Hierarchy(
    [("r", "m"), ("r", "e"), ("m", "a"), ("m", "b"), ("e", "f"), ("f", "c"), ("f", "d")]
)


def random_hierarchy(rng: np.random.Generator, nodes: int = 18, dag_edges: int = 0) -> Hierarchy:
    """A random rooted tree of nodes ``n0..n<nodes-1>``, each node's parent drawn among the earlier
    ones, plus ``dag_edges`` extra parent links (a DAG); its leaves are the classes."""
    edges = [(f"n{rng.integers(i)}", f"n{i}") for i in range(1, nodes)]
    edges += [(f"n{rng.integers(i)}", f"n{i}") for i in rng.integers(2, nodes, size=dag_edges)]
    return Hierarchy(edges)


def random_tree_edges(
    rng: np.random.Generator, n_leaves: int, max_children: int = 6, chain: float = 0.2
) -> list[tuple[str, str]]:
    """(parent, child) edges of a random rooted tree with ``n_leaves`` leaves ``n<k>``.

    Each inner node splits its leaves into 2..max_children random parts; with probability
    ``chain`` it gets a single child instead (WordNet-like chains), so leaves sit at uneven depths.
    """
    edges, stack, count = [], [("n0", n_leaves)], 1
    while stack:
        node, m = stack.pop()
        if m == 1:
            continue
        if rng.random() < chain:
            parts = [m]
        else:
            k = int(rng.integers(2, min(m, max_children) + 1))
            cuts = np.sort(rng.choice(np.arange(1, m), k - 1, replace=False))
            parts = np.diff(np.concatenate([[0], cuts, [m]])).tolist()
        for part in parts:
            child = f"n{count}"
            count += 1
            edges.append((node, child))
            stack.append((child, int(part)))
    return edges
