# ---
# jupyter:
#   kernelspec:
#     display_name: Python (hierstudy)
#     language: python
#     name: hierstudy
# ---

# %% [markdown]
# # 09 · Verdicts: every paper claim, its fair control, one rule
#
# **What this notebook does.** Notebooks 02–08 measure; this one judges. Each claim the four
# papers make that the study can test is an entry of a registry (`hierstudy.report
# .claims_registry`): the paper and where the claim is made, the claim in one sentence, the
# paper's own number when its text gives one, and one or more comparisons — a treatment, its
# **fair control** (same data, backbone, schedule and budget, ranked with a distance of the same
# family; where the treatment's natural distance differs from the control's, the control is shown
# under both) and the direction the paper claims. The ledger (`hierstudy.report.claims.ledger`)
# reads the per-seed results notebooks 02–08 stored beside the runs (`runs/<profile>/…/results/`,
# and each run's own `result.json`), never a notebook's table, and applies the rule below to
# every comparison. It trains nothing.
#
# **The rule, fixed before any number was seen.** For each comparison:
#
# 1. Δ = treatment − control, **paired by seed** (runs of one seed share their initial weights
#    and data order, so the pair isolates the method); Barz & Denzler's precision claim pairs the
#    WordNet trees instead, on log10 of the errors.
# 2. Its 95 % confidence interval: Student's t over the n paired differences,
#    Δ̄ ± t₀.₉₇₅,ₙ₋₁ · s / √n (`PairedDifference.interval`, `scipy.stats.t`).
# 3. The verdict:
#    * **reproduced** — the interval excludes 0 on the side the paper claims;
#    * **opposite** — the interval excludes 0 on the other side;
#    * **inconclusive (n seeds)** — otherwise, and always from one seed (no interval);
#    * **not tested here** — with the reason: the profile cannot run the comparison, or a
#      notebook has not stored its results.
#
#    One claim is a non-inferiority claim — Barz & Denzler's "does not impair classification
#    performance unreasonably" — and its bound is −0.02 (2 points of balanced accuracy) instead
#    of 0.
#
# No other verdict word is used in this study: a reader can check each one against one row of
# `claims.md`. The `small` profile runs five seeds (t₀.₉₇₅,₄ = 2.78: an effect is called once it
# is about 1.2 times the seed-to-seed spread of the differences; with three seeds, t₀.₉₇₅,₂ =
# 4.30, it would take 2.5 times).

# %% tags=["parameters"]
profile = None  # None: $HIERSTUDY_PROFILE, else "smoke" (hierstudy study sets it)
force = False  # unused: this notebook only reads stored results

# %%
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

from hierstudy import config, report
from hierstudy.report import claims
from hierstudy.report.claims_registry import CLAIMS

cfg = config.notebook(profile)
report.use_style()
print(cfg.description, "|", len(CLAIMS), "claims,", sum(len(c.comparisons) for c in CLAIMS), "rows")

# %% [markdown]
# ## The ledger
# One row per comparison: the claim, the metric, control and treatment, Δ with its interval, the
# number of paired seeds n, the verdict and the paper's own number (its dataset and backbone, not
# this profile's). Saved as `claims.csv` / `claims.md`.

# %%
ledger = claims.ledger(cfg)
report.save_table(ledger, "claims", cfg, floatfmt=".4g")
shown = ledger.assign(
    **{
        "Δ [95 % CI]": [
            claims.interval_text(*r)
            for r in ledger[["Δ", "CI low", "CI high"]].itertuples(index=False)
        ]
    }
)
display(
    shown[["claim", "metric", "treatment", "control", "claimed", "Δ [95 % CI]", "n", "verdict"]]
)

# %% [markdown]
# ## Every Δ on one axis
# The metrics differ, so the rows are grouped: scores between 0 and 1 (accuracy, mAHP, mAP,
# Recall@1, localisation, triplet agreement, mAP@k) share the left axis, Δ in score points; the
# precision claim, in decades of rounding error, has its own axis on the right. Each bar is the
# 95 % interval (none from one seed), the dot Δ, its colour the verdict; a hollow dot marks a
# non-inferiority claim, its bound the dotted line at −0.02. Rows that could not be tested are
# left out.

# %%
COLOURS = {
    claims.REPRODUCED: "tab:green",
    claims.OPPOSITE: "tab:red",
    claims.INCONCLUSIVE: "0.45",
}
MARGINS = sorted({c.margin for claim in CLAIMS for c in claim.comparisons if c.margin})
tested = ledger[ledger["n"] > 0].reset_index(drop=True)
score = ~tested["metric"].str.startswith("log10")
kept = {u: t for u, t in (("score points", tested[score]), ("decades", tested[~score])) if len(t)}
if kept:
    fig, axes = plt.subplots(
        len(kept),
        1,
        figsize=(10, 0.45 * len(tested) + 1.4 * len(kept)),
        squeeze=False,
        height_ratios=[max(len(t), 1) for t in kept.values()],
        layout="constrained",
    )
    for ax, (unit, rows) in zip(axes[:, 0], kept.items(), strict=True):
        y = np.arange(len(rows))[::-1]
        for yi, (_, r) in zip(y, rows.iterrows(), strict=True):
            colour = COLOURS[claims.category(r["verdict"])]
            if r["n"] > 1:
                ax.plot([r["CI low"], r["CI high"]], [yi, yi], color=colour, lw=2)
            face = "white" if r["claimed"].startswith("not") else colour
            ax.plot(r["Δ"], yi, "o", color=colour, markerfacecolor=face, ms=5)
        ax.axvline(0, color="0.3", lw=0.8)
        for margin in MARGINS if rows["claimed"].str.startswith("not").any() else ():
            ax.axvline(-margin, color="0.3", lw=0.8, ls=":")
        labels = [  # two lines: the comparison, then the whole metric (layer, phase, k…)
            f"{r.claim}: {r.treatment} − {r.control}\n{r.metric}, n={r.n}"
            for r in rows.itertuples()
        ]
        ax.set_yticks(y, labels, fontsize=6.5)
        ax.set(xlabel=f"Δ = treatment − control ({unit})")
    handles = [plt.Line2D([], [], color=c, marker="o", label=w) for w, c in COLOURS.items()]
    handles.append(
        plt.Line2D([], [], color="0.3", marker="o", mfc="white", ls=":", label="non-inferiority")
    )
    axes[0, 0].legend(handles=handles, fontsize=7, loc="best")
    fig.suptitle(f"Claims ledger ({cfg.name}): Δ and 95 % t-interval, paired by seed")
    report.save_figure(fig, "09_claims", cfg)
    plt.show()
else:
    print("No comparison could be tested: the notebooks before this one stored no results.")

# %% [markdown]
# ## What the README shows
# The block `hierstudy study` writes between the README's findings markers, from the same ledger
# (`claims.findings_markdown`).

# %%
display(Markdown(claims.findings_markdown(ledger, cfg.name)))

# %%
n = claims.counts(ledger)
report.save_metrics(
    {"counts": n, "rows": report.json_records(ledger), "level": claims.LEVEL},
    "09_metrics",
    cfg,
)
called = {
    word: [
        f"{r['claim']} ({r['treatment']} − {r['control']}, {r['metric']}: "
        f"{claims.interval_text(r['Δ'], r['CI low'], r['CI high'])}, n = {r['n']})"
        for _, r in ledger.iterrows()
        if claims.category(r["verdict"]) == word
    ]
    for word in (claims.REPRODUCED, claims.OPPOSITE)
}
report.findings(
    [
        f"What we found ({cfg.name}, {len(ledger)} comparisons of {ledger['claim'].nunique()} "
        "claims)",
        ", ".join(f"{k} {v}" for k, v in n.items()),
        *(f"{word}: {row}" for word, rows in called.items() for row in rows),
    ],
    "09_findings",
    cfg,
)
