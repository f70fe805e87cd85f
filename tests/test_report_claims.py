"""The claims ledger: the verdict rule on constructed numbers, the ledger rebuilt from fake
per-seed results stored beside fake runs (nothing trained), the README block."""

import json
import math

import pandas as pd
import pytest
from fake_results import fake_run, store_retrieval

from hierstudy import study
from hierstudy.evaluation.results import save_dataset_result
from hierstudy.report import claims
from hierstudy.report.claims_registry import BARZ, CLAIMS, HIER, KFR, VH
from hierstudy.report.tables import PairedDifference

T_975_2 = 4.302652729911275  # Student's t, 97.5 % quantile, 2 degrees of freedom (tables)


def paired(differences, control=0.5) -> PairedDifference:
    seeds = range(len(differences))
    c = pd.Series([control] * len(differences), index=seeds, dtype=float)
    return PairedDifference(c + pd.Series(differences, index=seeds, dtype=float), c)


def test_the_interval_is_students_t_over_the_paired_differences():
    low, high = paired([1.0, 2.0, 3.0]).interval()  # mean 2, std 1, n 3
    half = T_975_2 / math.sqrt(3)
    assert low == pytest.approx(2 - half) and high == pytest.approx(2 + half)
    assert all(math.isnan(v) for v in paired([0.3]).interval())


@pytest.mark.parametrize(
    ("differences", "direction", "expected"),
    [
        ([0.10, 0.11, 0.09, 0.10, 0.12], "higher", "reproduced"),  # n = 5, tight
        ([0.10, 0.11, 0.09, 0.10, 0.12], "lower", "opposite"),
        ([-0.10, -0.11, -0.09, -0.10, -0.12], "higher", "opposite"),
        ([0.10, -0.10, 0.05, -0.05, 0.02], "higher", "inconclusive (5 seeds)"),  # spread ≫ Δ
        ([0.10, 0.11], "higher", "reproduced"),  # n = 2: 0.105 ± 12.71 · 0.0071 / √2 > 0
        ([0.10, 0.30], "higher", "inconclusive (2 seeds)"),  # n = 2: 0.2 ± 1.27
        ([-0.30, -0.31], "lower", "reproduced"),
        ([0.50], "higher", "inconclusive (1 seed)"),  # one seed never decides
    ],
)
def test_the_verdict_rule_on_constructed_differences(differences, direction, expected):
    assert claims.verdict(paired(differences), direction) == expected


def test_a_margin_moves_the_bound_and_the_unit_is_named():
    slightly_lower = paired([-0.010, -0.012, -0.008, -0.011, -0.009])
    assert claims.verdict(slightly_lower, "higher") == "opposite"
    assert claims.verdict(slightly_lower, "higher", margin=0.02) == "reproduced"
    much_lower = paired([-0.05, -0.06, -0.04])
    assert claims.verdict(much_lower, "higher", margin=0.02) == "opposite"
    assert claims.verdict(paired([0.1, -0.3, 0.2]), unit="tree") == "inconclusive (3 trees)"
    assert claims.verdict(paired([])).startswith("not tested here")
    with pytest.raises(ValueError, match="direction"):
        claims.verdict(paired([0.1, 0.2]), "better")


def test_the_registry_covers_the_four_papers_with_fair_controls():
    assert len(CLAIMS) >= 14 and len({c.id for c in CLAIMS}) == len(CLAIMS)
    assert {c.paper for c in CLAIMS} == {KFR, BARZ, HIER, VH}
    for claim in CLAIMS:
        assert claim.where and claim.text and claim.comparisons, claim.id
        for c in claim.comparisons:
            assert c.direction in ("higher", "lower") and c.treatment != c.control, claim.id
    # Barz's L_CORR (dot product of unit vectors) against CE under both distances
    mahp = next(c for c in CLAIMS if c.id == "barz_mahp")
    assert {c.control.where["distance"] for c in mahp.comparisons} == {"euclidean", "cosine"}


def test_every_claim_is_in_the_smoke_ledger_untested_with_its_reason(smoke):
    ledger = claims.ledger(smoke)  # nothing stored under runs/smoke/
    assert set(ledger["claim"]) == {c.id for c in CLAIMS}
    assert len(ledger) == sum(len(c.comparisons) for c in CLAIMS)
    assert ledger["verdict"].str.startswith("not tested here: ").all()
    assert ledger["verdict"].str.contains("notebook 0[2-8]").all()  # who would store it
    assert (ledger["n"] == 0).all() and ledger["Δ"].isna().all()
    assert claims.findings_markdown(ledger, "smoke").startswith("No verdicts yet")


RETRIEVAL = """\
method,run,protocol,distance,K,seed,mahp,balanced_accuracy,map,recall@1
CE (classification features),ce,closed set,euclidean,250,{s},{raw},0.60,0.50,0.6
CE + L2 norm,ce,closed set,cosine,250,{s},{l2},0.60,0.55,0.6
L_CORR,corr,closed set,dot,250,{s},{corr},0.55,0.48,0.6
"""


def store_two_methods(cfg, seeds=(0, 1, 2)) -> None:
    """CE and L_CORR per seed: L_CORR's mAHP 0.10 above raw CE and 0.02 ± 0.03 above CE + L2."""
    rows = [
        RETRIEVAL.format(s=s, raw=0.60 + 0.01 * s, l2=0.66 + 0.01 * s, corr=0.70 + d + 0.01 * s)
        for s, d in zip(seeds, (0.0, -0.02, 0.04), strict=True)
    ]
    store_retrieval(cfg, rows[0] + "".join(r.split("\n", 1)[1] for r in rows[1:]))


def test_the_ledger_is_rebuilt_from_the_results_stored_beside_the_runs(smoke):
    store_two_methods(smoke)
    rows = claims.ledger(smoke).set_index(["claim", "control", "treatment"])
    raw = rows.loc[("barz_mahp", "CE (euclidean)", "L_CORR (dot)")]
    assert raw["Δ"] == pytest.approx(0.10 + 0.02 / 3) and raw["n"] == 3
    assert raw["verdict"] == "reproduced" and raw["paper's number"] == "0.8290 vs 0.7261"
    fair = rows.loc[("barz_mahp", "CE + L2 norm (cosine)", "L_CORR (dot)")]
    assert (
        fair["Δ"] == pytest.approx(0.04 + 0.02 / 3) and fair["verdict"] == "inconclusive (3 seeds)"
    )
    assert fair["CI low"] < 0 < fair["CI high"]
    mean_ap = rows.loc[("barz_map", "CE + L2 norm (cosine)", "L_CORR (dot)")]
    assert mean_ap["Δ"] == pytest.approx(-0.07) and mean_ap["verdict"] == "opposite"
    accuracy = rows.loc[("barz_classification", "CE", "L_CORR (nearest class embedding)")]
    assert accuracy["Δ"] == pytest.approx(-0.05) and accuracy["verdict"] == "opposite"  # > 0.02
    untested = rows.loc[("barz_mahp", "CE + L2 norm (cosine)", "L_CORR+CLS (dot)")]
    assert untested["verdict"].startswith("not tested here: no retrieval result of run 'corr_cls'")


def test_run_records_and_dataset_results_are_read_too(smoke):
    for name, accuracies in (("ce", (0.60, 0.62, 0.61)), ("kfr", (0.50, 0.53, 0.50))):
        for seed, acc in enumerate(accuracies):
            path = fake_run(smoke, name, seed).run_dir / "result.json"
            path.write_text(json.dumps(json.loads(path.read_text()) | {"val_acc_last5": acc}))
    trees = [("a", 2e-15, 3e-13), ("b", 0.0, 1e-13), ("c", 4e-15, 1e-13)]
    rows = [dict(zip(("tree", "algorithm1", "eigendecomposition"), t, strict=True)) for t in trees]
    save_dataset_result(smoke, "hiershapes", "exactness", {"rows": rows})
    ledger = claims.ledger(smoke).set_index("claim")
    kfr = ledger.loc["kfr_accuracy"].iloc[0]  # last-5-epoch accuracy: KFR 0.1 below CE
    assert kfr["Δ"] == pytest.approx(-0.1) and kfr["n"] == 3 and kfr["verdict"] == "opposite"
    precision = ledger.loc["barz_precision"]  # decades; 0 counts as the unit roundoff
    expected = [math.log10(2e-15 / 3e-13), math.log10(claims.ROUNDOFF / 1e-13), -1.39794]
    assert precision["Δ"] == pytest.approx(sum(expected) / 3, abs=1e-5)
    assert precision["verdict"] == "reproduced" and precision["n"] == 3
    fake_run(smoke, "kfr-alpha1", 0)  # finished, but its accuracy is null
    trend = claims.ledger(smoke).set_index("claim").loc["kfr_alpha_trend"].iloc[0]
    assert trend["verdict"] == (
        "not tested here: KFR (α = 1): val_acc_last5 is undefined on every seed (stored as null)"
    )


def test_kfrs_accuracy_over_its_second_phase_is_read_from_the_history(smoke):
    """The second comparison of KFR's accuracy claim: the epochs where ℓ_qtr is on (4-7 of 8)."""
    curves = {
        "ce": [0.1, 0.2, 0.3, 0.4, 0.5, 0.5, 0.5, 0.5],
        "kfr": [0.1, 0.2, 0.3, 0.9] + [0.6] * 4,
    }
    for name, curve in curves.items():
        for seed in (0, 1):
            shift = 0.01 * seed
            frame = pd.DataFrame({"epoch": range(8), "val_acc": [v + shift for v in curve]})
            frame.to_csv(fake_run(smoke, name, seed).run_dir / "metrics.csv", index=False)
    rows = claims.ledger(smoke).set_index("claim").loc["kfr_accuracy"]
    second = rows[rows.metric.str.contains("second phase")].iloc[0]
    assert second["Δ"] == pytest.approx(0.1) and second["n"] == 2  # not the 0.9 of epoch 3
    assert second["verdict"] == "reproduced"  # the same Δ on both seeds: a zero-width interval


def test_two_values_for_one_seed_are_not_tested(smoke):
    store_retrieval(
        smoke, RETRIEVAL.format(s=0, raw=0.6, l2=0.6, corr=0.7).replace("dot", "cosine")
    )
    row = claims.ledger(smoke).set_index("claim").loc["barz_map"].iloc[1]
    assert row["verdict"] == (
        "not tested here: no retrieval result of run 'corr', distance = 'dot' on hiershapes "
        "(notebook 06)"
    )
    store_retrieval(
        smoke, RETRIEVAL.format(s=1, raw=0.6, l2=0.6, corr=0.7).replace("euclidean", "cosine")
    )
    row = claims.ledger(smoke).set_index("claim").loc["barz_map"].iloc[1]
    assert "several retrieval rows for seed 1" in row["verdict"]


def test_publish_writes_the_findings_block_from_the_ledger(project, smoke):
    store_two_methods(smoke)
    smoke.figures_dir.mkdir(parents=True)
    (project / "notebooks").mkdir()
    (project / "notebooks" / "09_verdicts.py").write_text("# %% [markdown]\n# # 09 · Verdicts\n")
    readme = project / "README.md"
    readme.write_text("a\n<!-- findings:smoke:start -->\nold\n<!-- findings:smoke:end -->\nb\n")
    study.publish("smoke", {})
    text = readme.read_text()
    assert text.startswith("a\n<!-- findings:smoke:start -->\nVerdicts of the claims ledger")
    assert text.endswith("<!-- findings:smoke:end -->\nb\n") and "old" not in text
    line = next(
        x for x in text.splitlines() if "L_CORR (dot) − CE (euclidean)" in x and "mAHP" in x
    )
    assert "+0.107 [" in line and "| 3 " in line and "reproduced" in line
    assert "reproduced 1, opposite 3, inconclusive 1" in text  # mAHP; mAP twice, accuracy
