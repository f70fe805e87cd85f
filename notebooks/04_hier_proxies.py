# ---
# jupyter:
#   kernelspec:
#     display_name: Python (hierstudy)
#     language: python
#     name: hierstudy
# ---

# %% [markdown]
# # 04 · HIER: hierarchical proxies in hyperbolic space
#
# **What the paper claims** (Kim et al. (HIER, CVPR 2023); the loss as the study implements it is
# written out in docs/hier.md): metric learning supervised only by class labels misses the
# latent semantic hierarchy of the data. HIER learns *hierarchical proxies* in the Poincaré ball
# that act as lowest common ancestors of related samples: for a mined triplet (i, j, k) with i, j
# related, i and j are pulled to their LCA proxy and k to the LCA of all three, with a margin.
# Added to Proxy-Anchor or Multi-Similarity (λ = 0.5), it improves zero-shot Recall@K on CUB,
# Cars, SOP and In-shop (Table 1), beats the same regulariser on the sphere (HIERsph, Table 2), and
# its proxies arrange themselves like a hierarchy (Fig. 3–6).
#
# **What you will see**: the zero-shot protocol on HierShapes (train on the first half of the
# classes, retrieve among the unseen other half), Proxy-Anchor alone vs PA + HIER vs PA + HIERsph
# over seeds; the Poincaré disk (true radii, angles from UMAP) with samples, proxies and
# ancestor links, at the end of training (Fig. 3) and over the epochs (Fig. 4); whether the
# proxies *discover* HierShapes' true taxonomy, which HIER never sees; class affinity matrices
# (a re-creation of Fig. 5: the authors published no code for it); the proxies nearest the
# boundary with their nearest images (Fig. 6); and Recall@1 against the embedding dimension
# (Fig. 7).
#
# **Datasets.** `dataset = None` takes the profile's: HierShapes under `smoke` and `small`,
# CUB-200-2011 under `paper` (classes 1-100 train, 101-200 test). `"cars196"`, `"sop"` and
# `"inshop"` run the same cells with their own class splits, the paper's setup (ImageNet-pretrained
# ResNet-50, 512-d, AdamW 1e-4, 2 images × 90 classes per batch; `hierstudy.setups`) and the
# paper's Recall@K set for the dataset. Their taxonomies are the loaders' defaults (CUB: Barz &
# Denzler's when its file is in the folder, else the last word of the species name; Cars: the
# make; SOP and In-shop: their super-classes), which the
# hierarchy-aware metrics and the discovered-tree comparison use; HIER itself never sees them.
#
# **The number of proxies.** The paper uses P = 512 hierarchical proxies on every dataset (CUB and
# Cars have about 100 training classes, SOP and In-shop thousands). HierShapes trains on 17
# classes, and the proxy term of the loss costs O(P²) per step (every proxy anchors 50 triplets,
# each scoring all P proxies as candidate ancestors): at P = 512 it was most of a HIER run's
# time. The study therefore sets P by a stated rule (`methods.hier_proxies`), about 5 proxies
# per training class (512 for CUB's 100), rounded up to a power of two and at most 512: the
# paper's 512 on all four of its datasets, 128 on HierShapes. A tree over 17 leaves has at most 16
# inner nodes, so 128 candidate ancestors leave ample room; `proxies = 512` restores the paper's
# number.

# %% tags=["parameters"]
profile = None  # None: $HIERSTUDY_PROFILE, else "smoke" (hierstudy study sets it)
force = False
dataset = None  # None: the profile's (cfg.datasets["hier"]); or "cub", "cars196", "sop", "inshop"
dim = None  # embedding dimension; None: the setup value (512 in the paper), 128 on HierShapes
recall_ks = None  # None: the paper's K for the dataset (1, 2, 4, 8 for CUB, Cars and HierShapes)
dims = (16, 32, 64, 128)  # Fig. 7 (with `dim` added)
proxies = None  # HIER proxies P; None: the rule above (methods.hier_proxies)
max_points = 4000  # training samples (a seeded draw when more) in the disk and the affinities
snapshot_panels = 4  # Fig. 4: epochs shown, evenly spaced from the untrained model to the last

# %%
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from hierstudy import config, methods, report, run_pool, setups
from hierstudy.datasets import catalog, study_splits
from hierstudy.evaluation import affinity, retrieval
from hierstudy.hierarchy import compare
from hierstudy.proxy_tree import hier_proxy_tree
from hierstudy.report import plots

cfg = config.notebook(profile)
report.use_style()
dataset = dataset or cfg.datasets["hier"]
# another dataset than the profile's writes to figures/<profile>/<dataset>/
cfg = cfg.writing_for(dataset, cfg.datasets["hier"])
recall_ks = tuple(recall_ks or catalog.recall_ks(dataset))  # Table 1's columns
# the zero-shot data: the seen classes' taxonomy, the training images, the test labels' hierarchy
setup = setups.setup_for(cfg, "hier", dataset)
dim = dim or setup.knobs.get("hier", {}).get("dim", 128)
dims = sorted({*dims, dim})
data = study_splits.study_data(cfg, dataset, setup, True)
graded = retrieval.grading(cfg, dataset, zero_shot=True)  # the unseen classes' taxonomy
truth = data.hierarchy
seen = list(truth.classes)
n_seen = len(seen)
n_proxies = proxies or methods.hier_proxies(n_seen)
hier_knobs = {"proxies": proxies} if proxies else {}
print(f"{dataset}: {n_seen} training classes, {n_proxies} HIER proxies")

# %% [markdown]
# ## Zero-shot retrieval: PA vs PA + HIER vs PA + HIERsph
# Every model is trained on the first half of the classes in 2-per-class batches and evaluated on
# the test images of the other half, each querying all others; Recall@K (a hit when any of the K
# nearest shares the query's class) with the model's own distance: cosine for Proxy-Anchor and
# HIERsph, the Poincaré distance (c = 0.1, `geometry.C`) for HIER (`Run.distance`); the metrics are
# `retrieval.ranking_metrics`. mAHP@K uses the true taxonomy HIER never saw.


# %%
def evaluate(run):  # Table 1's columns, ranked with the run's own distance
    features, labels = run.retrieval_features("test")
    m = retrieval.ranking_metrics(features, labels, run.distance(), graded, recall_ks=recall_ks)
    recall = {f"R@{r}": m[f"recall@{r}"] for r in recall_ks}
    return {**recall, f"mAHP@{m['K']}": m["mahp"], "mAP": m["map"]}


variants = {
    "Proxy-Anchor": ("dml_zero_shot", {"dim": dim}),
    "PA + HIER": ("hier", {**hier_knobs, "dim": dim}),
    "PA + HIERsph": ("hier", {**hier_knobs, "dim": dim, "sphere": True}),
}
trained = run_pool.train_grid(cfg, variants, cfg.seeds, force=force, dataset=dataset)
scores = pd.DataFrame(
    [{"method": label, "seed": r.seed, **evaluate(r)} for label, rs in trained.items() for r in rs]
)
table = scores.drop(columns="seed").groupby("method", sort=False).agg(["mean", "std"]).round(4)
table.columns = [f"{a} ({b})" for a, b in table.columns]
table = table.reset_index()
report.save_table(table, "04_zero_shot_recall", cfg)
table

# %% [markdown]
# ## The Poincaré disk (Fig. 3)
# The seen classes' training samples and the proxies that are some sample's *ancestor* (pink
# stars): the nearest proxy of smaller norm, the rule of the paper's figure; thin grey lines join
# every tenth sample to its ancestor. The paper draws a UMAP with a hyperbolic output space, but
# UMAP does not keep norms: it threw every ancestor proxy onto the rim, the opposite of where they
# are. Here the **radius is exact**: a point z of the ball of curvature −c (c = 0.1, radius
# 1/√c ≈ 3.16) sits at ‖z‖·√c in the unit disk, so its hyperbolic distance to the origin,
# 2/√c·artanh(‖z‖√c), is the true one (`plots.disk_coordinates`). Only the **angle** is a
# projection: UMAP of the points' directions z/‖z‖ (cosine distance) into the plane, each point's
# angle about the layout's centre (`plots.direction_angles`); nearby angles mean similar
# directions, distances along the circle mean nothing more. The dotted circles mark radii 0.25,
# 0.5 and 0.75. Every sample sits at the same radius: HIER's embedding clips the tangent vector
# at r = 2.3 (`geometry.CLIP_R`), and the ball's point is then at ‖z‖√c = tanh(√c·2.3) ≈ 0.62.

# %%
hier_run = trained["PA + HIER"][0]
distance = hier_run.distance()  # the Poincaré distance in the run's ball (geometry.C)
with torch.no_grad():
    proxy_points = hier_run.loss("hier").proxy_points().double()
train_feats = hier_run.features("train")
n_train = len(train_feats["labels"])
pick = np.sort(np.random.default_rng(0).permutation(n_train)[:max_points])  # all when fewer
z = torch.from_numpy(train_feats["embedding"][pick]).double()
y = train_feats["labels"][pick]
family = np.array([truth.ancestors(c)[-2] for c in truth.classes])  # the true top-level branch
names = [f"{truth.label(f)}: {truth.label(c)}" for f, c in zip(family, truth.classes, strict=True)]
fig, ax = plt.subplots(figsize=(8.5, 6))
used = plots.poincare_disk(ax, z, y, proxy_points, names=names)
ax.set_title(f"HIER embedding, {dataset}: radius ‖z‖√c (true), angle from UMAP of directions")
report.save_figure(fig, "04_poincare_disk", cfg, seed=hier_run.seed)
plt.show()

# %% [markdown]
# ## Over training (Fig. 4)
# The same view after selected epochs, from the untrained network (epoch 0) to the last: a HIER
# run saves, after every epoch, the embedding of a fixed draw of 512 training images and its
# proxies (`Run.snapshots`). Radii are true (‖z‖·√c) and comparable across panels; each panel's
# angles are its own UMAP of directions, so only the angular arrangement within a panel is
# comparable: how the classes separate and how far in the ancestor proxies settle. The
# table counts the ancestor proxies, their mean norm, and the leave-one-out 1-NN accuracy of the
# drawn images under the Poincaré distance (how well the classes separate, epoch by epoch).

# %%
shots = hier_run.snapshots()
epochs = sorted(shots)
shown = sorted(
    {
        epochs[round(i * (len(epochs) - 1) / max(snapshot_panels - 1, 1))]
        for i in range(snapshot_panels)
    }
)
fig, axes = plt.subplots(1, len(shown), figsize=(3.2 * len(shown) + 2.5, 3.6), squeeze=False)
over_epochs = []
for ax, epoch in zip(axes[0], shown, strict=True):
    shot = shots[epoch]
    ancestors = plots.poincare_disk(
        ax,
        shot["embedding"],
        shot["labels"],
        shot["proxies"],
        names=names,
        legend=ax is axes[0, -1],
    )
    ax.set_title(f"epoch {epoch}")
    e = torch.from_numpy(shot["embedding"]).double()
    d = distance(e, e).fill_diagonal_(float("inf"))
    nn_acc = float((shot["labels"][d.argmin(1).numpy()] == shot["labels"]).mean())
    rho = np.linalg.norm(shot["proxies"][ancestors], axis=1).mean()
    over_epochs.append(
        {
            "epoch": epoch,
            "ancestor proxies": len(ancestors),
            "mean ‖ancestor‖": rho,
            "1-NN accuracy": nn_acc,
        }
    )
report.save_figure(fig, "04_disk_over_epochs", cfg, seed=hier_run.seed)
plt.show()
over_epochs = pd.DataFrame(over_epochs)
report.save_table(over_epochs, "04_disk_over_epochs", cfg, seed=hier_run.seed)
over_epochs

# %% [markdown]
# ## Does HIER discover the hierarchy?
# A tree read off the proxies (`hier_proxy_tree`: every proxy hangs from its nearest proxy of
# smaller norm, every class from the proxy most of its training samples hang from, at most 4,000
# of them: the disk's seeded draw at the default `max_points`), compared with HierShapes' true
# taxonomy over the seen classes: the fraction of class triplets whose closest pair is the same in both
# (1 = every triplet agrees; resolved triplets only) and the cophenetic correlation of LCS
# heights (`hierarchy.compare`). Baseline: Ward clustering of the class means of each model
# (Proxy-Anchor has no hierarchical proxies). HIERsph's proxies all have norm 1, so the
# smaller-norm rule does not apply to them. Chance level of the proxy tree's agreement: trees of
# its shape with the class names shuffled (`compare.random_tree_agreements`, 100 seeded draws,
# mean ± sd).
# In the figure both trees name the classes alike and colour them by their true family; the
# proxy tree's inner nodes are proxies (`p<index>`, only its root labelled).


# %%
found = {"PA + HIER: proxy tree": hier_proxy_tree(hier_run, seen)}
for label in variants:
    train = trained[label][0].features("train")
    means = compare.class_means(train["embedding"], train["labels"], n_seen)
    found[f"{label}: Ward of class means"] = compare.ward_hierarchy(means, seen)
agreement = pd.DataFrame(
    [
        {
            "hierarchy": name,
            "triplet agreement": compare.triplet_agreement(truth, h),
            "cophenetic correlation": compare.cophenetic_correlation(truth, h),
            "triplets resolved": compare.resolved_triplets(h),  # the agreement's support
            "nodes": len(h.nodes),
            "height": h.max_height,
        }
        for name, h in found.items()
    ]
)
report.save_table(agreement, "04_discovered_hierarchy", cfg, seed=hier_run.seed)
draws = compare.random_tree_agreements(truth, found["PA + HIER: proxy tree"])
counted = draws[np.isfinite(draws)]  # the draws that resolve a triplet (none: chance undefined)
chance = counted.mean() if len(counted) else np.nan
chance_sd = counted.std(ddof=1) if len(counted) > 1 else np.nan
print(
    f"chance agreement of trees of the proxy tree's shape: {chance:.3f} ± {chance_sd:.3f} "
    f"(sd over {len(counted)} draws)"
)
agreement

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 5.4), layout="constrained")
family_colour = plots.group_colours(family)
by_family = {c: family_colour[f] for c, f in zip(truth.classes, family, strict=True)}
names_of = {c: truth.label(c) for c in truth.classes}
for ax, h, depth, title in (
    (axes[0], truth, 2, "HierShapes taxonomy (seen classes)"),
    (axes[1], found["PA + HIER: proxy tree"], 0, "tree read off HIER's proxies"),
):
    plots.draw_tree(
        h, ax, label_depth=depth, fontsize=6, colors=by_family, names=names_of, color_labels=True
    )
    ax.set_title(title)
fig.legend(
    handles=[
        matplotlib.patches.Patch(color=v, label=truth.label(f)) for f, v in family_colour.items()
    ],
    loc="outside lower left",
    ncol=len(family_colour),
    title="class colour: true family",
)
report.save_figure(fig, "04_proxy_tree", cfg, seed=hier_run.seed)
plt.show()

# %% [markdown]
# ## Class-to-class affinity (a re-creation of Fig. 5)
# How close the training samples of two classes are, for Proxy-Anchor and for PA + HIER, on one
# scale. The two models rank with different distances (cosine vs the Poincaré distance), and a
# similarity made from each (cos, exp(−d)) has its own range: on separate colour scales one map
# looks sharp and the other flat for that reason alone. So each model's own retrieval distance
# is replaced by its **rank among all pairs of that model's samples** (`affinity.rank_similarity`:
# 1 for the closest pair, 0 for the farthest), which depends only on the order its retrieval
# sees; a cell is the mean over the pairs of samples of its two classes
# (`affinity.class_affinity`). 0.5 everywhere would be an embedding without class structure;
# a hierarchy-aware space shows blocks along the diagonal beyond the diagonal itself. Classes in
# the true taxonomy's order, named; the sidebar gives their true family; one colour bar.

# %%
affinities = {}
for label in ("Proxy-Anchor", "PA + HIER"):
    run = trained[label][0]
    f = run.features("train")
    d = affinity.pair_distances(f["embedding"][pick], run.distance())
    affinities[f"{label} ({run.record.metric})"] = affinity.class_affinity(
        d, f["labels"][pick], n_seen
    )
fig, axes = plt.subplots(1, 2, figsize=(11, 5.6), layout="constrained")
plots.affinity_panels(
    fig,
    axes,
    affinities,
    order=truth.leaf_order(),
    names=[truth.label(c) for c in truth.classes],
    groups=[truth.label(f) for f in family],
    label="mean rank similarity of the two classes' sample pairs",
)
report.save_figure(fig, "04_class_affinity", cfg, seed=hier_run.seed)
plt.show()

# %% [markdown]
# ## Proxies nearest the boundary (Fig. 6)
# The four ancestor proxies of largest norm (the most specific ones) and the four training images
# nearest to each.

# %%
boundary = used[np.argsort(-proxy_points[used].norm(dim=1).numpy())][:4]
nearest = distance(proxy_points[boundary], z).argsort(dim=1)[:, :4].numpy()
images = data.extract["train"]  # the training images, in the order of the features


def train_image(i):  # uint8 [H, W, 3]
    return (
        images.image(i)
        if hasattr(images, "image")
        else images.tensors[0][i].permute(1, 2, 0).numpy()
    )


fig, axes = plt.subplots(len(boundary), 4, figsize=(6, 1.6 * len(boundary)), squeeze=False)
for row, (p, idx) in enumerate(zip(boundary, nearest, strict=True)):
    for col, i in enumerate(idx):
        axes[row, col].imshow(train_image(pick[i]))
        axes[row, col].set_title(truth.label(seen[y[i]]).split("/")[-1], fontsize=6)
        axes[row, col].set_axis_off()
    axes[row, 0].text(
        -0.1,
        0.5,
        f"proxy {p}\n‖ρ‖ = {proxy_points[p].norm():.2f}",
        transform=axes[row, 0].transAxes,
        ha="right",
        va="center",
        fontsize=6,
    )
report.save_figure(fig, "04_boundary_proxies", cfg, seed=hier_run.seed)
plt.show()

# %% [markdown]
# ## Recall@1 against the embedding dimension (Fig. 7)
# One seed per dimension; the paper compares with Hyp (Ermolov et al.) on In-shop, here with
# Proxy-Anchor alone on HierShapes.

# %%
seed0 = cfg.seeds[0]
sized = {
    (d, label): (method, {**extra, "dim": d})
    for d in dims
    for label, method, extra in (
        ("Proxy-Anchor", "dml_zero_shot", {}),
        ("PA + HIER", "hier", hier_knobs),
    )
}
sized_runs = run_pool.train_grid(cfg, sized, [seed0], force=force, dataset=dataset)
by_dim = pd.DataFrame(
    [
        {"dim": d, "method": label, "R@1": evaluate(rs[0])["R@1"]}
        for (d, label), rs in sized_runs.items()
    ]
)
report.save_table(by_dim, "04_recall_vs_dim", cfg, seed=seed0)
fig, ax = plt.subplots(figsize=(4.5, 3))
for label, group in by_dim.groupby("method", sort=False):
    ax.plot(group.dim, group["R@1"], marker="o", label=label)
ax.set(
    xscale="log",
    xticks=list(dims),
    xticklabels=[str(d) for d in dims],
    xlabel="embedding dimension",
    ylabel="Recall@1",
    title=f"one seed ({seed0}) per dimension",
)
ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # no labels over the majors'
ax.legend()
report.save_figure(fig, "04_recall_vs_dim", cfg, seed=seed0)
plt.show()

# %%
mean_r1 = scores.groupby("method", sort=False)["R@1"].mean()
report.save_metrics(
    {
        "scores": scores.to_dict(orient="records"),
        "agreement": agreement.to_dict(orient="records"),
        "recall_vs_dim": by_dim.to_dict(orient="records"),
        "over_epochs": over_epochs.to_dict(orient="records"),
        "proxy_tree_chance_agreement": chance,
        "proxy_tree_chance_agreement_sd": chance_sd,
        "ancestor_proxies": int(len(used)),
        "proxies": n_proxies,
        "train_classes": n_seen,
        "dataset": dataset,
        "recall_ks": list(recall_ks),
    },
    "04_metrics",
    cfg,
)
by_name = agreement.set_index("hierarchy")["triplet agreement"]
tree_agreement = by_name["PA + HIER: proxy tree"]
tree_found = (
    "resolves no class triplet"
    if np.isnan(tree_agreement)
    else f"agrees with the true taxonomy on {tree_agreement:.2f} of the class triplets it resolves "
    f"({agreement.set_index('hierarchy')['triplets resolved']['PA + HIER: proxy tree']:.0%} of "
    f"them; chance for trees of its shape {chance:.2f} ± {chance_sd:.2f}; one seed)"
)
report.findings(
    f"What we found on {dataset} ({len(cfg.seeds)} seed(s)): zero-shot Recall@1 "
    f"{mean_r1['Proxy-Anchor']:.3f} (PA) vs {mean_r1['PA + HIER']:.3f} (PA + HIER) vs "
    f"{mean_r1['PA + HIERsph']:.3f} (HIERsph); {len(used)} of {n_proxies} proxies serve as "
    f"ancestors; the tree read off them {tree_found}; Ward's tree of Proxy-Anchor's class means "
    f"agrees on {by_name['Proxy-Anchor: Ward of class means']:.2f}.",
    "04_findings",
    cfg,
)
