import json

import numpy as np
import pytest
from fake_results import fake_run

from hierstudy.evaluation import results


def test_a_run_result_is_stored_beside_the_run_as_strict_json(smoke):
    ce, kfr = fake_run(smoke, "ce", 0), fake_run(smoke, "kfr/ce", 1, "cifar100")
    record = {"acc": np.float32(0.5), "none": float("nan"), "curve": np.array([1.0, 2.0])}
    path = results.save_run_result(ce, "localisation", record)
    assert path == ce.run_dir / "results" / "localisation.json"
    text = path.read_text()
    assert json.loads(text, parse_constant=lambda c: pytest.fail(c)) == {
        "acc": 0.5,
        "none": None,
        "curve": [1.0, 2.0],
    }
    assert results.load_run_result(ce, "localisation")["curve"] == [1.0, 2.0]
    assert results.load_run_result(kfr, "localisation") is None
    results.save_run_result(kfr, "localisation", {"acc": 0.25})
    found = results.load_run_results(smoke, "localisation")
    assert [(run.name, run.seed, r["acc"]) for run, r in found] == [
        ("ce", 0, 0.5),
        ("kfr/ce", 1, 0.25),
    ]
    assert [run.name for run, _ in results.load_run_results(smoke, "localisation", "cifar100")] == [
        "kfr/ce"
    ]
    results.save_run_result(ce, "localisation", {"acc": 0.75})  # replaced, nothing left behind
    assert results.load_run_result(ce, "localisation") == {"acc": 0.75}
    assert [p.name for p in path.parent.iterdir()] == ["localisation.json"]


def test_dataset_results_and_names(smoke):
    fake_run(smoke, "ce", 0)
    results.save_dataset_result(smoke, "hiershapes", "localisation", {"references": []})
    assert results.load_dataset_results(smoke, "localisation") == {"hiershapes": {"references": []}}
    assert results.load_run_results(smoke, "localisation") == []
    with pytest.raises(results.ResultError, match="a result name"):
        results.save_dataset_result(smoke, "hiershapes", "../escape", {})
