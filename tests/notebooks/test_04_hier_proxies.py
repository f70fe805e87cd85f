import math

import pytest

from hierstudy import config, report, study

NAN = math.nan
# 04_metrics.json under smoke: one seed, one epoch, deterministic on CPU (recorded when runs moved
# to channels-last on one thread: Proxy-Anchor's mAHP / mAP moved by 2e-5, the rest is unchanged)
SCORES = {  # method: R@1, R@2, R@4, R@8, mAHP@143, mAP (the 144 unseen test images)
    "Proxy-Anchor": (0.24305556, 0.38194444, 0.54861111, 0.70833333, 0.64426566, 0.18227808),
    "PA + HIER": (0.17361111, 0.33333333, 0.47916667, 0.68055556, 0.63295531, 0.16040828),
    "PA + HIERsph": (0.25, 0.39583333, 0.54166667, 0.70833333, 0.6442076, 0.18291378),
}
AGREEMENT = {  # hierarchy: triplet agreement, cophenetic correlation, nodes, height
    # after one epoch the classes hang from 2 proxies only: a tree that resolves no triplet
    "PA + HIER: proxy tree": (NAN, NAN, 26, 9),
    "Proxy-Anchor: Ward of class means": (0.57417103, 0.32288748, 33, 7),
    "PA + HIER: Ward of class means": (0.54450262, 0.32541715, 33, 6),
    "PA + HIERsph: Ward of class means": (0.57417103, 0.32288748, 33, 7),
}
OVER_EPOCHS = [  # epoch, ancestor proxies, mean ‖ancestor‖, 1-NN accuracy
    (0, 4, 1.69696307, 0.37254902),
    (1, 2, 1.73237419, 0.24509804),
]
R1_BY_DIM = {  # dim: (Proxy-Anchor, PA + HIER)
    16: (0.18055556, 0.23611111),
    32: (0.23611111, 0.20138889),
    64: (0.26388889, 0.27777778),
    128: (0.24305556, 0.17361111),
}


@pytest.mark.notebook
def test_notebook_04_under_smoke_runs_the_zero_shot_protocol_and_the_proxy_analyses():
    study.run("smoke", only=["04"])
    cfg = config.load("smoke")
    metrics = report.load_metrics("04_metrics", cfg)
    assert metrics["dataset"] == "hiershapes" and metrics["recall_ks"] == [1, 2, 4, 8]
    columns = ("R@1", "R@2", "R@4", "R@8", "mAHP@143", "mAP")
    scores = {row["method"]: tuple(row[c] for c in columns) for row in metrics["scores"]}
    assert list(scores) == list(SCORES)
    for method, expected in SCORES.items():
        assert scores[method] == pytest.approx(expected), method
    agreement = {
        row["hierarchy"]: (
            row["triplet agreement"],
            row["cophenetic correlation"],
            row["nodes"],
            row["height"],
        )
        for row in metrics["agreement"]
    }
    assert list(agreement) == list(AGREEMENT)
    for name, expected in AGREEMENT.items():
        assert agreement[name] == pytest.approx(expected, nan_ok=True), name
    # chance level of trees of the proxy tree's shape: NaN as well, none of them resolves a triplet
    assert math.isnan(metrics["proxy_tree_chance_agreement"])
    assert math.isnan(metrics["proxy_tree_chance_agreement_sd"])
    # P by the notebook's rule: 5 per training class, a power of two, at most 512 (17 classes: 128)
    assert metrics["train_classes"] == 17 and metrics["proxies"] == 128
    assert metrics["ancestor_proxies"] == 2
    # Fig. 4: from the untrained model (epoch 0) to the last epoch, from the run's snapshots
    over_epochs = [
        (r["epoch"], r["ancestor proxies"], r["mean ‖ancestor‖"], r["1-NN accuracy"])
        for r in metrics["over_epochs"]
    ]
    assert len(over_epochs) == len(OVER_EPOCHS) == cfg.epochs + 1
    for row, expected in zip(over_epochs, OVER_EPOCHS, strict=True):
        assert row == pytest.approx(expected)
    by_dim = {(r["dim"], r["method"]): r["R@1"] for r in metrics["recall_vs_dim"]}
    expected = {
        (d, method): r1[i]
        for d, r1 in R1_BY_DIM.items()
        for i, method in enumerate(("Proxy-Anchor", "PA + HIER"))
    }
    assert by_dim == pytest.approx(expected)
    # Fig. 7 at the notebook's dimension (128) reuses Table 1's seed-0 runs
    assert by_dim[(128, "PA + HIER")] == scores["PA + HIER"][0]
    assert by_dim[(128, "Proxy-Anchor")] == scores["Proxy-Anchor"][0]
    for name in (
        "04_poincare_disk.png",
        "04_disk_over_epochs.png",
        "04_class_affinity.png",
        "04_boundary_proxies.png",
        "04_proxy_tree.png",
    ):
        assert (cfg.figures_dir / name).is_file()
