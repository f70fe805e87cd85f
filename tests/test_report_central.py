import numpy as np
import pandas as pd

from hierstudy.evaluation.retrieval import KEYS
from hierstudy.report import central

CE, CE_L2 = "CE (classification features)", "CE + L2 norm"
RERANK = "CE + visual re-rank (α=3, t=0.3, class Σ)"


def aggregated() -> tuple[pd.DataFrame, pd.DataFrame]:
    """A central table of four rankings on one dataset (and its per-seed rows)."""
    per_seed = pd.DataFrame(
        {
            "dataset": "HierShapes",
            "backbone": "tiny_cnn",
            "setup": "profile",
            "protocol": "closed set",
            "method": [CE, CE_L2, RERANK, "L_CORR", CE, CE_L2],
            "run": ["ce", "ce", "ce", "corr", "ce", "ce"],
            "distance": ["euclidean", "cosine", "cosine + 3·D_H", "dot", "euclidean", "cosine"],
            "K": 250,
            "test classes": 35,
            "seed": [0, 0, 0, 0, 1, 1],
            "mahp": [0.5, 0.6, 0.65, 0.75, 0.7, 0.8],
            "map": [0.1, 0.2, 0.3, 0.25, 0.3, 0.2],
            "recall@1": [0.1, 0.2, 0.3, 0.4, 0.3, 0.4],
            "hdist@5": [1.0, 1.0, np.nan, np.nan, 2.0, 2.0],
        }
    )
    grouped = per_seed.groupby(KEYS, sort=False)
    value = ["mahp", "map", "recall@1", "hdist@5"]
    results = (
        grouped[value]
        .mean()
        .join(grouped[value].std(ddof=1).add_suffix("_std"))
        .join(grouped.size().rename("seeds"))
        .reset_index()
    )
    return results, per_seed


def test_cells_write_each_metric_as_mean_and_std_under_its_header():
    results, _ = aggregated()
    table = central.cells(results)
    assert list(table.columns) == [*KEYS, "seeds", "mAHP@K", "mAP", "R@1", "hier. dist@5"]
    # notebook 06 before issue 17: "—" without a mean, the mean alone without a std
    assert table["mAHP@K"].tolist() == ["0.600 ± 0.141", "0.700 ± 0.141", "0.650", "0.750"]
    assert table["hier. dist@5"].tolist() == ["1.500 ± 0.707", "1.500 ± 0.707", "—", "—"]
    assert table["seeds"].tolist() == [2, 2, 1, 1]


def test_legend_and_paper_methods():
    assert central.legend("profile", "L_CORR") == "L_CORR"
    assert central.legend("barz", "L_CORR") == "L_CORR [barz]"
    assert central.is_paper_method("L_CORR") and central.is_paper_method("PA + HIER (proxies=8)")
    assert not central.is_paper_method("CE + center loss") and not central.is_paper_method(RERANK)


def test_findings_word_the_table():
    results, per_seed = aggregated()
    chance = {("HierShapes", "closed set"): {"mahp": 0.49}}
    assert central.findings(results, per_seed, chance) == [
        "HierShapes, closed set (4 methods, 35 test classes): the best mAHP@250 is L_CORR's "
        f"0.750 against 0.490 for a random ranking; the best mAP is {RERANK}'s 0.300; "
        f"L2-normalising CE's features moves mAHP from 0.600 to 0.700; {RERANK} (seed 0) has "
        "mAHP 0.650 against CE + L2 norm's 0.600 on that seed; L_CORR ranks 1 of 4 by mAHP "
        "(R@1 0.400)."
    ]
