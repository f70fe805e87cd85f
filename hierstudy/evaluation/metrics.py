"""Every number the study compares: classification accuracy, hierarchical mistakes, retrieval.

Sources (bibliography in docs/papers.md, conventions in docs/ambiguities.md):

* Barz & Denzler (WACV 2019), Sec. 5.2: HP@k (eq. 11), AHP@K, mAP (Table 3) and
  balanced accuracy (Table 2);
* Venkataramanan et al. (ICVS 2023), Sec. 4.3: mAP@k;
* Kim et al. (HIER, CVPR 2023) and docs/hier.md: Recall@K;
* Zhao et al. (KFR, 2024), Sec. IV-A: accuracy as the mean of the last five epochs;
* Bertinetto et al., "Making Better Mistakes" (CVPR 2020): mistake severity and the average
  hierarchical distance of the top-k predictions.

Ranking convention (everywhere, including top-k classification): items are ordered by score
descending and **equal scores by ascending index** (gallery index, or class index), so results never
depend on the sort algorithm.

How retrieval is computed: scores chunk by chunk of queries (torch matmul or the given distance,
memory bounded by ``chunk_mb``), each row ranked once by numpy's vectorised sort of packed
(score, index) keys. On a 2-core CPU that is faster than counting the items scored above each
relevant item (torch.searchsorted) plus a top-K, and it yields the tie order exactly. From the
ranking, HP@k needs only the top K and, per query class, the best achievable similarity sums, taken
from the database's class counts (never a sort of item similarities); mAP, mAP@k and Recall@K need
only the ranks of the relevant items. That single pass keeps a small record per query (``_Ranked``)
of which each metric is a short function.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from hierstudy.geometry import Distance


class MetricError(ValueError):
    """Inputs to a metric are inconsistent (shapes, labels, K) or not finite."""


# --------------------------------------------------------------------------- classification
def accuracy(scores, labels, k: int | Sequence[int] = (1, 5)) -> float | dict[int, float]:
    """Top-k accuracy: the fraction of samples whose label is among the k best-scored classes.

    Args:
        scores: [N, C] logits or probabilities.
        labels: [N] class indices.
        k: one k (returns a float) or several (returns ``{k: accuracy}``).
    Ties between class scores go to the lower class index (module docstring).
    """
    s = _scores_2d(scores, "scores")
    y = _labels(labels, s.shape[0], "labels", s.shape[1])
    ks = _ks(k, s.shape[1], "k", "the number of classes")
    top = _top_classes(s, max(ks))
    hit = np.cumsum(top == y[:, None], axis=1)
    out = {kk: float(hit[:, kk - 1].mean()) for kk in ks}
    return out[ks[0]] if isinstance(k, int | np.integer) else out


def balanced_accuracy(pred, labels, num_classes: int) -> float:
    """Mean over classes of the per-class recall (Barz & Denzler (WACV 2019), Table 2).

    Args:
        pred: [N] predicted classes, or [N, C] scores (top-1, ties to the lower class index).
        labels: [N] true classes in ``[0, num_classes)``.
    Classes without any sample in ``labels`` are left out of the mean (as scikit-learn does).
    """
    p, y = _predictions(pred, labels, num_classes)
    if not len(y):
        raise MetricError("balanced_accuracy of no samples: pred and labels are empty")
    correct = np.bincount(y, weights=(p == y).astype(np.float64), minlength=num_classes)
    support = np.bincount(y, minlength=num_classes)
    present = support > 0
    return float(np.mean(correct[present] / support[present]))


def mistake_severity(pred, labels, lcs_height) -> float:
    """Mean LCA height between the top-1 prediction and the true class over the mistakes.

    Bertinetto et al. (CVPR 2020), "hierarchical mistake severity". ``lcs_height`` is the [C, C]
    matrix of ``Hierarchy.lcs_height()``; ``pred`` is [N] classes or [N, C] scores. Returns NaN
    when there is no mistake (the mean over an empty set).
    """
    h = _class_matrix(lcs_height, "lcs_height")
    p, y = _predictions(pred, labels, h.shape[0])
    wrong = p != y
    return float(h[p[wrong], y[wrong]].mean()) if wrong.any() else float("nan")


def hierarchical_distance_at_k(scores, labels, lcs_height, k: int) -> float:
    """Average hierarchical distance of the top-k: mean over samples and over the k best classes
    of the LCA height between each of those classes and the true class (Bertinetto et al.).

    ``scores``: [N, C]; a correct class among the top k contributes height 0.
    """
    h = _class_matrix(lcs_height, "lcs_height")
    s = _scores_2d(scores, "scores")
    if s.shape[1] != h.shape[0]:
        raise MetricError(f"scores have {s.shape[1]} classes but lcs_height has {h.shape[0]}")
    y = _labels(labels, s.shape[0], "labels", h.shape[0])
    (k,) = _ks(k, s.shape[1], "k", "the number of classes")
    return float(h[y[:, None], _top_classes(s, k)].mean())


# -------------------------------------------------------------------------------- retrieval
def retrieval_metrics(
    query_feats,
    query_labels,
    gallery_feats=None,
    gallery_labels=None,
    *,
    similarity=None,
    metric: str | Distance = "dot",
    K: int = 250,
    recall_ks: Sequence[int] = (1, 2, 4, 8),
    map_ks: Sequence[int] = (),
    chunk_mb: float = 256,
    device: str | torch.device | None = None,
    per_query: bool = False,
) -> dict:
    """Retrieval metrics of every query against a database, as the papers define them.

    The database is ``gallery_feats`` (e.g. In-shop), or, when it is None, the query set itself
    with each query excluded from its own ranking and from its own HP denominator (Barz: every
    test image queries all other test images). Relevant = same class.

    Args:
        query_feats: [Q, D] features; query_labels: [Q] class indices.
        gallery_feats, gallery_labels: [G, D] and [G], or both None.
        similarity: [C, C] class similarity s_G (``Hierarchy.similarity()``, Barz eq. 2), needed
            for HP@k / mAHP; nonnegative with a positive diagonal; labels index its rows.
        metric: "dot", "cosine", "euclidean" (ranked by squared distance, the same order), or a
            callable ``distance(q_chunk [q, D], gallery [G, D]) -> [q, G]`` torch tensor, smaller
            is closer (e.g. the Poincare-ball distance); it receives torch rows of the features.
        K: length of the HP@k / P@k curves, k = 1..K; at most the database size.
        recall_ks: Recall@K cut-offs (HIER: 1, 2, 4, 8 for CUB / Cars; 1, 10, 100, 1000 SOP).
        map_ks: cut-offs of mAP@k.
        chunk_mb: memory budget of one chunk of queries (about 40 bytes per query-item score);
            the per-query results add 12 bytes per query and k.
        device: where scores are computed (default: the features' device).
        per_query: also return per-query values under ``"per_query"`` (NaN for lone queries).

    Returns a dict of float64 values:
        ``hp`` [K]: mean HP@k, k = 1..K (Barz eq. 11): sum_{i<=k} s(y_q, y_i) divided by the best
        achievable sum, the k largest similarities of the query to the whole database;
        ``mahp``: mean AHP@K, the trapezoid area under HP@1..HP@K divided by K, so a perfect
        ranking scores (K - 1) / K (0.996 for K = 250); both only when ``similarity`` is given;
        ``precision`` [K]: classical P@k;
        ``map``: non-interpolated mean average precision over the full ranking,
        AP = (1/R) sum_j j / r_j over the ranks r_1 < ... < r_R of the R relevant items;
        ``map_at_k`` {k: mAP@k}: classical, sum_{i<=k} P@i rel_i / min(k, R);
        ``map_at_k_divk`` {k: value}: the same sum divided by k, the normalisation of the
        visual-hierarchy authors' code (Venkataramanan et al. (ICVS 2023), see
        docs/ambiguities.md);
        ``recall`` {k: Recall@k}: 1 if any of the top k shares the query's class (HIER);
        ``n_queries``: queries averaged over; ``n_lone``: queries left out because the database
        holds no item of their class (their AP and Recall are undefined).
    Ties are broken by ascending gallery index (module docstring).
    """
    q_feats = _features(query_feats, "query_feats")
    exclude = gallery_feats is None
    if exclude != (gallery_labels is None):
        raise MetricError("give gallery_feats and gallery_labels together, or neither")
    num_classes = None if similarity is None else _class_matrix(similarity, "similarity").shape[0]
    ql = _labels(query_labels, q_feats.shape[0], "query_labels", num_classes)
    if exclude:
        g_feats, gl = q_feats, ql
    else:
        g_feats = _features(gallery_feats, "gallery_feats")
        gl = _labels(gallery_labels, g_feats.shape[0], "gallery_labels", num_classes)
    size = g_feats.shape[0] - exclude  # items each query is ranked against
    if size == 0:
        raise MetricError(
            "the database is empty: one query and no gallery (a query is not ranked against "
            "itself); give a gallery or at least two queries"
        )
    n_classes = max(int(ql.max()), int(gl.max())) + 1 if num_classes is None else num_classes
    counts = np.bincount(gl, minlength=n_classes)
    relevant = counts[ql] - exclude  # R per query
    lone = relevant == 0
    if lone.all():
        raise MetricError("no query has an item of its own class in the database")
    (K,) = _ks(K, size, "K", "the database size")
    recall_ks = _ks(recall_ks, size, "recall_ks", "the database size")
    map_ks = _ks(map_ks, size, "map_ks", "the database size")
    sim = _similarity(similarity) if similarity is not None else None
    best = _best_sums(sim, np.unique(ql), counts, K, exclude) if sim is not None else None
    rankings = _rankings(q_feats, g_feats, metric, exclude, chunk_mb, device)
    ranked = _one_pass(rankings, ql, gl, relevant, size, K, map_ks, sim, best)

    values = {  # per query
        "ap": ranked.average_precision(),
        "precision": ranked.precision(),
        "map_at_k": {k: ranked.map_at(k) for k in map_ks},
        "map_at_k_divk": {k: ranked.map_at(k, by_k=True) for k in map_ks},
        "recall": {k: ranked.recall_at(k) for k in recall_ks},
    }
    if sim is not None:
        values.update(hp=ranked.hp, ahp=ranked.ahp())
    used = ~lone
    out = {  # means over the queries that are not lone (P@k from integer sums: exact)
        "precision": ranked.hits[used].sum(axis=0, dtype=np.int64)
        / (np.arange(1, K + 1) * used.sum()),
        "map": float(values["ap"][used].mean()),
        **{
            name: {k: float(v[used].mean()) for k, v in values[name].items()}
            for name in ("map_at_k", "map_at_k_divk", "recall")
        },
        "n_queries": int(used.sum()),
        "n_lone": int(lone.sum()),
    }
    if sim is not None:
        out["hp"] = ranked.hp[used].mean(axis=0)
        out["mahp"] = float(values["ahp"][used].mean())
    if per_query:
        out["per_query"] = _lone_as_nan(values, np.where(lone, np.nan, 1.0))
    return out


@dataclass(frozen=True)
class _Ranked:
    """What the one pass over the rankings keeps of each of the Q queries; each metric is a short
    function of it (meaningless for lone queries, which the callers drop)."""

    relevant: np.ndarray  # [Q] R, the database items of the query's class
    hits: np.ndarray  # [Q, K] relevant items among the top k, k = 1..K
    first: np.ndarray  # [Q] rank of the best-ranked relevant item (database size + 1: none)
    sums: np.ndarray  # [Q] sum_j j / r_j over the ranks r_1 < ... < r_R of the relevant items
    sums_at: dict[int, np.ndarray]  # {k: [Q] the same sum over the r_j <= k}
    hp: np.ndarray | None  # [Q, K] HP@k (Barz eq. 11), given a class similarity

    def average_precision(self) -> np.ndarray:
        return self.sums / np.maximum(self.relevant, 1)

    def precision(self) -> np.ndarray:
        return self.hits / np.arange(1, self.hits.shape[1] + 1)

    def map_at(self, k: int, by_k: bool = False) -> np.ndarray:
        """AP@k: the sum over the top k divided by min(k, R), or by k (``by_k``)."""
        return self.sums_at[k] / (k if by_k else np.minimum(k, np.maximum(self.relevant, 1)))

    def recall_at(self, k: int) -> np.ndarray:
        return self.first <= k

    def ahp(self) -> np.ndarray:
        """AHP@K: the trapezoid area under HP@1..HP@K, divided by K."""
        return (self.hp.sum(axis=1) - 0.5 * (self.hp[:, 0] + self.hp[:, -1])) / self.hp.shape[1]


def _one_pass(rankings, ql, gl, relevant, size: int, K: int, map_ks, sim, best) -> _Ranked:
    """Consume the rankings chunk by chunk: per query, the top K's hits and HP@k, and the
    precision at each relevant item from its rank among the ``size`` ranked items."""
    Q = len(ql)
    sums, sums_at = np.empty(Q), {k: np.empty(Q) for k in map_ks}
    hits = np.empty((Q, K), dtype=np.int32)
    first = np.full(Q, size + 1)
    hp = np.empty((Q, K)) if sim is not None else None
    for rows, order in rankings:
        y = ql[rows]
        top = gl[order[:, :K]]
        hits[rows] = np.cumsum(top == y[:, None], axis=1)
        if hp is not None:
            with np.errstate(invalid="ignore", divide="ignore"):  # 0 / 0 only for lone queries
                hp[rows] = np.cumsum(sim[y[:, None], top], axis=1) / best[y]
        # the relevant items' 0-based ranks, row by row and ascending (a query itself is last)
        row, rank = np.nonzero(gl[order[:, :size]] == y[:, None])
        nth = np.arange(len(row)) - np.repeat(
            np.cumsum(relevant[rows]) - relevant[rows], relevant[rows]
        )
        at_hit = (nth + 1) / (rank + 1)  # precision at each relevant item
        sums[rows] = np.bincount(row, at_hit, len(rows))
        for k in map_ks:
            sums_at[k][rows] = np.bincount(row, np.where(rank < k, at_hit, 0.0), len(rows))
        first[rows[row[nth == 0]]] = rank[nth == 0] + 1
    return _Ranked(relevant, hits, first, sums, sums_at, hp)


def _lone_as_nan(values, nan: np.ndarray):
    """Per-query ``values`` (arrays [Q] or [Q, K], nested in dicts) times ``nan`` [Q]."""
    if isinstance(values, dict):
        return {k: _lone_as_nan(v, nan) for k, v in values.items()}
    return values * (nan[:, None] if values.ndim == 2 else nan)


def nearest_neighbours(
    query_feats,
    gallery_feats=None,
    *,
    k: int,
    metric: str | Distance = "dot",
    chunk_mb: float = 256,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """[Q, k] gallery indices of each query's k best matches, best first (ties: lower index).

    Same conventions as ``retrieval_metrics``: without a gallery, each query is excluded from
    its own list. For qualitative grids (Barz Fig. 1).
    """
    q_feats = _features(query_feats, "query_feats")
    exclude = gallery_feats is None
    g_feats = q_feats if exclude else _features(gallery_feats, "gallery_feats")
    (k,) = _ks(k, g_feats.shape[0] - exclude, "k", "the database size")
    out = np.empty((q_feats.shape[0], k), dtype=np.int64)
    for rows, order in _rankings(q_feats, g_feats, metric, exclude, chunk_mb, device):
        out[rows] = order[:, :k]
    return out


# -------------------------------------------------------------------------------- internals
def _rankings(q_feats, g_feats, metric, exclude, chunk_mb, device):
    """Yield (query indices, [q, G] gallery indices best first) chunk by chunk."""
    if q_feats.shape[1] != g_feats.shape[1]:
        raise MetricError(
            f"query features have {q_feats.shape[1]} dimensions, gallery {g_feats.shape[1]}"
        )
    device = torch.device(device) if device is not None else q_feats.device
    dtype = torch.promote_types(q_feats.dtype, g_feats.dtype)
    q_feats, g_feats = q_feats.to(device, dtype), g_feats.to(device, dtype)
    score = _scorer(metric, g_feats)
    G = g_feats.shape[0]
    step = max(1, int(chunk_mb * 2**20 // (40 * G)))
    for start in range(0, q_feats.shape[0], step):
        rows = np.arange(start, min(start + step, q_feats.shape[0]))
        with torch.no_grad():
            s = score(q_feats[start : start + len(rows)])
        if tuple(s.shape) != (len(rows), G):
            raise MetricError(
                f"the distance returned shape {tuple(s.shape)}, expected {(len(rows), G)}"
            )
        if not torch.isfinite(torch.stack(torch.aminmax(s))).all():  # one pass, no mask
            raise MetricError("scores or distances contain NaN or infinity")
        if exclude:
            own = torch.as_tensor(rows, device=s.device)
            s[own - start, own] = -torch.inf
        yield rows, _rank_rows(s)


def _scorer(metric, g: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """score(q_chunk) -> [q, G], larger is better."""
    if callable(metric):
        return lambda q: -torch.as_tensor(metric(q, g), device=g.device)
    if metric == "dot":
        return lambda q: q @ g.T
    if metric == "cosine":
        gn = torch.nn.functional.normalize(g, dim=1)
        return lambda q: torch.nn.functional.normalize(q, dim=1) @ gn.T
    if metric == "euclidean":  # minus the squared distance
        g2 = (g * g).sum(1)
        return lambda q: torch.addmm(-(q * q).sum(1, keepdim=True) - g2, q, g.T, alpha=2)
    raise MetricError(f"unknown metric {metric!r}: use 'dot', 'cosine', 'euclidean' or a callable")


def _rank_rows(scores: torch.Tensor, torch_sort: bool | None = None) -> np.ndarray:
    """[n, m] column indices of each row of [n, m] scores: score descending, ties by index.

    On the CPU rows are sorted by numpy's vectorised sort, two threads sharing the rows: float32
    through one int64 key per entry (order-reversing bits of the score, then the index), other
    dtypes as float64 through a stable argsort. Elsewhere (or ``torch_sort``): a stable torch sort.
    """
    if torch_sort or (torch_sort is None and scores.device.type != "cpu"):
        return scores.sort(dim=1, descending=True, stable=True).indices.cpu().numpy()
    if scores.dtype != torch.float32:
        scores = scores.to(torch.float64)
    s = scores.detach().numpy()
    out = np.empty(s.shape, dtype=np.int64)
    threads = min(torch.get_num_threads(), len(s)) if s.size > 2**16 else 1
    cuts = np.linspace(0, len(s), threads + 1).astype(int)
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda a, b: _rank_block(s[a:b], out[a:b]), cuts[:-1], cuts[1:]))
    return out


def _rank_block(s: np.ndarray, out: np.ndarray) -> None:
    if s.dtype == np.float32:
        bits = (s + np.float32(0.0)).view(np.int32)  # + 0.0 turns -0.0 into +0.0
        np.copyto(out, ~(bits ^ ((bits >> 31) & 0x7FFFFFFF)))  # int order = reversed float order
        out <<= 32
        out |= np.arange(s.shape[1])  # equal scores: lower index first
        out.sort(axis=1)
        out &= 0xFFFFFFFF
    else:
        out[:] = np.argsort(-s, axis=1, kind="stable")


def _top_classes(scores: torch.Tensor, k: int, rows: int = 4096) -> np.ndarray:
    """[N, k] best classes per row of [N, C] scores (ties: lower class), a block of rows at a time."""
    return np.concatenate(
        [_rank_rows(scores[i : i + rows])[:, :k] for i in range(0, len(scores), rows)]
    )


def _best_sums(sim: np.ndarray, classes: np.ndarray, counts, K: int, exclude: bool) -> np.ndarray:
    """[C, K] denominators of Barz eq. 11: cumulative sums of the K largest similarities of a
    query of each class to the database items (its class counted once less when it is a query).
    """
    best = np.zeros((sim.shape[0], K))
    for c in classes:  # one sort of C similarities per class, never of the items
        n = counts.copy()
        n[c] -= exclude
        by_sim = np.argsort(-sim[c], kind="stable")
        filled = np.cumsum(n[by_sim])
        best[c] = np.cumsum(sim[c, by_sim[np.searchsorted(filled, np.arange(K), side="right")]])
    return best


def _features(x, name: str) -> torch.Tensor:
    t = torch.as_tensor(np.ascontiguousarray(x) if isinstance(x, np.ndarray) else x)
    if t.ndim != 2 or t.shape[0] == 0:
        raise MetricError(f"{name} must be a non-empty [N, D] array, got shape {tuple(t.shape)}")
    if t.dtype not in (torch.float32, torch.float64):
        t = t.to(torch.float64 if not t.is_floating_point() else torch.float32)
    if not torch.isfinite(t).all():
        raise MetricError(f"{name} contains NaN or infinite values")
    return t


def _labels(y, n: int, name: str, num_classes: int | None = None) -> np.ndarray:
    y = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise MetricError(f"{name} must have shape [{n}] to match the data, got {y.shape}")
    if n and not np.issubdtype(y.dtype, np.integer):
        raise MetricError(f"{name} must be integer class indices, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if n and y.min() < 0:
        raise MetricError(f"{name} contains negative class indices")
    if num_classes is not None and n and y.max() >= num_classes:
        raise MetricError(
            f"{name} contains class {int(y.max())}, outside the {num_classes} classes of the "
            "hierarchy / class matrix"
        )
    return y


def _ks(k, limit: int, name: str, what: str) -> tuple[int, ...]:
    if isinstance(k, str) or not (isinstance(k, int | np.integer) or hasattr(k, "__iter__")):
        raise MetricError(f"{name} = {k!r} must be an integer or a sequence of integers")
    ks = (k,) if isinstance(k, int | np.integer) else tuple(k)
    for v in ks:
        if not isinstance(v, int | np.integer) or not 1 <= v <= limit:
            raise MetricError(f"{name} = {v!r} must be an integer in [1, {limit}] ({what})")
    return tuple(int(v) for v in ks)


def _scores_2d(scores, name: str) -> torch.Tensor:
    return _features(scores, name).cpu()


def _class_matrix(m, name: str) -> np.ndarray:
    m = m.detach().cpu().numpy() if isinstance(m, torch.Tensor) else np.asarray(m)
    m = m.astype(np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0:
        raise MetricError(f"{name} must be a square [C, C] matrix, got shape {m.shape}")
    if not np.isfinite(m).all():
        raise MetricError(f"{name} contains NaN or infinite values")
    return m


def _similarity(m) -> np.ndarray:
    sim = _class_matrix(m, "similarity")
    if (sim < 0).any():
        raise MetricError("similarity must be nonnegative (Barz eq. 11 sums similarities)")
    if (np.diag(sim) <= 0).any():
        raise MetricError("similarity must have a positive diagonal (a class resembles itself)")
    return sim


def _predictions(pred, labels, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """[N] predicted and true classes; [N, C] scores are reduced to their top-1 class."""
    p = pred if isinstance(pred, torch.Tensor) else np.asarray(pred)
    if p.ndim == 2:
        if p.shape[1] != num_classes:
            raise MetricError(f"scores have {p.shape[1]} classes, expected {num_classes}")
        p = _top_classes(_scores_2d(p, "scores"), 1)[:, 0]
    n = len(p)
    return _labels(p, n, "pred", num_classes), _labels(labels, n, "labels", num_classes)
