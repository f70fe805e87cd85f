"""Notebook 04 under ``paper_check``: HIER's setup on a tiny fake CUB-200-2011 (zero-shot split:
the first half of the classes trains, the rest is retrieved) in the real on-disk format."""

import pytest
from fake_datasets import notebook_project, write_cub

from hierstudy import config, report, runs, study


@pytest.mark.notebook
def test_notebook_04_runs_hiers_paper_setup_on_cub(tmp_path, monkeypatch):
    notebook_project(tmp_path, ["resnet50"])
    write_cub(tmp_path / "data", classes=6, per_class=4)
    monkeypatch.setenv("HIERSTUDY_ROOT", str(tmp_path))
    monkeypatch.setenv("HIERSTUDY_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("HIERSTUDY_WEIGHTS", str(tmp_path / "weights"))
    study.run("paper_check", only=["04"], parameters={"dims": ()})  # Fig. 7: the 512-d runs only
    cfg = config.load("paper_check")
    metrics = report.load_metrics("04_metrics", cfg)
    assert metrics["dataset"] == "cub" and metrics["recall_ks"] == [1, 2, 4, 8]
    assert metrics["train_classes"] == 3  # classes 1-3 train, 4-6 are retrieved
    assert {row["method"] for row in metrics["scores"]} == {
        "Proxy-Anchor",
        "PA + HIER",
        "PA + HIERsph",
    }
    for row in metrics["scores"]:
        assert 0 <= row["R@1"] <= row["R@8"] <= 1
    run = runs.finished_runs(cfg, "cub")
    # the paper's 512-d embedding, with the authors' ε in the Möbius addition (docs/conventions.md)
    hier = next(r for r in run if r.name == "hier/hier-dim512-mobius_eps1e-05")
    assert hier.record.setup["backbone"] == "resnet50" and hier.record.train_classes == 3
    assert sorted({row["dim"] for row in metrics["recall_vs_dim"]}) == [512]
    assert [row["epoch"] for row in metrics["over_epochs"]] == [0, 1]  # one epoch under the check
    assert (cfg.figures_dir / "04_disk_over_epochs.png").is_file()
