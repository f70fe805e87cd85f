"""Notebook 05 under ``paper_check`` (the paper profile's datasets and setups, one epoch of batch-4
steps) on a tiny fake CUB-200-2011: the visual-hierarchy paper's ResNet-50 setup, and its
robustness protocol of networks retrained on corrupted images."""

import json
import math
from pathlib import Path

import jupytext
import numpy as np
import papermill
import pytest
from fake_datasets import notebook_project, write_cub

from hierstudy import config, report, study
from hierstudy.datasets.cub import BARZ_TAXONOMY
from hierstudy.setups import paper_setup

CLASSES, PER_CLASS = 3, 6  # 3 official training images per class: 2 train (a covariance
# needs 2) and 1 validates (the paper's 80/20 split); 3 test images
RANKED = {"cosine", "cosine + α·D_H (visual)", "cosine + α·D_H (semantic)", "cosine + α·D_H (Ward)"}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A project root with the notebooks, a fake CUB with Barz & Denzler's taxonomy file (classes 1
    and 2 in one genus) and random 'pretrained' ResNet-50 weights."""
    root = tmp_path_factory.mktemp("project")
    notebook_project(root, [paper_setup("vh", "cub_official").backbone])
    write_cub(root / "data", classes=CLASSES, per_class=PER_CLASS)
    (root / "data" / "CUB_200_2011" / BARZ_TAXONOMY).write_text("5 4\n4 1\n4 2\n5 3\n")
    return root


@pytest.fixture
def paper_check(project, monkeypatch) -> config.Profile:
    monkeypatch.setenv("HIERSTUDY_ROOT", str(project))
    monkeypatch.setenv("HIERSTUDY_DATA", str(project / "data"))
    monkeypatch.setenv("HIERSTUDY_WEIGHTS", str(project / "weights"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the kernel's torch: shared cores stall 2 threads
    return config.load("paper_check")


@pytest.mark.notebook
def test_notebook_05_retrains_on_corrupted_cub_images_under_paper_check(paper_check):
    study.run("paper_check", only=["05"])
    cfg = paper_check
    assert cfg.datasets["vh"] == "cub_official" and cfg.retrain_corrupted
    m = report.load_metrics("05_metrics", cfg)
    assert m["dataset"] == "cub_official" and m["_provenance"]["dataset"] == "cub_official"
    assert m["robustness_protocol"] == "retrained" and m["feature_drift"] is None
    assert m["n_test"] == CLASSES * PER_CLASS // 2 and m["K"] == m["n_test"] - 1
    assert (m["threshold"], m["alpha"]) == (0.30, 3.0)  # the paper's values for CUB
    assert "root 'taxon:5'" in m["semantic_hierarchy"]  # Barz & Denzler's taxonomy, not names

    # one network per corruption, trained with the paper's setup (capped) on corrupted images
    folder = cfg.runs_dir / "cub_official" / "vh"
    models = {r["corruption"]: r for r in m["robustness_models"]}
    assert set(models) == {"none", "blur", "saturation", "occlusion"}
    for corruption, row in models.items():
        name = "ce" if corruption == "none" else f"ce-corruption{corruption}"
        assert row["run"] == f"vh/{name}"
        result = json.loads((folder / name / "seed0" / "result.json").read_text())
        assert result["knobs"] == ({} if corruption == "none" else {"corruption": corruption})
        assert result["setup"]["backbone"] == "resnet50" and result["setup"]["batch_size"] == 4
        assert row["test accuracy"] == result["test_acc"] and 0 <= row["test accuracy"] <= 1
        assert 1 <= row["PCA axes"] < CLASSES * PER_CLASS // 2  # at most N - 1 for N samples
        assert row["nodes per level"].startswith(str(CLASSES))
    # the retrained networks differ from the clean one: their test features are not the same
    clean = np.load(folder / "ce" / "seed0" / "features_test.npz")["features"]
    blurred = np.load(folder / "ce-corruptionblur" / "seed0" / "features_test.npz")["features"]
    assert clean.shape == blurred.shape and not np.allclose(clean, blurred)

    # every corruption is ranked the four ways; the clean rows are the retrieval rows
    top, mahp = f"mAP@{m['map_ks'][-1]}", f"mAHP@{m['K']}"
    retrieval = {r["variant"]: r for r in m["retrieval"]}
    robust = m["robustness"]
    assert len(robust) == 4 * len(RANKED)
    for corruption in models:
        assert {r["variant"] for r in robust if r["corruption"] == corruption} == RANKED
    for row in robust + m["retrieval"] + m["t_sweep"] + m["alpha_sweep"]:
        assert all(0 <= row[key] <= 1 for key in ("mAP", top, "R@1"))
        assert 0 < row[mahp] <= (m["K"] - 1) / m["K"] + 1e-12
        if row.get("corruption") == "none":
            assert row[top] == retrieval[row["variant"]][top]
        if "leaf accuracy" in row:
            assert 0 <= row["leaf accuracy"] <= 1
    for row in m["agreement"]:
        v = row["triplet agreement (resolved in both)"]
        assert math.isnan(v) or 0 <= v <= 1

    hierarchies = report.load_metrics("05_hierarchies", cfg)
    assert len(hierarchies["classes"]) == CLASSES
    assert all(len(v) == m["n_test"] for v in hierarchies["test_leaves"].values())
    for name in ("05_trees.png", "05_corruptions.png", "05_robustness.png", "05_retrained.md"):
        assert (cfg.figures_dir / name).is_file()


@pytest.mark.notebook
def test_notebook_05_can_evaluate_the_clean_cub_network_on_corrupted_test_images(
    paper_check, project, monkeypatch
):
    """``retrain_corrupted=False`` on a file dataset: the clean network meets corrupted test images
    (each corrupted as ``study_splits.study_data`` does); the rebuilt network must reproduce the
    stored clean features."""
    monkeypatch.setenv("MPLBACKEND", "Agg")
    parameters = {"profile": "paper_check", "retrain_corrupted": False, "corruptions": ["blur"]}
    papermill.execute_notebook(
        jupytext.read(project / "notebooks" / "05_visual_hierarchy.py"),
        str(project / "05_clean_network.ipynb"),
        parameters=parameters,
        kernel_name="python3",
        language="python",
        cwd=str(project),
        progress_bar=False,
    )
    m = report.load_metrics("05_metrics", paper_check)
    assert m["robustness_protocol"] == "corrupted test images" and m["dataset"] == "cub_official"
    assert m["feature_drift"] < 1e-4 and m["robustness_models"] == []
    rows = {(r["corruption"], r["variant"]): r for r in m["robustness"]}
    assert set(rows) == {(c, v) for c in ("none", "blur") for v in RANKED}
    assert all(0 <= r["mAP"] <= 1 and 0 <= r["leaf accuracy"] <= 1 for r in rows.values())
    retrieval = {r["variant"]: r for r in m["retrieval"]}
    assert all(rows["none", v]["mAP"] == retrieval[v]["mAP"] for v in RANKED)
    assert (paper_check.figures_dir / "05_corruptions.png").is_file()
