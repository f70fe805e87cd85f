import math
import re

import pytest

from hierstudy import config, report, study
from hierstudy.evaluation.results import load_dataset_results, load_run_results

MODELS = {"CE (baseline)", "KFR (α=30)", "L_CORR+CLS", "CE + center loss", "L_CORR (score ψᵀφ)"}
VERDICT = re.compile(r"reproduced|opposite|inconclusive \(\d+ seeds?\)")  # the study's rule


@pytest.mark.notebook
def test_notebook_07_under_smoke_scores_every_model_with_both_wsol_metrics():
    study.run("smoke", only=["07"])
    cfg = config.load("smoke")
    metrics = report.load_metrics("07_metrics", cfg)
    rows = metrics["rows"]
    models = {r["model"] for r in rows}
    assert MODELS <= models and "centre Gaussian (no model)" in models
    assert len(rows) == len(MODELS) * len(cfg.seeds) + 1
    assert 0 < metrics["n_images"] <= 350
    for r in rows:
        # both metrics, under their own names
        assert {"maxboxacc_v2", "boxacc_tau0.15_iou30"} <= set(r)
        per_delta = [r[f"maxboxacc_v2_iou{d}"] for d in (30, 50, 70)]
        assert all(0 <= v <= 1 for v in [*per_delta, r["maxboxacc_v2"], r["boxacc_tau0.15_iou30"]])
        assert r["maxboxacc_v2"] == pytest.approx(sum(per_delta) / 3, abs=1e-12)
        assert per_delta[0] >= per_delta[1] >= per_delta[2]  # a box with IoU ≥ 0.7 has IoU ≥ 0.5
        # the KFR point is one τ of the δ = 30 sweep: it cannot beat the sweep's maximum
        assert r["boxacc_tau0.15_iou30"] <= r["maxboxacc_v2_iou30"] + 1e-12
        assert 0 <= r["energy_in_box"] <= 1 and 0 <= r["empty_cams"] <= 1
        if r["model"] in MODELS:
            assert 0 <= r["test_acc"] <= 1
            # Top-1 Loc needs the class right too: never above GT-known BoxAcc at the same point
            assert 0 <= r["top1loc_tau0.15_iou30"] <= r["boxacc_tau0.15_iou30"] + 1e-12
    assert not any(math.isnan(r["maxboxacc_v2"]) for r in rows)
    # the Grad-CAM layer: the last block whose map is ≥ min_cam_grid a side (tiny_cnn at 32 px:
    # blocks of 16, 8, 4, 4 cells), the last block (KFR's layer) scored beside it
    assert metrics["cam_layer"] == "backbone.blocks.1" and metrics["cam_grid"] == [8, 8]
    assert metrics["last_block"] == "backbone.blocks.3" and metrics["last_block_grid"] == [4, 4]
    assert min(metrics["cam_grid"]) >= metrics["min_cam_grid"] > min(metrics["last_block_grid"])
    assert {r["layer"] for r in rows} == {"backbone.blocks.1", "-"}  # "-": the centre Gaussian
    last = metrics["rows_last_block"]
    assert {r["layer"] for r in last} == {"backbone.blocks.3"} and {
        r["model"] for r in last
    } == MODELS
    assert len(last) == len(MODELS) * len(cfg.seeds)
    for r in last:  # another layer, other maps: same accuracy, other localisation
        same = next(c for c in rows if (c["model"], c["seed"]) == (r["model"], r["seed"]))
        assert r["test_acc"] == same["test_acc"] and 0 <= r["maxboxacc_v2"] <= 1
    assert any(
        r["maxboxacc_v2"] != next(c for c in rows if c["model"] == r["model"])["maxboxacc_v2"]
        for r in last
    )
    assert VERDICT.fullmatch(metrics["kfr_claim_maxboxacc_v2"])
    assert VERDICT.fullmatch(metrics["kfr_claim_kfr_point"])
    if len(cfg.seeds) == 1:
        assert metrics["kfr_claim_maxboxacc_v2"] == "inconclusive (1 seed)"
    # the chosen layer's scores are stored beside each run and the centre Gaussian beside the
    # dataset's runs, for the headline
    stored = {(run.name, run.seed): r for run, r in load_run_results(cfg, "localisation")}
    assert len(stored) == len(MODELS) * len(cfg.seeds)
    for r in rows:
        if r["model"] in MODELS:
            assert stored[r["run"], r["seed"]] == {k: r[k] for k in r if k not in ("run", "seed")}
    (reference,) = load_dataset_results(cfg, "localisation")["hiershapes"]["references"]
    centre = next(r for r in rows if r["model"] == "centre Gaussian (no model)")
    assert reference == {k: centre[k] for k in reference} and "maxboxacc_v2" in reference
    table = (cfg.figures_dir / "07_wsol.md").read_text()
    assert "MaxBoxAccV2 (mean of δ)" in table and "BoxAcc(τ=0.15, δ=30) (KFR's point)" in table
    for name in (
        "07_gradcam_grid.png",
        "07_boxacc_vs_tau.png",
        "07_kfr_claim.csv",
        "07_layer_comparison.md",
        "07_box_conventions.md",  # Choe et al.'s box convention against the continuous one
    ):
        assert (cfg.figures_dir / name).is_file()
