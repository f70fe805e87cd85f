import dataclasses
import json
import os
from pathlib import Path

import pytest
from fake_datasets import notebook_project, write_cifar, write_cub, write_sop

from hierstudy import config, report, runs, setups, study
from hierstudy.datasets import study_splits

CE, CE_L2 = "CE (classification features)", "CE + L2 norm"


@pytest.mark.notebook
def test_notebook_06_under_smoke_evaluates_every_finished_run_with_one_protocol():
    study.run("smoke", only=["02", "03", "05", "06"])  # 02 / 03 reuse their cached trained
    cfg = config.load("smoke")
    text = (cfg.figures_dir / "06_metrics.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in 06_metrics.json"))  # strict JSON
    metrics = report.load_metrics("06_metrics", cfg)
    rows = {r["method"]: r for r in metrics["rows"]}
    assert {CE, CE_L2, "CE + center loss", "L_CORR", "L_CORR+CLS", "KFR"} <= set(rows)
    # Barz's two classification baselines: one CE run, raw (Euclidean) and L2-normalised (cosine)
    assert (rows[CE]["run"], rows[CE]["distance"]) == ("ce", "euclidean")
    assert (rows[CE_L2]["run"], rows[CE_L2]["distance"]) == ("ce", "cosine")
    assert rows["L_CORR"]["distance"] == "dot"
    # α = 0 is the baseline's runs (tests/test_runs.py): 03 trains no KFR run with α = 0
    assert not any(r["run"].startswith("kfr-alpha0") for r in rows.values())

    assert metrics["datasets"] == ["HierShapes"]
    height = metrics["max_height"]["HierShapes"]
    for method, row in rows.items():
        assert row["dataset"] == "HierShapes"
        k = row["K"]
        assert k == min(metrics["K_requested"], row["test classes"] * cfg.per_class["test"] - 1)
        assert 0 <= row["mahp"] <= (k - 1) / k  # a perfect ranking scores (K - 1) / K
        recalls = [row[f"recall@{r}"] for r in metrics["recall_ks"]]
        assert all(0 <= v <= 1 for v in [row["map"], *recalls]) and recalls == sorted(recalls)
        hp = metrics["hp_curves"]["HierShapes"][method]
        assert len(hp) == k and all(0 <= v <= 1 + 1e-12 for v in hp)
        # mAHP is the trapezoid area under the mean HP curve divided by K (the mean is linear)
        assert (sum(hp) - (hp[0] + hp[-1]) / 2) / k == pytest.approx(row["mahp"], abs=1e-9)
        if method in metrics["rerank"]["methods"]:  # a ranking of CE's features: no classifier
            assert row["balanced_accuracy"] is None and row["hdist@5"] is None
        elif row["protocol"] == "closed set":
            assert 0 <= row["balanced_accuracy"] <= 1
            assert 1 <= row["mistake_severity"] <= height  # distinct leaves meet at height >= 1
        else:  # zero-shot (notebook 04's trained, when present): no classifier for unseen classes
            assert row["balanced_accuracy"] is None and row["mistake_severity"] is None
        if row["hdist@5"] is not None:
            assert 0 <= row["hdist@5"] <= height
    assert rows["L_CORR"]["hdist@5"] is None  # L_CORR has no logits

    # notebook 05's re-ranking of the CE run, recomputed from its files: 05's own numbers
    nb05 = report.load_metrics("05_metrics", cfg)
    ranked = {r["variant"]: r for r in nb05["retrieval"]}
    alpha, t, k = nb05["alpha"], nb05["threshold"], nb05["K"]
    rerank = metrics["rerank"]
    assert rerank["seed"] == report.load_metrics("05_hierarchies", cfg)["_provenance"]["seed"]
    assert rerank["dataset"] == "HierShapes"
    for cov, variant in (
        (nb05["covariance"], "cosine + α·D_H (visual)"),
        ("pooled", "cosine + α·D_H (visual, pooled Σ)"),
    ):
        label = f"CE + visual re-rank (α={alpha:g}, t={t:g}, {cov} Σ)"
        assert label in rerank["methods"]
        row = rows[label]
        assert (row["run"], row["protocol"], row["seeds"]) == ("ce", "closed set", 1)
        assert row["distance"] == f"cosine + {alpha:g}·D_H" and row["K"] == k
        assert row["mahp"] == pytest.approx(ranked[variant][f"mAHP@{k}"], abs=1e-9)
        assert row["map"] == pytest.approx(ranked[variant]["mAP"], abs=1e-9)
        assert row["recall@1"] == pytest.approx(ranked[variant]["R@1"], abs=1e-9)
    assert 0 < metrics["chance"]["HierShapes"]["closed set"]["mahp"] < 1
    grid = metrics["grid"]
    assert grid["methods"][:2] == [CE_L2, "L_CORR"] and len(grid["methods"]) == 3
    assert len(set(grid["queries"])) == len(grid["queries"]) == 4
    for name in (
        "06_hp_curves.png",
        "06_retrieval_grid.png",
        "06_central_table.md",
        "06_results.csv",
    ):
        assert (cfg.figures_dir / name).is_file()


@pytest.mark.notebook
def test_notebook_06_without_any_run_asks_for_notebooks_02_to_04(tmp_path, monkeypatch):
    root = Path(__file__).resolve().parents[2]
    (tmp_path / "notebooks").symlink_to(root / "notebooks")
    (tmp_path / "pyproject.toml").write_text("")
    monkeypatch.setenv("HIERSTUDY_ROOT", str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    with pytest.raises(study.StudyError, match="no finished run.*run them first"):
        study.run("smoke", only=["06"])


@pytest.mark.notebook
def test_notebook_06_evaluates_each_dataset_against_its_own_hierarchy(tmp_path, monkeypatch):
    """Runs on HierShapes, a fake CIFAR-100 (closed set, Barz's setup) and a fake CUB (zero-shot,
    HIER's) each get their own block, graded with their own test hierarchy; ``-p dataset=``
    keeps one."""
    notebook_project(tmp_path)
    write_cifar(tmp_path / "data", per_class=3)
    write_cub(tmp_path / "data", classes=6, per_class=4)
    write_sop(tmp_path / "data")
    monkeypatch.setenv("HIERSTUDY_ROOT", str(tmp_path))
    monkeypatch.setenv("HIERSTUDY_DATA", str(tmp_path / "data"))
    cfg = config.load("smoke")
    tiny = {
        "backbone": "tiny_cnn",
        "pretrained": False,
        "image_size": 32,
        "epochs": 1,
        "batch_size": 4,
    }
    trained = [runs.train(cfg, "ce", 0)]
    for method, name in (
        ("ce", "cifar100"),
        ("corr", "cifar100"),
        ("hier", "cub"),
        ("hier", "sop"),
    ):
        setup = dataclasses.replace(setups.setup_for(cfg, method, name), **tiny)
        trained.append(runs.train(cfg, method, 0, dataset=name, setup=setup))
    barz = dataclasses.replace(setups.setup_for(cfg, "ce", "cifar100", "barz"), **tiny)
    barz_ce = runs.train(cfg, "ce", 0, dataset="cifar100", paper="barz", setup=barz)
    assert runs.datasets_with_runs(cfg) == ["hiershapes", "cifar100", "cub", "sop"]

    study.run("smoke", only=["06"])
    metrics = report.load_metrics("06_metrics", cfg)
    shown = ["HierShapes", "CIFAR-100", "CUB-200-2011 (zero-shot)", "Stanford Online Products"]
    assert metrics["datasets"] == shown
    assert (
        metrics["max_height"]["HierShapes"] == 3
        and "CUB-200-2011 (zero-shot)"
        not in (
            metrics["max_height"]  # no closed-set run there
        )
    )
    assert set(metrics["chance"]["CIFAR-100"]) == {"closed set"}
    assert set(metrics["chance"]["CUB-200-2011 (zero-shot)"]) == {"zero-shot"}
    rows = {(r["dataset"], r["run"], r["distance"]): r for r in metrics["rows"]}
    for run, label in zip(trained[1:], shown[1:2] * 2 + shown[2:], strict=True):
        test = study_splits.evaluation_set(cfg, run.record.dataset, run.record.zero_shot)
        feats, labels = run.retrieval_features("test")
        assert (labels == test.labels).all()
        expected = metrics_of(feats, labels, test.hierarchy.similarity(), run.record.metric)
        row = rows[label, run.name, run.record.metric]
        assert row["K"] == len(labels) - 1 and row["test classes"] == len(set(labels.tolist()))
        assert row["mahp"] == pytest.approx(expected["mahp"], abs=1e-9)
        assert row["map"] == pytest.approx(expected["map"], abs=1e-9)
    assert rows["CUB-200-2011 (zero-shot)", trained[3].name, "hyperbolic"]["test classes"] == 3
    # Recall@K at each dataset's K (HIER's Table 1), within the database size: SOP's 1 and 10 of
    # 4 images are R@1 only, and CUB has no R@10 column value
    assert metrics["recall_ks"] == [1, 2, 4, 8, 10, 100, 1000]
    sop = rows["Stanford Online Products", trained[4].name, "hyperbolic"]
    assert sop["recall@1"] is not None and sop["recall@2"] is None and sop["recall@10"] is None
    cub = rows["CUB-200-2011 (zero-shot)", trained[3].name, "hyperbolic"]
    assert cub["recall@8"] is not None and cub["recall@10"] is None
    # CE in KFR's and in Barz's setup: two rows told apart by their setup, never merged
    assert {trained[1].name, barz_ce.name} == {"kfr/ce", "barz/ce"}
    assert rows["CIFAR-100", "kfr/ce", "cosine"]["setup"] == "kfr"
    assert rows["CIFAR-100", "barz/ce", "cosine"]["setup"] == "barz"
    assert rows["HierShapes", "ce", "cosine"]["setup"] == "profile"
    assert {"CE + L2 norm [kfr]", "CE + L2 norm [barz]", "L_CORR [barz]"} <= set(
        metrics["hp_curves"]["CIFAR-100"]
    )

    study.run("smoke", only=["06"], parameters={"dataset": "cub"})  # into figures/smoke/cub/
    only_cub = report.load_metrics("06_metrics", cfg.writing_for("cub", None))
    assert only_cub["datasets"] == ["CUB-200-2011 (zero-shot)"]
    assert {r["dataset"] for r in only_cub["rows"]} == {"CUB-200-2011 (zero-shot)"}
    assert (cfg.figures_dir / "cub" / "06_hp_curves.png").is_file()
    assert report.load_metrics("06_metrics", cfg)["datasets"] == shown  # not replaced


def metrics_of(feats, labels, similarity, metric):
    """The library's retrieval metrics with the run's distance, for the whole test set."""
    from hierstudy.evaluation import metrics
    from hierstudy.geometry import pairwise_distance

    if metric == "hyperbolic":
        metric = lambda q, g: pairwise_distance(q.double(), g.double(), c=0.1)  # noqa: E731
    k = len(labels) - 1
    return metrics.retrieval_metrics(
        feats, labels, similarity=similarity, metric=metric, K=k, recall_ks=(1,)
    )
