import math

import pytest

from hierstudy import config, report, study


@pytest.mark.notebook
def test_notebook_04_under_smoke_runs_the_zero_shot_protocol_and_the_proxy_analyses():
    study.run("smoke", only=["04"])
    cfg = config.load("smoke")
    metrics = report.load_metrics("04_metrics", cfg)
    methods = {row["method"] for row in metrics["scores"]}
    assert methods == {"Proxy-Anchor", "PA + HIER", "PA + HIERsph"}
    for row in metrics["scores"]:
        recalls = [row[f"R@{k}"] for k in (1, 2, 4, 8)]
        assert recalls == sorted(recalls) and 0 <= recalls[0] and recalls[-1] <= 1  # R@K grows
    names = [row["hierarchy"] for row in metrics["agreement"]]
    assert names[0] == "PA + HIER: proxy tree" and len(names) == 4
    proxy_tree, *ward = metrics["agreement"]
    # Ward trees are binary: every triplet resolved, agreement defined. At chance (1 epoch) the
    # classes may all hang from one proxy: a tree resolving no triplet has agreement NaN.
    assert all(0 <= row["triplet agreement"] <= 1 for row in ward)
    agreement = proxy_tree["triplet agreement"]
    assert math.isnan(agreement) or 0 <= agreement <= 1
    # P by the notebook's rule: 5 per training class, a power of two, at most 512 (17 classes: 128)
    assert metrics["train_classes"] == 17 and metrics["proxies"] == 128
    assert 1 <= metrics["ancestor_proxies"] <= metrics["proxies"]
    assert sorted({row["dim"] for row in metrics["recall_vs_dim"]}) == [16, 32, 64, 128]
    assert metrics["dataset"] == "hiershapes" and metrics["recall_ks"] == [1, 2, 4, 8]
    # Fig. 4: from the untrained model (epoch 0) to the last epoch, from the run's snapshots
    epochs = [row["epoch"] for row in metrics["over_epochs"]]
    assert epochs[0] == 0 and epochs[-1] == cfg.epochs and epochs == sorted(set(epochs))
    assert all(
        row["ancestor proxies"] >= 1 and 0 <= row["1-NN accuracy"] <= 1
        for row in metrics["over_epochs"]
    )
    for name in (
        "04_poincare_disk.png",
        "04_disk_over_epochs.png",
        "04_class_affinity.png",
        "04_boundary_proxies.png",
    ):
        assert (cfg.figures_dir / name).is_file()
