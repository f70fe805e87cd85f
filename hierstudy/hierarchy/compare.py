"""Comparing two hierarchies over the same classes, and Ward's tree of class means.

Ward clustering of the class means is the baseline (vi) of Venkataramanan et al. (ICVS 2023,
Sec. 4.1). The agreement measures (triplet agreement and its chance level, cophenetic
correlation, and the share of triplets a hierarchy resolves) read only the LCS heights and match
classes by name; :func:`agreement` gathers them into the columns of notebook 05's tables, and
:func:`families` groups the classes of a taxonomy at its first split (the colours of a tree drawn
beside another).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from scipy.cluster.hierarchy import linkage

from .tree import Hierarchy, HierarchyError


def class_means(features, labels, num_classes: int) -> np.ndarray:
    """[K, d] mean of the ``features`` [N, d] of each class k = 0..K-1 of ``labels`` [N], in the
    features' dtype (the input of :func:`ward_hierarchy`). Every class needs a sample."""
    features, labels = np.asarray(features), np.asarray(labels)
    counts = np.bincount(labels, minlength=num_classes)
    if len(counts) > num_classes or not counts.all():
        raise HierarchyError(f"labels must cover exactly the classes 0..{num_classes - 1}")
    order = np.argsort(labels, kind="stable")  # each class's rows in their original order
    groups = np.split(features[order], np.cumsum(counts)[:-1])
    return np.stack([group.mean(0) for group in groups])


def ward_hierarchy(means, classes: Sequence[str]) -> Hierarchy:
    """Ward clustering of the class means as a binary tree (Venkataramanan et al. (ICVS 2023),
    baseline (vi) after their ref. [10]).

    scipy's ``linkage(means, "ward")``; merge m (1-based) becomes node ``W{m}``, the last one the
    root. Node heights are those of the tree (longest path down), not linkage distances, as for
    the other hierarchies. Args: [K, d] means, K >= 2 class names in the same order.
    """
    x = _means(means)
    classes = [str(c) for c in classes]
    if len(classes) != len(x) or len(classes) < 2:
        raise HierarchyError(f"need >= 2 means, one per class: {len(x)}, {len(classes)}")
    clash = [c for c in classes if re.fullmatch(r"W\d+", c)]
    if clash:
        raise HierarchyError(f"class names clash with Ward node names W<m>: {clash}")
    merges = linkage(x, method="ward")
    k = len(classes)
    name = [*classes, *(f"W{m + 1}" for m in range(k - 1))]
    edges = [(f"W{m + 1}", name[int(child)]) for m, row in enumerate(merges) for child in row[:2]]
    return Hierarchy(edges, classes)


def triplet_agreement(first: Hierarchy, second: Hierarchy, *, among: str = "both") -> float:
    """Fraction of class triplets whose closest pair is the same in both hierarchies.

    The closest pair of {a, b, c} is the pair whose LCS is strictly the lowest (least LCS
    height). If the least height is shared (on a tree: all three pairs meet at one node, a
    polytomy or a flat level) the triplet is unresolved. ``among`` chooses the triplets counted:
    "both" (default) those resolved in both hierarchies, so a binary tree (Ward) is not penalised
    for splitting what a polytomy leaves open; "either" those resolved in at least one (an answer
    against no answer disagrees, so a flat tree scores 0); "all" every triplet, unresolved in both
    counting as agreement. NaN when no triplet counts. Identical hierarchies give 1. Classes are
    matched by name.
    """
    _check_among(among)
    return _agreement(*_aligned_heights(first, second), among)


def chance_triplet_agreement(
    first: Hierarchy, second: Hierarchy, *, among: str = "both", draws: int = 100, seed: int = 0
) -> float:
    """The chance level of ``triplet_agreement(first, second)``: the mean of
    :func:`random_tree_agreements` over the draws that count a triplet; NaN when none does
    (``second`` resolves no triplet)."""
    values = random_tree_agreements(first, second, among=among, draws=draws, seed=seed)
    counted = values[~np.isnan(values)]
    return float(counted.mean()) if len(counted) else float("nan")


def random_tree_agreements(
    first: Hierarchy, second: Hierarchy, *, among: str = "both", draws: int = 100, seed: int = 0
) -> np.ndarray:
    """``triplet_agreement(first, ·)`` of ``draws`` random trees of ``second``'s shape on the same
    classes — ``second`` with its class names shuffled, a uniformly random permutation per draw
    from ``numpy.random.default_rng(seed)`` — one value per draw (their spread is chance's)."""
    _check_among(among)
    a, b = _aligned_heights(first, second)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(draws):
        perm = rng.permutation(len(b))
        values.append(_agreement(a, b[np.ix_(perm, perm)], among))
    return np.array(values, dtype=np.float64)


def _check_among(among: str) -> None:
    if among not in ("both", "either", "all"):
        raise HierarchyError(f"among must be both, either or all, got {among!r}")


def _agreement(a: np.ndarray, b: np.ndarray, among: str) -> float:
    """:func:`triplet_agreement` of two aligned [K, K] LCS-height matrices."""
    k = len(a)
    same = total = 0
    for i in range(k - 2):  # O(K^3) work in K vectorised [K, K] slices
        upper = np.triu(np.ones((k - i - 1,) * 2, dtype=bool), 1)
        x, y = _closest_pair(a, i)[upper], _closest_pair(b, i)[upper]
        if among == "both":
            keep = (x != 3) & (y != 3)
        elif among == "either":
            keep = (x != 3) | (y != 3)
        else:
            keep = np.ones(x.shape, dtype=bool)
        same += int((x == y)[keep].sum())
        total += int(keep.sum())
    return same / total if total else float("nan")


def cophenetic_correlation(first: Hierarchy, second: Hierarchy) -> float:
    """Pearson correlation of the two LCS-height matrices over class pairs i < j.

    NaN when either is constant (e.g. a flat hierarchy). Classes are matched by name.
    """
    a, b = _aligned_heights(first, second)
    i, j = np.triu_indices(len(a), 1)
    x, y = a[i, j], b[i, j]
    if x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def resolved_triplets(hierarchy: Hierarchy) -> float:
    """Fraction of class triplets the hierarchy resolves (one pair's LCS strictly the lowest).

    The support of ``triplet_agreement``: a tree that resolves few triplets agrees or disagrees on
    few, so its agreement is fragile. 0 for a flat tree, 1 for a binary tree (Ward); NaN for
    fewer than 3 classes.
    """
    heights = hierarchy.lcs_height()
    k = len(heights)
    if k < 3:
        return float("nan")
    resolved = 0
    for i in range(k - 2):  # the same [K, K] slices as triplet_agreement
        upper = np.triu(np.ones((k - i - 1,) * 2, dtype=bool), 1)
        resolved += int((_closest_pair(heights, i)[upper] != 3).sum())
    return resolved / (k * (k - 1) * (k - 2) // 6)


def agreement(first: Hierarchy, second: Hierarchy) -> dict[str, float]:
    """The agreement of two hierarchies as notebook 05 tabulates it: :func:`triplet_agreement`
    over the triplets resolved in both and in either, and :func:`cophenetic_correlation`."""
    return {
        "triplet agreement (resolved in both)": triplet_agreement(first, second),
        "triplet agreement (resolved in either)": triplet_agreement(first, second, among="either"),
        "cophenetic correlation": cophenetic_correlation(first, second),
    }


def families(hierarchy: Hierarchy) -> dict[str, str]:
    """{class: its ancestor at the shallowest depth where the (tree) hierarchy splits the
    classes}; every class its own family when no depth splits them."""
    paths = {c: hierarchy.ancestors(c)[::-1] for c in hierarchy.classes}  # root first
    for depth in range(1, hierarchy.max_height + 1):
        group = {c: path[min(depth, len(path) - 1)] for c, path in paths.items()}
        if len(set(group.values())) > 1:
            return group
    return {c: c for c in hierarchy.classes}


def _closest_pair(heights: np.ndarray, i: int) -> np.ndarray:
    """[m, m] code for triplets (i, b, c), b, c > i: 0 (i,b) closest, 1 (i,c), 2 (b,c), 3 tie."""
    hb = heights[i, i + 1 :][:, None]
    hc = heights[i, i + 1 :][None, :]
    hbc = heights[i + 1 :, i + 1 :]
    code = np.full(hbc.shape, 3, dtype=np.int8)
    code[(hb < hc) & (hb < hbc)] = 0
    code[(hc < hb) & (hc < hbc)] = 1
    code[(hbc < hb) & (hbc < hc)] = 2
    return code


def _aligned_heights(first: Hierarchy, second: Hierarchy) -> tuple[np.ndarray, np.ndarray]:
    if set(first.classes) != set(second.classes):
        only = sorted(set(first.classes) ^ set(second.classes))[:10]
        raise HierarchyError(f"the hierarchies have different classes, e.g. {only}")
    order = second.class_indices(first.classes)
    return first.lcs_height(), second.lcs_height()[np.ix_(order, order)]


def _means(values) -> np.ndarray:
    """[K, d] finite float64 class means (numpy or torch)."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise HierarchyError(f"means must be a non-empty [N, d] array, got {x.shape}")
    if not np.isfinite(x).all():
        raise HierarchyError("means contain NaN or infinite values")
    return np.ascontiguousarray(x)


# the agreement of two hierarchies over the same classes, by the name tables give it
MEASURES = {
    "triplet agreement": triplet_agreement,
    "cophenetic correlation": cophenetic_correlation,
}


def pairwise_agreement(
    trees: dict[str, Hierarchy], common: Sequence[str], classes: Sequence[str]
) -> list[dict]:
    """The agreement table of a set of hierarchies: one row per pair of ``trees`` (each with
    itself and every later one, in order), "first", "second", then for each measure of
    :data:`MEASURES` its value on the trees restricted to the classes ``common`` ("<measure>
    (common classes)") and on the whole trees when both cover exactly ``classes`` ("<measure>
    (all classes)", else NaN)."""
    names, on = list(trees), {n: t.restrict(list(common)) for n, t in trees.items()}
    rows = []
    for i, a in enumerate(names):
        for b in names[i:]:
            full = set(trees[a].classes) == set(trees[b].classes) == set(classes)
            row = {"first": a, "second": b}
            for name, measure in MEASURES.items():
                row[f"{name} (common classes)"] = measure(on[a], on[b])
                row[f"{name} (all classes)"] = measure(trees[a], trees[b]) if full else np.nan
            rows.append(row)
    return rows
