"""Notebook 07 under ``paper_check`` (the paper profile's datasets and setups, one epoch of batch-4
steps, one seed) on a tiny fake ImageNet-1k in the ILSVRC layout: validation images with XML
boxes, two per image, and random "pretrained" weights for the setups' backbones."""

import math

import nbformat
import pytest
from fake_datasets import notebook_project, write_imagenet

from hierstudy import config, report, setups, study

# the runs of the papers' setups on ImageNet-1k: KFR's (wide ResNet-101 at 224 px) and Barz's
# (ResNet-50), each with its own CE baseline
RUNS = {
    "kfr/ce",
    "kfr/kfr-alpha100-phase10",
    "barz/ce",
    "barz/corr_cls",
    "barz/center",
    "barz/corr",
}
SCORES = (
    "maxboxacc_v2",
    "maxboxacc_v2_iou30",
    "maxboxacc_v2_iou50",
    "maxboxacc_v2_iou70",
    "boxacc_tau0.15_iou30",
    "top1loc_tau0.15_iou30",
    "energy_in_box",
)


@pytest.mark.notebook
def test_notebook_07_scores_the_papers_setups_on_imagenet_boxes(tmp_path, monkeypatch):
    weights = notebook_project(tmp_path, ["wide_resnet101_2", "resnet50"]) / "weights"
    write_imagenet(tmp_path / "data", classes=2, per_class=1, boxes=2)
    for key, value in {
        "HIERSTUDY_ROOT": tmp_path,
        "HIERSTUDY_DATA": tmp_path / "data",
        "HIERSTUDY_WEIGHTS": weights,
    }.items():
        monkeypatch.setenv(key, str(value))
    cfg = config.load("paper_check")
    assert cfg.datasets["wsol"] == "imagenet1k"
    try:
        (executed,) = study.run("paper_check", only=["07"])
    finally:  # ~4 GB of checkpoints (two wide ResNet-101 runs with AdamW state) and weights
        for path in [*tmp_path.rglob("*.pt"), *tmp_path.rglob("*.pth")]:
            path.unlink()

    metrics = report.load_metrics("07_metrics", cfg)
    assert metrics["dataset"] == metrics["_provenance"]["dataset"] == "imagenet1k"
    assert "dataset imagenet1k" in (cfg.figures_dir / "07_wsol.md").read_text()
    assert metrics["n_images"] == 2 and metrics["seeds"] == [0]
    kfr, barz = metrics["setups"]
    assert (kfr["paper"], kfr["backbone"], barz["paper"], barz["backbone"]) == (
        "kfr",
        setups.SETUPS["kfr", "imagenet1k"].backbone,
        "barz",
        "resnet50",
    )
    # 224 px: both ResNets' last block is 7 × 7, KFR's own layer, so only it is scored
    for setup in (kfr, barz):
        assert setup["layer"] == setup["last_block"] == "backbone.layer4"
        assert setup["grid"] == setup["last_grid"] == [7, 7] and setup["boxless"] == 0
        assert 0 < setup["box_share"] < 1 and setup["n_boxes"] == 4  # two boxes per image
    assert metrics["rows_last_block"] == []

    rows = {r["model"]: r for r in metrics["rows"]}
    runs = {r["run"]: r for r in metrics["rows"]}
    assert set(runs) == RUNS | {kfr["centre"], barz["centre"]}
    assert len(rows) == len(runs) == 8  # every label names its setup: no two rows merge
    assert [len(kfr["models"]), len(barz["models"])] == [2, 4]
    for r in metrics["rows"]:
        assert all(0 <= r[k] <= 1 for k in SCORES if r[k] is not None), r
        assert r["maxboxacc_v2"] == pytest.approx(
            (r["maxboxacc_v2_iou30"] + r["maxboxacc_v2_iou50"] + r["maxboxacc_v2_iou70"]) / 3
        )
        assert r["boxacc_tau0.15_iou30"] <= r["maxboxacc_v2_iou30"] + 1e-12
        if r["run"] not in (kfr["centre"], barz["centre"]):
            assert 0 <= r["test_acc"] <= 1 and r["top1loc_tau0.15_iou30"] is not None
            assert r["top1loc_tau0.15_iou30"] <= r["boxacc_tau0.15_iou30"] + 1e-12
    assert not any(math.isnan(r["maxboxacc_v2"]) for r in metrics["rows"])

    # KFR against the CE of its own setup, never Barz's; each Barz model against Barz's CE
    pair = metrics["kfr_vs_ce"]
    assert pair == {"kfr": "KFR (α=100), KFR's setup", "ce": kfr["baseline"], "paper": "kfr"}
    assert runs["kfr/ce"]["model"] == kfr["baseline"] != barz["baseline"]
    baseline = {
        runs[r]["model"]: runs[r.split("/")[0] + "/ce"] for r in RUNS if not r.endswith("/ce")
    }
    claims = {(c["model"], c["metric"]): c for c in metrics["claims"]}
    assert {m for m, _ in claims} == set(baseline) and pair["kfr"] in baseline  # no CE vs a CE
    for model, ce in baseline.items():
        for key, metric in (
            ("maxboxacc_v2", "MaxBoxAccV2 (mean of δ)"),
            ("energy_in_box", "CAM energy in box"),
        ):
            minus = claims[model, metric]["Δ vs CE (mean)"]
            assert minus == pytest.approx(rows[model][key] - ce[key])
    energy = rows[pair["kfr"]]["energy_in_box"] - runs["barz/ce"]["energy_in_box"]
    assert claims[pair["kfr"], "CAM energy in box"]["Δ vs CE (mean)"] != pytest.approx(energy)
    assert metrics["kfr_claim_maxboxacc_v2"] == "inconclusive (1 seed)"
    for name in ("07_gradcam_grid.png", "07_boxacc_vs_tau.png", "07_kfr_claim.md"):
        assert (cfg.figures_dir / name).is_file()
    last = nbformat.read(str(executed), as_version=4).cells[-1]
    found = "".join(o.get("data", {}).get("text/plain", "") for o in last.outputs)  # findings
    assert found.startswith("What we found") and "2 ImageNet-1k test images" in found
    assert "in KFR's setup, KFR against that setup's own CE" in found
