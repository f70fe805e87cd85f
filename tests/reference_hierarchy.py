"""Literal per-pair transcriptions of the hierarchy distances (slow references for tests and
benchmarks): Barz & Denzler (WACV 2019) eq. 1-2 and Zhao et al. (KFR, 2024) eq. 1."""

from collections import deque

import numpy as np


def ancestors_with_distance(h, node):
    """{ancestor: fewest edges up from node}, node included at 0."""
    dist, queue = {node: 0}, deque([node])
    while queue:
        n = queue.popleft()
        for p in h.parents(n):
            if p not in dist:
                dist[p] = dist[n] + 1
                queue.append(p)
    return dist


def literal_matrices(h, k=1.0):
    """(LCS height, d_G, d_T) by looping over every class pair."""
    n = len(h.classes)
    up = [ancestors_with_distance(h, c) for c in h.classes]
    lcs_height = np.zeros((n, n))
    d_t = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            common = set(up[i]) & set(up[j])
            lcs = min(common, key=lambda a: (h.height(a), a))
            lcs_height[i, j] = h.height(lcs)
            d_t[i, j] = k * min(up[i][a] + up[j][a] for a in common)
    return lcs_height, lcs_height / h.max_height, d_t


def literal_longest_depth(h, node):
    """Longest path from the root down to ``node``, by recursion over its parents."""
    return max((1 + literal_longest_depth(h, p) for p in h.parents(node)), default=0)


def literal_lcs_deepest(h):
    """[n, n] LCS node ids by the Barz authors' rule (the common hypernym of greatest longest-path
    depth), ties to the smallest id, by looping over every class pair."""
    up = [ancestors_with_distance(h, c) for c in h.classes]
    n = len(h.classes)
    out = np.empty((n, n), dtype=object)
    for i in range(n):
        for j in range(n):
            common = set(up[i]) & set(up[j])
            out[i, j] = min(common, key=lambda a: (-literal_longest_depth(h, a), a))
    return out
