"""One retrieval protocol for every finished run: the study's central table.

Each test image queries all other test images of its dataset, ranked with the run's own distance
and graded against that dataset's class hierarchy (Barz & Denzler (WACV 2019), Sec. 5.2): HP@k
and mAHP@K (eq. 11, Table 1), balanced accuracy (Table 2), mAP (Table 3), Recall@K at HIER's K
for the dataset (Kim et al. (HIER, CVPR 2023), Table 1), mistake severity and the average
hierarchical distance of the top-k classes (Bertinetto et al., CVPR 2020). The formulas are
:mod:`hierstudy.evaluation.metrics`; this module decides which runs, which rankings and which columns.

Rankings of a run (:func:`ranking_variants`): the method's own; CE also on raw features (Barz's
two baselines); and, for the CE baseline that notebook 05 studies, Venkataramanan et al.'s
re-ranking D_C + alpha * D_H (ICVS 2023, eq. 6) with the visual hierarchy rebuilt from the run's
training features under both covariance conventions (:class:`~.rerank.VisualReranker`).

:func:`per_seed_table` evaluates and stores each run's rows (result ``retrieval``,
:mod:`.results`); :func:`load_per_seed_table` reads them back, :func:`aggregate` gives the mean
± std over seeds, :func:`chance` a random ranking's scores and :func:`top_matches` the
qualitative grid's (Barz's Fig. 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hierstudy import runs
from hierstudy.config import Profile
from hierstudy.datasets import catalog
from hierstudy.datasets.study_splits import evaluation_set
from hierstudy.evaluation import metrics
from hierstudy.evaluation.rerank import VisualReranker, paper_values
from hierstudy.evaluation.results import load_run_results, save_run_result
from hierstudy.geometry import pairwise_distance
from hierstudy.hierarchy import Hierarchy

RESULT = "retrieval"  # the stored result of each evaluated run
# notebook 08's combinations (a method + KFR's term) and notebook 05's networks trained on
# corrupted images are compared in those notebooks, not here
NOT_HERE = ("kfr", "corruption")
NAMES = {
    "ce": "CE",
    "center": "CE + center loss",
    "corr": "L_CORR",
    "corr_cls": "L_CORR+CLS",
    "kfr": "KFR",
    "dml_zero_shot": "Proxy-Anchor",
    "hier": "PA + HIER",
}
ORDER = ["ce", "center", "corr", "corr_cls", "kfr", "dml", "dml_zero_shot", "hier"]
KEYS = [
    "dataset",
    "backbone",
    "setup",
    "protocol",
    "method",
    "run",
    "distance",
    "K",
    "test classes",
]
RERANK_SEED = 0  # the seed of notebook 05's CE baseline
COVARIANCES = ("class", "pooled")  # the paper's per-class Σ, the authors' code's pooled Σ
POINCARE_C = 0.1  # HIER's curvature


@dataclass(frozen=True)
class Grading:
    """What a dataset's test labels are graded against: its hierarchy, s_G and LCS heights."""

    hierarchy: Hierarchy
    similarity: np.ndarray
    lcs_height: np.ndarray

    @property
    def random_severity(self) -> float:
        """The mistake severity of a uniformly random wrong class (Bertinetto et al., CVPR 2020),
        its chance level: the mean LCS height over ordered pairs of distinct classes."""
        off_diagonal = ~np.eye(len(self.lcs_height), dtype=bool)
        return float(self.lcs_height[off_diagonal].mean())


@dataclass(frozen=True)
class Ranking:
    """One ranking of a run: its row label, the distance's name in the table, the [N, D] test
    rows it ranks, the distance given to the metrics, and whether the run's classifier columns
    (balanced accuracy, mistake severity, hier. dist@k) belong to the row."""

    label: str
    distance: str
    features: np.ndarray
    metric: str | metrics.Distance
    classify: bool


def grading(profile: Profile, dataset: str, zero_shot: bool) -> Grading:
    """The hierarchy of ``dataset``'s test set under its protocol, with s_G and LCS heights."""
    hierarchy = evaluation_set(profile, dataset, zero_shot).hierarchy
    return Grading(hierarchy, hierarchy.similarity(), hierarchy.lcs_height())


def run_distance(metric: str) -> str | metrics.Distance:
    """The distance a run retrieves with: a metrics name, or the Poincaré distance (c = 0.1)."""
    if metric == "hyperbolic":
        return lambda q, g: pairwise_distance(q.double(), g.double(), c=POINCARE_C)
    return metric


def variants(run: runs.Run) -> list[tuple[str, str]]:
    """(row label, distance name) of the run's own rankings: the method with its knobs; the CE
    baseline twice, on raw features (Euclidean) and L2-normalised (cosine), as in Barz's tables."""
    knobs = dict(run.record.knobs)
    base = (
        f"CE + {knobs.pop('loss', 'triplet_l2')}"
        if run.method == "dml"
        else NAMES.get(run.method, run.method)
    )
    base += "sph" if knobs.pop("sphere", False) else ""
    extra = ", ".join(
        f"{'α' if k == 'alpha' else k}={v:g}" if isinstance(v, float | int) else f"{k}={v}"
        for k, v in knobs.items()
    )
    if run.method == "ce" and not extra:
        return [("CE (classification features)", "euclidean"), ("CE + L2 norm", "cosine")]
    return [(f"{base} ({extra})" if extra else base, run.record.metric)]


def panel(run: runs.Run) -> tuple[str, str]:
    """(dataset title, protocol) of the run: its block of the central table."""
    return catalog.title(run.record.dataset), "zero-shot" if run.record.zero_shot else "closed set"


def is_rerank_baseline(run: runs.Run, profile: Profile) -> bool:
    """Whether ``run`` is notebook 05's CE baseline: plain CE of seed ``RERANK_SEED`` on the
    profile's dataset for that paper, trained with its setup (the profile's on HierShapes)."""
    dataset = profile.datasets["vh"]
    return (
        run.method == "ce"
        and not run.record.knobs
        and run.seed == RERANK_SEED
        and run.record.dataset == dataset
        and run.record.paper == (None if dataset == "hiershapes" else "vh")
    )


def visual_rerankings(run: runs.Run, classes: Sequence[str]) -> list[Ranking]:
    """eq. 6 on the run's test features with the paper's t and alpha for its dataset, the visual
    hierarchy rebuilt from its training features under each covariance convention."""
    t, alpha = paper_values(run.record.dataset)
    train = run.features("train")
    test = run.features("test")["features"].astype(np.float64)
    out = []
    for covariance in COVARIANCES:
        reranker = VisualReranker(t, covariance=covariance)
        reranker.fit(train["features"], train["labels"], classes)
        label = f"CE + visual re-rank (α={alpha:g}, t={t:g}, {covariance} Σ)"
        out.append(Ranking(label, f"cosine + {alpha:g}·D_H", test, reranker.distance(alpha), False))
    return out


def ranking_variants(
    run: runs.Run, profile: Profile, classes: Sequence[str] | None = None
) -> list[Ranking]:
    """Every ranking of ``run`` in the central table: its :func:`variants`, then, for notebook
    05's CE baseline, :func:`visual_rerankings` (``classes``: the tree's leaf names; default:
    those of the dataset's test hierarchy)."""
    feats = run.retrieval_features("test")[0]
    own = [Ranking(label, m, feats, run_distance(m), True) for label, m in variants(run)]
    if not is_rerank_baseline(run, profile):
        return own
    if classes is None:
        classes = grading(profile, run.record.dataset, run.record.zero_shot).hierarchy.classes
    return own + visual_rerankings(run, classes)


def recall_ks_of(run: runs.Run, recall_ks: Sequence[int] | None = None) -> tuple[int, ...]:
    """The K of Recall@K for the run: ``recall_ks``, else HIER's for its dataset."""
    return tuple(recall_ks or catalog.recall_ks(run.record.dataset))


def ranking_metrics(
    features,
    labels,
    metric,
    graded: Grading,
    *,
    K: int = 250,
    recall_ks: Sequence[int] = (1, 2, 4, 8),
) -> dict:
    """{"K", "test classes", "mahp", "map", "recall@<k>"…, "hp"} of every image querying all
    others: K lowered to the database size, a Recall@K cut-off beyond it left out."""
    labels = np.asarray(labels)
    k = min(K, len(labels) - 1)
    ks = [r for r in recall_ks if r < len(labels)]
    m = metrics.retrieval_metrics(
        features, labels, similarity=graded.similarity, metric=metric, K=k, recall_ks=ks
    )
    row = {"K": k, "test classes": len(np.unique(labels)), "mahp": m["mahp"], "map": m["map"]}
    row.update({f"recall@{r}": v for r, v in m["recall"].items()})
    return row | {"hp": m["hp"]}


def classification_metrics(run: runs.Run, graded: Grading, hdist_k: int = 5) -> dict:
    """Balanced accuracy, mistake severity and hier. dist@k of the run's classifier on its test
    set (closed set only; hier. dist@k needs logits with at least k classes)."""
    if run.record.zero_shot:  # no classifier for the unseen classes
        return {}
    test, row = run.features("test"), {}
    labels = test["labels"]
    if "pred" in test:
        row["balanced_accuracy"] = metrics.balanced_accuracy(
            test["pred"], labels, len(graded.hierarchy.classes)
        )
        row["mistake_severity"] = metrics.mistake_severity(test["pred"], labels, graded.lcs_height)
    if "logits" in test and test["logits"].shape[1] >= hdist_k:
        row[f"hdist@{hdist_k}"] = metrics.hierarchical_distance_at_k(
            test["logits"], labels, graded.lcs_height, hdist_k
        )
    return row


def evaluate_run(
    run: runs.Run,
    profile: Profile,
    *,
    K: int = 250,
    recall_ks: Sequence[int] | None = None,
    hdist_k: int = 5,
    graded: Grading | None = None,
) -> dict[str, dict]:
    """{row label: {"distance", "K", "test classes", "mahp", "map", "recall@<k>"…, and for the
    run's own rankings its classifier's columns, "hp": [K] HP@k}} for each of the run's
    :func:`ranking_variants`. ``graded``: the dataset's :func:`grading` (built when None)."""
    dataset, zero_shot = run.record.dataset, run.record.zero_shot
    graded = graded or grading(profile, dataset, zero_shot)
    labels = run.features("test")["labels"]
    ks = recall_ks_of(run, recall_ks)
    classified = classification_metrics(run, graded, hdist_k)
    out = {}
    for r in ranking_variants(run, profile, graded.hierarchy.classes):
        row = ranking_metrics(r.features, labels, r.metric, graded, K=K, recall_ks=ks)
        out[r.label] = {"distance": r.distance, **row, **(classified if r.classify else {})}
    return out


def evaluated_runs(profile: Profile, dataset: str | None = None) -> list[runs.Run]:
    """The finished runs of ``dataset`` (None: every dataset with runs) that the central table
    evaluates, in its order: datasets, closed set first, methods in ``ORDER``, knob values
    (numbers numerically), seeds."""
    names = [dataset] if dataset else runs.datasets_with_runs(profile)
    kept = [
        r
        for d in names
        for r in runs.finished_runs(profile, d)
        if not set(NOT_HERE) & set(r.record.knobs)
    ]
    return sorted(kept, key=lambda r: _run_order(r, names))


def _run_order(run: runs.Run, names: list[str]) -> tuple:
    knobs = tuple(
        (k, isinstance(v, str), 0 if isinstance(v, str) else v, str(v))
        for k, v in sorted(run.record.knobs.items())
    )
    return (
        names.index(run.record.dataset),
        run.record.zero_shot,
        ORDER.index(run.method) if run.method in ORDER else len(ORDER),
        run.method,
        knobs,
        run.seed,
    )


def values(recall_ks: Sequence[int], hdist_k: int = 5) -> list[str]:
    """The metric columns, in the table's order, for Recall@K cut-offs ``recall_ks``."""
    recall = [f"recall@{r}" for r in sorted(set(recall_ks))]
    return ["mahp", "balanced_accuracy", "map", *recall, "mistake_severity", f"hdist@{hdist_k}"]


def per_seed_table(
    profile: Profile,
    dataset: str | None = None,
    *,
    K: int = 250,
    recall_ks: Sequence[int] | None = None,
    hdist_k: int = 5,
    save: bool = True,
) -> pd.DataFrame:
    """One row per ranking of every :func:`evaluated_runs` run and seed: ``KEYS``, ``seed``,
    :func:`values` (a Recall@K column per K of any dataset here, empty where it does not apply)
    and ``hp``, the HP@k curve. ``save``: also store each run's rows as its result ``retrieval``
    (what :func:`load_per_seed_table` and the headline read). Raises when there is no run."""
    evaluated = evaluated_runs(profile, dataset)
    if not evaluated:
        raise FileNotFoundError(
            f"no finished run of {dataset or 'any dataset'} under {profile.runs_dir}: the "
            f"retrieval evaluation needs the models of notebooks 02-05, run them first "
            f"(hierstudy study --profile {profile.name} --only 02 03 04)"
        )
    graded: dict[tuple[str, bool], Grading] = {}
    records = []
    for run in evaluated:
        key = (run.record.dataset, run.record.zero_shot)
        if key not in graded:
            graded[key] = grading(profile, *key)
        scores = evaluate_run(
            run, profile, K=K, recall_ks=recall_ks, hdist_k=hdist_k, graded=graded[key]
        )
        rows = [_record(run, label, row) for label, row in scores.items()]
        if save:
            parameters = {"K": K, "recall_ks": recall_ks_of(run, recall_ks), "hdist_k": hdist_k}
            save_run_result(run, RESULT, {"parameters": parameters, "rows": rows})
        records += rows
    ks = {k for run in evaluated for k in recall_ks_of(run, recall_ks)}
    return pd.DataFrame(records).reindex(columns=[*KEYS, "seed", *values(ks, hdist_k), "hp"])


def _record(run: runs.Run, label: str, row: dict) -> dict:
    dataset, protocol = panel(run)
    return {
        "dataset": dataset,
        "backbone": run.record.recipe.backbone,
        "setup": run.record.paper or "profile",  # a paper's setup, or the profile's own
        "protocol": protocol,
        "method": label,
        "run": run.name,
        "seed": run.seed,
        **row,
    }


def load_per_seed_table(profile: Profile, dataset: str | None = None) -> pd.DataFrame:
    """:func:`per_seed_table` as last stored: the ``retrieval`` results of the
    :func:`evaluated_runs` that have one, in the same order (no row when none has)."""
    stored = {run.run_dir: record for run, record in load_run_results(profile, RESULT, dataset)}
    saved = [stored[r.run_dir] for r in evaluated_runs(profile, dataset) if r.run_dir in stored]
    ks = {k for record in saved for k in record["parameters"]["recall_ks"]}
    hdist_k = saved[0]["parameters"]["hdist_k"] if saved else 5
    columns = [*KEYS, "seed", *values(ks, hdist_k), "hp"]
    table = pd.DataFrame([row for record in saved for row in record["rows"]], columns=columns)
    numeric = ["K", "test classes", "seed", *values(ks, hdist_k)]
    table[numeric] = table[numeric].apply(pd.to_numeric)  # null (not applicable) -> NaN
    table["hp"] = [np.asarray(hp, dtype=np.float64) for hp in table["hp"]]
    return table


def aggregate(per_seed: pd.DataFrame) -> pd.DataFrame:
    """Mean, sample std (``<column>_std``) and ``seeds`` of each metric over the seeds of every
    row of ``KEYS`` (first-seen order)."""
    metric = [c for c in per_seed.columns if c not in (*KEYS, "seed", "hp")]
    grouped = per_seed.groupby(KEYS, sort=False, dropna=False)
    return (
        grouped[metric]
        .mean()
        .join(grouped[metric].std(ddof=1).add_suffix("_std"))
        .join(grouped.size().rename("seeds"))
        .reset_index()
    )


def central_table(profile: Profile, dataset: str | None = None, **options) -> pd.DataFrame:
    """:func:`aggregate` of :func:`per_seed_table` (``options``: its keywords)."""
    return aggregate(per_seed_table(profile, dataset, **options))


def hp_curves(per_seed: pd.DataFrame) -> dict[tuple[str, str, str], np.ndarray]:
    """{(dataset, setup, method): mean HP@k over seeds} (Barz's Fig. 3)."""
    grouped = per_seed.groupby(["dataset", "setup", "method"], sort=False)["hp"]
    return {key: np.mean(list(curves), axis=0) for key, curves in grouped}


def chance(
    run: runs.Run,
    graded: Grading,
    *,
    K: int = 250,
    recall_ks: Sequence[int] | None = None,
    seed: int = 0,
    draws: int = 1,
) -> dict:
    """:func:`ranking_metrics` of a random ranking (seeded 16-d Gaussian features) of the run's
    test labels, and ``others``: the mean number of other images of a query's class. With
    ``draws`` > 1: the mean over that many rankings (seeds ``seed``, ``seed`` + 1, …) and each
    number's spread over them as ``<name>_std`` (sample std)."""
    labels = run.retrieval_features("test")[1]
    ks = recall_ks_of(run, recall_ks)
    rows = [
        ranking_metrics(
            np.random.default_rng(seed + d).standard_normal((len(labels), 16)),
            labels,
            "dot",
            graded,
            K=K,
            recall_ks=ks,
        )
        for d in range(draws)
    ]
    row = dict(rows[0])
    for key in [k for k in row if k not in ("K", "test classes")]:
        values = np.array([r[key] for r in rows], dtype=np.float64)
        row[key] = values.mean(axis=0) if values.ndim > 1 else float(values.mean())
        if draws > 1 and values.ndim == 1:
            row[f"{key}_std"] = float(values.std(ddof=1))
    return row | {"others": float(np.bincount(labels)[labels].mean() - 1)}


def top_matches(run: runs.Run, queries, k: int) -> tuple[str, np.ndarray]:
    """The row label of the run's own ranking (its last :func:`variants`: CE's L2-normalised
    one) and the [len(queries), k] test indices of each query's k best matches among the run's
    test images, best first, the query itself left out (Barz & Denzler (WACV 2019), Fig. 1)."""
    label, metric = variants(run)[-1]
    feats = run.retrieval_features("test")[0]
    top = metrics.nearest_neighbours(
        feats[queries], feats, k=min(k + 1, len(feats)), metric=run_distance(metric)
    )
    return label, np.stack([row[row != q][:k] for row, q in zip(top, queries, strict=True)])
