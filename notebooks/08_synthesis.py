# ---
# jupyter:
#   kernelspec:
#     display_name: Python (hierstudy)
#     language: python
#     name: hierstudy
# ---

# %% [markdown]
# # 08 · Synthesis: do the hierarchy signals add up?
#
# **What is asked.** Notebooks 02–05 each reproduced one paper, and each paper measured its method
# against *its own* baselines: Zhao et al. (KFR, 2024) against cross-entropy and other
# metric-learning terms, Barz & Denzler (WACV 2019) against classification features, Kim et al.
# (HIER, CVPR 2023) against Proxy-Anchor, Venkataramanan et al. (ICVS 2023) against cosine
# retrieval, Ward's tree and the semantic taxonomy on the features of a plain classifier. None of
# them combined its signal with another paper's, none applied its re-ranking to features trained
# *with* a hierarchy, and none compared the hierarchies the methods produce with one another. The
# study's shared protocol (one data set, one training loop, cached runs, one evaluation) makes
# these questions cheap:
#
# 1. **Do the signals add up?** KFR's ℓ_qtr (Zhao et al. (KFR, 2024), eq. 6–7) on top of Barz &
#    Denzler's L_CORR (WACV 2019, eq. 8), and on top of PA + HIER, against the same runs without
#    it (same seeds, paired): accuracy, mAHP@250 and mAP for L_CORR; zero-shot Recall@1, mAHP and
#    mAP for HIER.
# 2. **Does the visual-hierarchy re-ranking help every model?** cos + α·D_H (Venkataramanan et
#    al. (ICVS 2023), eq. 6) with a visual hierarchy built from each closed-set model's *own*
#    training features: the change in mAHP@250 and mAP against the same model's cosine ranking.
# 3. **Do the hierarchies agree?** The semantic taxonomy, the visual hierarchy and Ward's tree of
#    the CE baseline's features, and the trees read off HIER's proxies, pairwise (triplet
#    agreement and cophenetic correlation).
#
# Every effect is reported as a mean ± std over the profile's seeds with its paired per-seed
# differences: an effect smaller than its seed spread is not an effect.
#
# **Data.** All three questions need one dataset on which every method has run, closed set and
# zero-shot alike, so this notebook runs on HierShapes under every profile (under `paper` with
# that profile's backbone, image size and schedule, not on the papers' datasets).

# %% tags=["parameters"]
profile = None  # None: $HIERSTUDY_PROFILE, else "smoke" (hierstudy study sets it)
force = False
alpha_corr = None  # KFR's α on top of L_CORR; None: the rule of "Choosing α" (validation only)
alpha_hier = None  # KFR's α on top of PA + HIER; None: the same rule
threshold = 0.30  # t of the visual hierarchy (notebook 05: the paper's value for CUB)
rerank_alpha = 3.0  # α of cos + α·D_H (notebook 05)
variance = 0.95  # PCA variance kept before the class Gaussians (notebook 05)
covariances = ("class", "pooled")  # the paper's per-class Σ and the authors' code's pooled Σ
K = 250  # AHP@K cut-off (Barz), lowered to the database size when that is smaller

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from hierstudy import config, report, run_pool, runs, train
from hierstudy.datasets import protocols, study_splits
from hierstudy.evaluation import rerank, results, retrieval
from hierstudy.hierarchy import compare
from hierstudy.proxy_tree import hier_proxy_tree
from hierstudy.report import legible

cfg = config.notebook(profile)
report.use_style()
semantic = study_splits.hiershapes_splits(cfg)["train"].hierarchy
graded = retrieval.grading(cfg, "hiershapes", False)  # mAHP always grades by the full taxonomy
SHOWN = {"recall@1": "R@1", "mahp": "mAHP", "map": "mAP"}  # ranking_metrics' keys, as shown
print(cfg.description, "|", semantic, "| seeds", cfg.seeds)

# %% [markdown]
# ## 1 · KFR on top of L_CORR and of HIER
# **Choosing α, on validation data only.** KFR's term is added in the second half of training
# (`kfr=α`, the two phases of notebook 03) on the backbone features; its weight only means
# something against the loss it joins. The rule, fixed before any test number is read:
# 1. among notebook 03's runs on top of cross-entropy with KFR's term on (α > 0), take the α with
#    the highest mean validation accuracy (the mean of the last five epochs, over the seeds each α
#    has);
# 2. carry it to L_CORR and to PA + HIER in proportion to the training loss KFR's term joins when
#    it switches on, read from their runs without KFR: α_m = α_CE · loss_m / loss_CE (two
#    significant digits).
#
# No test image enters the choice. The runs without KFR (`kfr=0`) are notebook 02's and 04's,
# reloaded with the same knobs (same run names); the table after training shows the balance the
# runs with KFR actually had.

# %%
plain = run_pool.train_grid(
    cfg,
    {"CE": ("ce", {}), "L_CORR": ("corr", {}), "PA + HIER": ("hier", {})},
    cfg.seeds,
    force=force,
)
switch = int(round(0.5 * cfg.epochs))  # the first epoch of KFR's second phase (notebook 03)
on_ce = [
    r for r in runs.finished_runs(cfg) if r.method == "kfr" and set(r.record.knobs) <= {"alpha"}
]
if not on_ce:
    raise RuntimeError("no KFR run on top of CE to choose α from: run notebook 03 first")
validation = (
    pd.DataFrame(
        [
            {"α": r.record.knobs.get("alpha", 30.0), "val acc (last 5)": r.record.val_acc_last5}
            for r in on_ce
        ]
    )
    .groupby("α")["val acc (last 5)"]
    .agg(["mean", "count"])
)
alpha_ce = float(validation["mean"].idxmax())
loss_at_switch = {
    label: np.mean([r.history.loss[switch] for r in rs]) for label, rs in plain.items()
}
chosen = {
    label: float(f"{alpha_ce * loss_at_switch[label] / loss_at_switch['CE']:.2g}")
    for label in ("L_CORR", "PA + HIER")
}
alpha_corr = chosen["L_CORR"] if alpha_corr is None else alpha_corr
alpha_hier = chosen["PA + HIER"] if alpha_hier is None else alpha_hier
print(f"α on CE by validation accuracy: {alpha_ce:g}; training loss at epoch {switch}:", end=" ")
print({k: round(v, 3) for k, v in loss_at_switch.items()}, f"→ α {alpha_corr:g} / {alpha_hier:g}")
validation

# %%
PAIRS = {"L_CORR": ("corr", alpha_corr), "PA + HIER": ("hier", alpha_hier)}
grid = run_pool.train_grid(  # every pair's runs without and with KFR, trained together
    cfg,
    {
        (label, variant): (method, {"kfr": a})
        for label, (method, alpha) in PAIRS.items()
        for variant, a in (("without", 0.0), ("+ KFR", alpha))
    },
    cfg.seeds,
    force=force,
)
trained = {label: {v: rs for (pair, v), rs in grid.items() if pair == label} for label in PAIRS}
new_runs = [r for pair in trained.values() for r in pair["+ KFR"]]
# wall-clock training time of the new runs: printed only (manifest.json keeps the notebooks' times)
print({f"{r.name}/seed{r.seed}": f"{r.history.time_s.sum():.1f} s" for r in new_runs})

# %% [markdown]
# The balance each run with KFR's term had when that term switched on (`train.term_balance`):
# the main loss (the logged total minus α·ℓ_qtr), ℓ_qtr and their ratio — the new runs next to
# notebook 03's α sweep on top of CE (first seed).

# %%
BALANCE = {"weight": "α", "rest": "main loss", "term": "ℓ_qtr", "ratio": "α·ℓ_qtr / main loss"}
balance = pd.DataFrame(
    [
        {"run": r.name, **train.term_balance(r.history, "kfr", r.record.recipe.weight("kfr"))}
        for r in runs.finished_runs(cfg)
        if r.seed == cfg.seeds[0] and r.record.recipe.weight("kfr") > 0
    ]
).rename(columns=BALANCE)
report.save_table(balance, "08_kfr_balance", cfg, seed=cfg.seeds[0])
balance

# %% [markdown]
# **The comparison.** L_CORR is a closed-set model: test accuracy (nearest class embedding) and
# retrieval of every test image among the others with the dot product of its unit embeddings.
# HIER follows the zero-shot protocol of notebook 04 (trained on the first half of the classes,
# retrieval among the unseen half with the Poincaré distance). Both are scored by
# `retrieval.evaluate_run`, the protocol of notebook 06; mAHP always uses the full taxonomy.

# %%
rows = []
for label, pair in trained.items():
    for variant, rs in pair.items():
        for r in rs:
            (scores,) = retrieval.evaluate_run(r, cfg, K=K, recall_ks=(1,), graded=graded).values()
            acc = {} if r.record.zero_shot else {"test acc": r.record.test_acc}
            named = {v: scores[k] for k, v in SHOWN.items()}
            keys = {"pair": label, "variant": variant, "run": r.name, "seed": r.seed}
            rows.append({**keys, **acc, **named})
per_seed = pd.DataFrame(rows)
report.save_table(per_seed, "08_signals_per_seed", cfg)
per_seed

# %% [markdown]
# With KFR minus without, paired by seed (`report.paired_by_seed`), next to both sides' mean ±
# std over seeds (`PairedDifference.summary`).

# %%
METRICS = {"L_CORR": ("test acc", "mAHP", "mAP"), "PA + HIER": ("R@1", "mAHP", "mAP")}
paired = {
    (label, m): report.paired_by_seed(
        per_seed[per_seed.pair == label], "+ KFR", "without", m, by="variant"
    )
    for label, ms in METRICS.items()
    for m in ms
}
signals = pd.DataFrame(
    [{"pair": p, "metric": m, **d.summary("+ KFR", "without")} for (p, m), d in paired.items()]
)
report.save_table(signals, "08_signals_add_up", cfg)
signals

# %% [markdown]
# Each panel: one grey line per seed from the run without KFR to the run with it (same seed, same
# initial weights and data order); black diamonds: the means. Every panel's y axis spans the same
# range (the widest panel's), so a small change looks small and slopes compare across panels.

# %%
size = (9, 3 * len(METRICS))
fig, axes = plt.subplots(len(METRICS), 3, figsize=size, squeeze=False, layout="constrained")
for ax, ((label, metric), d) in zip(axes.flat, paired.items(), strict=True):
    w = pd.concat([d.control, d.treatment], axis=1)
    ax.plot([0, 1], w.values.T, marker="o", color="0.6", lw=1)
    ax.plot([0, 1], w.mean().values, marker="D", color="black", lw=2)
    ticks = [label, f"+ {PAIRS[label][1]:g}·ℓ_qtr"]
    ax.set(xticks=[0, 1], xticklabels=ticks, xlim=(-0.3, 1.3))
    ax.set(title=f"{label}: {metric} (Δ {d.mean:+.3f})", ylabel=metric)
span = legible.common_span(axes.flat)  # one y span: equal slopes, equal changes
fig.suptitle(f"Every panel spans {span:.3f} on its y axis")
report.save_figure(fig, "08_signals_add_up", cfg)
plt.show()

# %% [markdown]
# ## 2 · The visual-hierarchy re-ranking on every closed-set model
# Notebook 05 re-ranked the CE baseline only. Here every finished closed-set run gets its own
# visual hierarchy, built exactly as in notebook 05 (`rerank.VisualReranker`) from **its own**
# training representation (the one it retrieves with: penultimate features for the classifiers,
# the class embedding for L_CORR): PCA keeping `variance`, class Gaussians, Bhattacharyya merging
# at t = `threshold`, test images placed at leaves by the Mahalanobis rule (no test labels). The
# change is cos + α·D_H minus the cosine ranking of the same representation, so it isolates D_H;
# a tree that merges nothing gives D_H = 0 and a change of exactly zero. Both covariance
# conventions are shown. In the figure each run's name gives its number of seeds n (bars: mean
# ± std over them); the runs with fewer seeds (under `small`, notebook 03's one-seed sweep of
# KFR's α and reduction) are grouped below a dashed line, without error bars. A cross marks a
# run whose tree merged nothing in any seed: its zero is by construction, not "no effect";
# "class merged m/n" in a run's name flags a convention whose tree merged in only some seeds.

# %%
baselines = list(run_pool.train_seeds(cfg, "ce", cfg.seeds, force=force).values())  # notebook 03
closed = [r for r in runs.finished_runs(cfg) if not r.record.zero_shot]
fitted, rows = {}, []
for run in closed:
    x, y = run.retrieval_features("test")
    x = x.astype(np.float64)  # float64: α = 0 would reproduce cosine's order exactly
    cosine = retrieval.ranking_metrics(x, y, "cosine", graded, K=K, recall_ks=(1,))
    for c in covariances:
        r = rerank.VisualReranker(threshold, covariance=c, variance=variance)
        fitted[run.name, run.seed, c] = r.fit(*run.retrieval_features("train"), semantic.classes)
        eq6 = retrieval.ranking_metrics(x, y, r.distance(rerank_alpha), graded, K=K, recall_ks=(1,))
        row = {"run": run.name, "seed": run.seed, "covariance": c}
        row["merge levels"] = len(r.visual.levels) - 1
        row |= {f"cosine {v}": cosine[k] for k, v in SHOWN.items()}
        rows.append(row | {f"Δ {v}": eq6[k] - cosine[k] for k, v in SHOWN.items()})
rerank_seed = pd.DataFrame(rows)
report.save_table(rerank_seed, "08_rerank_per_seed", cfg)

# %%
DELTAS = ["Δ mAHP", "Δ mAP", "Δ R@1"]
grouped = rerank_seed.groupby(["run", "covariance"], sort=False)
rerank_table = (
    grouped[["cosine mAHP", "cosine mAP", *DELTAS]]
    .mean()
    .join(grouped[DELTAS].agg(pd.Series.std).add_suffix(" (std)"))
    .join(grouped["merge levels"].max().rename("merge levels (max)"))
    .join(grouped.size().rename("seeds"))
    .reset_index()
)
report.save_table(rerank_table, "08_rerank", cfg)
rerank_table.round(4)

# %%
merged = rerank_seed.assign(merged=rerank_seed["merge levels"] > 0)  # seeds whose tree merged
merged = merged.groupby(["run", "covariance"], sort=False).merged.sum()
bars = rerank_table.join(merged, on=["run", "covariance"])
colours = dict(zip(covariances, ("tab:blue", "tab:orange"), strict=False))
size = (11, 0.25 * bars.run.nunique() * len(covariances) + 2)
fig, axes = plt.subplots(1, 2, figsize=size, sharey=True, layout="constrained")
for ax, key in zip(axes, ["Δ mAHP", "Δ mAP"], strict=True):
    legible.seed_bars(ax, bars, key, series="covariance", colours=colours)
    ax.set(xlabel=f"cos + {rerank_alpha:g}·D_H minus cosine (mean ± std over n seeds)", title=key)
axes[0].set_ylabel("run (n seeds; below the dashed line: fewer seeds, no error bar)")
key = [Patch(color=colour, label=f"{c} Σ") for c, colour in colours.items()]
if (bars.merged == 0).any():
    cross = Line2D([], [], marker="x", ls="", color="0.3", label="no merge: Δ = 0 by construction")
    key.append(cross)
fig.legend(handles=key, loc="outside upper center", ncol=len(key), fontsize=7)
report.save_figure(fig, "08_rerank", cfg)
plt.show()

# %% [markdown]
# ## 3 · The hierarchies side by side
# For each seed: the semantic taxonomy; the visual hierarchy of the CE baseline's features
# (notebook 05's construction, both covariance conventions); Ward's clustering of the same
# features' class means (in the PCA space, as in notebook 05; `VisualReranker.ward`); and the
# trees read off the proxies of PA + HIER and of PA + HIER + KFR (`hier_proxy_tree`, notebook 04's
# rule: every proxy hangs from its nearest proxy of smaller norm, every class from the proxy most
# of its samples hang from). **HIER's trees cover only the seen half of the classes**, so every
# pair is compared on the classes common to all of them; the table also gives each pair of full
# trees on all classes.

# %%
seen = [semantic.classes[i] for i in protocols.zero_shot_classes(len(semantic.classes))[0]]
hierarchies = {}
for b, h, hk in zip(baselines, *trained["PA + HIER"].values(), strict=True):
    visual = {c: fitted[b.name, b.seed, c] for c in covariances}
    hierarchies[b.seed] = {
        "semantic": semantic,
        **{f"visual ({c} Σ)": r.visual.hierarchy for c, r in visual.items()},
        "Ward (CE class means)": visual[covariances[0]].ward(),  # the means do not depend on Σ
        "HIER proxies": hier_proxy_tree(h, seen),
        "HIER + KFR proxies": hier_proxy_tree(hk, seen),
    }
for h in trained["PA + HIER"]["without"]:  # HIER's proxy tree against chance, for notebook 09
    tree = hierarchies[h.seed]["HIER proxies"]
    truth = semantic.restrict(tree.classes)
    found = {"agreement": compare.triplet_agreement(truth, tree)}
    found |= {"chance": compare.chance_triplet_agreement(truth, tree)}
    results.save_run_result(h, "proxy_tree", found | {"support": compare.resolved_triplets(tree)})
TREES = list(hierarchies[cfg.seeds[0]])
classes = [set(h.classes) for trees in hierarchies.values() for h in trees.values()]
common = [c for c in semantic.classes if all(c in cs for cs in classes)]
restricted = {s: {t: h.restrict(common) for t, h in hs.items()} for s, hs in hierarchies.items()}
print(f"{len(common)} classes common to every tree (of {len(semantic.classes)})")

# %% [markdown]
# The trees on the common classes (mean over seeds): inner nodes, height, and the share of class
# triplets each resolves — the support of the triplet agreement below: a tree that resolves few
# triplets agrees or disagrees on few, so its agreement says little.

# %%
trees_seed = pd.DataFrame(
    [
        {
            "seed": s,
            "tree": t,
            "inner nodes": len(h.nodes) - len(common),
            "height": h.max_height,
            "triplets resolved": compare.resolved_triplets(h),
        }
        for s, hs in restricted.items()
        for t, h in hs.items()
    ]
)
grouped = trees_seed.groupby("tree", sort=False)
tree_table = grouped[["inner nodes", "height", "triplets resolved"]].mean()
spread = grouped["triplets resolved"].agg(pd.Series.std).rename("triplets resolved (std)")
tree_table = tree_table.join(spread)
report.save_table(tree_table.reset_index(), "08_trees", cfg)
tree_table.round(3)

# %% [markdown]
# Every pair of trees, seed by seed (`compare.pairwise_agreement`): triplet agreement and
# cophenetic correlation on the common classes, and on all classes where both trees cover them.

# %%
pairs_seed = pd.DataFrame(
    [
        {"seed": s, **row}
        for s, hs in hierarchies.items()
        for row in compare.pairwise_agreement(hs, common, semantic.classes)
    ]
)

# %% [markdown]
# Mean ± std over seeds of each pair ("—": undefined, see below; no ± with one seed).

# %%
COLUMNS = [f"{m} ({c} classes)" for m in compare.MEASURES for c in ("common", "all")]
grouped = pairs_seed.groupby(["first", "second"], sort=False)[COLUMNS]
agreement = grouped.mean().join(grouped.agg(pd.Series.std).add_suffix(" (std)")).reset_index()
agreement = agreement[["first", "second", *(c + s for c in COLUMNS for s in ("", " (std)"))]]
shown = agreement[agreement["first"] != agreement["second"]].reset_index(drop=True)
table = shown[["first", "second"]].assign(
    **{c: list(map(report.mean_std, shown[c], shown[f"{c} (std)"])) for c in COLUMNS}
)
report.save_table(table, "08_agreement", cfg)
table

# %% [markdown]
# The matrices (mean over seeds, on the common classes). "—" is undefined: a tree that merged
# nothing over these classes (all of them below one node) resolves no triplet and has constant
# heights. The diagonal is 1 by construction, or "—" for such a tree. Under each triplet
# agreement: its support, the share of class triplets that both trees resolve (mean over seeds;
# on the diagonal, the share the tree resolves). A value resting on less than 20 % of the
# triplets is greyed out and shown in parentheses: a 1.00 over a handful of triplets is no
# evidence of agreement. Chance (red on the colour bar) is 1/3: a triplet both trees resolve
# has three possible closest pairs.

# %%
support = np.mean([legible.support_matrix(restricted[s]) for s in restricted], axis=0)
fig, axes = plt.subplots(1, 2, figsize=(14, 6), layout="constrained")
for ax, name in zip(axes, compare.MEASURES, strict=True):
    upper = agreement.pivot(index="first", columns="second", values=f"{name} (common classes)")
    m = upper.reindex(index=TREES, columns=TREES)
    m = m.combine_first(m.T).to_numpy()  # symmetric
    triplets = name == "triplet agreement"  # its support: the triplets both trees resolve
    image, _ = legible.agreement_heatmap(
        ax, m, TREES, support=support if triplets else None, vmin=0 if triplets else -1
    )
    ax.set(title=f"{name} ({len(common)} common classes)")
    if triplets:
        ax.set_title(f"{ax.get_title()}\ngrey: undefined or resolved in both for < 20 %")
    bar = fig.colorbar(image, ax=ax, shrink=0.7)
    if triplets:  # two random resolutions of a triplet agree one time in three
        bar.ax.axhline(1 / 3, color="red", lw=1.5)
        bar.ax.text(
            -0.2,
            1 / 3,
            "chance 1/3",
            color="red",
            ha="right",
            va="center",
            fontsize=7,
            transform=bar.ax.get_yaxis_transform(),
        )
report.save_figure(fig, "08_agreement", cfg)
plt.show()

# %%
report.save_metrics(
    {
        "signals": report.json_records(signals),
        "signals_per_seed": report.json_records(per_seed),
        "kfr_balance": report.json_records(balance),
        "rerank": report.json_records(rerank_table),
        "rerank_per_seed": report.json_records(rerank_seed),
        "agreement": report.json_records(agreement),
        "agreement_per_seed": report.json_records(pairs_seed),
        "trees": TREES,
        "tree_stats": report.json_records(tree_table.reset_index()),
        "tree_stats_per_seed": report.json_records(trees_seed),
        "common_classes": len(common),
        "alphas": {"corr": alpha_corr, "hier": alpha_hier},
        "threshold": threshold,
        "rerank_alpha": rerank_alpha,
        "covariances": list(covariances),
        "K": K,
        "seeds": list(cfg.seeds),
    },
    "08_metrics",
    cfg,
)

# %% [markdown]
# ## What we found
# The sentences are generated from the tables above. An effect is given as Δ paired by seed with
# its 95 % t-interval and the verdict of the study's one rule for the claimed side "higher"
# (notebook 09: reproduced, opposite, inconclusive (n seeds)); under the `smoke` profile (one
# seed, one epoch) every verdict is inconclusive.

# %%
found = [f"What we found ({len(cfg.seeds)} seed(s), {cfg.epochs} epoch(s), {cfg.backbone})"]
for label, (_, alpha) in PAIRS.items():
    effects = [
        f"{r.metric} {r['without (mean)']:.3f} → {r['+ KFR (mean)']:.3f}, "
        f"Δ {r['difference (mean)']:+.3f} [{r['CI low']:+.3f}, {r['CI high']:+.3f}] "
        f"({r.verdict})"
        for _, r in signals[signals.pair == label].iterrows()
    ]
    found.append(f"KFR (α = {alpha:g}) on top of {label}: " + "; ".join(effects) + ".")
reranked = []
for c in covariances:
    part = rerank_table[(rerank_table.covariance == c) & (rerank_table["merge levels (max)"] > 0)]
    up = [int((part[k] > 0).sum()) for k in ("Δ mAHP", "Δ mAP")]
    reranked.append(
        f"with {c} Σ a tree merged classes for {len(part)} of {rerank_table.run.nunique()} "
        f"closed-set runs (the mean Δ mAHP is positive for {up[0]} of them, Δ mAP for {up[1]})"
    )
found.append(f"Visual re-ranking (t = {threshold:g}, α = {rerank_alpha:g}), minus cosine: ")
found[-1] += "; ".join(reranked) + " (per run: the table above)."
said = table.set_index(["first", "second"])["triplet agreement (common classes)"]
said = said.replace(report.MISSING, "undefined")
resolved = tree_table["triplets resolved"]
found.append(
    f"Triplet agreement with the semantic taxonomy on the {len(common)} common classes: "
    + ", ".join(f"{t} {said['semantic', t]} (resolving {resolved[t]:.0%})" for t in TREES[1:])
    + f"; HIER's proxy tree against Ward's tree of CE {said['Ward (CE class means)', 'HIER proxies']}"
    + f", against HIER + KFR's {said['HIER proxies', 'HIER + KFR proxies']}."
)
report.findings(found, "08_findings", cfg)
