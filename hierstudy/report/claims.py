"""The claims ledger: every claim of :mod:`.claims_registry` judged by one rule fixed in advance,
from the per-seed results stored beside the runs (never from a notebook's tables).

The rule, for each comparison of a claim: Δ = treatment − control, paired by seed (runs of one
seed share their initial weights and data order; Barz & Denzler's precision claim pairs the
WordNet trees instead), and its 95 % confidence interval, Student's t over the n paired
differences (:meth:`~hierstudy.report.tables.PairedDifference.interval`). The verdict is

* **reproduced** when the interval excludes 0 on the claimed side,
* **opposite** when it excludes 0 on the other side,
* **inconclusive (n seeds)** otherwise, and always from a single seed,
* **not tested here: <reason>** when the profile cannot run the comparison or its results are
  not stored.

A non-inferiority claim ("not worse by more than m", :attr:`Comparison.margin`) puts the bound at
−m (claimed "higher") or +m (claimed "lower") instead of 0.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from hierstudy import runs
from hierstudy.config import Profile
from hierstudy.evaluation.results import load_dataset_results, load_run_result
from hierstudy.report.claims_registry import CLAIMS, HISTORY, RECORD, Claim, Comparison, Side
from hierstudy.report.tables import (
    INCONCLUSIVE,
    LEVEL,
    MISSING,
    NOT_TESTED,
    OPPOSITE,
    REPRODUCED,
    PairedDifference,
)

ROUNDOFF = np.finfo(float).eps / 2  # the smallest error a log10 comparison distinguishes
COLUMNS = [
    "claim",
    "paper",
    "where",
    "statement",
    "metric",
    "control",
    "treatment",
    "claimed",
    "Δ",
    "CI low",
    "CI high",
    "n",
    "verdict",
    "paper's number",
    "note",
]


class LedgerError(ValueError):
    """A side of a comparison matches more than one stored value for one seed."""


def verdict(
    diff: PairedDifference,
    direction: str = "higher",
    margin: float = 0.0,
    unit: str = "seed",
    level: float = LEVEL,
) -> str:
    """The rule of the module docstring for ``diff`` (treatment − control) and the claimed
    ``direction`` (:meth:`PairedDifference.verdict`, the study's one rule)."""
    return diff.verdict(direction, margin, unit, level)


def category(text: str) -> str:
    """A verdict's word: reproduced, opposite, inconclusive or not tested here."""
    return next(w for w in (REPRODUCED, OPPOSITE, INCONCLUSIVE, NOT_TESTED) if text.startswith(w))


def side_values(profile: Profile, claim: Claim, side: Side) -> pd.Series:
    """``side``'s values stored under ``runs/<profile>/``, indexed by the claim's unit (seed or
    tree), on the dataset the profile gives the claim's paper and from runs of its setup (or of
    none: HierShapes); empty when nothing is stored, NaN where a stored value is missing."""
    dataset = profile.datasets[claim.dataset]
    if side.run is None:  # a result of the dataset: its rows carry the unit
        record = load_dataset_results(profile, side.result).get(dataset, {"rows": []})
        found = [(row.get(claim.unit), row) for row in record["rows"]]
    else:
        found = []
        for run in runs.finished_runs(profile, dataset):
            if run.record.name != side.run or run.record.paper not in (None, claim.setup):
                continue
            if side.result == RECORD:
                rows = [{side.metric: getattr(run.record, side.metric)}]
            elif side.result == HISTORY:
                rows = [{side.metric: _from_history(run, side.metric)}]
            else:
                record = load_run_result(run, side.result) or {"rows": []}
                rows = record.get("rows", [record])
            found += [(run.seed, row) for row in rows]
    values = {}
    for key, row in found:
        if any(row.get(c) != v for c, v in side.where.items()):
            continue
        if key in values:
            raise LedgerError(f"{side.label}: several {side.result} rows for {claim.unit} {key}")
        values[key] = row.get(side.metric)
    return pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").sort_index()


def _from_history(run: runs.Run, metric: str) -> float:
    """:data:`HISTORY`'s metrics from the run's per-epoch history."""
    if metric != "val_acc_second_half":
        raise LedgerError(f"no history metric {metric!r}: only 'val_acc_second_half'")
    history = run.history
    if "val_acc" not in history:
        return math.nan
    return float(history.val_acc.iloc[int(round(0.5 * len(history))) :].mean())


def compare(profile: Profile, claim: Claim, comparison: Comparison) -> PairedDifference:
    """Treatment and control of ``comparison`` at the seeds (trees) where both have a value."""
    sides = (comparison.treatment, comparison.control)
    treatment, control = (side_values(profile, claim, s).dropna() for s in sides)
    common = treatment.index.intersection(control.index)
    if comparison.log10:  # an error below the unit roundoff (2⁻⁵³, e.g. exactly 0) counts as it
        treatment, control = (np.log10(np.maximum(v, ROUNDOFF)) for v in (treatment, control))
    return PairedDifference(treatment[common].astype(float), control[common].astype(float))


def judge(profile: Profile, claim: Claim, comparison: Comparison) -> dict:
    """One ledger row: the comparison, Δ, its interval, n and the verdict."""
    row = {
        "claim": claim.id,
        "paper": claim.paper,
        "where": claim.where,
        "statement": claim.text,
        "metric": comparison.metric,
        "control": comparison.control.label,
        "treatment": comparison.treatment.label,
        "claimed": claimed(comparison),
        "paper's number": comparison.paper_number,
        "note": comparison.note,
    }
    empty = {"Δ": math.nan, "CI low": math.nan, "CI high": math.nan, "n": 0}
    reason = claim.untested.get(profile.name)
    if reason:
        return row | empty | {"verdict": f"{NOT_TESTED}: {reason}"}
    try:
        diff = compare(profile, claim, comparison)
    except LedgerError as error:
        return row | empty | {"verdict": f"{NOT_TESTED}: {error}"}
    if diff.n == 0:
        return row | empty | {"verdict": f"{NOT_TESTED}: {missing(profile, claim, comparison)}"}
    low, high = diff.interval(LEVEL)
    v = verdict(diff, comparison.direction, comparison.margin, claim.unit)
    return row | {"Δ": diff.mean, "CI low": low, "CI high": high, "n": diff.n, "verdict": v}


def claimed(comparison: Comparison) -> str:
    """The claimed direction in words: "higher", "lower", "not lower by more than 0.02"."""
    if not comparison.margin:
        return comparison.direction
    worse = "lower" if comparison.direction == "higher" else "higher"
    return f"not {worse} by more than {comparison.margin:g}"


def missing(profile: Profile, claim: Claim, comparison: Comparison) -> str:
    """Why a comparison has no pair: the side without values, and the notebook that stores it."""
    dataset = profile.datasets[claim.dataset]
    for side in (comparison.treatment, comparison.control):
        values = side_values(profile, claim, side)
        if len(values) and values.isna().all():
            return (
                f"{side.label}: {side.metric} is undefined on every {claim.unit} (stored as null)"
            )
        if values.empty:
            if side.result == RECORD:
                what = f"no finished run {side.run!r}"
            else:
                owner = f"run {side.run!r}" if side.run else "the dataset"
                where = "".join(f", {k} = {v!r}" for k, v in side.where.items())
                what = f"no {side.result} result of {owner}{where}"
            return f"{what} on {dataset} (notebook {claim.notebook})"
    return f"no {claim.unit} has both sides"


def ledger(profile: Profile, claims: tuple[Claim, ...] = CLAIMS) -> pd.DataFrame:
    """Every comparison of every claim, judged: the columns :data:`COLUMNS`."""
    rows = [judge(profile, claim, c) for claim in claims for c in claim.comparisons]
    return pd.DataFrame(rows, columns=COLUMNS).astype({"n": int})


def counts(table: pd.DataFrame) -> dict[str, int]:
    """{verdict word: number of ledger rows}, every word present."""
    words = table["verdict"].map(category).value_counts()
    return {w: int(words.get(w, 0)) for w in (REPRODUCED, OPPOSITE, INCONCLUSIVE, NOT_TESTED)}


def interval_text(delta: float, low: float, high: float) -> str:
    """'+0.087 [+0.071, +0.103]', the Δ alone without an interval, — without a Δ."""
    if math.isnan(delta):
        return MISSING
    digits = 2 if abs(delta) >= 1 else 3
    text = f"{delta:+.{digits}f}"
    return text if math.isnan(low) else f"{text} [{low:+.{digits}f}, {high:+.{digits}f}]"


def findings_markdown(table: pd.DataFrame, profile: str) -> str:
    """The README's findings block: the verdict counts and one line per comparison (paper,
    claim, treatment − control on the metric, Δ with its 95 % interval, n, verdict); a
    placeholder line while no comparison could be tested."""
    if table.empty or (table["n"] == 0).all():
        return (
            f"No verdicts yet: `hierstudy study --profile {profile}` builds the claims ledger "
            f"from the results stored under `runs/{profile}/` (notebook 09)."
        )
    n = counts(table)
    head = ", ".join(f"{k} {v}" for k, v in n.items())
    shown = pd.DataFrame(
        {
            "paper": table["paper"],
            "where": table["where"],
            "treatment − control": table["treatment"] + " − " + table["control"],
            "metric": table["metric"],
            "claimed": table["claimed"],
            "Δ [95 % CI]": [
                interval_text(*r) for r in table[["Δ", "CI low", "CI high"]].itertuples(index=False)
            ],
            "n": table["n"].astype(str),
            "verdict": table["verdict"],
        }
    )
    return (
        f"Verdicts of the claims ledger ({len(table)} comparisons of "
        f"{table['claim'].nunique()} claims: {head}); rule and details in notebook 09 and "
        f"`figures/{profile}/claims.md`.\n\n{shown.to_markdown(index=False, disable_numparse=True)}"
    )
