import math

import numpy as np
import pytest

from hierstudy import config, report, runs, study
from hierstudy.evaluation import results
from hierstudy.hierarchy import Hierarchy

VARIANTS = {
    "Euclidean",
    "cosine",
    "D_H only (visual)",
    "cosine + α·D_H (visual)",
    "cosine + α·D_H (semantic)",
    "cosine + α·D_H (Ward)",
    "cosine + α·D_H (visual, pooled Σ)",
}
RESULTS = ("visual_retrieval", "visual_robustness", "visual_agreement")


def same_ranking_metrics(row: dict, reference: dict, top: str, mahp: str) -> None:
    for key in ("mAP", top, "R@1", mahp):
        assert row[key] == pytest.approx(reference[key], abs=1e-9), key
    assert row["map_at_k"] == pytest.approx(reference["map_at_k"], abs=1e-9)


@pytest.mark.notebook
def test_notebook_05_under_smoke_builds_visual_hierarchies_and_ranks_with_them():
    study.run("smoke", only=["05"])
    cfg = config.load("smoke")
    m = report.load_metrics("05_metrics", cfg)
    ks, K = m["map_ks"], m["K"]
    top, mahp = f"mAP@{ks[-1]}", f"mAHP@{K}"
    assert ks == list(range(1, 21)) and K == min(250, m["n_test"] - 1)
    rows = {r["variant"]: r for r in m["retrieval"]}
    assert set(rows) == VARIANTS

    for row in m["retrieval"] + m["t_sweep"] + m["alpha_sweep"] + m["robustness"]:
        assert all(0 <= row[key] <= 1 for key in ("mAP", top, f"{top} (÷k)", "R@1"))
        assert 0 < row[mahp] <= (K - 1) / K + 1e-12  # a perfect ranking scores (K - 1) / K
        classical, divk = np.array(row["map_at_k"]), np.array(row["map_at_k_divk"])
        assert len(classical) == len(divk) == len(ks)
        assert np.all(divk <= classical + 1e-12)  # divides by k >= min(k, R)
        assert classical[0] == pytest.approx(row["R@1"]) == divk[0]  # mAP@1 = top-1 hit rate
        assert row[top] == classical[-1] and row[f"{top} (÷k)"] == divk[-1]

    # alpha = 0 goes through eq. 6's code path (leaves placed by eq. 4) yet ranks exactly as cosine
    cosine = rows["cosine"]
    zero = [r for r in m["alpha_sweep"] if r["alpha"] == 0]
    assert {r["hierarchy"] for r in zero} == {"visual", "semantic", "Ward"}
    for row in zero:
        same_ranking_metrics(row, cosine, top, mahp)
    # a threshold that merges nothing leaves D_H = 0: the cosine ranking again
    for row in m["t_sweep"]:
        if row["merge levels"] == 0:
            same_ranking_metrics(row, cosine, top, mahp)

    # merging: a higher t links a subset of the pairs, so level 1 never has fewer nodes
    n_classes = len(report.load_metrics("05_hierarchies", cfg)["classes"])
    for cov in ("class", "pooled"):
        sweep = sorted((r for r in m["merging"] if r["covariance"] == cov), key=lambda r: r["t"])
        nodes = [r["nodes at level 1"] for r in sweep]
        assert nodes == sorted(nodes) and 1 <= nodes[0] and nodes[-1] <= n_classes
        assert {r["t"]: r["paper"] for r in sweep if r["paper"]} == {
            0.2: "CIFAR-100",
            0.3: "CUB-200-2011",
        }
        for r in sweep:
            assert r["merge levels"] == 0 or r["nodes per level"].startswith(f"{n_classes} → ")

    agreement = {r["pair"]: r for r in m["agreement"]}
    check = agreement.pop("semantic vs semantic (check)")
    assert all(v == pytest.approx(1) for k, v in check.items() if k != "pair")
    for row in agreement.values():
        for key in (
            "triplet agreement (resolved in both)",
            "triplet agreement (resolved in either)",
        ):
            assert math.isnan(row[key]) or 0 <= row[key] <= 1
        assert math.isnan(row["cophenetic correlation"]) or -1 <= row["cophenetic correlation"] <= 1
    # the 1-epoch smoke model already gives Ward a resolved, binary tree
    assert not math.isnan(agreement["Ward vs semantic"]["triplet agreement (resolved in both)"])

    # robustness: the clean rows are the retrieval rows, every corruption has the four rankings
    robust = m["robustness"]
    assert {r["corruption"] for r in robust} == {"none", "blur", "saturation", "occlusion"}
    for row in robust:
        assert 0 <= row["leaf accuracy"] <= 1
        if row["corruption"] == "none":
            assert row[top] == rows[row["variant"]][top]
    assert len(robust) == 4 * 4
    # smoke keeps the cheap protocol: the clean network on corrupted test images, nothing retrained
    assert m["dataset"] == "hiershapes" and m["robustness_protocol"] == "corrupted test images"
    assert m["robustness_models"] == [] and not config.load("smoke").retrain_corrupted
    assert m["feature_drift"] < 1e-4  # run.model() + extract reproduce the stored features
    assert all(0 <= v <= 1 for v in m["leaf_accuracy"].values())

    # what notebook 06 needs to recompute the rankings
    saved = report.load_metrics("05_hierarchies", cfg)
    classes = tuple(saved["classes"])
    for edges in [*saved["visual"].values(), saved["ward"]]:
        tree = Hierarchy([tuple(e) for e in edges], classes)
        assert tree.is_tree and tree.classes == classes
    assert len(Hierarchy([tuple(e) for e in saved["ward"]], classes).nodes) == 2 * len(classes) - 1
    for leaves in saved["test_leaves"].values():
        assert len(leaves) == m["n_test"] and 0 <= min(leaves) and max(leaves) < len(classes)
    # every seed of the profile has the results notebook 09's ledger pairs by seed
    assert m["seeds"] == list(cfg.seeds)
    ce = {r.seed: r for r in runs.finished_runs(cfg, "hiershapes") if r.record.name == "ce"}
    assert set(cfg.seeds) <= set(ce)
    cosine_by_seed = []
    for seed in cfg.seeds:
        stored = {n: results.load_run_result(ce[seed], n) for n in RESULTS}
        assert all(stored.values()), seed
        assert stored["visual_retrieval"]["k"] == ks[-1]
        got = {r["variant"]: r["mAP@k"] for r in stored["visual_retrieval"]["rows"]}
        assert set(got) == VARIANTS
        cosine_by_seed.append(got["cosine"])
        if seed == cfg.seeds[0]:  # the figures' seed: the rows of 05_metrics
            assert got == {v: r[top] for v, r in rows.items()}
    summary = {r["measure"]: r for r in m["over_seeds"]}
    assert all(r["n"] == len(cfg.seeds) for r in summary.values())
    assert summary[f"{top}, cosine"]["mean"] == pytest.approx(np.mean(cosine_by_seed))
    for name in (
        "05_trees.png",
        "05_map_at_k.png",
        "05_robustness.png",
        "05_t_alpha.pdf",
        "05_t_sweep_roots.csv",  # docs/conventions.md, Visual hierarchy
        "05_seeds.csv",
    ):
        assert (cfg.figures_dir / name).is_file()
