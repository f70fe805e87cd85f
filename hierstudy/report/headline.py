"""The study's headline: one row per method, from the results stored beside the runs.

Retrieval and classification columns come from each run's ``retrieval`` result (the central
table, :mod:`.retrieval`), accuracy and MaxBoxAccV2 from its ``localisation`` result (notebook
07: a record with ``model``, its row label, ``test_acc`` and ``maxboxacc_v2`` at the Grad-CAM
layer it reports), and 07's references without a model (the centre Gaussian) from the
dataset's ``localisation`` result (``{"references": [{"model", "maxboxacc_v2", …}]}``).
"""

from __future__ import annotations

import pandas as pd

from hierstudy.config import Profile
from hierstudy.datasets import catalog
from hierstudy.evaluation.results import load_dataset_results, load_run_results
from hierstudy.evaluation.retrieval import aggregate, load_per_seed_table
from hierstudy.report.tables import MISSING, mean_std

LOCALISATION = "localisation"  # notebook 07's result name
RETRIEVAL = {  # headline column: per-seed column of the central table
    "balanced accuracy": "balanced_accuracy",
    "mAHP@K": "mahp",
    "mAP": "map",
    "R@1": "recall@1",
    "mistake severity": "mistake_severity",
}
WSOL = {"accuracy": "test_acc", "MaxBoxAccV2": "maxboxacc_v2"}
HEADLINE = [
    "accuracy",
    "balanced accuracy",
    "mAHP@K",
    "mAP",
    "R@1",
    "mistake severity",
    "MaxBoxAccV2",
]


def headline(profile: Profile) -> pd.DataFrame:
    """The headline comparison: one row per method (and run) of the central table trained with
    as many seeds as any of its dataset and protocol (mean ± std; sweep variants run on fewer
    seeds stay in the central table), accuracy and MaxBoxAccV2 added from the same runs'
    localisation, then the localised models (and references) that the central table lacks.

    A ``dataset`` column leads when the results span several datasets (rows are then per
    dataset); a ``run`` column appears when a method was trained in two setups (``kfr/ce``,
    ``barz/ce``). The mAHP column is ``mAHP@<K>`` when every row shares K, else ``mAHP@K``
    beside a ``K`` column. "—" where a metric does not apply or was not measured; no row when
    nothing is stored.
    """
    retrieval = load_per_seed_table(profile).drop(columns="hp")
    wsol = _localisation(profile)
    by = ["dataset"] if len({*retrieval["dataset"], *wsol["dataset"]}) > 1 else []
    rows = pd.DataFrame(columns=[*by, "method", "protocol", "run", "K", "seeds"])
    if len(retrieval):  # the central table's rows (the same aggregation), as mean ± std
        central = aggregate(retrieval)
        rows = central[[*by, "method", "run", "protocol", "K", "seeds"]].copy()
        for name, column in RETRIEVAL.items():
            rows[name] = _mean_std(central, column)
        most = rows.groupby([*by, "protocol"])["seeds"].transform("max")
        rows = rows[rows["seeds"] == most]  # sweep variants (fewer seeds) stay in the table
    if len(wsol):
        localisation = _over_seeds(wsol, [*by, "run"], WSOL)
        rows = rows.join(localisation[list(WSOL)], on=[*by, "run"])
        extra = localisation[~localisation.index.isin(rows.set_index([*by, "run"]).index)]
        labels = wsol.groupby([*by, "run"], sort=False)["model"].first().reindex(extra.index)
        extra = extra.assign(method=labels.to_numpy(), protocol="closed set", K=None)
        rows = pd.concat([rows, extra.reset_index()], ignore_index=True)
    ks = rows["K"].dropna().unique()
    mahp = f"mAHP@{int(ks[0])}" if len(ks) == 1 else "mAHP@K"
    rows = rows.rename(columns={"mAHP@K": mahp})
    several = rows.duplicated([*by, "method"], keep=False).any()  # a method under two setups
    columns = [
        *by,
        "method",
        *(["run"] if several else []),
        "protocol",
        "seeds",
        *([] if len(ks) == 1 else ["K"]),
        *(mahp if c == "mAHP@K" else c for c in HEADLINE),
    ]
    rows = rows.reindex(columns=columns)
    text = [c for c in columns if c not in ("dataset", "method", "run", "protocol", "seeds", "K")]
    rows[text] = rows[text].astype(object).fillna(MISSING)
    if "K" in columns:
        rows["K"] = [MISSING if pd.isna(k) else str(int(k)) for k in rows["K"]]
    return rows.astype({"seeds": int})


def _localisation(profile: Profile) -> pd.DataFrame:
    """Per-seed localisation rows (dataset, run, seed, model, test_acc, maxboxacc_v2, …): the
    runs' results, then the references (``run`` is their label, ``seed`` "-")."""
    rows = [
        {
            **record,
            "dataset": catalog.title(run.record.dataset),
            "run": run.name,
            "seed": run.seed,
        }
        for run, record in load_run_results(profile, LOCALISATION)
    ]
    for dataset, record in load_dataset_results(profile, LOCALISATION).items():
        rows += [
            {**ref, "dataset": catalog.title(dataset), "run": ref["model"], "seed": "-"}
            for ref in record["references"]
        ]
    return pd.DataFrame(rows, columns=None if rows else ["dataset", "run", "seed", "model"])


def _mean_std(table: pd.DataFrame, column: str) -> list[str]:
    """``column`` ± ``column_std`` of an aggregated table, "—" for a column it lacks."""
    if column not in table:
        return [MISSING] * len(table)
    return [mean_std(m, s) for m, s in zip(table[column], table[f"{column}_std"], strict=True)]


def _over_seeds(table: pd.DataFrame, key: list[str], columns: dict[str, str]) -> pd.DataFrame:
    """Per ``key`` (first-seen order): ``seeds`` and each headline column as mean ± std."""
    out = pd.DataFrame({"seeds": table.groupby(key, sort=False).size()})
    for name, column in columns.items():
        if column not in table:
            out[name] = MISSING
            continue
        groups = pd.to_numeric(table[column], errors="coerce").groupby(
            [table[k] for k in key], sort=False
        )
        out[name] = [mean_std(m, s) for m, s in zip(groups.mean(), groups.std(ddof=1), strict=True)]
    return out
