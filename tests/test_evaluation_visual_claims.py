"""Tests of hierstudy.evaluation.visual_claims on tiny HierShapes runs of two seeds: the rankings
against notebook 05's pipeline before issue 17 (tests/reference_rerank.py), the stored records, and
the claims ledger reading them seed by seed."""

import numpy as np
import pandas as pd
import pytest
from reference_rerank import d_h_only, eq6, evaluate, fit, with_leaves

from hierstudy import config, run_pool
from hierstudy.datasets import study_splits
from hierstudy.evaluation import results, robustness, visual_claims
from hierstudy.hierarchy import compare
from hierstudy.report import claims
from hierstudy.report.claims_registry import CLAIMS

T, ALPHA, SEEDS = 0.3, 3.0, (0, 1)
CORRUPTIONS = ("blur", "saturation", "occlusion")  # the default: Fig. 3's


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HIERSTUDY_ROOT", str(tmp_path_factory.mktemp("visual_claims")))
        cfg = config.load("smoke", per_class={"train": 4, "val": 2, "test": 2}, seeds=SEEDS)
        semantic = study_splits.splits(cfg)["train"].hierarchy
        trained = run_pool.train_seeds(cfg, "ce", SEEDS)
        measured = {
            s: visual_claims.evaluate(cfg, r, semantic, threshold=T, alpha=ALPHA, k_max=5)
            for s, r in trained.items()
        }
        yield cfg, semantic, measured


def test_the_rankings_and_agreements_are_the_notebooks(tiny):
    cfg, semantic, measured = tiny
    m = measured[0]
    train, test = m.run.features("train"), m.run.features("test")
    y, classes = test["labels"], semantic.classes
    x = test["features"].astype(np.float64)
    grading = (semantic.similarity(), m.scores.K, m.scores.map_ks)
    _, _, leaves, built, ward = fit(
        train["features"], train["labels"], test["features"], classes, T, "class"
    )
    _, _, pooled_leaves, pooled, _ = fit(
        train["features"], train["labels"], test["features"], classes, T, "pooled"
    )
    rows, pooled_rows = with_leaves(x, leaves), with_leaves(x, pooled_leaves)
    tree = built.ranking_hierarchy
    expected = {
        "Euclidean": evaluate(x, "euclidean", y, *grading),
        "cosine": evaluate(x, "cosine", y, *grading),
        "D_H only (visual)": evaluate(rows, d_h_only(tree), y, *grading),
        "cosine + α·D_H (visual)": evaluate(rows, eq6(tree, ALPHA), y, *grading),
        "cosine + α·D_H (semantic)": evaluate(rows, eq6(semantic, ALPHA), y, *grading),
        "cosine + α·D_H (Ward)": evaluate(rows, eq6(ward, ALPHA), y, *grading),
        "cosine + α·D_H (visual, pooled Σ)": evaluate(
            pooled_rows, eq6(pooled.ranking_hierarchy, ALPHA), y, *grading
        ),
    }
    assert m.retrieval.variant.tolist() == list(expected)
    for row in m.retrieval.to_dict("records"):
        for key, value in expected[row["variant"]].items():
            np.testing.assert_equal(row[key], value, err_msg=f"{row['variant']}: {key}")
    agreement = m.agreement.set_index("pair")
    pairs = {
        "visual vs semantic": (built.hierarchy, semantic),
        "visual (pooled Σ) vs semantic": (pooled.hierarchy, semantic),
        "Ward vs semantic": (ward, semantic),
        "visual vs Ward": (built.hierarchy, ward),
        "semantic vs semantic (check)": (semantic, semantic),
    }
    assert agreement.index.tolist() == list(pairs)
    for pair, (a, b) in pairs.items():
        np.testing.assert_equal(agreement.loc[pair].to_dict(), compare.agreement(a, b))
    # Fig. 3: the robustness module with the chosen re-ranker, nothing else
    again = robustness.robustness(
        cfg, m.run, CORRUPTIONS, m.fits["class"], m.scores, ALPHA, retrained=False
    )
    pd.testing.assert_frame_equal(m.robust.table, again.table)
    assert set(m.robust.table.corruption) == {"none", *CORRUPTIONS}


def test_records_are_what_the_ledger_pairs_by_seed(tiny):
    cfg, _, measured = tiny
    for m in measured.values():
        stored = visual_claims.records(m)
        assert set(stored) == {"visual_retrieval", "visual_robustness", "visual_agreement"}
        k = m.scores.map_ks[-1]
        assert k == 5 and stored["visual_retrieval"]["k"] == stored["visual_robustness"]["k"] == k
        for name, table in (
            ("visual_retrieval", m.retrieval),
            ("visual_robustness", m.robust.table),
        ):
            rows = stored[name]["rows"]
            assert len(rows) == len(table) and not {"map_at_k", "map_at_k_divk"} & set(rows[0])
            assert [r["mAP@k"] for r in rows] == table[f"mAP@{k}"].tolist()
        np.testing.assert_equal(stored["visual_agreement"]["rows"], m.agreement.to_dict("records"))
        for name, record in stored.items():
            results.save_run_result(m.run, name, record)
    ledger = {c.id: c for c in CLAIMS if c.notebook == "05"}
    assert set(ledger) == {"vh_retrieval", "vh_meaningful", "vh_robustness"}
    for claim in ledger.values():
        for comparison in claim.comparisons:
            for side in (comparison.treatment, comparison.control):
                values = claims.side_values(cfg, claim, side)
                assert values.index.tolist() == list(SEEDS), side
    visual = claims.side_values(
        cfg, ledger["vh_retrieval"], ledger["vh_retrieval"].comparisons[0].treatment
    )
    for s, m in measured.items():
        row = m.retrieval.set_index("variant").loc["cosine + α·D_H (visual)"]
        assert visual[s] == row[f"mAP@{m.scores.map_ks[-1]}"]


def test_key_numbers_are_the_stored_values_of_one_seed(tiny):
    _, _, measured = tiny
    for m in measured.values():
        numbers = {r["measure"]: r["value"] for r in visual_claims.key_numbers(m)}
        top = f"mAP@{m.scores.map_ks[-1]}"
        for _, r in m.retrieval.iterrows():
            assert numbers[f"{top}, {r.variant}"] == r[top]
        hit = m.robust.table[m.robust.table.corruption != "none"]
        corrupted = tuple(f"{top}, {c}, " for c in hit.corruption.unique())
        assert {k for k in numbers if k.startswith(corrupted)} == {
            f"{top}, {r.corruption}, {r.variant}"
            for _, r in hit.iterrows()
            if r.variant in visual_claims.RANKED
        }
        agreement = m.agreement.set_index("pair")[visual_claims.AGREEMENT]
        for pair in ("visual vs semantic", "Ward vs semantic"):
            assert numbers[f"{visual_claims.AGREEMENT}, {pair}"] == agreement[pair]
