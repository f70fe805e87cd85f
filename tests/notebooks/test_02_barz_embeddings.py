import pytest

from hierstudy import config, report, study


@pytest.mark.notebook
def test_notebook_02_under_smoke_checks_algorithm_1_and_trains_corr_models():
    study.run("smoke", only=["02"])
    cfg = config.load("smoke")
    metrics = report.load_metrics("02_metrics", cfg)
    for row in metrics["exactness"]:  # rounding-level errors as published: "< 1e-14", "0"
        assert bound(row["max |ΦΦᵀ − S|"]) <= 1e-12 and bound(row["min entry of Φ"]) >= -1e-12
        assert bound(row["distance error, Algorithm 1"]) <= 1e-13
    errors = [
        float(r["relative Frobenius error"])
        for r in metrics["low_dim"]
        if r["dataset"] == "cifar100"
    ]
    assert errors == sorted(errors, reverse=True) and len(errors) == 6
    # the max abs error only where d does not split a repeated eigenvalue of S
    split = {
        (r["dataset"], r["d"]) for r in metrics["low_dim"] if r["max abs error"] == "not unique"
    }
    assert split == {("cifar10", 8), ("cifar100", 64)}
    assert "not positive definite" in metrics["dag_error"]
    methods = {r["method"]: r for r in metrics["accuracy"]}
    assert set(methods) == {
        "CE (classification)",
        "CE + center loss",
        "L_CORR",
        "L_CORR+CLS",
        "L_CORR+CLS (authors' ReLU+BN)",
    }
    assert all(0 <= r["test acc (mean)"] <= 1 for r in methods.values())
    assert (cfg.figures_dir / "02_cifar100_embedding.png").is_file()


def bound(published: str) -> float:
    """The bound of a rounding-level number as notebook 02 publishes it ("< 1e-14", "> -1e-14",
    "0")."""
    return float(published.removeprefix("< ").removeprefix("> "))
