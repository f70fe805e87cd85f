"""The notebooks under ``paper_check`` (the paper profile's datasets and setups, one epoch of
batch-4 steps) on tiny fake copies of the papers' datasets in their real on-disk formats."""

import pytest
from fake_datasets import notebook_project, write_cifar

from hierstudy import config, report, study


@pytest.mark.notebook
def test_notebook_03_runs_kfrs_paper_setup_on_cifar100(tmp_path, monkeypatch):
    notebook_project(tmp_path)
    write_cifar(tmp_path / "data")
    monkeypatch.setenv("HIERSTUDY_ROOT", str(tmp_path))
    monkeypatch.setenv("HIERSTUDY_DATA", str(tmp_path / "data"))
    study.run("paper_check", only=["03"])  # 02: its setups are checked in test_setups
    cfg = config.load("paper_check")
    assert cfg.datasets["kfr"] == "cifar100"
    runs = cfg.runs_dir / "cifar100" / "kfr"
    assert (runs / "kfr" / "seed0" / "result.json").is_file() and (runs / "ce" / "seed0").is_dir()
    kfr = report.load_metrics("03_metrics", cfg)
    assert [row["alpha"] for row in kfr["sweep"]] == [0, 1, 3, 10, 30]
    assert kfr["sweep"][0]["test_acc"] == kfr["ce_test_acc"]
