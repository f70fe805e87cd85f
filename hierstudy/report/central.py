"""The central table (notebook 06) in words: its cells, its legends and what it shows.

The numbers are :mod:`hierstudy.evaluation.retrieval`'s (the table of :func:`~hierstudy.
evaluation.retrieval.aggregate`, one row per ranking with ``<metric>`` and ``<metric>_std``
columns); this module only writes them: each metric as mean ± std under the table's header,
the HP@k curves' legends (Barz & Denzler (WACV 2019), Fig. 3) and the "what we found" sentences.
"""

from __future__ import annotations

import pandas as pd

from hierstudy.evaluation.retrieval import KEYS
from hierstudy.report.tables import mean_std

HEADERS = {
    "mahp": "mAHP@K",
    "balanced_accuracy": "balanced acc",
    "map": "mAP",
    "mistake_severity": "mistake severity",
}
CE, CE_L2 = "CE (classification features)", "CE + L2 norm"  # Barz's two baselines
HIER_P = ("PA + HIER (proxies=", "PA + HIERsph (proxies=")  # notebook 04 sets P by a rule
PAPER_METHODS = {  # the papers' own methods; the rest are the study's variants
    CE,
    CE_L2,
    "L_CORR",
    "L_CORR+CLS",
    "KFR",
    "Proxy-Anchor",
    "PA + HIER",
    "PA + HIERsph",
}


def header(column: str) -> str:
    """The central table's header of a metric column (``recall@8`` → ``R@8``)."""
    if column.startswith("recall@"):
        return f"R@{column.removeprefix('recall@')}"
    if column.startswith("hdist@"):
        return f"hier. dist@{column.removeprefix('hdist@')}"
    return HEADERS[column]


def cells(results: pd.DataFrame) -> pd.DataFrame:
    """``KEYS``, ``seeds`` and each metric of ``results`` as "mean ± std" under its
    :func:`header` (the mean alone from one seed, "—" where the metric does not apply)."""
    table = results[[*KEYS, "seeds"]].copy()
    for column in [c for c in results.columns if f"{c}_std" in results.columns]:
        table[header(column)] = [
            mean_std(m, s) for m, s in zip(results[column], results[f"{column}_std"], strict=True)
        ]
    return table


def legend(setup: str, method: str) -> str:
    """The method, with the paper whose setup trained it when that is not the profile's."""
    return method if setup == "profile" else f"{method} [{setup}]"


def is_paper_method(method: str) -> bool:
    """Whether a row label is one of the papers' own methods (drawn strong in the curves)."""
    return method in PAPER_METHODS or method.startswith(HIER_P)


def findings(results: pd.DataFrame, per_seed: pd.DataFrame, chance: dict) -> list[str]:
    """One sentence per dataset, protocol and setup of ``results`` (in its order): the best
    mAHP@K against a random ranking's (``chance[dataset, protocol]["mahp"]``), the best mAP,
    what L2-normalising CE's features changes, each re-ranking against CE + L2 norm on its seed
    (``per_seed``), and where L_CORR and PA + HIER rank."""
    groups = zip(results.dataset, results.protocol, results.setup, strict=True)
    return [_sentence(results, per_seed, chance, *group) for group in dict.fromkeys(groups)]


def _chance(random: dict) -> str:
    """A random ranking's mAHP, with its spread over the draws when there are several."""
    spread = random.get("mahp_std")
    return f"{random['mahp']:.3f}" + ("" if spread is None else f" ± {spread:.3f} (sd over draws)")


def _sentence(results, per_seed, chance, dataset: str, protocol: str, setup: str) -> str:
    here = (results.dataset == dataset) & (results.protocol == protocol)
    rows = results[here & (results.setup == setup)].set_index("method")
    best, best_map, k = rows.mahp.idxmax(), rows["map"].idxmax(), int(rows.K.iloc[0])
    where = dataset if setup == "profile" else f"{dataset}, {setup} setup"
    n, classes = len(rows), int(rows["test classes"].iloc[0])
    text = (
        f"{where}, {protocol} ({n} method{'s' * (n > 1)}, {classes} test classes): the best "
        f"mAHP@{k} is {best}'s {rows.mahp[best]:.3f} against {_chance(chance[dataset, protocol])}"
        f" for a random ranking; the best mAP is "
        f"{best_map}'s {rows['map'][best_map]:.3f}"
    )
    if {CE, CE_L2} <= set(rows.index):
        text += (
            f"; L2-normalising CE's features moves mAHP from {rows.mahp[CE]:.3f} to "
            f"{rows.mahp[CE_L2]:.3f}"
        )
    seeds = per_seed[(per_seed.dataset == dataset) & (per_seed.setup == setup)]
    for method in [m for m in rows.index if "re-rank" in m]:  # one seed: against CE + L2 there
        seed = seeds[seeds.method == method].seed.iloc[0]
        ce = seeds[(seeds.method == CE_L2) & (seeds.seed == seed)].mahp.iloc[0]
        text += (
            f"; {method} (seed {seed}) has mAHP {rows.mahp[method]:.3f} against {CE_L2}'s "
            f"{ce:.3f} on that seed"
        )
    for method in [
        m for m in rows.index if m in ("L_CORR", "PA + HIER") or m.startswith(HIER_P[0])
    ]:
        rank = int((rows.mahp > rows.mahp[method]).sum()) + 1
        text += f"; {method} ranks {rank} of {n} by mAHP (R@1 {rows['recall@1'][method]:.3f})"
    return text + "."
