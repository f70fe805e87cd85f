import math

import pytest

from hierstudy import config, report, study


@pytest.mark.notebook
def test_notebook_03_under_smoke_trains_every_model_and_saves_the_tables():
    study.run("smoke", only=["03"])
    cfg = config.load("smoke")
    metrics = report.load_metrics("03_metrics", cfg)
    for key in ("ce_val_acc_last5", "kfr_val_acc_last5", "ce_test_acc", "kfr_test_acc"):
        assert 0 <= metrics[key] <= 1
    assert [row["alpha"] for row in metrics["sweep"]] == [0, 1, 3, 10, 30]
    # alpha = 0 goes through KFR's code path but must give exactly the baseline
    assert metrics["sweep"][0]["test_acc"] == metrics["ce_test_acc"]
    methods = [row["method"] for row in metrics["dml"]]
    assert methods[0] == "CE" and methods[-1].endswith("(KFR)") and len(methods) == 7
    assert all(-1 <= metrics[k] <= 1 for k in ("spearman_ce", "spearman_kfr"))
    assert not math.isnan(metrics["spearman_kfr"])
    for name in (
        "03_baseline_curves.png",
        "03_alpha_sweep.csv",
        "03_latent_geometry.png",
        "03_alpha_transfer.csv",  # docs/conventions.md, KFR
        "03_alpha_sweep_scales.csv",
    ):
        assert (cfg.figures_dir / name).is_file()
