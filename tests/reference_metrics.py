"""Literal references for hierstudy.evaluation.metrics: one query at a time, from each formula.

Slow on purpose (Python loops over the ranking); shared by tests/test_evaluation_metrics.py and
benchmarks/bench_metrics.py. Not part of the library.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def literal_scores(query: np.ndarray, gallery: np.ndarray, metric) -> np.ndarray:
    """Score of one query [D] against every gallery row [G, D]; larger is closer."""
    if metric == "dot":
        return gallery @ query
    if metric == "cosine":
        unit = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
        return unit @ (query / np.linalg.norm(query))
    if metric == "euclidean":
        return -np.sqrt(((gallery - query) ** 2).sum(axis=1))
    distance = metric(torch.as_tensor(query[None]), torch.as_tensor(gallery))
    return -np.asarray(distance, dtype=np.float64)[0]


def literal_retrieval(
    query_feats,
    query_labels,
    gallery_feats=None,
    gallery_labels=None,
    *,
    similarity=None,
    metric="dot",
    K: int,
    recall_ks=(1,),
    map_ks=(1,),
    queries=None,
) -> dict:
    """Per-query metrics (NaN for a query without any relevant item), for ``queries`` (all).

    Returns ``ap``, ``precision`` [n, K], ``recall`` {k: [n]}, ``map_at_k`` {k: [n]},
    ``map_at_k_divk`` {k: [n]} and, given ``similarity``, ``hp`` [n, K] and ``ahp`` [n].
    """
    qf, ql = np.asarray(query_feats), np.asarray(query_labels)
    exclude = gallery_feats is None
    gf = qf if exclude else np.asarray(gallery_feats)
    gl = ql if exclude else np.asarray(gallery_labels)
    queries = range(len(ql)) if queries is None else queries
    rows = []
    for q in queries:
        score = literal_scores(qf[q], gf, metric)
        database = [i for i in range(len(gl)) if not (exclude and i == q)]
        ranking = sorted(database, key=lambda i: (-score[i], i))  # ties: lower index first
        rel = [1 if gl[i] == ql[q] else 0 for i in ranking]
        R = sum(rel)
        row = {"recall": {}, "map_at_k": {}, "map_at_k_divk": {}}
        if R == 0:
            rows.append(None)
            continue
        # classical P@k
        row["precision"] = [sum(rel[:k]) / k for k in range(1, K + 1)]
        # precision at the position of every relevant item, then AP over the full ranking
        found, at_hit = 0, []
        for position, r in enumerate(rel, start=1):
            if r:
                found += 1
                at_hit.append((position, found / position))
        row["ap"] = sum(p for _, p in at_hit) / R
        for k in map_ks:
            total = sum(p for position, p in at_hit if position <= k)
            row["map_at_k"][k] = total / min(k, R)
            row["map_at_k_divk"][k] = total / k
        for k in recall_ks:
            row["recall"][k] = 1.0 if any(rel[:k]) else 0.0
        if similarity is not None:
            # Barz eq. 11: best permutation = the k largest similarities in the database
            s = [similarity[ql[q], gl[i]] for i in ranking]
            best = sorted((similarity[ql[q], gl[i]] for i in database), reverse=True)
            hp = [sum(s[:k]) / sum(best[:k]) for k in range(1, K + 1)]
            row["hp"] = hp
            row["ahp"] = sum((hp[k - 1] + hp[k]) / 2 for k in range(1, K)) / K
        rows.append(row)
    return _stack(rows, K, recall_ks, map_ks, similarity is not None)


def _stack(rows, K, recall_ks, map_ks, with_hp) -> dict:
    def column(get, width=None):
        nan = math.nan if width is None else [math.nan] * width
        return np.array([nan if r is None else get(r) for r in rows], dtype=np.float64)

    out = {
        "ap": column(lambda r: r["ap"]),
        "precision": column(lambda r: r["precision"], K),
        "recall": {k: column(lambda r, k=k: r["recall"][k]) for k in recall_ks},
        "map_at_k": {k: column(lambda r, k=k: r["map_at_k"][k]) for k in map_ks},
        "map_at_k_divk": {k: column(lambda r, k=k: r["map_at_k_divk"][k]) for k in map_ks},
    }
    if with_hp:
        out["hp"] = column(lambda r: r["hp"], K)
        out["ahp"] = column(lambda r: r["ahp"])
    return out
