from fake_results import (
    RETRIEVAL_CSV,
    WSOL_ROWS,
    fake_run,
    store_localisation,
    store_retrieval,
)

from hierstudy.evaluation.results import load_run_result
from hierstudy.report.headline import headline


def test_headline_aggregates_seeds_joins_localisation_by_run_and_marks_gaps(smoke):
    store_retrieval(smoke, RETRIEVAL_CSV)
    store_localisation(smoke, WSOL_ROWS)
    fake_run(smoke, "center", 0)  # a run without any stored result: no row
    table = headline(smoke).set_index("method")
    assert list(table.columns) == [
        "protocol",
        "seeds",
        "accuracy",
        "balanced accuracy",
        "mAHP@250",
        "mAP",
        "R@1",
        "mistake severity",
        "MaxBoxAccV2",
    ]
    # KFR (α=10) ran on one seed of two: a sweep variant, left to the central table
    assert list(table.index) == [
        "CE (classification features)",
        "PA + HIER",
        "centre Gaussian (no model)",
    ]
    ce = table.loc["CE (classification features)"]
    # mean ± sample std (ddof 1) over the two seeds: 0.5, 0.7 -> 0.600 ± 0.141
    assert (ce.seeds, ce["mAHP@250"], ce["mAP"], ce["mistake severity"]) == (
        2,
        "0.600 ± 0.141",
        "0.400 ± 0.000",
        "2.250 ± 0.354",
    )
    # the localisation stored on run ce's two seeds joins its row
    assert (ce.accuracy, ce.MaxBoxAccV2) == ("0.700 ± 0.141", "0.300 ± 0.141")
    hier = table.loc["PA + HIER"]
    assert (hier.protocol, hier["balanced accuracy"], hier["mistake severity"]) == (
        "zero-shot",
        "—",
        "—",
    )
    centre = table.loc["centre Gaussian (no model)"]  # a reference: appended with what it has
    assert centre.MaxBoxAccV2 == "0.560" and set(
        centre.drop(["protocol", "seeds", "MaxBoxAccV2"])
    ) == {"—"}


def test_headline_handles_missing_results_columns_and_mixed_k(smoke):
    retrieval = RETRIEVAL_CSV.replace("hier,zero-shot,250", "hier,zero-shot,143").replace(
        ",recall@1", ",r1"
    )
    store_retrieval(smoke, retrieval)
    store_localisation(smoke, [{"model": "my CE", "run": "ce", "seed": 0, "test_acc": 0.5}])
    table = headline(smoke).set_index("method")
    assert "mAHP@K" in table and list(table.K) == ["250", "143"]  # no extra row: "my CE" is ce
    assert set(table["R@1"]) == {"—"} and set(table.MaxBoxAccV2) == {"—"}
    assert table.loc["CE (classification features)", "accuracy"] == "0.500"
    for path in smoke.runs_dir.rglob("results/retrieval.json"):
        path.unlink()
    only_07 = headline(smoke)
    assert list(only_07.method) == ["my CE"] and only_07.accuracy[0] == "0.500"
    for path in smoke.runs_dir.rglob("results/localisation.json"):
        path.unlink()
    assert headline(smoke).empty


def test_headline_keeps_datasets_apart_and_joins_localisation_on_its_own_dataset(smoke):
    store_retrieval(
        smoke,
        """\
dataset,method,run,protocol,K,seed,mahp,balanced_accuracy,map,recall@1,mistake_severity
HierShapes,CE + L2 norm,ce,closed set,250,0,0.5,0.6,0.4,0.7,2.0
ImageNet-1k,CE + L2 norm,kfr/ce,closed set,250,0,0.1,0.2,0.3,0.4,5.0
ImageNet-1k,CE + L2 norm,barz/ce,closed set,250,0,0.3,0.2,0.3,0.4,5.0
ImageNet-1k,L_CORR+CLS,barz/corr_cls,closed set,250,0,0.2,0.3,0.4,0.5,4.0
""",
    )
    wsol = [
        {"model": "CE", "run": "kfr/ce", "seed": 0, "test_acc": 0.25, "maxboxacc_v2": 0.5},
        {"model": "CE", "run": "barz/ce", "seed": 0, "test_acc": 0.3, "maxboxacc_v2": 0.4},
    ]
    store_localisation(smoke, wsol, "imagenet1k")  # 07 scored ImageNet-1k's models
    assert load_run_result(fake_run(smoke, "ce", 0), "localisation") is None
    table = headline(smoke)
    assert list(table.columns[:4]) == ["dataset", "method", "run", "protocol"]
    rows = table.set_index(["dataset", "run", "method"])
    assert (rows.seeds == 1).all()  # one seed of each setup's CE: not two seeds of one CE
    assert rows.loc[("HierShapes", "ce", "CE + L2 norm"), "mAHP@250"] == "0.500"
    assert rows.loc[("HierShapes", "ce", "CE + L2 norm"), "accuracy"] == "—"  # 07: ImageNet
    assert rows.loc[("ImageNet-1k", "kfr/ce", "CE + L2 norm"), "mAHP@250"] == "0.100"
    assert rows.loc[("ImageNet-1k", "kfr/ce", "CE + L2 norm"), "accuracy"] == "0.250"
    assert rows.loc[("ImageNet-1k", "barz/ce", "CE + L2 norm"), "MaxBoxAccV2"] == "0.400"
    assert rows.loc[("ImageNet-1k", "barz/corr_cls", "L_CORR+CLS"), "accuracy"] == "—"
    assert len(table) == 4


def test_localisation_of_another_dataset_is_kept_apart(smoke):
    """Notebook 06 on HierShapes only, 07 on ImageNet-1k: run ``ce`` of one is not the other's."""
    store_retrieval(smoke, RETRIEVAL_CSV)
    store_localisation(
        smoke, [{"model": "CE", "run": "ce", "seed": 0, "test_acc": 0.9}], "imagenet1k"
    )
    rows = headline(smoke).set_index(["dataset", "method"])
    assert rows.loc[("HierShapes", "CE (classification features)"), "accuracy"] == "—"
    assert rows.loc[("ImageNet-1k", "CE"), "accuracy"] == "0.900"
