"""Table cells over seeds: mean ± std, a difference paired by seed (its t-interval and the study's
one verdict rule), JSON rows.

The helpers notebooks 06, 07 and 08 and :func:`hierstudy.study.headline` share, so that every
table of the study prints a mean over seeds, a paired comparison and a missing value the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

MISSING = "—"  # a metric that does not apply or was not computed
LEVEL = 0.95  # the confidence level of every interval and verdict
REPRODUCED, OPPOSITE, INCONCLUSIVE = "reproduced", "opposite", "inconclusive"
NOT_TESTED = "not tested here"


def mean_std(mean: float, std: float, digits: int = 3, *, signed: bool = False) -> str:
    """'0.603 ± 0.018': a mean over seeds and its std, the mean alone when the std is missing
    (one seed), :data:`MISSING` when the mean is; ``signed`` writes the mean's sign ('+0.012')."""
    if pd.isna(mean):
        return MISSING
    text = f"{mean:+.{digits}f}" if signed else f"{mean:.{digits}f}"
    return text if pd.isna(std) else f"{text} ± {std:.{digits}f}"


@dataclass(frozen=True, eq=False)
class PairedDifference:
    """``treatment − control`` on one metric, seed by seed, over the seeds where both have a value
    (runs of one seed share initial weights and data order, so the pair isolates the method)."""

    treatment: pd.Series  # the values at those seeds, indexed by seed (ascending)
    control: pd.Series

    @property
    def differences(self) -> pd.Series:
        return self.treatment - self.control

    @property
    def n(self) -> int:
        """The number of paired seeds."""
        return len(self.treatment)

    @property
    def mean(self) -> float:
        return float(self.differences.mean())

    @property
    def std(self) -> float:
        """The differences' std (ddof = 1), NaN from fewer than two seeds."""
        return float(self.differences.std(ddof=1)) if self.n > 1 else float("nan")

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        """The ``level`` confidence interval of the mean difference, Student's t over the paired
        differences: mean ± t_{(1+level)/2, n−1} · std / √n (``scipy.stats.t``); NaNs from fewer
        than two seeds."""
        if self.n < 2:
            return float("nan"), float("nan")
        half = stats.t.ppf((1 + level) / 2, self.n - 1) * self.std / np.sqrt(self.n)
        return self.mean - half, self.mean + half

    @property
    def wins(self) -> int:
        """The seeds where the treatment is higher."""
        return int((self.differences > 0).sum())

    def verdict(
        self, direction: str = "higher", margin: float = 0.0, unit: str = "seed", level=LEVEL
    ) -> str:
        """The study's one verdict rule (the claims ledger's, notebook 09), for the claimed
        ``direction`` ("higher" or "lower"): **reproduced** when the ``level`` t-interval of the
        mean difference excludes the bound (0, or −/+ ``margin`` for a non-inferiority claim) on
        the claimed side, **opposite** when it excludes it on the other side, else **inconclusive
        (n seeds)** (always from one ``unit``); **not tested here** without a pair."""
        if direction not in ("higher", "lower"):
            raise ValueError(f"direction is 'higher' or 'lower', got {direction!r}")
        if self.n == 0:
            return f"{NOT_TESTED}: no {unit} with both sides"
        low, high = self.interval(level)
        sign = 1 if direction == "higher" else -1
        bound = -sign * margin
        if self.n > 1 and not math.isnan(low):
            if (low > bound) if sign > 0 else (high < bound):
                return REPRODUCED
            if (high < bound) if sign > 0 else (low > bound):
                return OPPOSITE
        return f"{INCONCLUSIVE} ({self.n} {unit}{'' if self.n == 1 else 's'})"

    def summary(self, treatment: str = "treatment", control: str = "control") -> dict:
        """The comparison as a table row: each side's mean and std over the paired seeds
        ("<control> (mean)", "<control> (std)", then the treatment's), the difference's
        ("difference (mean)", "difference (std)"), its 95 % interval ("CI low", "CI high"),
        "seeds higher" (:attr:`wins`), "seeds" (:attr:`n`) and the "verdict" of the rule
        (:meth:`verdict`, claimed "higher"); a std from one seed is NaN."""
        row, (low, high) = {}, self.interval()
        for name, values in ((control, self.control), (treatment, self.treatment)):
            row |= {f"{name} (mean)": float(values.mean()), f"{name} (std)": float(values.std())}
        return row | {
            "difference (mean)": self.mean,
            "difference (std)": self.std,
            "CI low": low,
            "CI high": high,
            "seeds higher": self.wins,
            "seeds": self.n,
            "verdict": self.verdict(),
        }


def paired_by_seed(
    frame: pd.DataFrame, treatment, control, metric: str, *, by: str = "model", seed: str = "seed"
) -> PairedDifference:
    """The rows of ``frame`` whose ``by`` is ``treatment`` minus those whose ``by`` is ``control``,
    on column ``metric``, matched on column ``seed`` (one row per seed and side); seeds where
    either side is missing or NaN are left out."""
    for side in (treatment, control):
        if not (frame[by] == side).any():
            raise ValueError(f"no row with {by} == {side!r} to pair")
    values = frame[frame[by].isin([treatment, control])].pivot(
        index=seed, columns=by, values=metric
    )
    paired = (values[treatment] - values[control]).dropna().index
    return PairedDifference(values[treatment][paired], values[control][paired])


def json_records(frame: pd.DataFrame) -> list[dict]:
    """JSON-ready rows of ``frame``: one dict per row, NaN (no std from one seed, a metric that
    does not apply) as None, i.e. ``null``."""
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
