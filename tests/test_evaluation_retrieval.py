import numpy as np
import pandas as pd
import pytest

from hierstudy import config, runs
from hierstudy import visual_hierarchy as vh
from hierstudy.datasets import study_splits
from hierstudy.evaluation import metrics, retrieval
from hierstudy.evaluation.results import load_run_result
from hierstudy.geometry import pairwise_distance
from hierstudy.hierarchy import Hierarchy


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Tiny smoke runs: CE (seeds 0 and 1), L_CORR, KFR with α = 0, PA + HIER (zero-shot) and
    one of notebook 08's combinations, which the central table leaves out."""
    root = tmp_path_factory.mktemp("root")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HIERSTUDY_ROOT", str(root))
        cfg = config.load(
            "smoke", per_class={"train": 4, "val": 2, "test": 2}, epochs=2, batch_size=35
        )
        trained = [
            runs.train(cfg, "ce", 0),
            runs.train(cfg, "ce", 1),
            runs.train(cfg, "corr", 0),
            runs.train(cfg, "kfr", 0, alpha=0.0),
            runs.train(cfg, "hier", 0),
            runs.train(cfg, "corr", 0, kfr=3.0),
        ]
        yield cfg, trained
        patch.undo()


# ----- notebook 06 before issue 17, its formulas as written there (K = 250, HIER's Recall@K,
# hier. dist@5), with notebook 05's re-ranking of its CE baseline (seed 0, t = 0.30, α = 3,
# both covariance conventions) recomputed as 06 did: from 05's test leaves and tree edges, the
# leaf packed as the last feature column
def notebook_06(cfg, run):
    data = study_splits.evaluation_set(cfg, run.record.dataset, run.record.zero_shot)
    hierarchy = data.hierarchy
    similarity, lcs_height = hierarchy.similarity(), hierarchy.lcs_height()
    test = run.features("test")
    labels = test["labels"]
    feats = run.retrieval_features("test")[0]
    if run.method == "ce" and not run.record.knobs:
        rankings = [("CE (classification features)", "euclidean"), ("CE + L2 norm", "cosine")]
    else:
        knobs = run.record.knobs
        name = {"corr": "L_CORR", "kfr": "KFR", "hier": "PA + HIER"}[run.method]
        label = f"{name} (α={knobs['alpha']:g})" if knobs else name
        rankings = [(label, run.record.metric)]
    rows = {}
    for label, metric in rankings:
        dist = (
            (lambda q, g: pairwise_distance(q.double(), g.double(), c=0.1))
            if metric == "hyperbolic"
            else metric
        )
        row = evaluate(feats, labels, similarity, dist)
        if not run.record.zero_shot and "pred" in test:
            row["balanced_accuracy"] = metrics.balanced_accuracy(
                test["pred"], labels, len(hierarchy.classes)
            )
            row["mistake_severity"] = metrics.mistake_severity(test["pred"], labels, lcs_height)
        if not run.record.zero_shot and "logits" in test and test["logits"].shape[1] >= 5:
            row["hdist@5"] = metrics.hierarchical_distance_at_k(
                test["logits"], labels, lcs_height, 5
            )
        rows[label] = {"distance": metric, **row}
    if run.method == "ce" and not run.record.knobs and run.seed == 0:
        train = run.features("train")
        classes = hierarchy.classes
        pca = vh.fit_pca(train["features"], 0.95)
        x_train, x_test = pca.transform(train["features"]), pca.transform(test["features"])
        ranked = test["features"].astype(np.float64)
        for cov in ("class", "pooled"):
            gaussians = vh.fit_class_gaussians(
                x_train, train["labels"], len(classes), covariance=cov
            )
            leaves = vh.assign_leaves(x_test, gaussians)
            built = vh.build_visual_hierarchy(
                x_train, train["labels"], classes, 0.3, covariance=cov
            )
            edges = built.hierarchy.edges()
            tree = Hierarchy([tuple(e) for e in edges], classes) if len(built.levels) > 1 else None

            def eq6(q, g, tree=tree):
                ql, gl = q[:, -1].long(), g[:, -1].long()
                return vh.ranking_distance(q[:, :-1], g[:, :-1], ql, gl, tree, 3.0)

            row = evaluate(np.hstack([ranked, leaves[:, None]]), labels, similarity, eq6)
            rows[f"CE + visual re-rank (α=3, t=0.3, {cov} Σ)"] = {
                "distance": "cosine + 3·D_H",
                **row,
            }
    return rows


def evaluate(feats, labels, similarity, dist):
    k = min(250, len(labels) - 1)
    ks = [r for r in (1, 2, 4, 8) if r < len(labels)]
    m = metrics.retrieval_metrics(
        feats, labels, similarity=similarity, metric=dist, K=k, recall_ks=ks
    )
    row = {"K": k, "test classes": len(np.unique(labels)), "mahp": m["mahp"], "map": m["map"]}
    row.update({f"recall@{r}": v for r, v in m["recall"].items()})
    return row | {"hp": m["hp"]}


# -----


def test_evaluate_run_reproduces_notebook_06_exactly(study):
    cfg, trained = study
    for run in trained[:5]:
        got, expected = retrieval.evaluate_run(run, cfg), notebook_06(cfg, run)
        assert list(got) == list(expected), run.name
        for label, row in expected.items():
            assert got[label].keys() == row.keys(), label
            for key, value in row.items():
                np.testing.assert_array_equal(got[label][key], value, err_msg=f"{label} {key}")
    labels = list(retrieval.evaluate_run(trained[0], cfg))
    assert labels[2:] == [f"CE + visual re-rank (α=3, t=0.3, {c} Σ)" for c in ("class", "pooled")]
    assert len(retrieval.evaluate_run(trained[1], cfg)) == 2  # seed 1: not notebook 05's baseline


def test_per_seed_table_orders_runs_stores_them_and_reads_them_back(study):
    cfg, trained = study
    table = retrieval.per_seed_table(cfg)
    assert list(table.columns) == [
        *retrieval.KEYS,
        "seed",
        "mahp",
        "balanced_accuracy",
        "map",
        *(f"recall@{k}" for k in (1, 2, 4, 8)),
        "mistake_severity",
        "hdist@5",
        "hp",
    ]
    assert list(zip(table.run, table.seed, strict=True)) == [
        ("ce", 0),
        ("ce", 0),
        ("ce", 0),
        ("ce", 0),
        ("ce", 1),
        ("ce", 1),
        ("corr", 0),
        ("kfr-alpha0", 0),
        ("hier", 0),
    ]  # closed set first, methods in the table's order, seeds last; not 08's corr-kfr3
    assert set(table.protocol) == {"closed set", "zero-shot"} and set(table.setup) == {"profile"}
    hier = table[table.run == "hier"].iloc[0]
    assert np.isnan(hier.balanced_accuracy) and hier.distance == "hyperbolic"
    assert np.isnan(table[table.run == "corr"].iloc[0]["hdist@5"])  # L_CORR has no logits
    ce0 = retrieval.evaluate_run(trained[0], cfg)
    assert table.iloc[1].mahp == ce0["CE + L2 norm"]["mahp"]

    stored = load_run_result(trained[0], "retrieval")
    assert stored["parameters"] == {"K": 250, "recall_ks": [1, 2, 4, 8], "hdist_k": 5}
    assert [r["method"] for r in stored["rows"]] == list(ce0)
    assert load_run_result(trained[5], "retrieval") is None
    again = retrieval.load_per_seed_table(cfg)
    pd.testing.assert_frame_equal(again.drop(columns="hp"), table.drop(columns="hp"))
    for first, second in zip(again.hp, table.hp, strict=True):
        np.testing.assert_array_equal(first, second)


def test_aggregate_gives_mean_std_and_seeds_per_ranking(study):
    cfg, _ = study
    per_seed = retrieval.load_per_seed_table(cfg)
    results = retrieval.aggregate(per_seed)
    rows = results.set_index("method")
    assert list(rows.index[:4]) == [
        "CE (classification features)",
        "CE + L2 norm",
        "CE + visual re-rank (α=3, t=0.3, class Σ)",
        "CE + visual re-rank (α=3, t=0.3, pooled Σ)",
    ]
    ce = per_seed[per_seed.method == "CE + L2 norm"].mahp
    assert rows.loc["CE + L2 norm", "seeds"] == 2
    assert rows.loc["CE + L2 norm", "mahp"] == ce.mean()
    assert rows.loc["CE + L2 norm", "mahp_std"] == pytest.approx(ce.std(ddof=1), rel=1e-12)
    assert rows.loc["L_CORR", "seeds"] == 1 and np.isnan(rows.loc["L_CORR", "mahp_std"])
    curves = retrieval.hp_curves(per_seed)
    np.testing.assert_array_equal(
        curves["HierShapes", "profile", "CE + L2 norm"], np.mean(list(per_seed.hp[[1, 5]]), 0)
    )


def test_chance_is_a_seeded_random_ranking(study):
    cfg, trained = study
    graded = retrieval.grading(cfg, "hiershapes", False)
    first = retrieval.chance(trained[0], graded, seed=3)
    assert first["mahp"] == retrieval.chance(trained[0], graded, seed=3)["mahp"]
    assert first["others"] == 1.0 and first["K"] == 69  # 2 test images per class, 70 in all
    assert "mahp_std" not in first
    # several draws: the mean and the spread of the draws seeded 3, 4, 5
    draws = [retrieval.chance(trained[0], graded, seed=s) for s in (3, 4, 5)]
    many = retrieval.chance(trained[0], graded, seed=3, draws=3)
    mahp = [d["mahp"] for d in draws]
    assert many["mahp"] == pytest.approx(np.mean(mahp), abs=1e-15)
    assert (
        many["mahp_std"] == pytest.approx(np.std(mahp, ddof=1), abs=1e-15) and many["mahp_std"] > 0
    )
    np.testing.assert_allclose(many["hp"], np.mean([d["hp"] for d in draws], axis=0))
    assert many["K"] == 69


def test_no_run_is_an_error_naming_the_notebooks(tmp_path, monkeypatch):
    monkeypatch.setenv("HIERSTUDY_ROOT", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no finished run.*run them first"):
        retrieval.per_seed_table(config.load("smoke"))
    assert retrieval.load_per_seed_table(config.load("smoke")).empty


def test_random_severity_is_the_mean_lcs_height_over_distinct_classes():
    # root -> a -> {x, y}, root -> z: x and y meet at a (height 1), z meets both at the root (2)
    tree = Hierarchy([("root", "a"), ("a", "x"), ("a", "y"), ("root", "z")], ["x", "y", "z"])
    graded = retrieval.Grading(tree, tree.similarity(), tree.lcs_height())
    assert graded.random_severity == pytest.approx((1 + 1 + 2 + 2 + 2 + 2) / 6)


def test_panel_and_top_matches_of_a_run(study):
    cfg, trained = study
    assert retrieval.panel(trained[0]) == ("HierShapes", "closed set")
    assert retrieval.panel(trained[4]) == ("HierShapes", "zero-shot")
    queries = np.array([5, 0, 17])
    for run in (trained[0], trained[4]):
        label, top = retrieval.top_matches(run, queries, 6)
        # notebook 06's grid before issue 17: the last variant's ranking, the query left out
        feats = run.retrieval_features("test")[0]
        metric = "cosine" if run.method == "ce" else run.record.metric
        dist = (
            (lambda q, g: pairwise_distance(q.double(), g.double(), c=0.1))
            if metric == "hyperbolic"
            else metric
        )
        nearest = metrics.nearest_neighbours(feats[queries], feats, k=7, metric=dist)
        expected = np.stack([row[row != q][:6] for row, q in zip(nearest, queries, strict=True)])
        assert label == ("CE + L2 norm" if run.method == "ce" else "PA + HIER")
        np.testing.assert_array_equal(top, expected)
        assert not (top == queries[:, None]).any()
