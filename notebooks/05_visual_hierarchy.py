# ---
# jupyter:
#   kernelspec:
#     display_name: Python (hierstudy)
#     language: python
#     name: hierstudy
# ---

# %% [markdown]
# # 05 · Visual hierarchies: merging overlapping classes, hierarchy-aware ranking
#
# **What the paper claims** (Venkataramanan, Laviale & Pradalier, ICVS 2023): the latent
# space of an ordinary classifier already holds a useful hierarchy. Fit one Gaussian per class to
# the training features (PCA keeping 95 % of the variance), link every pair of classes whose
# Bhattacharyya coefficient BC = exp(−D_B) (eq. 1–2) reaches a threshold t, merge each connected
# group into a node of the next level, recompute the Gaussians of the merged groups and repeat
# until nothing merges (Sec. 3.1). Place every database and query image at the leaf of smallest
# Mahalanobis distance (eq. 4) and rank by D = D_C + α·D_H (eq. 6): the cosine distance plus the
# height of the two leaves' lowest common ancestor over the tree's height (eq. 5). With t = 0.30,
# α = 3 (CUB-200-2011) and t = 0.20, α = 5 (CIFAR-100) this beats cosine and Euclidean retrieval,
# D_H alone, Barz's semantic embeddings, the same ranking with Ward's hierarchy and with the
# semantic taxonomy (Fig. 2: mAP@k, k = 1..20), and keeps its lead on blurred, re-saturated and
# occluded images (Fig. 3). The visual hierarchy is said to be semantically meaningful, more than
# Ward's.
#
# **What you will see**, on the profile's dataset for this paper (`cfg.datasets["vh"]`: HierShapes
# under `smoke` and `small`, CUB-200-2011 with its official split under `paper`; CIFAR-100, the
# paper's second dataset, with `dataset = "cifar100"`) and a cross-entropy classifier (on
# HierShapes the baseline of notebook 03, reused; on a paper dataset trained with this paper's
# setup, `hierstudy.setups`: ImageNet-pretrained ResNet-50 at 224 px, batch 12, 100 epochs on CUB;
# ResNet-110 from scratch, batch 24, 400 epochs on CIFAR-100): the class overlaps (BC matrices),
# what the merging builds at the paper's t values and over a sweep of t, under the paper's
# per-class covariances and under the authors' code convention (one pooled covariance for every
# class); the visual hierarchy drawn next to the semantic taxonomy and Ward's tree, with their
# agreement measured; Fig. 2 (mAP@k curves of every ranking); the effect of t and α; and Fig. 3
# (the same rankings on corrupted images: under `paper` with networks retrained on them, as the
# paper did; on HierShapes with the clean-trained network, see the robustness section).
#
# **The semantic taxonomy** (baseline (vii), the colours of the tree figure and mAHP@K) is the
# dataset's own: HierShapes' generating taxonomy; on CUB the hierarchy of Barz & Denzler [1]
# that the paper used (Wikispecies orders, families, genera) when its file
# `cub_wikispecies.parent-child.txt` lies in the CUB folder, else the study's grouping of the
# species by the last word of their English name under one root (`hierstudy.datasets.cub`; the
# tree printed below says which); on CIFAR-100 Barz & Denzler's hand-made tree (their
# `cifar.parent-child.txt`, the paper's [1]) when it lies in the CIFAR folder, else the WordNet
# tree of notebook 01 (the line printed below the setup says which; docs/conventions.md).
#
# **Conventions** (docs/ambiguities.md; the library's docstrings cite the equations):
# * per-class covariances are Ledoit-Wolf shrunk (a class has fewer samples than PCA dimensions
#   at CUB's scale); "pooled" gives every class the covariance of all training samples, which
#   turns eq. 1 into 1/8 of a squared Mahalanobis distance between means;
# * the hierarchy and the leaf Gaussians come from **training** features only; test images are
#   placed at leaves by eq. 4, never by their labels;
# * D_C is the cosine distance of the raw penultimate features (as in the authors' code; the
#   Gaussians live in the PCA space); when nothing merges the tree has height 0 and D_H = 0 (the
#   paper's reading, `root="paper"`; the t-sweep shows the authors' root beside it);
# * every table follows the paper's text, with the covariance convention named in its rows. The
#   authors' code departs from it in several places (PCA, pooled covariance without ridge, a t
#   falling by 0.05 per level, a root always on top, ete3's heights, mAP@k divided by k, D_H
#   alone, the tree fitted on the test set); each is listed with its option in
#   [docs/conventions.md](../docs/conventions.md) (Visual hierarchy; `vh.AUTHORS` bundles them);
# * retrieval: every test image queries all other test images; relevant = same class; ties (D_H
#   alone is mostly ties) go to the lower gallery index, the metrics module's convention;
# * mAP@k: the paper says only "the average precision of the top k". We plot both normalisations
#   of the metrics module: the classical one, Σ_{i≤k} P@i·rel_i / min(k, R), and the authors'
#   code's, the same sum divided by k (it cannot reach 1 when a class has fewer than k relevant
#   images). When every query has at least k_max relevant images (R ≥ k) the two are equal;
#   the figure then has one panel, after checking that every curve is the same under both. A
#   curve equal to an earlier one (e.g. the visual ranking when nothing merged is exactly
#   cosine) is drawn dashed with crosses on top of it and named "… ≡ …" in the legend; one
#   within 1 % of the panel's y range of an earlier one (it would hide under it) likewise,
#   named "… ≈ …" (`report.legible.draw_curves`). mAHP@K
#   (Barz) judges rankings by the semantic taxonomy, which favours the semantic
#   hierarchy by construction.

# %% tags=["parameters"]
profile = None  # None: $HIERSTUDY_PROFILE, else "smoke" (hierstudy study sets it)
force = False
dataset = None  # None: the profile's dataset (HierShapes; CUB-200-2011 under `paper`)
seed = None  # the seed the figures and tables show; None: the profile's first seed
retrain_corrupted = None  # None: the profile's choice (HierShapes profiles: no; `paper`: yes)
variance = 0.95  # PCA: the fewest axes explaining 95 % of the training variance (Sec. 3)
covariance = "class"  # "class": the paper's per-class Σ_c; "pooled": the authors' code
threshold = None  # t; None: the paper's value, 0.20 on CIFAR-100, else CUB-200-2011's 0.30
alpha = None  # α of eq. 6; None: the paper's value, 5 on CIFAR-100, else CUB-200-2011's 3
thresholds = (0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)  # t sweep
alphas = (0.0, 0.1, 0.3, 1.0, 3.0, 5.0, 10.0)  # α sweep
k_max = 20  # Fig. 2: mAP@k for k from 1 to k_max
corruptions = ("blur", "saturation", "occlusion")  # Fig. 3

# %%
import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display
from matplotlib.lines import Line2D

from hierstudy import config, report, run_pool, setups
from hierstudy.datasets import catalog, cifar, study_splits
from hierstudy.evaluation import rerank, results, robustness, visual_claims
from hierstudy.hierarchy import Hierarchy, compare
from hierstudy.report import legible, plots

cfg = config.notebook(profile)
report.use_style()
dataset = dataset or cfg.datasets["vh"]
cfg = cfg.writing_for(dataset, cfg.datasets["vh"])  # another dataset: figures/<profile>/<dataset>/
retrain_corrupted = cfg.retrain_corrupted if retrain_corrupted is None else retrain_corrupted
paper = None if dataset == "hiershapes" else "vh"  # a paper dataset: this paper's setup for it
setup = setups.setup_for(cfg, "ce", dataset, paper)
seed = cfg.seeds[0] if seed is None else seed
seeds = sorted({*cfg.seeds, seed})  # every seed's results are stored; the figures show `seed`
semantic = study_splits.splits(cfg, dataset, setup, seed=seed)["train"].hierarchy
if dataset == "cifar100":
    print("CIFAR-100 semantic taxonomy:", cifar.taxonomy(cfg.data_dir / "cifar"))
label_of = {c: re.sub(r"^\d+\.", "", semantic.label(c)) for c in semantic.classes}  # "001.X" → "X"
classes, names = semantic.classes, [label_of[c] for c in semantic.classes]
t_paper, alpha_paper = rerank.paper_values(dataset)  # Sec. 4.2
threshold = t_paper if threshold is None else threshold
alpha = alpha_paper if alpha is None else alpha
SHOWN = catalog.title(dataset)
COVARIANCES = visual_claims.COVARIANCES  # the paper's per-class Σ_c, the authors' pooled Σ
other = COVARIANCES[1 - COVARIANCES.index(covariance)]  # the convention not chosen, shown beside
where = {"dataset": dataset, "seed": seed}  # stamped on every figure and table
print(
    f"{cfg.description} | {SHOWN} | {setup.backbone} {setup.epochs} epochs, batch "
    f"{setup.batch_size}, {setup.train} | {semantic} | t = {threshold:g}, α = {alpha:g} | "
    f"retrained on corruptions: {retrain_corrupted} | seeds {seeds}, figures: seed {seed}"
)

# %% [markdown]
# ## Every seed: features, PCA, the class Gaussians and the claims' measures
# The cross-entropy classifier of every seed of the profile is reloaded, or trained if missing
# (HierShapes: notebook 03's baseline; a paper dataset: this paper's setup, run `vh/ce`). For
# each, `visual_claims.evaluate` projects its penultimate training features on the principal axes
# explaining 95 % of their variance, fits one Gaussian per class there under both covariance
# conventions, merges them at t (`rerank.VisualReranker`), and measures what the paper claims:
# the rankings of Fig. 2, the agreement of the trees with the taxonomy and the rankings under the
# corruptions of Fig. 3 (each section below describes its part). `visual_claims.records` stores
# them beside each run (`visual_retrieval`, `visual_agreement`, `visual_robustness`), where
# notebook 09's ledger pairs them by seed. **Figures and tables: the seed `seed` (the profile's
# first by default); the stored results and the ledger: every seed** (their mean ± std: the
# section "Every seed"). The sweeps over t refit the shown seed's features at every t. Each test
# image goes to the leaf of smallest Mahalanobis distance (eq. 4); how often that leaf is its
# true class is shown next to the classifier's own accuracy.

# %%
trained = run_pool.train_seeds(cfg, "ce", seeds, force=force, dataset=dataset, paper=paper)
measured = {  # seed -> Fig. 2, the trees' agreement and Fig. 3 of its classifier
    s: visual_claims.evaluate(
        cfg,
        r,
        semantic,
        threshold=threshold,
        alpha=alpha,
        covariance=covariance,
        variance=variance,
        k_max=k_max,
        corruptions=corruptions,
        retrained=retrain_corrupted,
        force=force,
    )
    for s, r in trained.items()
}
for m in measured.values():  # notebook 09
    for name, record in visual_claims.records(m).items():
        results.save_run_result(m.run, name, record)
showcase = measured[seed]  # the figures' seed
run = showcase.run
train, test = run.features("train"), run.features("test")
y_test = test["labels"]
fits = {  # (covariance, t) -> PCA, class Gaussians and merging of the training features
    (c, t): showcase.fits[c]
    if t == threshold
    else rerank.VisualReranker(t, covariance=c, variance=variance).fit(
        train["features"], train["labels"], classes
    )
    for c in COVARIANCES
    for t in sorted({*thresholds, *rerank.PAPER_THRESHOLDS, threshold})
}
chosen, beside = fits[covariance, threshold], fits[other, threshold]
leaves = {c: fits[c, threshold].leaves(test["features"]) for c in COVARIANCES}  # eq. 4
leaf_accuracy = {f"Mahalanobis leaf ({c} Σ)": float((leaves[c] == y_test).mean()) for c in leaves}
leaf_accuracy["classifier (argmax of the logits)"] = float((test["pred"] == y_test).mean())
pca = chosen.pca
print(
    f"{train['features'].shape[1]} feature dimensions -> {pca.n_components} PCA axes "
    f"({pca.explained_variance_ratio.sum():.1%} of the variance)"
)
pd.Series(leaf_accuracy, name="test accuracy of the leaf placement").to_frame()

# %% [markdown]
# The Bhattacharyya coefficients of all class pairs at the first level, rows and columns in the
# taxonomy's order (blocks along the diagonal would mean that semantically close classes
# overlap), on a log scale (most pairs barely overlap; below 10⁻¹² shown as 10⁻¹²). Cyan
# outlines mark the pairs that reach each merge threshold t marked on the colour bar (the
# paper's 0.20 dashed, 0.30 solid): the pairs that merge at the first level. Under the pooled convention every pair shares one covariance, so only the distance
# between the means counts (the notes predict far more merging than with per-class covariances).

# %%
order = semantic.leaf_order()
bc = {c: fits[c, threshold].visual.coefficients[0] for c in COVARIANCES}  # level 0: classes
marked = sorted({*rerank.PAPER_THRESHOLDS, threshold})  # the paper's t values and the chosen one
outlines = f"dashed: BC ≥ {marked[0]:g}" + "".join(f", solid: ≥ {t:g}" for t in marked[1:])
fig, axes = plt.subplots(1, 2, figsize=(13, 6.4), layout="constrained")
for ax, (c, matrix) in zip(axes, bc.items(), strict=True):
    title = f"BC, {c} covariance (eq. 1–2)\noutlined ({outlines})"
    image = legible.log_overlap(
        matrix, ax, thresholds=marked, order=order, labels=names, floor=1e-12, title=title
    )
legible.threshold_colorbar(fig, image, axes, marked, shrink=0.7)
report.save_figure(fig, "05_bhattacharyya", cfg, **where)
plt.show()
upper, paper_t = np.triu_indices(len(classes), 1), rerank.PAPER_THRESHOLDS  # t -> its dataset
shares = {t: {c: (m[upper] >= t).mean() for c, m in bc.items()} for t in paper_t}
pd.DataFrame({f"share of pairs with BC ≥ {t:.2f} ({paper_t[t]})": v for t, v in shares.items()})

# %% [markdown]
# ## What the merging builds: the paper's t values and a sweep
# For each t and covariance convention: the number of nodes at each level (the first entry is the
# number of classes; a last level of 1 means everything merged), whether a root had to be added
# above several unmerged nodes, the tree's height, and its agreement with the semantic taxonomy
# (defined in the next section; `rerank.merging`). The paper's t were found by a search on CUB
# and CIFAR-100; whether they mean anything on another dataset and backbone is what this table
# tests.

# %%
structure = pd.DataFrame([rerank.merging(r, semantic) for r in fits.values()])
report.save_table(structure, "05_merging", cfg, **where)
structure

# %% [markdown]
# ## The visual hierarchy next to the taxonomy and Ward's tree
# Left: the semantic taxonomy; middle: the visual hierarchy at the chosen t and covariance;
# right: Ward clustering of the class means (the paper's baseline (vi), after Park et al.), a
# binary tree. Colours are the semantic families (the taxonomy's nodes at the shallowest depth
# that splits the classes; colours repeat beyond 20 families): a visual group of one colour is a
# group the taxonomy also makes. The taxonomy is the one printed under the setup (on CIFAR-100
# Barz & Denzler's tree or the WordNet tree, docs/conventions.md); every hierarchy here is a
# tree, so the LCS (least height, the study's default) is the one the Barz authors' rule gives.

# %%
visual, visual_other, ward = chosen.visual, beside.visual, chosen.ward()
family = compare.families(semantic)
cmap = plt.cm.Dark2 if len(set(family.values())) <= 8 else plt.cm.tab20
palette = {f: cmap(i % cmap.N) for i, f in enumerate(sorted(set(family.values())))}
trees = {
    "semantic taxonomy": semantic,
    f"visual hierarchy (t = {threshold:g}, {covariance} Σ)": visual.hierarchy,
    "Ward clustering of the class means": ward,
}
height = max(6.5, 0.09 * len(classes))  # room for every class label
colors = {c: palette[f] for c, f in family.items()}
fig, axes = plt.subplots(1, 3, figsize=(17, height), gridspec_kw={"wspace": 0.55})
for ax, (title, h) in zip(axes, trees.items(), strict=True):
    drawn = Hierarchy(h.edges(), classes, names={**{n: h.label(n) for n in h.nodes}, **label_of})
    plots.draw_tree(drawn, ax, label_depth=2 if h is semantic else -1, fontsize=6, colors=colors)
    ax.set(title=f"{title}\n(height {h.max_height})", xlim=(-0.05 * h.max_height, h.max_height))
handles = [
    Line2D([], [], marker="o", ls="", color=col, label=label_of.get(f, semantic.label(f)))
    for f, col in palette.items()
]
if len(handles) <= 20:
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 7), frameon=False)
report.save_figure(fig, "05_trees", cfg, **where)
plt.show()

# %% [markdown]
# **Agreement.** Triplet agreement: the fraction of class triplets whose closest pair (lowest
# common ancestor strictly lowest) is the same in both trees, over the triplets resolved in both
# (a flat tree resolves none: NaN) or in either (an answer against no answer counts as a
# disagreement). Cophenetic correlation: Pearson correlation of the LCA heights over class pairs
# (NaN for a flat tree); `compare.agreement`. The last row is a sanity check: a tree agrees
# perfectly with itself.

# %%
agreements = showcase.agreement  # visual, visual (other Σ), Ward vs semantic; visual vs Ward; check
report.save_table(agreements, "05_agreement", cfg, **where)
agreements

# %% [markdown]
# ## Retrieval (Fig. 2)
# The rankings compared, all on the test split: Euclidean and cosine distance of the features
# (baselines (i) and (ii)); D_H of the visual hierarchy alone (iii); D_C + α·D_H with the visual
# hierarchy (the method; also under the other covariance convention), with Ward's tree (vi) and
# with the semantic taxonomy (vii; the tree named above). Barz's semantic embeddings (iv–v) are
# models of their own:
# notebook 06 compares them. Each ranking is a distance of two feature matrices
# (`rerank.VisualReranker.distance`: both sides placed at their leaves by eq. 4, from their own
# features), scored by `rerank.RetrievalScores` (`evaluation.metrics.retrieval_metrics`);
# `visual_claims.evaluate` ranked every seed's test images these ways.

# %%
scores = showcase.scores  # k up to k_max, K at most N - 1
K, map_ks, k_top = scores.K, scores.map_ks, scores.map_ks[-1]
top = f"mAP@{k_top}"  # the column of the curves' last k
features = test["features"].astype(np.float64)  # float64: α = 0 reproduces cosine's order exactly
retrieval = showcase.retrieval
curves = list(visual_claims.CURVES)
report.save_table(retrieval.drop(columns=curves), "05_retrieval", cfg, **where)
retrieval.drop(columns=curves)

# %%
palette_v = ("0.65", "0.15", "tab:olive", "tab:red", "tab:blue", "tab:green", "tab:orange")
COLOUR = dict(zip(retrieval.variant, palette_v, strict=True))
fewest = int(np.unique(y_test, return_counts=True)[1].min()) - 1  # min R: relevant per query
kinds = {
    "map_at_k": "classical: Σ P@i·rel_i / min(k, R)",
    "map_at_k_divk": "authors' code: Σ P@i·rel_i / k",
}
same_norm = bool(legible.coincident({k: np.stack(retrieval[k]) for k in kinds}))
if same_norm:  # every curve equal under both: one panel says it all
    kinds = {"map_at_k": f"/min(k, R) and /k (equal here: min R = {fewest}, k ≤ {k_top})"}
alone = "D_H only (visual)"  # flat and far below: its own panel, not squeezing the others
shown = retrieval.set_index("variant")
fig, axes = plt.subplots(
    len(kinds),
    3,
    figsize=(15, 4.2 * len(kinds)),
    squeeze=False,
    layout="constrained",
    gridspec_kw={"width_ratios": [3, 3, 1.3]},
)
for row, (key, kind) in zip(axes, kinds.items(), strict=True):
    ranked = shown[key].drop(alone).to_dict()
    legible.draw_curves(row[0], map_ks, ranked, COLOUR)
    gain = {v: np.subtract(y, ranked["cosine"]) for v, y in ranked.items() if v != "cosine"}
    legible.draw_curves(row[1], map_ks, gain, COLOUR)
    row[1].axhline(0, color=COLOUR["cosine"], lw=1.2, label="cosine")
    legible.draw_curves(row[2], map_ks, {alone: shown.loc[alone, key]}, COLOUR)
    row[2].plot(map_ks, ranked["cosine"], color=COLOUR["cosine"], lw=0.8, ls=":")
    row[0].set(ylabel="mAP@k", title=f"mAP@k, {kind}")
    row[1].set(ylabel="mAP@k minus cosine's", title="the same, minus the cosine ranking")
    row[2].set(ylabel="mAP@k", title="D_H only (dotted: cosine)", ylim=(0, 1))
    for ax in row:
        ax.set(xlabel="k", xticks=map_ks[:: max(1, k_top // (10 if ax is not row[2] else 4))])
fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside right center", fontsize=7)
fig.suptitle(
    f"Retrieval on {SHOWN} test images (t = {threshold:g}, α = {alpha:g}, {covariance} Σ); "
    "dashed with crosses: a curve equal (≡) or within 1 % of the panel's range (≈) of an "
    "earlier one"
)
report.save_figure(fig, "05_map_at_k", cfg, **where)
plt.show()

# %% [markdown]
# ## The effect of t and α
# Left: each t of the sweep, both conventions, ranked by D_C + α·D_H with the chosen α (a t
# that merges nothing gives exactly the cosine ranking). Right: each α with the visual hierarchy
# at the chosen t, Ward's tree and the taxonomy; α = 0 is the cosine ranking through eq. 6's code
# path, a large α sorts by D_H first. These sweeps read test metrics: choosing t or α from them
# would be tuning on the test set, so the headline above keeps the paper's values.

# %%
t_sweep = pd.DataFrame(
    [
        {"covariance": c, "t": t, "merge levels": len(r.visual.levels) - 1}
        | scores(features, r.distance(alpha))
        for (c, t), r in fits.items()
    ]
)
a_sweep = pd.DataFrame(
    [row for a in alphas for row in scores.rows(features, rerank.rankings(chosen, a, semantic))]
)
report.save_table(t_sweep.drop(columns=curves), "05_t_sweep", cfg, **where)
report.save_table(a_sweep.drop(columns=curves), "05_alpha_sweep", cfg, **where)
cosine_map = retrieval.set_index("variant").loc["cosine", top]

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), layout="constrained")
for c, group in t_sweep.groupby("covariance"):
    colour = "tab:red" if c == covariance else "tab:orange"
    axes[0].plot(group.t, group[top], marker="o", label=f"visual, {c} Σ", color=colour)
    flat = group[group["merge levels"] == 0]  # ranks exactly like cosine: hollow, on top
    axes[0].plot(flat.t, flat[top], "o", mfc="white", color=colour, zorder=5)
axes[0].plot([], [], "o", mfc="white", color="0.3", label="nothing merged (≡ cosine)")
axes[0].set(xlabel="threshold t", title=f"{top} against t (α = {alpha:g})")
by_alpha = a_sweep.pivot(index="alpha", columns="variant", values=top)  # one curve per ranking
legible.draw_curves(axes[1], by_alpha.index, by_alpha.to_dict("series"), COLOUR)  # own markers
axes[1].set(xlabel="α (symmetric log scale)", title=f"{top} against α (t = {threshold:g})")
axes[1].set_xscale("symlog", linthresh=min([a for a in alphas if a > 0], default=1.0))
for ax in axes:
    ax.axhline(cosine_map, color="0.4", ls="--", lw=1, label="cosine only")
    ax.set_ylabel(f"{top} (classical)")
    ax.legend(fontsize=7)
report.save_figure(fig, "05_t_alpha", cfg, **where)
plt.show()
a_sweep.drop(columns=curves).round(4)

# %% [markdown]
# ### The t-sweep under both no-merge rules ([docs/conventions.md](../docs/conventions.md))
# When no pair reaches t the paper's tree is the bare leaves, of height 0, and eq. 5 is 0/0. The
# study reads that as D_H = 0 (`root="paper"`, the sweep above): such a t ranks exactly like
# cosine, and the curve jumps where the first pair merges. The authors' code always puts a root
# above the last level (`root="authors"`; a one-child root when everything merged): with no merge
# D_H is 0 for the same predicted leaf and 1 otherwise, a leaf-first ranking. (Their code also
# measures heights with ete3, one less on inner nodes, which makes that flat tree 0/0 again: it
# raises ZeroDivisionError there; `heights="ete3"`.) Same α, both rules, every t of the sweep:

# %%
authors_root = {  # the same merging, the authors' root on top
    (c, t): rerank.VisualReranker(t, covariance=c, variance=variance, root="authors").fit(
        train["features"], train["labels"], classes
    )
    for c, t in fits
}
t_roots = pd.DataFrame(
    [
        {"covariance": c, "t": t, "root": root, "merge levels": len(r.visual.levels) - 1}
        | scores(features, r.distance(alpha))
        for (c, t), paper_fit in fits.items()
        for root, r in (("paper", paper_fit), ("authors", authors_root[c, t]))
    ]
)
report.save_table(t_roots.drop(columns=curves), "05_t_sweep_roots", cfg, **where)
fig, ax = plt.subplots(figsize=(5.5, 3.4), layout="constrained")
for (c, root), group in t_roots.groupby(["covariance", "root"]):
    ax.plot(
        group.t, group[top], marker="o" if root == "paper" else "x", label=f"{c} Σ, root={root}"
    )
ax.axhline(cosine_map, color="0.4", ls="--", lw=1, label="cosine only")
ax.set(xlabel="threshold t", ylabel=f"{top} (classical)", title=f"{top} against t (α = {alpha:g})")
ax.legend(fontsize=7)
report.save_figure(fig, "05_t_sweep_roots", cfg, **where)
plt.show()
t_roots.pivot_table(index=["covariance", "t", "merge levels"], columns="root", values=top).round(4)

# %% [markdown]
# ## Robustness (Fig. 3)
# The paper's corruptions (Sec. 3.3 and 4.2, `hierstudy.datasets.corruptions`): Gaussian blur
# (11 × 11 kernel, σ = 1 as in the authors' code), a saturation factor drawn per image from
# {0.1, 0.5, 1, 2, 5}, and one black square per image, 70 × 70 at the paper's 224 px scaled to
# the image's size. Two protocols (`hierstudy.evaluation.robustness`), chosen by the profile's
# `retrain_corrupted` (or the parameter of that name):
# * **retrained** (`paper`, `paper_check`), the paper's: Sec. 4.2 applies each corruption "to all
#   the images" and "the networks were retrained on the modified images, with the same training
#   parameters". One network per corruption is trained with the same setup and seed on corrupted
#   training images (each image corrupted once, with its own seed, before augmentation), and its
#   test features are those of the corrupted test images. Whether the hierarchy is rebuilt the
#   paper does not say; we rebuild it, because the method (Sec. 3.1) builds the hierarchy from the
#   latent space of the network it ranks with, and the clean network's PCA, Gaussians and trees
#   live in another network's feature space: PCA, class Gaussians, the visual hierarchy (same t)
#   and Ward's tree come from the retrained network's training features (of corrupted images);
#   the semantic taxonomy, t and α are unchanged.
# * **corrupted test images** (`smoke`, `small`): the network trained on clean images, features
#   re-extracted from corrupted test images, leaves placed with the clean training Gaussians,
#   hierarchies unchanged. Cheaper, but it measures a network that never saw such images, not the
#   paper's setting.
#
# The paper ran the analysis on CUB-200-2011 only; this notebook runs it on the dataset it is given.

# %%
tests = {
    "clean": robustness.test_images(cfg, run),
    **{c: robustness.test_images(cfg, run, c, retrained=retrain_corrupted) for c in corruptions},
}
examples = [np.flatnonzero(y_test == c)[0] for c in order[:: max(1, len(order) // 4)][:4]]
fig, axes = plt.subplots(
    len(examples), len(tests), figsize=(1.6 * len(tests), 1.6 * len(examples)), squeeze=False
)
for row, i in enumerate(examples):
    for col, (name, data) in enumerate(tests.items()):
        axes[row, col].imshow(robustness.picture(data, i))
        axes[row, col].set_axis_off()
        axes[0, col].set_title(name)
report.save_figure(fig, "05_corruptions", cfg, **where)
plt.show()

# %% [markdown]
# Under "corrupted test images" the clean test images are first re-extracted with the network
# rebuilt from its checkpoint: it must reproduce the stored features (`feature_drift`), else the
# corrupted rows would compare two different networks. Under "retrained" the table below the
# figure describes each network: its test accuracy, its PCA and the hierarchy rebuilt from it.

# %%
robust = showcase.robust  # `robustness.robustness`, run by `visual_claims.evaluate`
if robust.drift is not None:
    print(f"the rebuilt network reproduces the stored clean test features to {robust.drift:.1e}")
report.save_table(robust.table.drop(columns=curves), "05_robustness", cfg, **where)

# %%
panels = ["none", *corruptions]
size = (3.2 * len(panels), 3.6)
fig, axes = plt.subplots(
    1, len(panels), figsize=size, sharey=True, squeeze=False, layout="constrained"
)
for ax, name in zip(axes[0], panels, strict=True):
    panel = robust.table[robust.table.corruption == name].set_index("variant").map_at_k
    same = legible.draw_curves(ax, map_ks, panel.to_dict(), COLOUR)
    for i, (label, (earlier, gap)) in enumerate(same.items()):  # in the panel, not only the key
        a, b = (re.sub(r".*\((.*)\)$", r"\1", v) for v in (label, earlier))  # "… (Ward)" → "Ward"
        note = f"{a} ≡ {b}" if gap == 0 else f"{a} ≈ {b} (|Δ| ≤ {gap:.0e})"
        note += " (nothing merged)" if gap == 0 and earlier == "cosine" else ""
        ax.text(0.03, 0.03 + 0.07 * i, note, transform=ax.transAxes, fontsize=7)
    ax.set(
        xlabel="k", title="clean" if name == "none" else name, xticks=map_ks[:: max(1, k_top // 5)]
    )
axes[0, 0].set_ylabel("mAP@k (classical)")
handles = {t: h for ax in axes[0] for h, t in zip(*ax.get_legend_handles_labels(), strict=True)}
fig.legend(handles.values(), handles.keys(), loc="outside right center", fontsize=7)
fig.suptitle(
    f"Robustness (Fig. 3), protocol: {robust.protocol}; dashed with crosses: equal (≡) or within "
    "1 % of the panel's range (≈) of an earlier curve"
)
report.save_figure(fig, "05_robustness", cfg, **where)
plt.show()
if retrain_corrupted:
    report.save_table(robust.networks, "05_retrained", cfg, **where)
    display(robust.networks.round(4))
robust.table.drop(columns=curves).round(4)

# %% [markdown]
# ## Every seed
# The key numbers of the claims over the seeds of the profile, as stored beside each run (the
# figures above show seed `seed` only): mAP@k at the largest k of each clean ranking and of the
# visual ranking and cosine under each corruption, and the triplet agreement of the visual
# hierarchy and of Ward's tree with the taxonomy (resolved in either, the ledger's). Mean ± std
# over the n seeds (no ± with one seed); notebook 09's ledger pairs treatment and control by seed
# and judges each claim.

# %%
per_seed = pd.DataFrame(
    [{"seed": s} | row for s, m in measured.items() for row in visual_claims.key_numbers(m)]
)
grouped = per_seed.groupby("measure", sort=False).value
over_seeds = pd.DataFrame({"n": grouped.count(), "mean": grouped.mean(), "std": grouped.std()})
over_seeds["mean ± std"] = [
    report.mean_std(a, b) for a, b in zip(over_seeds["mean"], over_seeds["std"], strict=True)
]
over_seeds = over_seeds.reset_index()
report.save_table(over_seeds.drop(columns="mean ± std"), "05_seeds", cfg, dataset=dataset)
over_seeds[["measure", "n", "mean ± std"]]

# %% [markdown]
# ## Saved
# `05_metrics.json` holds every row above for seed `seed` (clean variants, sweeps, corruptions,
# with the full mAP@k curves), the dataset and the robustness protocol that ran (with, when
# retrained, the table of networks), the seeds evaluated and their mean ± std table (each seed's
# own rows are stored beside its run); `05_hierarchies.json` holds what a ranking needs to be
# recomputed: the visual hierarchies of the clean network at the chosen t (both conventions) and
# Ward's tree as parent–child pairs, the test images' leaves (both conventions) and the chosen t,
# α and covariance. (Notebook 06 rebuilds the re-ranking itself, with `rerank.VisualReranker`.)

# %%
tables = {"retrieval": retrieval, "t_sweep": t_sweep, "alpha_sweep": a_sweep}
tables |= {"robustness": robust.table, "merging": structure, "agreement": agreements}
tables["robustness_models"] = robust.networks
record = {k: v.to_dict("records") for k, v in tables.items()}
record |= {"leaf_accuracy": leaf_accuracy, "pca_components": pca.n_components}
record |= {"threshold": threshold, "alpha": alpha, "covariance": covariance}
record |= {"map_ks": list(map_ks), "K": K, "feature_drift": robust.drift, "n_test": len(y_test)}
record |= {"dataset": dataset, "robustness_protocol": robust.protocol, "seeds": seeds}
record["over_seeds"] = over_seeds.to_dict("records")
report.save_metrics(record | {"semantic_hierarchy": repr(semantic)}, "05_metrics", cfg, **where)
edges = {c: fits[c, threshold].visual.hierarchy.edges() for c in COVARIANCES}
saved = {"visual": edges, "ward": ward.edges(), "classes": list(classes)}
saved |= {"threshold": threshold, "alpha": alpha, "covariance": covariance}
saved["test_leaves"] = {c: leaves[c].tolist() for c in COVARIANCES}
report.save_metrics(saved, "05_hierarchies", cfg, **where)

# %% [markdown]
# ## Where this study departs from the paper
# * Data and model. `smoke` and `small`: HierShapes (35 classes, a 3-level taxonomy) and the
#   profile's small backbone, not CUB-200-2011 / CIFAR-100 with ResNet-50 / ResNet-110. `paper`:
#   the paper's datasets and networks, with the choices the paper leaves open
#   (`hierstudy.setups.CHOICES`: ImageNet-pretrained weights, learning rate, schedule); as in the
#   paper, the classifier trains on 80 % of the official training images and is validated on the
#   other 20 % (per class, drawn with the run's seed: the paper gives no list), and the visual
#   hierarchy is built from those 80 %. `paper_check` is a dry run
#   of `paper` (one epoch of batch-4 steps, one seed): its numbers mean nothing.
# * CUB's semantic taxonomy is Barz & Denzler's only when its file is in the CUB folder (nothing
#   is downloaded); otherwise the study's name-based grouping.
# * t and α are the paper's values, not tuned here (the sweeps show how much they matter).
# * Per-class covariances are Ledoit-Wolf shrunk; the authors' code pools them (both shown).
# * Robustness: `paper` retrains as the paper did and rebuilds the hierarchy from each retrained
#   network (our reading of Sec. 4.2); on HierShapes the clean network meets corrupted test images.
# * Barz's semantic embeddings (baselines iv–v) are evaluated in notebook 06.

# %%
score = retrieval.set_index("variant")[top]
agree = agreements.set_index("pair")["triplet agreement (resolved in both)"]
hit = robust.table.pivot(index="corruption", columns="variant", values=top).drop(index="none")
wins = int((hit["cosine + α·D_H (visual)"] > hit["cosine"]).sum()) if len(hit) else 0
report.findings(
    f"What we found on {SHOWN} ({setup.backbone}, {len(run.history)} epoch(s), "
    f"{pca.n_components} PCA axes): at t = {threshold:g} the merging made "
    f"{' → '.join(map(str, visual.levels))} nodes per level with {covariance} covariances, "
    f"{' → '.join(map(str, visual_other.levels))} with {other} ones. Triplet agreement with the "
    f"taxonomy (NaN: a flat tree resolves no triplet): visual {agree['visual vs semantic']:.2f}, "
    f"Ward {agree['Ward vs semantic']:.2f}. {top}: "
    + ", ".join(f"{name} {value:.3f}" for name, value in score.items())
    + f"; the highest was '{score.idxmax()}' (paper: the visual hierarchy). The visual "
    f"ranking scored above cosine on {wins} of {len(hit)} corruption(s) ({robust.protocol}; "
    f"the paper, retrained: on all three). Those numbers are seed {seed}'s; over the "
    f"{len(seeds)} seed(s) the visual ranking's {top} was "
    f"{over_seeds.set_index('measure').loc[f'{top}, cosine + α·D_H (visual)', 'mean ± std']}, "
    f"cosine's {over_seeds.set_index('measure').loc[f'{top}, cosine', 'mean ± std']}; notebook "
    "09's ledger pairs them by seed and gives the verdicts"
    + (" (inconclusive from one seed)." if len(seeds) < 2 else "."),
    "05_findings",
    cfg,
)
