"""Literal per-pair transcriptions of the hierarchy distances (slow references for tests and
benchmarks): Barz eq. 1-2 (001_078dd69429c88981.txt) and KFR eq. 1 (000_352f6443065d4c19.txt)."""

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


def random_hierarchy(rng, n_nodes=40, dag_edges=0):
    """A random rooted tree (plus ``dag_edges`` extra parent links making it a DAG)."""
    from hierstudy.hierarchy import Hierarchy

    pairs = [(f"n{rng.integers(0, i)}", f"n{i}") for i in range(1, n_nodes)]
    for _ in range(dag_edges):
        child = int(rng.integers(2, n_nodes))
        parent = int(rng.integers(0, child))
        pairs.append((f"n{parent}", f"n{child}"))
    return Hierarchy(pairs)
