import json
import math

import numpy as np
import pandas as pd
import pytest

from hierstudy.report import MISSING, json_records, mean_std, paired_by_seed


def test_mean_std_cells():
    assert mean_std(0.60349, 0.0181) == "0.603 ± 0.018"
    assert mean_std(0.5, float("nan")) == "0.500"  # one seed: no spread
    assert mean_std(np.float64(0.25), None) == "0.250"
    assert mean_std(float("nan"), 0.1) == MISSING == "—"
    assert mean_std(None, None) == "—"
    assert mean_std(1 / 3, 0.0, digits=1) == "0.3 ± 0.0"
    assert mean_std(0.0123, 0.004, signed=True) == "+0.012 ± 0.004"
    assert mean_std(-0.0123, float("nan"), signed=True) == "-0.012"


def per_seed():
    """Two models over seeds 0-3: 'b' lacks seed 3, its seed 2 is NaN; rows in no order."""
    return pd.DataFrame(
        {
            "model": ["a", "b", "a", "b", "a", "b", "a"],
            "seed": [1, 1, 0, 0, 2, 2, 3],
            "acc": [0.7, 0.5, 0.6, 0.65, 0.9, np.nan, 0.8],
        }
    )


def test_paired_by_seed_pairs_the_seeds_where_both_have_a_value():
    p = paired_by_seed(per_seed(), "a", "b", "acc")
    assert p.n == 2 and list(p.differences.index) == [0, 1]  # seeds ascending
    np.testing.assert_allclose(p.differences, [0.6 - 0.65, 0.7 - 0.5])
    assert list(p.treatment) == [0.6, 0.7] and list(p.control) == [0.65, 0.5]
    assert p.mean == pytest.approx((-0.05 + 0.2) / 2)
    assert p.std == pytest.approx(np.std([-0.05, 0.2], ddof=1))
    assert p.wins == 1 and p.verdict() == "inconclusive (2 seeds)"
    with pytest.raises(ValueError, match="no row with model == 'c'"):
        paired_by_seed(per_seed(), "a", "c", "acc")


@pytest.mark.parametrize(
    ("control", "higher", "lower"),
    [
        ([0.1, 0.2, 0.3], "reproduced", "opposite"),  # Δ = 0.4 on every seed: the interval is 0.4
        # Δ = −0.4, −0.3, −0.2: −0.3 ± t(0.975, 2) · 0.1 / √3 = [−0.548, −0.052]
        ([0.9, 0.9, 0.9], "opposite", "reproduced"),
        ([0.5, 0.6, 0.7], "inconclusive (3 seeds)", "inconclusive (3 seeds)"),  # Δ = 0
        ([0.4, 0.7, 0.7], "inconclusive (3 seeds)", "inconclusive (3 seeds)"),  # Δ ∈ [−0.1, 0.1]
    ],
)
def test_the_verdict_rule_on_paired_seeds(control, higher, lower):
    frame = pd.DataFrame(
        {
            "variant": ["+ KFR"] * 3 + ["without"] * 3,
            "seed": [0, 1, 2] * 2,
            "m": [0.5, 0.6, 0.7, *control],
        }
    )
    p = paired_by_seed(frame, "+ KFR", "without", "m", by="variant")
    assert p.verdict() == p.verdict("higher") == higher
    assert p.verdict("lower") == lower
    one = paired_by_seed(frame[frame.seed == 0], "+ KFR", "without", "m", by="variant")
    assert one.n == 1 and one.verdict() == "inconclusive (1 seed)" and math.isnan(one.std)
    # a non-inferiority margin moves the bound: Δ = −0.3 ± 0.248 is not below −0.6
    if control == [0.9, 0.9, 0.9]:
        assert p.verdict("higher", margin=0.6) == "reproduced"


def notebook_07_paired(per_seed, label, baseline, key):
    """Notebook 07's helper, as it was pasted there (without its table labels)."""
    values = per_seed[per_seed.model.isin([label, baseline])].pivot(
        index="seed", columns="model", values=key
    )
    d = (values[label] - values[baseline]).dropna()
    return (d.mean(), d.std(ddof=1) if len(d) > 1 else np.nan, f"{int((d > 0).sum())}/{len(d)}")


def notebook_08_paired(w):
    """Notebook 08's helper on its [seed, (without, + KFR)] table (without its table labels)."""

    def std(x):
        return float(np.std(x, ddof=1)) if len(x) > 1 else float("nan")

    d = w["+ KFR"] - w["without"]
    row = {}
    for side in w:
        row |= {f"{side} (mean)": w[side].mean(), f"{side} (std)": std(w[side])}
    return row | {
        "difference (mean)": d.mean(),
        "difference (std)": std(d),
        "seeds higher": int((d > 0).sum()),
        "seeds": len(d),
    }


@pytest.mark.parametrize("seeds", [1, 2, 5])
def test_paired_by_seed_is_bit_identical_to_the_notebooks_helpers(seeds):
    rng = np.random.default_rng(seeds)
    frame = pd.DataFrame(
        {
            "model": np.repeat(["kfr", "ce", "other"], seeds),
            "seed": np.tile(np.arange(seeds) + 10, 3),
            "acc": rng.random(3 * seeds),
        }
    ).sample(frac=1, random_state=0)
    p = paired_by_seed(frame, "kfr", "ce", "acc")
    mean, std, better = notebook_07_paired(frame, "kfr", "ce", "acc")
    assert (p.mean, f"{p.wins}/{p.n}") == (mean, better)
    assert p.std == std or (math.isnan(p.std) and math.isnan(std))
    wide = frame.assign(variant=frame.model.map({"kfr": "+ KFR", "ce": "without"})).dropna()
    w = wide.pivot(index="seed", columns="variant", values="acc")[["without", "+ KFR"]]
    q = paired_by_seed(wide, "+ KFR", "without", "acc", by="variant")
    ours = q.summary("+ KFR", "without")
    assert ours.pop("verdict") == q.verdict()
    assert (ours.pop("CI low"), ours.pop("CI high")) == q.interval() or q.n < 2
    expected = notebook_08_paired(w)
    assert list(ours) == list(expected)
    np.testing.assert_array_equal(list(ours.values()), list(expected.values()))  # NaN == NaN


def test_json_records_turn_nan_into_null():
    frame = pd.DataFrame({"model": ["a", "b"], "acc": [0.5, np.nan], "seeds": [3, 1]})
    rows = json_records(frame)
    assert rows == [
        {"model": "a", "acc": 0.5, "seeds": 3},
        {"model": "b", "acc": None, "seeds": 1},
    ]
    assert json.dumps(rows) == (
        '[{"model": "a", "acc": 0.5, "seeds": 3}, {"model": "b", "acc": null, "seeds": 1}]'
    )
