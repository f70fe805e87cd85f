import json
import re

import numpy as np
import pandas as pd
import pytest

from hierstudy import config, report, runs, study
from hierstudy.datasets import study_splits

VERDICT = re.compile(r"reproduced|opposite|inconclusive \(\d+ seeds?\)")  # the study's rule
TREES = [
    "semantic",
    "visual (class Σ)",
    "visual (pooled Σ)",
    "Ward (CE class means)",
    "HIER proxies",
    "HIER + KFR proxies",
]
DELTAS = ("Δ mAHP", "Δ mAP", "Δ R@1")


@pytest.fixture(scope="module")
def smoke():
    """Notebook 08 under smoke: it reloads (or trains) the runs of 02-04 with their knobs."""
    study.run("smoke", only=["08"])
    cfg = config.load("smoke")
    text = (cfg.figures_dir / "08_metrics.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in 08_metrics.json"))  # strict JSON
    return cfg, report.load_metrics("08_metrics", cfg)


@pytest.mark.notebook
def test_notebook_08_pairs_each_method_with_its_kfr_variant_seed_by_seed(smoke):
    cfg, m = smoke
    seeds = list(cfg.seeds)
    methods = {"L_CORR": ("corr", m["alphas"]["corr"]), "PA + HIER": ("hier", m["alphas"]["hier"])}
    rows = m["signals_per_seed"]
    expected = {(p, v, s) for p in methods for v in ("without", "+ KFR") for s in seeds}
    assert {(r["pair"], r["variant"], r["seed"]) for r in rows} == expected
    finished = {(r.name, r.seed): r for r in runs.finished_runs(cfg)}
    for r in rows:
        method, alpha = methods[r["pair"]]
        run = finished[(r["run"], r["seed"])]
        assert run.method == method and run.record.zero_shot == (method == "hier")
        assert all(0 <= r[k] <= 1 for k in ("R@1", "mAHP", "mAP"))
        if method == "corr":
            assert r["test acc"] == run.record.test_acc and 0 <= r["test acc"] <= 1
        else:  # zero-shot: no classifier for the unseen classes
            assert r["test acc"] is None
    for pair, (_, alpha) in methods.items():
        for seed in seeds:
            trained = {
                r["variant"]: finished[(r["run"], seed)]
                for r in rows
                if (r["pair"], r["seed"]) == (pair, seed)
            }
            # same knobs but KFR's, whose term (α, on the features) only the new run has
            assert trained["+ KFR"].record.knobs == {
                **trained["without"].record.knobs,
                "kfr": alpha,
            }
            terms = {t.name: t for t in trained["+ KFR"].record.recipe.terms}
            assert (terms["kfr"].weight, terms["kfr"].input) == (alpha, "features")
            assert "kfr" not in {t.name for t in trained["without"].record.recipe.terms}

    assert {(s["pair"], s["metric"]) for s in m["signals"]} == {
        ("L_CORR", "test acc"),
        ("L_CORR", "mAHP"),
        ("L_CORR", "mAP"),
        ("PA + HIER", "R@1"),
        ("PA + HIER", "mAHP"),
        ("PA + HIER", "mAP"),
    }
    for s in m["signals"]:
        values = {
            v: [r[s["metric"]] for r in rows if r["pair"] == s["pair"] and r["variant"] == v]
            for v in ("without", "+ KFR")
        }
        differences = np.subtract(values["+ KFR"], values["without"])
        assert s["difference (mean)"] == pytest.approx(differences.mean(), abs=1e-12)
        assert s["seeds higher"] == int((differences > 0).sum()) and s["seeds"] == len(seeds)
        assert VERDICT.fullmatch(s["verdict"])
        if len(seeds) == 1:
            assert s["verdict"] == "inconclusive (1 seed)" and s["difference (std)"] is None

    new = {r["run"] for r in rows if r["variant"] == "+ KFR"}
    assert {b["run"] for b in m["kfr_balance"]} >= new
    for b in m["kfr_balance"]:
        assert b["α"] > 0 and b["ℓ_qtr"] > 0 and b["main loss"] > 0
        assert b["α·ℓ_qtr / main loss"] == pytest.approx(b["α"] * b["ℓ_qtr"] / b["main loss"])


def _keys(value) -> set[str]:
    """Every key of a JSON value, however deep."""
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    return {k for v in value for k in _keys(v)} if isinstance(value, list) else set()


@pytest.mark.notebook
def test_notebook_08_stores_no_wall_clock_time(smoke):
    """A rerun rewrites 08's files byte for byte: wall-clock times live only in manifest.json."""
    cfg, m = smoke
    clock = re.compile("seconds|time", re.IGNORECASE)  # not "second", a column of 08_agreement
    assert not [k for k in _keys(m) if clock.search(k)]
    for table in cfg.figures_dir.glob("08_*.csv"):
        assert not [c for c in pd.read_csv(table).columns if clock.search(c)], table


@pytest.mark.notebook
def test_notebook_08_reranks_every_closed_set_run_and_isolates_d_h(smoke):
    cfg, m = smoke
    closed = {(r.name, r.seed) for r in runs.finished_runs(cfg) if not r.record.zero_shot}
    rows = m["rerank_per_seed"]
    got = {(r["run"], r["seed"]) for r in rows}
    corr_kfr = f"corr-kfr{m['alphas']['corr']:g}"
    assert {("ce", s) for s in cfg.seeds} | {(corr_kfr, s) for s in cfg.seeds} <= got <= closed
    assert len(rows) == len(got) * len(m["covariances"])
    signals = {(r["run"], r["seed"]): r for r in m["signals_per_seed"]}
    for r in rows:
        assert 0 < r["cosine mAHP"] < 1 and 0 <= r["cosine mAP"] <= 1
        assert 0 <= r["cosine mAHP"] + r["Δ mAHP"] <= 1 and 0 <= r["cosine mAP"] + r["Δ mAP"] <= 1
        if r["merge levels"] == 0:  # nothing merged: D_H = 0, the cosine ranking exactly
            assert all(r[d] == 0 for d in DELTAS)
        if (r["run"], r["seed"]) in signals:  # L_CORR's unit embeddings: cosine ranks as the dot
            own = signals[(r["run"], r["seed"])]  # up to float32 / float64 near-ties
            assert r["cosine mAP"] == pytest.approx(own["mAP"], abs=1e-3)
            assert r["cosine mAHP"] == pytest.approx(own["mAHP"], abs=1e-3)
    for summary in m["rerank"]:
        per_seed = [
            r
            for r in rows
            if (r["run"], r["covariance"]) == (summary["run"], summary["covariance"])
        ]
        assert summary["seeds"] == len(per_seed)
        for d in DELTAS:
            assert summary[d] == pytest.approx(np.mean([r[d] for r in per_seed]), abs=1e-12)


@pytest.mark.notebook
def test_notebook_08_compares_every_pair_of_hierarchies_on_the_common_classes(smoke):
    cfg, m = smoke
    assert m["trees"] == TREES
    classes = study_splits.hiershapes_splits(cfg)["train"].hierarchy.classes
    assert m["common_classes"] == len(classes) // 2  # HIER's trees cover the seen half only
    rows = {(r["first"], r["second"]): r for r in m["agreement"]}
    assert set(rows) == {(a, b) for i, a in enumerate(TREES) for b in TREES[i:]}
    for key in ("triplet agreement", "cophenetic correlation"):
        for tree in ("semantic", "Ward (CE class means)"):  # a tree agrees with itself
            assert rows[(tree, tree)][f"{key} (common classes)"] == pytest.approx(1)
            assert rows[(tree, tree)][f"{key} (all classes)"] == pytest.approx(1)
        for (a, b), r in rows.items():
            low = 0 if key == "triplet agreement" else -1
            for scope in ("common", "all"):
                value = r[f"{key} ({scope} classes)"]
                assert value is None or low - 1e-12 <= value <= 1 + 1e-12
            if "HIER" in a or "HIER" in b:  # no full tree to compare on all classes
                assert r[f"{key} (all classes)"] is None
    # Ward's binary tree resolves every triplet, the taxonomy many: always comparable
    assert (
        rows[("semantic", "Ward (CE class means)")]["triplet agreement (common classes)"]
        is not None
    )
    per_seed = m["agreement_per_seed"]
    assert len(per_seed) == len(rows) * len(cfg.seeds)
    stats = {r["tree"]: r for r in m["tree_stats"]}
    assert list(stats) == TREES and len(m["tree_stats_per_seed"]) == len(TREES) * len(cfg.seeds)
    assert stats["Ward (CE class means)"]["triplets resolved"] == 1  # binary, even restricted
    for seeded in m["tree_stats_per_seed"]:
        assert 0 <= seeded["triplets resolved"] <= 1
        if seeded["triplets resolved"] == 0:  # nothing to agree on: undefined against any tree
            for r in per_seed:
                if r["seed"] == seeded["seed"] and seeded["tree"] in (r["first"], r["second"]):
                    assert r["triplet agreement (common classes)"] is None
    for name in (
        "08_signals_add_up.png",
        "08_rerank.png",
        "08_agreement.png",
        "08_kfr_balance.md",
        "08_agreement.md",
        "08_trees.md",
    ):
        assert (cfg.figures_dir / name).is_file()
