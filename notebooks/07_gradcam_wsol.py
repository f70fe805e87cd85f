# %% [markdown]
# # 07 · Grad-CAM and weakly-supervised localisation: does hierarchy knowledge move the attention?
#
# **What the paper claims** (Zhao et al., *Knowledge Fused Recognition*, seed 000): fusing the
# class hierarchy into training (CE + α·ℓ_qtr, notebook 03) makes Grad-CAM maps land on the
# object. On ImageNet-1k, KFR lowers accuracy a little (81.2 % → 79.5 %) but raises weakly
# supervised object localisation (WSOL) from 50.4 % to 75.6 % (Table I); Fig. 4 shows random
# Mini-ImageNet images whose Grad-CAMs cover the object better after KFR.
#
# **How localisation is scored** (Choe et al., *Evaluating WSOL Methods Right*, the paper's
# ref. [50]). Each CAM is min-max normalised; thresholding it at τ keeps a region whose contours
# give boxes; an image counts as localised at (τ, δ) when one of those boxes overlaps a
# ground-truth box (any one, when the image has several) with IoU ≥ δ. **MaxBoxAccV2** takes, for each δ ∈ {30, 50, 70} %, the best τ
# on a 0.001 grid, and averages the three. KFR names MaxBoxAccV2 but fixes τ = 0.15 and δ = 0.3
# (eq. 8): that single point is **BoxAcc(τ = 0.15, δ = 30)**, a different number — both are
# reported here under their own names. The maps are *GT-known*: Grad-CAM of the true class.
# KFR calls its number "Top-1 localisation" (the image must also be classified correctly): that
# is given at KFR's point too.
#
# **Which layer Grad-CAM reads.** KFR, like Grad-CAM's authors, reads the last feature block: on
# its ResNets at 224 px a 7 × 7 map. On this study's small images the last block is much coarser
# (2 × 2 for the small ResNet at 64 px), too coarse to outline any box: every model then loses to
# a fixed centre blob. The study therefore departs from KFR by a stated rule: Grad-CAM reads the
# last block whose map is at least `min_cam_grid` × `min_cam_grid` (7, KFR's own resolution),
# found by one forward pass with hooks over the last block and its earlier siblings (any
# backbone; KFR's layer itself whenever it is fine enough, as at 224 px). The last block is
# scored too and reported beside it, labelled.
#
# **What you will see**: a grid like Fig. 4 (random test images, each model's Grad-CAM, the
# ground-truth boxes and the box found at KFR's τ = 0.15), BoxAcc as a function of τ, and the
# table: test accuracy, MaxBoxAccV2 per δ and their mean, KFR's point, Top-1 Loc and the share of
# CAM energy inside the boxes, mean ± std over seeds, for each model and, paired by seed, each
# model against the CE baseline trained in the same setup.
#
# **Which data and models, by profile.** The notebook scores the dataset `cfg.datasets["wsol"]`
# (or the `dataset` parameter). Where that is HierShapes (`smoke`, `small`), every model shares
# the profile's backbone and images: the CE baseline, KFR, Barz's L_CORR+CLS and L_CORR, and
# CE + center loss, from the cache of notebooks 02/03; the boxes are exact (the generator draws
# the object), so the measurement is free of annotation noise. Where it is a paper's dataset
# (`paper`, and its dry run `paper_check`: ImageNet-1k's validation images with their ILSVRC
# boxes, often several per image), the models are the papers' own setups for that dataset
# (`hierstudy.setups`), each with its own CE baseline: KFR's (a pretrained wide ResNet-101
# fine-tuned with α = 100: CE and KFR) and Barz & Denzler's (ResNet-50: CE, L_CORR+CLS,
# CE + center loss, L_CORR). Each setup reads the images through its own evaluation transform
# (KFR's resize to 224 × 224; Barz's resize to 256 and centre crop 224, which can cut a box away:
# that box is then empty and overlaps nothing), the boxes moved with them, and **KFR is compared
# with the CE of its own setup**. With `dataset = "cub_official"` (CUB-200-2011's test images,
# one box each) only the visual-hierarchy paper's ResNet-50 CE has a setup: KFR's claim cannot be
# tested there, and the notebook says so.

# %% tags=["parameters"]
profile = "small"
force = False
dataset = None  # None: the profile's WSOL dataset (HierShapes; ImageNet-1k val under `paper`)
kfr_alpha = None  # None: the setup's α (30 on HierShapes: notebook 03's model; 100 for WRN-101)
max_images = 350  # test images scored per model: a class-balanced, seeded subset when larger
grid_images = 8  # Fig. 4-like grid: this many random test images ...
grid_seed = 0  # ... and the models of this seed
batch_size = 128  # Grad-CAM batch
min_cam_grid = 7  # Grad-CAM layer: the last block whose map is at least this many cells a side
target_layer_name = None  # None: by the min_cam_grid rule; or a layer, e.g. "backbone.layer3"
score_last_block = True  # also score KFR's layer, the last block, when the rule picks another

# %%
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.patches import Rectangle

from hierstudy import cam, config, experiments, report, setups
from hierstudy.datasets import catalog, paper_transforms
from hierstudy.datasets.transforms import IMAGENET_MEAN, IMAGENET_STD

cfg = config.load(profile)
report.use_style()
dataset = dataset or cfg.datasets["wsol"]
cfg = cfg.writing_for(
    dataset, cfg.datasets["wsol"]
)  # another dataset: figures/<profile>/<dataset>/
data_name = catalog.title(dataset)
if dataset == "hiershapes":
    test = experiments.hiershapes_splits(cfg)["test"]
else:  # ImageNet-1k: its validation set (boxes from Annotations/CLS-LOC/val); CUB: test split
    test = catalog.open_split(dataset, "test", root=cfg.data_dir)
if not test.has_boxes:
    raise ValueError(
        f"{data_name}'s test images have no boxes (ImageNet-1k: put ILSVRC's XML "
        f"files in {cfg.data_dir / 'imagenet/Annotations/CLS-LOC/val'})"
    )
hierarchy, n_classes = test.hierarchy, len(test.hierarchy.classes)
print(
    cfg.description, "|", data_name, "|", len(test.labels), "test images of", n_classes, "classes"
)

# %% [markdown]
# ## The models and their class scores
# HierShapes: one setup, the profile's, for every model (from the cache of notebooks 02/03). A
# paper's dataset: every paper with a setup for it (`hierstudy.setups.SETUPS`) and the models
# that paper trains, each setup with its own CE baseline; the labels name the setup. A model
# whose run is missing is trained here.
#
# Grad-CAM explains a class *score*. The classifiers (CE, KFR, CE + center loss, L_CORR+CLS) have
# logits. **L_CORR alone** has none: it classifies by the nearest class embedding φ(c) (Barz's
# Algorithm 1), so its score for class c is the dot product ψ(x)ᵀφ(c) with the unit-norm
# embedding ψ(x), which ranks the classes as its nearest-embedding prediction does. **HIER and
# Proxy-Anchor** (notebook 04) are zero-shot models: trained on half of the classes and tested on
# the unseen other half, they have no score for a test class at all — nothing for Grad-CAM to
# explain, so they are not in this notebook.

# %%
PAPER_METHODS = {"kfr": ("ce", "kfr"), "barz": ("ce", "corr_cls", "center", "corr"), "vh": ("ce",)}
SETUP_NAMES = {"kfr": "KFR's", "barz": "Barz's", "vh": "VH's"}
LABELS = {
    "ce": "CE (baseline)",
    "kfr": "KFR (α={:g})",
    "corr_cls": "L_CORR+CLS",
    "center": "CE + center loss",
    "corr": "L_CORR (score ψᵀφ)",
}
if dataset == "hiershapes":
    plan = {None: ("ce", "kfr", "corr_cls", "center", "corr")}
else:
    plan = {p: m for p, m in PAPER_METHODS.items() if (p, dataset) in setups.SETUPS}
if not plan:
    raise ValueError(f"no paper has a setup on {dataset!r}: {sorted(setups.SETUPS)}")
print("setups and their models:", {p or "the profile's": m for p, m in plan.items()})

# %%
groups = {}  # one per setup: its models and the scored images as its evaluation gives them
for paper, methods in plan.items():
    setup = experiments.setup_for(cfg, "ce", dataset, paper)
    alpha = kfr_alpha if kfr_alpha is not None else setup.knobs.get("kfr", {}).get("alpha", 30.0)
    suffix = f", {SETUP_NAMES[paper]} setup" if paper else ""
    names = {m: LABELS[m].format(alpha) + suffix for m in methods}
    runs = {
        names[m]: {
            s: experiments.train(
                cfg,
                m,
                s,
                force=force,
                dataset=dataset,
                paper=paper,
                **({"alpha": alpha} if m == "kfr" else {}),
            )
            for s in cfg.seeds
        }
        for m in methods
    }
    groups[paper] = SimpleNamespace(
        paper=paper,
        setup=setup,
        suffix=suffix,
        runs=runs,
        methods={names[m]: m for m in methods},
        baseline=names["ce"],
        centre="centre Gaussian (no model)" + suffix,
    )

# %% [markdown]
# ## The test images
# All test images when there are at most `max_images` of them, otherwise the same number of
# randomly drawn images per class (seeded, identical for every model and setup; with more classes
# than `max_images`, as ImageNet's 1,000, one image of each of `max_images` random classes).
# Boxes are `(x0, y0, x1, y1)` with exclusive ends in the pixels of the image the model sees:
# HierShapes' are tight around the drawn object; a paper's come from its annotations, moved by
# the setup's evaluation transform.

# %%
subset = cam.balanced_subset(test.labels, max_images, seed=0)
for g in groups.values():
    if dataset == "hiershapes":  # uint8 NCHW: the model scales to [0, 1] itself
        g.images = torch.from_numpy(np.ascontiguousarray(test.images[subset].transpose(0, 3, 1, 2)))
        g.labels = test.labels[subset]
        g.boxes = [b[None] for b in test.boxes[subset].astype(np.float64)]  # one box each
    else:
        evaluation = paper_transforms(g.setup.transform, False, size=g.setup.image_size)
        g.images, g.labels, g.boxes = cam.localisation_set(test, subset, evaluation)
    h, w = g.images.shape[-2:]
    g.box_share = float(
        np.mean(cam.energy_in_box(np.broadcast_to(1.0, (len(subset), h, w)), g.boxes))
    )
    g.n_boxes = sum(map(len, g.boxes))
    g.boxless = int(sum((b[:, 2:] <= b[:, :2]).any(axis=1).all() for b in g.boxes))  # all empty
    print(
        f"{g.setup.backbone}{g.suffix}: {len(subset)} images of {w} × {h} px, "
        f"{len(np.unique(g.labels))} classes, {g.n_boxes} boxes; the boxes cover "
        f"{g.box_share:.0%} of the image on average; {g.boxless} images lost every box to the crop"
    )
labels = next(iter(groups.values())).labels  # the same images and labels in every setup


def class_scores(run):
    """None for models with logits; for L_CORR the dot products with the class embeddings Φ."""
    if run.result["recipe"]["head"] != "embedding":
        return None
    phi = run.checkpoint()["losses"][0]["class_embeddings"].float()
    return lambda out: out.embedding @ phi.T


# %% [markdown]
# ## Which layer: KFR's last block, or an earlier one when its map is too coarse
# Grad-CAM's map has the target layer's resolution, upsampled bilinearly to the image: a grid
# of h × w cells cannot outline a box finer than a cell, whatever the training objective. The
# models of a setup share one backbone, so the rule (introduction) is applied once per setup, on
# its CE baseline (on HierShapes: once).

# %%
for g in groups.values():
    g.probe = g.runs[g.baseline][grid_seed].model()  # scored too, below: built once
    g.last_block = g.probe.target_layer_name  # KFR's layer
    g.layer = target_layer_name or cam.coarse_grid_fallback(
        g.probe, g.images[:1], g.last_block, min_cam_grid
    )
    g.layers = [g.layer, *([g.last_block] if score_last_block and g.last_block != g.layer else [])]
    grids = cam.layer_grids(g.probe, g.images[:1], [g.layer, g.last_block])
    g.grid, g.last_grid = grids[g.layer], grids[g.last_block]
    for layer in g.layers:
        print(
            f"{g.setup.backbone}{g.suffix}, {layer}{' (last block, KFR)' if layer == g.last_block else ''}: "
            f"{grids[layer][0]} × {grids[layer][1]} cells for {g.images.shape[-1]} px images"
        )


# %%
def gradcam(g, run, model, layer):
    """GT-known Grad-CAM maps [N, H, W] at ``layer`` of the scored images."""
    return cam.gradcam_maps(
        model,
        g.images,
        g.labels,
        model.get_submodule(layer),
        batch_size=batch_size,
        scores=class_scores(run),
    )


def predictions(run):
    """The run's predicted classes of the scored images."""
    feats = run.features("test")
    assert np.array_equal(feats["labels"], test.labels), "features_test not in test-split order"
    return feats["pred"][subset]


# %% [markdown]
# ## Scoring every model and seed
# One sweep per model gives MaxBoxAccV2 (per δ, with the best τ), KFR's point and the energy
# share; Top-1 Loc at KFR's point also needs the image classified correctly. "Empty CAMs" counts
# the maps that Grad-CAM's ReLU zeroes out entirely: they have no box and count as wrong. A
# *centre Gaussian* (σ = a quarter of the image, the same map for every image: Choe et al.'s
# no-learning baseline; one per setup, whose transform places the boxes) is the reference a model
# has to beat. Each model is scored at the chosen layer and, when it differs, at the last block
# (KFR's layer), kept apart for the comparison at the end; the figures and the main table are the
# chosen layer's.

# %%
KFR_TAU, KFR_DELTA = cam.KFR_POINT
rows, maps_by_model, best_by_model = [], {}, {}
for g in groups.values():
    for label, by_seed in g.runs.items():
        for seed, run in by_seed.items():
            probe = (label, seed) == (g.baseline, grid_seed)  # built for the layer rule
            model = vars(g).pop("probe") if probe else run.model()
            pred = predictions(run)
            for layer in g.layers:
                maps = gradcam(g, run, model, layer)
                at_kfr_point = cam.best_iou(maps, g.boxes, [KFR_TAU])[:, 0] >= KFR_DELTA
                rows.append(
                    {
                        "model": label,
                        "seed": seed,
                        "layer": layer,
                        "test_acc": run.result["test_acc"],
                        **cam.wsol_scores(maps, g.boxes),
                        "top1loc_tau0.15_iou30": float((at_kfr_point & (pred == g.labels)).mean()),
                        "empty_cams": float((maps.max(axis=(1, 2)) == 0).mean()),
                        "run": run.name,
                        "paper": g.paper,
                        "last": layer != g.layer,
                    }
                )
                if seed == grid_seed and (layer == g.layer or label == g.baseline):
                    maps_by_model[label if layer == g.layer else f"{label}, last block"] = (g, maps)
                    if layer == g.layer:  # [N, 1000]: largest IoU per image and τ
                        best_by_model[label] = cam.best_iou(maps, g.boxes)

# %%
for g in groups.values():
    h, w = g.images.shape[-2:]
    yy, xx = np.mgrid[:h, :w] + 0.5 - np.array([h, w])[:, None, None] / 2
    gauss = np.exp(-(xx**2 + yy**2) / (2 * (min(h, w) / 4) ** 2))
    centre = np.broadcast_to(gauss, (len(subset), *gauss.shape))
    rows.append(
        {
            "model": g.centre,
            "seed": "-",
            "layer": "-",
            **cam.wsol_scores(centre, g.boxes),
            "empty_cams": 0.0,
            "run": g.centre,
            "paper": g.paper,
            "last": False,
        }
    )
    best_by_model[g.centre] = cam.best_iou(centre, g.boxes)
scored = pd.DataFrame(rows)
per_seed = scored[~scored["last"]].drop(columns="last")  # the chosen layer
at_last_block = scored[scored["last"]].drop(columns="last")  # the last block, when not chosen
INTERNAL = ["run", "paper"]  # kept in the metrics JSON, not in the tables
centres = {label: g.centre for g in groups.values() for label in [*g.runs, g.centre]}

# %% [markdown]
# ## Fig. 4
# For each setup, a row of random test images as its evaluation transform gives them, with
# their ground-truth boxes (green); below, one row per model of that setup: its Grad-CAM for the
# true class (red = high) with the ground-truth boxes and, dashed white, the box found at KFR's
# τ = 0.15 that overlaps one of them most, with that IoU (✓: IoU ≥ 0.3, localised at KFR's
# point; "empty": Grad-CAM is zero everywhere). When the rule chose an earlier layer, the row
# "CE (baseline), last block" shows the baseline's Grad-CAM at KFR's layer for comparison.


# %%
def draw_box(ax, box, **style):
    x0, y0, x1, y1 = box  # continuous pixel edges; imshow puts pixel centres on integers
    ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, lw=1.2, **style))


def view(g, i):
    """Image i as the model saw it: uint8 HWC (HierShapes), else [0, 1] with the normalisation
    of the paper transforms undone."""
    x = g.images[i]
    if x.dtype == torch.uint8:
        return x.permute(1, 2, 0).numpy()
    if g.setup.transform != "plain":  # every other paper transform normalises
        std, mean = (torch.tensor(v)[:, None, None] for v in (IMAGENET_STD, IMAGENET_MEAN))
        x = x * std + mean
    return x.clamp(0, 1).permute(1, 2, 0).numpy()


def show_cam(ax, g, i, cam_map):
    """Image i with its CAM, the GT boxes and the best-overlapping box at τ = 0.15 (title: IoU)."""
    ax.imshow(view(g, i))
    ax.imshow(cam_map, cmap="jet", alpha=0.5, vmin=0, vmax=1)
    for box in g.boxes[i]:
        draw_box(ax, box, color="lime")
    found = cam.cam_boxes(cam_map, KFR_TAU)
    if not cam_map.any() or not len(found):
        return ax.set_title("empty", fontsize=6)
    iou = cam.box_iou(found, g.boxes[i]).max(axis=1)
    draw_box(ax, found[iou.argmax()], color="white", ls="--")
    ax.set_title(f"IoU {iou.max():.2f}{' ✓' if iou.max() >= KFR_DELTA else ''}", fontsize=6)


# %%
rng = np.random.default_rng(grid_seed)
shown = np.sort(rng.choice(len(labels), size=min(grid_images, len(labels)), replace=False))
panels = []  # per setup: its images with their boxes, then its models' Grad-CAMs
for g in groups.values():
    panels.append((f"image + GT box{g.suffix}", g, None))
    panels += [(key, g, maps) for key, (of, maps) in maps_by_model.items() if of is g]
fig, axes = plt.subplots(
    len(panels),
    len(shown),
    figsize=(1.2 * len(shown) + 0.6, 1.3 * len(panels)),
    squeeze=False,
    layout="constrained",
)
for row, (name, g, maps) in enumerate(panels):
    axes[row, 0].set_ylabel(name, fontsize=6)
    for col, i in enumerate(shown):
        if maps is not None:
            show_cam(axes[row, col], g, i, maps[i])
            continue
        axes[row, col].imshow(view(g, i))
        for box in g.boxes[i]:
            draw_box(axes[row, col], box, color="lime")
        axes[row, col].set_title(hierarchy.label(hierarchy.classes[labels[i]]), fontsize=6)
for ax in axes.flat:
    ax.set(xticks=[], yticks=[])
    ax.grid(False)
fig.suptitle(
    f"GT-known Grad-CAM (seed {grid_seed}); green: ground truth, dashed: best box at τ = {KFR_TAU}",
    fontsize=8,
)
report.save_figure(fig, "07_gradcam_grid", cfg, dataset=dataset, seed=grid_seed)
plt.show()

# %% [markdown]
# ## BoxAcc against the CAM threshold τ
# For each δ, the share of images localised at each τ (models of seed `grid_seed`). MaxBoxAccV2
# reads each curve's maximum; KFR's point reads the δ = 30 curve at the dotted line τ = 0.15,
# wherever its maximum is.

# %%
taus = cam.cam_thresholds()
fig, axes = plt.subplots(1, len(cam.IOU_THRESHOLDS), figsize=(11, 3.4), sharey=True)
for ax, delta in zip(axes, cam.IOU_THRESHOLDS, strict=True):
    for label, best in best_by_model.items():
        style = {"ls": ":", "color": "0.3"} if label in centres.values() else {}
        ax.plot(taus, (best >= delta).mean(axis=0), lw=1.1, label=label, **style)
    ax.axvline(KFR_TAU, color="0.5", ls=":", lw=0.8)
    ax.set(xlabel="CAM threshold τ", title=f"δ = {round(100 * delta)} %", ylim=(0, 1))
axes[0].set_ylabel("BoxAcc(τ, δ)")
fig.legend(
    *axes[0].get_legend_handles_labels(),
    loc="lower center",
    ncol=min(len(best_by_model), 6),
    fontsize=7,
    bbox_to_anchor=(0.5, -0.02),
)
fig.tight_layout(rect=(0, 0.1, 1, 1))
report.save_figure(fig, "07_boxacc_vs_tau", cfg, dataset=dataset, seed=grid_seed)
plt.show()

# %% [markdown]
# ## The table (Table I's WSOL columns)
# Mean ± std over seeds (no ± with one seed), Grad-CAM at the chosen layer. Accuracy is on the
# whole test split, localisation on the scored images. The best τ per δ is in the per-seed table
# (`07_wsol_per_seed.csv`, which also holds the last block's rows, column `layer`). The dataset
# is named in each table's provenance line.

# %%
COLUMNS = {
    "test_acc": "test acc",
    "maxboxacc_v2_iou30": "MaxBoxAccV2 δ=30",
    "maxboxacc_v2_iou50": "MaxBoxAccV2 δ=50",
    "maxboxacc_v2_iou70": "MaxBoxAccV2 δ=70",
    "maxboxacc_v2": "MaxBoxAccV2 (mean of δ)",
    "boxacc_tau0.15_iou30": "BoxAcc(τ=0.15, δ=30) (KFR's point)",
    "top1loc_tau0.15_iou30": "Top-1 Loc(τ=0.15, δ=30)",
    "energy_in_box": "CAM energy in box",
    "empty_cams": "empty CAMs",
}
grouped = per_seed.groupby("model", sort=False)
means, stds = grouped[list(COLUMNS)].mean(), grouped[list(COLUMNS)].std(ddof=1)


def pm(mean, std):
    return "—" if np.isnan(mean) else f"{mean:.3f}" if np.isnan(std) else f"{mean:.3f} ± {std:.3f}"


table = pd.DataFrame({"model": means.index, "seeds": grouped.size().values})
for key, name in COLUMNS.items():
    table[name] = [pm(m, s) for m, s in zip(means[key], stds[key], strict=True)]
report.save_table(table, "07_wsol", cfg, dataset=dataset, floatfmt=".3f")
report.save_table(
    scored.drop(columns=[*INTERNAL, "last"]).rename(columns=COLUMNS),
    "07_wsol_per_seed",
    cfg,
    dataset=dataset,
)
table

# %% [markdown]
# ## The chosen layer against KFR's last block
# The same models and seeds, MaxBoxAccV2 (mean of δ) and KFR's point at both layers (mean ± std),
# against the centre Gaussian, which no layer changes. Empty when the rule kept the last block.


# %%
def by_layer(frame, key):
    g = frame.groupby("model", sort=False)[key]
    return pd.Series(
        [pm(m, s) for m, s in zip(g.mean(), g.std(ddof=1), strict=True)], g.mean().index
    )


def layer_names(layer, grid):
    """'backbone.layer2 8×8' per setup, the distinct ones joined."""
    names = [
        f"{getattr(g, layer)} {getattr(g, grid)[0]}×{getattr(g, grid)[1]}" for g in groups.values()
    ]
    return " / ".join(dict.fromkeys(names))


layer_table = pd.DataFrame(
    {
        f"{COLUMNS[k]}, {name}": by_layer(frame, k)
        for k in ("maxboxacc_v2", "boxacc_tau0.15_iou30")
        for name, frame in (
            (layer_names("layer", "grid"), per_seed[~per_seed.model.isin(centres.values())]),
            (f"last block {layer_names('last_block', 'last_grid')}", at_last_block),
        )
    }
).reset_index(names="model")
report.save_table(layer_table, "07_layer_comparison", cfg, dataset=dataset)
layer_table

# %% [markdown]
# ## Does the KFR claim hold here?
# Paired by seed (same initial weights and data order): KFR minus the CE baseline of its setup,
# and each other model minus the CE of its setup. The verdict is *better on every seed* (the
# claim holds, with at least two seeds), *worse on every seed* (it is contradicted), *mixed across
# seeds* (not settled), *equal on every seed*, or not judged from a single seed. Three seeds all
# better is a sign test at p = 1/8: read the mean difference against its std too.


# %%
def paired(label, baseline, key):
    """Model ``label`` minus its setup's CE ``baseline`` on metric ``key``, paired by seed."""
    values = per_seed[per_seed.model.isin([label, baseline])].pivot(
        index="seed", columns="model", values=key
    )
    d = (values[label] - values[baseline]).dropna()
    verdict = (
        "one seed: not judged"
        if len(d) < 2
        else "better on every seed"
        if (d > 0).all()
        else "worse on every seed"
        if (d < 0).all()
        else "equal on every seed"
        if (d == 0).all()
        else "mixed across seeds"
    )
    return {
        "model": label,
        "metric": COLUMNS[key],
        "minus CE (mean)": d.mean(),
        "minus CE (std)": d.std(ddof=1) if len(d) > 1 else np.nan,
        "seeds better": f"{int((d > 0).sum())}/{len(d)}",
        "verdict": verdict,
    }


KEYS = ("maxboxacc_v2", "boxacc_tau0.15_iou30", "energy_in_box", "test_acc")
claims = pd.DataFrame(
    [
        paired(label, g.baseline, key)
        for g in groups.values()
        for label in g.runs
        if label != g.baseline
        for key in KEYS
    ],
    columns=["model", "metric", "minus CE (mean)", "minus CE (std)", "seeds better", "verdict"],
)
report.save_table(claims, "07_kfr_claim", cfg, dataset=dataset)
claims

# %%
first = next(iter(groups.values()))  # the setup the verdict is about: KFR's, if any
main = next((g for g in groups.values() if "kfr" in g.methods.values()), first)
kfr_label = next((label for label, m in main.methods.items() if m == "kfr"), None)
kfr = claims[claims.model == kfr_label].set_index("metric")
CLAIM = {
    "better on every seed": "holds",
    "worse on every seed": "is contradicted",
    "mixed across seeds": "is not settled",
    "equal on every seed": "is not supported (no difference)",
    "one seed: not judged": "cannot be judged (one seed)",
}
claim_box, claim_point = (
    CLAIM[kfr.verdict[COLUMNS[k]]]
    if kfr_label
    else f"cannot be judged (no KFR model on {data_name})"
    for k in KEYS[:2]
)


def signed(mean, std):
    return f"{mean:+.3f}" + ("" if np.isnan(std) else f" ± {std:.3f}")


def compare(key):
    """'CE a vs KFR b (KFR − CE = d ± s, KFR higher on k/n seeds)' for one metric."""
    row, ce = kfr.loc[COLUMNS[key]], main.baseline
    return (
        f"CE {pm(means.loc[ce, key], stds.loc[ce, key])} vs KFR "
        f"{pm(means.loc[kfr_label, key], stds.loc[kfr_label, key])} (KFR − CE = "
        f"{signed(row['minus CE (mean)'], row['minus CE (std)'])}, KFR higher on "
        f"{row['seeds better']} seeds)"
    )


barz = claims[claims.model.str.startswith("L_CORR") & (claims.metric == COLUMNS["maxboxacc_v2"])]
barz_text = (
    ", ".join(
        f"{r.model} {signed(r['minus CE (mean)'], r['minus CE (std)'])} ({r.verdict})"
        for _, r in barz.iterrows()
    )
    or f"none trained on {data_name}"
)


def records(frame):
    """JSON-ready rows: NaN (no accuracy for the centre Gaussian, no std from one seed) → null."""
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


def beat_centre(frame):
    """'k of n models' whose mean MaxBoxAccV2 beats their setup's centre Gaussian's."""
    box = (
        frame[~frame.model.isin(centres.values())].groupby("model", sort=False).maxboxacc_v2.mean()
    )
    reference = means.maxboxacc_v2[[centres[m] for m in box.index]].to_numpy()
    return f"{int((box.to_numpy() > reference).sum())} of {len(box)} models"


last_text = (
    f"; at the last block {main.last_block} ({main.last_grid[0]}×{main.last_grid[1]}, KFR's layer) "
    f"{beat_centre(at_last_block)} beat it, CE scoring {at_last_block[at_last_block.model == main.baseline].maxboxacc_v2.mean():.3f}"
    if len(at_last_block)
    else ""
)

# %%
SETUP_KEYS = (
    "paper",
    "baseline",
    "centre",
    "layer",
    "grid",
    "last_block",
    "last_grid",
    "box_share",
    "n_boxes",
    "boxless",
)
report.save_metrics(
    {
        "dataset": dataset,
        "rows": records(per_seed),
        "claims": records(claims),
        "rows_last_block": records(at_last_block),
        "summary_mean": records(means.reset_index()),
        "summary_std": records(stds.reset_index()),
        "kfr_claim_maxboxacc_v2": claim_box,
        "kfr_claim_kfr_point": claim_point,
        "kfr_vs_ce": {"kfr": kfr_label, "ce": main.baseline, "paper": main.paper},
        "setups": [
            {
                **{k: getattr(g, k) for k in SETUP_KEYS},
                "backbone": g.setup.backbone,
                "models": list(g.runs),
            }
            for g in groups.values()
        ],
        "n_images": len(subset),
        "seeds": list(cfg.seeds),
        "box_share": main.box_share,
        "cam_grid": main.grid,
        "cam_layer": main.layer,
        "min_cam_grid": min_cam_grid,
        "last_block": main.last_block,
        "last_block_grid": main.last_grid,
    },
    "07_metrics",
    cfg,
    dataset=dataset,
)
kfr_note = ", KFR against that setup's own CE" if kfr_label else ""
where = f" in {SETUP_NAMES[main.paper]} setup{kfr_note}" if main.paper else ""
in_setup, beaten = (" in that setup", "their setup's") if main.paper else ("", "it")
found = (
    f"MaxBoxAccV2 (mean of δ = 30/50/70) {compare('maxboxacc_v2')}; KFR's point BoxAcc(τ=0.15, "
    f"δ=30) {compare('boxacc_tau0.15_iou30')}"
    if kfr_label
    else f"{main.baseline} scores {pm(means.loc[main.baseline, 'maxboxacc_v2'], stds.loc[main.baseline, 'maxboxacc_v2'])} "
    "MaxBoxAccV2"
)
claim_text = (
    f"The KFR claim that hierarchy knowledge improves localisation {claim_box} here by "
    f"MaxBoxAccV2 and {claim_point} at KFR's point"
    if kfr_label
    else f"KFR's localisation claim is not tested on {data_name}: no paper's setup trains KFR on it"
)
print(
    f"What we found ({len(cfg.seeds)} seed(s), {main.setup.epochs} epoch(s), {main.setup.backbone}{where}, "
    f"{len(subset)} {data_name} test images, Grad-CAM at {main.layer}, grid {main.grid[0]}×{main.grid[1]}): "
    f"{found}; a centre Gaussian without any model scores "
    f"{means.loc[main.centre, 'maxboxacc_v2']:.3f} MaxBoxAccV2{in_setup}, and "
    f"{beat_centre(per_seed)} beat {beaten} at {main.layer}{last_text}. "
    f"{claim_text}. Barz's hierarchy embeddings minus CE in MaxBoxAccV2: {barz_text}."
)
