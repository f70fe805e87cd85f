# ---
# jupyter:
#   kernelspec:
#     display_name: Python (hierstudy)
#     language: python
#     name: hierstudy
# ---

# %% [markdown]
# # 06 · Retrieval evaluation: every model, one protocol
#
# **What the papers claim.** Barz & Denzler (WACV 2019): features trained for
# classification retrieve the query's own class first, then drift to classes that *look* alike
# but are semantically unrelated (Fig. 1); hierarchy-based embeddings (L_CORR, L_CORR+CLS,
# notebook 02) keep retrieving semantically close classes. They measure it with the hierarchical
# precision HP@k (eq. 11) and its area mAHP@250 (Table 1, Fig. 3), also win on classical mAP
# (Table 3), and classify about as well (balanced accuracy, Table 2). KFR (notebook 03) claims
# better accuracy; HIER (notebook 04) better zero-shot Recall@K; Bertinetto et al. ("Making Better
# Mistakes") ask how *bad* the mistakes are (mistake severity).
#
# **What you will see.** Every model that notebooks 02–05 trained and cached under
# `runs/<profile>/`, evaluated with one protocol — each test image queries all other test images
# of its dataset, each model ranked with its own distance, graded against that dataset's class
# hierarchy — in one central table (mean ± std over seeds, one block per dataset): mAHP@K,
# balanced accuracy, mAP, Recall@K at HIER's K for the dataset (1, 2, 4, 8 but on SOP and
# In-shop), mistake severity and the average hierarchical distance of the top-5 classes; HP@k curves
# (Fig. 3) and a qualitative retrieval grid with borders coloured by semantic similarity (Fig. 1).
# Notebook 05's hierarchy-aware re-ranking of the CE baseline (Venkataramanan et al., ICVS 2023:
# D_C + α·D_H with the visual hierarchy) joins the table as rows of its own, rebuilt from that
# run's training features. This notebook trains nothing and evaluates whatever subset of runs
# exists.
#
# **Datasets.** `dataset = None` evaluates every dataset that has finished runs: HierShapes under
# `smoke` and `small`; under `paper` each notebook's own (CIFAR-100 for 02 and 03, CUB-200-2011's
# zero-shot split for 04, CUB's official split for 05, ImageNet-1k for 07's models). Runs are
# compared only within a dataset. Not evaluated here: notebook 08's combinations (they are
# compared there) and notebook 05's networks retrained on corrupted images (its robustness study).

# %% tags=["parameters"]
profile = None  # None: $HIERSTUDY_PROFILE, else "smoke" (hierstudy study sets it)
force = False  # unused: this notebook only reads finished runs
dataset = None  # None: every dataset with finished runs under runs/<profile>/; or one name
K = 250  # AHP@K cut-off (Barz: 250), lowered to the database size when that is smaller
recall_ks = (
    None  # None: HIER's K per dataset (1, 2, 4, 8; SOP 1, 10, 100, 1000; In-shop 1, 10, ..., 50)
)
hdist_k = 5  # average hierarchical distance of the top-k classes
grid_runs = ("ce", "corr", "kfr")  # qualitative grid: these runs first, when present
grid_queries, grid_top, grid_seed = 4, 8, 0

# %%
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display

from hierstudy import config, report
from hierstudy.datasets import study_splits
from hierstudy.datasets.hiershapes import taxonomy
from hierstudy.evaluation import metrics, retrieval
from hierstudy.report import central, legible

# one dataset: figures/<profile>/<dataset>/
cfg = config.notebook(profile).writing_for(dataset, None)
report.use_style()

# %%
# notebook 08's combinations (a method + KFR's term) are compared there, notebook 05's networks
# trained on corrupted images in 05: keeping them out makes this table the same whatever ran
runs = retrieval.evaluated_runs(cfg, dataset)  # datasets, closed set first, methods, knobs, seeds
print(
    f"{len(runs)} finished runs under {cfg.runs_dir}: "
    f"{sorted({(r.record.dataset, r.name) for r in runs})}"
)

# %% [markdown]
# ## The metrics, each with a worked example
# On HierShapes' taxonomy, whatever the datasets evaluated below. Its tree has height 3, so
# $s_G = 1 - \text{height}(\text{LCS})/3$: 1 for the same class,
# 2/3 for another variant of the same shape, 1/3 for the same family, 0 otherwise. The example:
# a query *red solid circle* against a database of five images, ranked orange solid circle
# (s = 2/3), red solid circle (1), blue solid triangle (0), red solid circle, red solid circle.
#
# * **HP@k** (Barz eq. 11): similarity gathered by the top k over the best achievable sum in the
#   whole database. The top 3 gather 2/3 + 1 + 0; the best three (three red circles) gather 3:
#   HP@3 = (5/3)/3 = 0.556 (HP@1 = 0.667, HP@2 = 0.833).
# * **AHP@K**: area under HP@1..HP@K by the trapezoid rule, divided by K — so a perfect ranking
#   scores (K − 1)/K (0.996 for K = 250). Here ((0.667 + 0.833)/2 + (0.833 + 0.556)/2)/3 = 0.481.
#   **mAHP@K** is its mean over queries: Barz's Table 1.
# * **mAP** (Table 3): AP is the mean of the precisions at the ranks of the same-class items,
#   blind to the hierarchy. Red circles sit at ranks 2, 4, 5: AP = (1/2 + 2/4 + 3/5)/3 = 0.533.
# * **Recall@K** (HIER): 1 when any of the top K shares the query's class. Here R@1 = 0, R@2 = 1.
# * **Balanced accuracy** (Table 2): the mean per-class recall. 90 images of class A, 90 % right,
#   and 10 of class B, 10 % right: accuracy 82 %, balanced accuracy (90 % + 10 %)/2 = 50 %.
# * **Mistake severity** (Bertinetto et al.): the mean LCS height over the *wrong* top-1
#   predictions. A red circle called orange circle (LCS circle, height 1) and another called blue
#   triangle (LCS root, height 3): severity (1 + 3)/2 = 2. **Average hierarchical distance@5**:
#   the mean LCS height over the top-5 classes of every image (the true class counts 0).
#
# The library gives the same numbers:

# %%
hierarchy = taxonomy()
names = ["round/circle/red-solid", "round/circle/orange-solid", "angular/triangle/blue-solid"]
red, orange, triangle = (int(i) for i in hierarchy.class_indices(names))
database = np.array([orange, red, triangle, red, red])
scores = np.arange(5.0, 0.0, -1.0)[:, None]  # 1-D features: the dot product ranks them in order
ex = metrics.retrieval_metrics(
    np.ones((1, 1)),
    [red],
    scores,
    database,
    similarity=hierarchy.similarity(),
    K=3,
    recall_ks=(1, 2),
)
severity = metrics.mistake_severity([orange, triangle, red], [red] * 3, hierarchy.lcs_height())
print(
    f"HP@1..3 = {np.round(ex['hp'], 3)}, AHP@3 = {ex['mahp']:.3f}, AP = {ex['map']:.3f}, "
    f"R@1 = {ex['recall'][1]:.0f}, R@2 = {ex['recall'][2]:.0f}, mistake severity = {severity:.1f}"
)

# %% [markdown]
# ## One protocol for every run
# Each run's test representation (the one its method retrieves with: penultimate features for
# the classifiers, the embedding for L_CORR and the metric-learning models), ranked with the run's
# own distance (`retrieval.run_distance`): cosine (L2-normalised) for the classifiers and
# Proxy-Anchor / HIERsph, the dot product for L_CORR's unit-norm embeddings, the Poincaré distance
# (c = 0.1) for HIER. The CE baseline appears twice, as in Barz's tables: raw classification
# features (Euclidean) and their L2-normalised version (cosine) (`retrieval.variants`).
# **Zero-shot** runs (HIER's protocol, notebook 04) are trained on half of the classes and tested
# on the unseen other half: their database is smaller (hence a smaller K) and they have no
# classifier, so their rows are not comparable with the closed-set rows. On HierShapes $s_G$
# always comes from the full tree; on a paper's zero-shot dataset from the hierarchy of its test
# classes (as in notebook 04).
#
# **Notebook 05's re-ranking** (Venkataramanan et al. (ICVS 2023), eq. 6). For notebook 05's CE
# baseline (seed 0 on its dataset), `retrieval.ranking_variants` adds the hierarchy-aware
# ranking: a visual hierarchy built from the run's training features (classes whose Gaussians
# overlap, Bhattacharyya coefficient ≥ t, merge level by level), each test image placed at the
# leaf of smallest Mahalanobis distance, and D = D_C + α·D_H: the cosine distance plus α times the
# height of the two leaves' lowest common ancestor over the tree's height — with the paper's t
# and α for the dataset, for both covariance conventions of notebook 05 (the same tree as 05's).
# A tree that merged nothing gives D_H = 0 (the cosine ranking, as in 05). The classification
# columns stay empty: the classifier is CE's.
#
# `retrieval.per_seed_table` evaluates every ranking of every run and seed
# (`retrieval.evaluate_run`) and stores each run's rows beside it (its `retrieval` result, which
# the README's headline reads); `retrieval.aggregate` gives the mean and std over seeds.

# %%
per_seed = retrieval.per_seed_table(cfg, dataset, K=K, recall_ks=recall_ks, hdist_k=hdist_k)
report.save_table(per_seed.drop(columns="hp"), "06_per_seed", cfg)
results = retrieval.aggregate(per_seed)
reranked = per_seed[per_seed.method.str.contains("visual re-rank")]
rerank = {  # notebook 05's re-ranking rows (none without its CE baseline)
    "dataset": reranked.dataset.iloc[0] if len(reranked) else None,
    "seed": int(reranked.seed.iloc[0]) if len(reranked) else None,
    "methods": list(dict.fromkeys(reranked.method)),
}
print(f"notebook 05's re-ranking (seed {rerank['seed']}): {rerank['methods'] or 'not found'}")

# %% [markdown]
# ## The central table
# One row per method (and knob setting), mean ± std over the seeds that exist (no ± with a single
# seed); "—" where a metric does not apply. `setup` names the paper whose setup trained the run on
# a paper's dataset (the same method can appear under two, e.g. CE in KFR's and in Barz's setup
# on CIFAR-100), "profile" the profile's own. Below, the columns every row shares are said once
# and the rest shown in parts. Column by column: Barz Table 1 (mAHP@K, with K in its
# own column), Table 2 (balanced accuracy), Table 3 (mAP), HIER's Recall@K, and Bertinetto's
# mistake severity and average hierarchical distance@5 in LCS-height units (0 to 3 on HierShapes:
# lower is better; the lines printed below the table give the severity of a uniformly random
# wrong class, the chance level, on each dataset).
#
# **Conventions** ([docs/conventions.md](../docs/conventions.md)): each row follows the paper's
# text unless its knobs name another convention. KFR's ℓ_qtr is on the study's scale (each
# latent standardised, $d_z$ the mean over the features, k = 1; a `reduction=sum` row is the
# paper's L1 scale); HIER's Poincaré distance is the exact Möbius form on HierShapes, while the
# `paper` profile's HIER runs take the authors' ε = 1e-5 (`mobius_eps`, their released code
# produced the paper's numbers); the re-ranking rows use the paper's no-merge rule (D_H = 0) and
# notebook 05's covariance conventions, as labelled.

# %%
table = central.cells(results)
report.save_table(table.drop(columns="run"), "06_central_table", cfg, floatfmt=".3f")
report.save_table(results, "06_results", cfg)
first = {}  # each block of the table (dataset, protocol) → its first run
for run in runs:
    first.setdefault(retrieval.panel(run), run)
graded = {p: retrieval.grading(cfg, r.record.dataset, r.record.zero_shot) for p, r in first.items()}
closed = {d: g for (d, protocol), g in graded.items() if protocol == "closed set"}
for d, g in closed.items():
    print(
        f"{d}: a uniformly random wrong class has mistake severity {g.random_severity:.2f} "
        f"(max height {g.hierarchy.max_height})."
    )
same, parts = report.readable(table.drop(columns="run"), ["protocol", "method", "seeds"], 6)
print("On every row: " + ", ".join(f"{column} {value}" for column, value in same.items()))
for part in parts:
    display(part)

# %% [markdown]
# ## Hierarchical precision against k (Fig. 3)
# Mean HP@k over queries (and seeds) for k = 1..K, one row per dataset and protocol: left the
# papers' own methods, right the study's variants (each in its own colour, line style and marker,
# the papers' methods in thin grey behind them for reference). A curve within 1 % of the y axis'
# range of an earlier one would hide under it: it is drawn dashed with crosses on top and named
# "… ≈ …" in the legend (`report.legible.draw_curves`). The dotted
# line marks the number of other images of the query's class in the database (on average over the
# queries): a ranking that only knows
# classes has used up its exact matches there, and only a semantically aware one keeps HP high
# beyond it (Barz's "turning point" at k = 100 on CIFAR-100). The dashed grey line is a random
# ranking of the same images (`retrieval.chance`: the mean of 20 random rankings; their spread is
# in the metrics file and the findings).

# %%
VARIANT_STYLES = [(c, ls) for ls in ("-", "--", "-.") for c in plt.get_cmap("tab10").colors]
chance = {
    p: retrieval.chance(r, graded[p], K=K, recall_ks=recall_ks, seed=grid_seed, draws=20)
    for p, r in first.items()
}
mean_curves = retrieval.hp_curves(per_seed)  # {(dataset, setup, method): mean HP@k}
fig, axes = plt.subplots(
    len(first), 2, figsize=(14, 4.6 * len(first)), squeeze=False, layout="constrained"
)
for row, (data_name, protocol) in zip(axes, first, strict=True):
    rows = results[(results.dataset == data_name) & (results.protocol == protocol)]
    rand = chance[data_name, protocol]
    curves = [{}, {}]  # the papers' methods, the study's variants: label -> mean HP@k
    for label, setup in zip(rows.method, rows.setup, strict=True):
        curves[not central.is_paper_method(label)][central.legend(setup, label)] = mean_curves[
            data_name, setup, label
        ]
    colours = dict(zip(curves[0], plt.get_cmap("tab10").colors, strict=False))
    colours |= {v: c for v, (c, _) in zip(curves[1], VARIANT_STYLES, strict=False)}
    dashes = {v: ls for v, (_, ls) in zip(curves[1], VARIANT_STYLES, strict=False)}
    for ax, drawn in zip(row, curves, strict=True):
        if drawn:  # equal or nearly equal curves dashed on top, named "≡" / "≈" in the legend
            k = np.arange(1, max(map(len, drawn.values())) + 1)
            style = {"linestyles": dashes, "markevery": 25, "yrange": 1.02}  # the axis' range
            legible.draw_curves(ax, k, drawn, colours, **style)
    for curve in curves[0].values():  # the papers' methods again, thin grey, behind the variants
        row[1].plot(np.arange(1, len(curve) + 1), curve, color="0.8", lw=0.8, zorder=0)
    row[1].plot([], [], color="0.8", lw=0.8, label="the papers' methods (left)")
    for ax, kind in zip(row, ("the papers' methods", "the study's variants"), strict=True):
        ax.plot(
            np.arange(1, rand["K"] + 1), rand["hp"], "--", color="0.5", lw=1, label="random ranking"
        )
        ax.axvline(
            rand["others"], color="0.4", ls=":", lw=0.8, label="other images of the query's class"
        )
        ax.set(
            xlabel="k",
            ylabel="HP@k",
            ylim=(0, 1.02),
            xlim=(1, int(rows.K.max())),
            title=f"{data_name}, {protocol} ({int(rows['test classes'].iloc[0])} test classes, "
            f"K = {int(rows.K.iloc[0])}): {kind}",
        )
        ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3)
report.save_figure(fig, "06_hp_curves", cfg)
plt.show()

# %% [markdown]
# ## Qualitative retrieval (Fig. 1)
# A few fixed test queries (drawn with `grid_seed`) and their top results for up to three models
# of the same dataset and protocol (the first dataset; by default CE with L2-normalised features,
# L_CORR and KFR, when they exist; first seed). The query has a black frame; each result's frame
# is coloured by the semantic similarity $s_G$ of its class to the query's class (dark green =
# same class, red = another family), its value printed above it.

# %%
shown = {}  # run name (without its paper's prefix) → its first seed, on the first block
for run in sorted(runs, key=lambda r: (r.seed, r.name)):
    if retrieval.panel(run) == retrieval.panel(runs[0]):
        shown.setdefault(run.record.name, run)
grid = [shown[n] for n in grid_runs if n in shown] + [
    r for n, r in shown.items() if n not in grid_runs
]
grid = grid[:3]
test = study_splits.evaluation_set(cfg, grid[0].record.dataset, grid[0].record.zero_shot)
hierarchy, similarity = test.hierarchy, graded[retrieval.panel(grid[0])].similarity
labels = grid[0].retrieval_features("test")[1]
assert (test.labels == labels).all(), "the test set changed since the runs extracted their features"
assert all((r.retrieval_features("test")[1] == labels).all() for r in grid), "grid: one test set"
queries = np.random.default_rng(grid_seed).choice(
    len(labels), size=min(grid_queries, len(labels)), replace=False
)
results_grid = [retrieval.top_matches(r, queries, grid_top) for r in grid]


def show(ax, image, colour, caption):
    ax.imshow(image, interpolation="nearest")
    ax.set(xticks=[], yticks=[])
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set(visible=True, color=colour, linewidth=3)
    ax.set_title(caption, fontsize=5.5, pad=2)


# %%
cmap, n_top, step = plt.get_cmap("RdYlGn"), results_grid[0][1].shape[1], len(grid) + 1
ratios = ([1] * len(grid) + [0.35]) * len(queries)  # a spacer row per query
fig, axes = plt.subplots(
    len(ratios) - 1,
    n_top + 1,
    figsize=(0.85 * (n_top + 1) + 0.8, 0.9 * sum(ratios)),
    squeeze=False,
    gridspec_kw={"height_ratios": ratios[:-1], "top": 0.98, "bottom": 0.03},
)
for ax in axes[len(grid) :: step].ravel():
    ax.set_visible(False)
for qi, q in enumerate(queries):
    for mi, (label, top) in enumerate(results_grid):
        row = axes[qi * step + mi]
        caption = hierarchy.label(hierarchy.classes[labels[q]]) if mi == 0 else ""
        show(row[0], test.image(q), "black", caption)
        row[0].set_ylabel(label, fontsize=6, rotation=0, ha="right", va="center")
        for ax, j in zip(row[1:], top[qi], strict=True):
            s = similarity[labels[q], labels[j]]
            show(ax, test.image(j), cmap(s), f"$s_G$ = {s:.2f}")
fig.colorbar(
    plt.cm.ScalarMappable(plt.Normalize(0, 1), cmap),
    ax=axes,
    fraction=0.025,
    pad=0.01,
    label="$s_G$(query class, result class)",
)
report.save_figure(fig, "06_retrieval_grid", cfg, dataset=grid[0].record.dataset, seed=grid[0].seed)
plt.show()

# %% [markdown]
# ## What the table shows
# The sentences below are generated from the numbers above (`report.central.findings`). With the
# `smoke` profile (one epoch of a tiny CNN) every model is near chance and the comparisons are
# noise; the claims of the papers are tested by the `small` and `paper` profiles.

# %%
hp_curves, chance_rows = {}, {}  # {dataset: {method: HP@k}}, {dataset: {protocol: random}}
for (data_name, setup, label), curve in mean_curves.items():
    hp_curves.setdefault(data_name, {})[central.legend(setup, label)] = curve.tolist()
for (data_name, protocol), c in chance.items():
    recall = {k: v for k, v in c.items() if k.startswith("recall@")}
    chance_rows.setdefault(data_name, {})[protocol] = {
        k: c[k] for k in ("mahp", "mahp_std", "map", "map_std", "K")
    } | recall
report.save_metrics(
    {
        "rows": report.json_records(results),
        "hp_curves": hp_curves,
        "chance": chance_rows,
        "random_mistake_severity": {d: g.random_severity for d, g in closed.items()},
        "max_height": {d: g.hierarchy.max_height for d, g in closed.items()},
        "datasets": list(dict.fromkeys(d for d, _ in first)),
        "K_requested": K,
        "recall_ks": sorted({k for r in runs for k in retrieval.recall_ks_of(r, recall_ks)}),
        "seeds": sorted({r.seed for r in runs}),
        "grid": {
            "dataset": retrieval.panel(grid[0])[0],
            "runs": [r.name for r in grid],
            "methods": [label for label, _ in results_grid],
            "queries": queries.tolist(),
        },
        "rerank": rerank,
    },
    "06_metrics",
    cfg,
)
epochs = sorted({len(r.history) for r in runs})  # as trained, even if the profile changed since
backbones = sorted({r.record.recipe.backbone for r in runs})
report.findings(
    [
        f"What we found ({'/'.join(backbones)}, {'/'.join(map(str, epochs))} epoch(s), seeds "
        f"{sorted({r.seed for r in runs})})",
        *central.findings(results, per_seed, chance),
    ],
    "06_findings",
    cfg,
)
