# %% [markdown]
# # 06 · Retrieval evaluation: every model, one protocol
#
# **What the papers claim.** Barz & Denzler (WACV 2019, seed 001): features trained for
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
# Notebook 05's hierarchy-aware re-ranking of the CE baseline (Venkataramanan et al., seed 002:
# D_C + α·D_H with the visual hierarchy) joins the table as rows of its own, recomputed from what
# notebook 05 saved. This notebook trains nothing and evaluates whatever subset of runs exists.
#
# **Datasets.** `dataset = None` evaluates every dataset that has finished runs: HierShapes under
# `smoke` and `small`; under `paper` each notebook's own (CIFAR-100 for 02 and 03, CUB-200-2011's
# zero-shot split for 04, CUB's official split for 05, ImageNet-1k for 07's models). Runs are
# compared only within a dataset. Not evaluated here: notebook 08's combinations (they are
# compared there) and notebook 05's networks retrained on corrupted images (its robustness study).

# %% tags=["parameters"]
profile = "small"
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
import pandas as pd

from hierstudy import config, experiments, metrics, report
from hierstudy import visual_hierarchy as vh
from hierstudy.datasets import catalog
from hierstudy.datasets.hiershapes import taxonomy
from hierstudy.hierarchy import Hierarchy
from hierstudy.losses.hier import pairwise_distance

cfg = config.load(profile)
top = cfg  # notebook 05's outputs (of its default run) are read from here
cfg = cfg.writing_for(dataset, None)  # one dataset only: figures/<profile>/<dataset>/
report.use_style()

# %%
# notebook 08's combinations (a method + KFR's term, `kfr` knob) are compared there: keeping them
# out makes this notebook's tables the same whether or not 08 has run before
NOT_HERE = ("kfr", "corruption")  # 08's combinations, 05's networks trained on corrupted images
names = [dataset] if dataset else experiments.datasets_with_runs(cfg)
runs = [
    r
    for d in names
    for r in experiments.finished_runs(cfg, d)
    if not set(NOT_HERE) & set(r.result["knobs"])
]
if not runs:
    raise FileNotFoundError(
        f"no finished run of {dataset or 'any dataset'} under {cfg.runs_dir}: notebook 06 evaluates the "
        f"models of notebooks 02-05, run them first (hierstudy study --profile {cfg.name} --only 02 03 04)"
    )
test_sets = {}


def evaluation(run):
    """(test images and labels, their hierarchy, s_G, LCS heights) of the run's dataset and
    protocol — what its test features index — built once per dataset and protocol."""
    key = (run.result["dataset"], run.result["zero_shot"])
    if key not in test_sets:
        data = experiments.evaluation_set(cfg, *key)
        test_sets[key] = (
            data,
            data.hierarchy,
            data.hierarchy.similarity(),
            data.hierarchy.lcs_height(),
        )
    return test_sets[key]


print(
    f"{len(runs)} finished runs under {cfg.runs_dir}: {sorted({(r.result['dataset'], r.name) for r in runs})}"
)

# %% [markdown]
# ## The metrics, each with a worked example
# On HierShapes' taxonomy, whatever the datasets evaluated below. Its tree has height 3, so $s_G = 1 - \text{height}(\text{LCS})/3$: 1 for the same class,
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
ids = {
    "red": "round/circle/red-solid",
    "orange": "round/circle/orange-solid",
    "triangle": "angular/triangle/blue-solid",
}
idx = {k: int(hierarchy.class_indices([v])[0]) for k, v in ids.items()}
database = np.array([idx["orange"], idx["red"], idx["triangle"], idx["red"], idx["red"]])
scores = np.arange(5.0, 0.0, -1.0)[
    :, None
]  # 1-D features: the dot product ranks them in this order
ex = metrics.retrieval_metrics(
    np.ones((1, 1)),
    [idx["red"]],
    scores,
    database,
    similarity=hierarchy.similarity(),
    K=3,
    recall_ks=(1, 2),
)
severity = metrics.mistake_severity(
    [idx["orange"], idx["triangle"], idx["red"]], [idx["red"]] * 3, hierarchy.lcs_height()
)
print(
    f"HP@1..3 = {np.round(ex['hp'], 3)}, AHP@3 = {ex['mahp']:.3f}, AP = {ex['map']:.3f}, "
    f"R@1 = {ex['recall'][1]:.0f}, R@2 = {ex['recall'][2]:.0f}, mistake severity = {severity:.1f}"
)

# %% [markdown]
# ## One protocol for every run
# Each run's test representation (the one its method retrieves with: penultimate features for
# the classifiers, the embedding for L_CORR and the metric-learning models), ranked with the run's
# own distance: cosine (L2-normalised) for the classifiers and Proxy-Anchor / HIERsph, the dot
# product for L_CORR's unit-norm embeddings, the Poincaré distance (c = 0.1) for HIER. The CE
# baseline appears twice, as in Barz's tables: raw classification features (Euclidean) and their
# L2-normalised version (cosine). **Zero-shot** runs (HIER's protocol, notebook 04) are trained on
# half of the classes and tested on the unseen other half: their database is smaller (hence a
# smaller K) and they have no classifier, so their rows are not comparable with the closed-set
# rows. On HierShapes $s_G$ always comes from the full tree; on a paper's zero-shot dataset from
# the hierarchy of its test classes (as in notebook 04).

# %%
NAMES = {
    "ce": "CE",
    "center": "CE + center loss",
    "corr": "L_CORR",
    "corr_cls": "L_CORR+CLS",
    "kfr": "KFR",
    "dml_zero_shot": "Proxy-Anchor",
    "hier": "PA + HIER",
}
ORDER = ["ce", "center", "corr", "corr_cls", "kfr", "dml", "dml_zero_shot", "hier"]


def variants(run):
    """(row label, distance) pairs: the method's own ranking; CE also on raw features (Barz)."""
    knobs = dict(run.result.get("knobs", {}))
    base = (
        f"CE + {knobs.pop('loss', 'triplet_l2')}"
        if run.method == "dml"
        else NAMES.get(run.method, run.method)
    )
    base += "sph" if knobs.pop("sphere", False) else ""
    extra = ", ".join(
        f"{'α' if k == 'alpha' else k}={v:g}" if isinstance(v, float | int) else f"{k}={v}"
        for k, v in knobs.items()
    )
    label = f"{base} ({extra})" if extra else base
    if run.method == "ce" and not extra:
        return [("CE (classification features)", "euclidean"), ("CE + L2 norm", "cosine")]
    return [(label, run.result["metric"])]


# %%
def zero_shot(run):
    return run.result["zero_shot"]


def shown(run):
    return catalog.title(run.result["dataset"])


def panel(run):
    return shown(run), "zero-shot" if zero_shot(run) else "closed set"


def run_order(run):
    """Datasets in turn, closed set first, methods in ORDER, then knob values (numbers numerically), then seed."""
    knobs = tuple(
        (k, isinstance(v, str), 0 if isinstance(v, str) else v, str(v))
        for k, v in sorted(run.result.get("knobs", {}).items())
    )
    return (
        names.index(run.result["dataset"]),
        zero_shot(run),
        ORDER.index(run.method) if run.method in ORDER else len(ORDER),
        run.method,
        knobs,
        run.seed,
    )


def distance(metric):
    return (
        (lambda q, g: pairwise_distance(q.double(), g.double(), c=0.1))
        if metric == "hyperbolic"
        else metric
    )


# %% [markdown]
# **Notebook 05's re-ranking.** Notebook 05 builds a visual hierarchy from the CE baseline's
# training features (classes whose Gaussians overlap, Bhattacharyya coefficient ≥ t, merge level
# by level), places each test image at the leaf of smallest Mahalanobis distance and ranks by
# D = D_C + α·D_H (eq. 6): the cosine distance plus α times the height of the two leaves' lowest
# common ancestor over the tree's height. It saves the trees, the test images' leaves, t, α and
# its seed (`05_hierarchies.json`) and how many levels merged (`05_metrics.json`). Here that
# ranking is recomputed from those files with `visual_hierarchy.ranking_distance` on the same CE
# run's test features, for both covariance conventions of notebook 05, and evaluated with this
# notebook's protocol. A tree that merged nothing gives D_H = 0 (the cosine ranking, as in 05).
# The classification columns stay empty: the classifier is CE's. No rows when 05 has not run.


# %%
def eq6(tree, alpha):
    """D_C + α·D_H on rows whose last column is the image's leaf (None: nothing merged, D_H = 0)."""
    return lambda q, g: vh.ranking_distance(
        q[:, :-1], g[:, :-1], q[:, -1].long(), g[:, -1].long(), tree, alpha
    )


def reranked(saved, merging):
    """{(dataset, run name, seed): [(row label, distance name, features + leaf column, distance, False)]}."""
    made = saved["_provenance"]
    run = next(
        (
            r
            for r in runs
            if (r.result["dataset"], r.method, r.result["knobs"], r.seed)
            == (made["dataset"], "ce", {}, made["seed"])
        ),
        None,
    )
    if run is None:  # notebook 05's seed of the baseline is not among the finished runs
        return {}
    feats, alpha, t = (
        run.features("test")["features"].astype(np.float64),
        saved["alpha"],
        saved["threshold"],
    )
    out = []
    for cov, edges in saved["visual"].items():
        merged = any(
            m["covariance"] == cov and m["t"] == t and m["merge levels"] > 0 for m in merging
        )
        tree = Hierarchy([tuple(e) for e in edges], saved["classes"]) if merged else None
        leaves = np.asarray(saved["test_leaves"][cov])[:, None]  # one leaf per test image, in order
        assert len(leaves) == len(feats), (
            f"notebook 05's leaves are not run {run.name} seed {run.seed}'s test set"
        )
        label = f"CE + visual re-rank (α={alpha:g}, t={t:g}, {cov} Σ)"
        out.append(
            (label, f"cosine + {alpha:g}·D_H", np.hstack([feats, leaves]), eq6(tree, alpha), False)
        )
    return {(made["dataset"], run.name, run.seed): out}


# %%
has_05 = (top.figures_dir / "05_hierarchies.json").is_file()
rerank = (
    reranked(
        report.load_metrics("05_hierarchies", top),
        report.load_metrics("05_metrics", top)["merging"],
    )
    if has_05
    else {}
)
rerank_dataset, _, rerank_seed = next(iter(rerank), (None, None, None))
print(
    f"notebook 05's re-ranking (seed {rerank_seed}): {[row[0] for rows in rerank.values() for row in rows] or 'not found'}"
)


def rankings(run):
    """(row label, distance name, features, distance, with classification columns) of each
    ranking of ``run``: its variants, then notebook 05's re-rankings of it."""
    feats = run.retrieval_features("test")[0]
    own = [(label, metric, feats, distance(metric), True) for label, metric in variants(run)]
    return own + rerank.get((run.result["dataset"], run.name, run.seed), [])


def ks_of(run):
    """The K of Recall@K for the run's dataset: ``recall_ks``, else the paper's for it."""
    return tuple(recall_ks or catalog.recall_ks(run.result["dataset"]))


def evaluate(run, feats, dist, classify=True):
    """One row of the central table for one ranking of a run (and seed), and its HP@k curve."""
    test = run.features("test")
    labels, (_, hierarchy, similarity, lcs_height) = test["labels"], evaluation(run)
    k = min(K, len(labels) - 1)
    ks = [r for r in ks_of(run) if r < len(labels)]  # a K beyond the database size is left empty
    m = metrics.retrieval_metrics(
        feats, labels, similarity=similarity, metric=dist, K=k, recall_ks=ks
    )
    row = {"K": k, "test classes": len(np.unique(labels)), "mahp": m["mahp"], "map": m["map"]}
    row.update({f"recall@{r}": v for r, v in m["recall"].items()})
    if not classify:
        return row, m["hp"]
    if (
        not zero_shot(run) and "pred" in test
    ):  # zero-shot runs have no classifier for unseen classes
        row["balanced_accuracy"] = metrics.balanced_accuracy(
            test["pred"], labels, len(hierarchy.classes)
        )
        row["mistake_severity"] = metrics.mistake_severity(test["pred"], labels, lcs_height)
    if not zero_shot(run) and "logits" in test and test["logits"].shape[1] >= hdist_k:
        row[f"hdist@{hdist_k}"] = metrics.hierarchical_distance_at_k(
            test["logits"], labels, lcs_height, hdist_k
        )
    return row, m["hp"]


# %%
KEYS = [
    "dataset",
    "backbone",
    "setup",
    "protocol",
    "method",
    "run",
    "distance",
    "K",
    "test classes",
]
all_ks = sorted(set().union(*map(ks_of, runs)))  # a column per K of any dataset here
VALUES = [
    "mahp",
    "balanced_accuracy",
    "map",
    *[f"recall@{r}" for r in all_ks],
    "mistake_severity",
    f"hdist@{hdist_k}",
]
records, curves = [], {}
for run in sorted(runs, key=run_order):
    for label, metric, feats, dist, classify in rankings(run):
        row, hp = evaluate(run, feats, dist, classify)
        setup = run.result.get("paper") or "profile"  # a paper's setup, or the profile's own
        records.append(
            {
                "dataset": shown(run),
                "backbone": run.result["recipe"]["backbone"],
                "setup": setup,
                "protocol": panel(run)[1],
                "method": label,
                "run": run.name,
                "seed": run.seed,
                "distance": metric,
                **row,
            }
        )
        curves.setdefault((shown(run), setup, label), []).append(hp)
per_seed = pd.DataFrame(records).reindex(columns=[*KEYS, "seed", *VALUES])
report.save_table(per_seed, "06_per_seed", cfg)
grouped = per_seed.groupby(KEYS, sort=False, dropna=False)
results = (
    grouped[VALUES]
    .mean()
    .join(grouped[VALUES].std(ddof=1).add_suffix("_std"))
    .join(grouped.size().rename("seeds"))
    .reset_index()
)

# %% [markdown]
# ## The central table
# One row per method (and knob setting), mean ± std over the seeds that exist (no ± with a single
# seed); "—" where a metric does not apply. `setup` names the paper whose setup trained the run on
# a paper's dataset (the same method can appear under two, e.g. CE in KFR's and in Barz's setup
# on CIFAR-100), "profile" the profile's own. Column by column: Barz Table 1 (mAHP@K, with K in its
# own column), Table 2 (balanced accuracy), Table 3 (mAP), HIER's Recall@K, and Bertinetto's
# mistake severity and average hierarchical distance@5 in LCS-height units (0 to 3 on HierShapes:
# lower is better; the lines printed below the table give the severity of a uniformly random
# wrong class, the chance level, on each dataset).

# %%
HEADERS = {
    "mahp": "mAHP@K",
    "balanced_accuracy": "balanced acc",
    "map": "mAP",
    "mistake_severity": "mistake severity",
    f"hdist@{hdist_k}": f"hier. dist@{hdist_k}",
    **{f"recall@{r}": f"R@{r}" for r in all_ks},
}


def pm(mean, std):
    return "—" if np.isnan(mean) else f"{mean:.3f}" if np.isnan(std) else f"{mean:.3f} ± {std:.3f}"


central = results[[*KEYS, "seeds"]].copy()
for v in VALUES:
    central[HEADERS[v]] = [pm(m, s) for m, s in zip(results[v], results[f"{v}_std"], strict=True)]
report.save_table(central.drop(columns="run"), "06_central_table", cfg, floatfmt=".3f")
report.save_table(results, "06_results", cfg)
graded = {}  # each dataset's closed-set hierarchy, s_G and LCS heights
for run in runs:
    if not zero_shot(run):
        graded.setdefault(shown(run), evaluation(run)[1:])
random_severity = {
    d: float(lcs[~np.eye(len(lcs), dtype=bool)].mean()) for d, (_, _, lcs) in graded.items()
}
max_height = {d: h.max_height for d, (h, _, _) in graded.items()}
for d, severity in random_severity.items():
    print(
        f"{d}: a uniformly random wrong class has mistake severity {severity:.2f} (max height {max_height[d]})."
    )
central.drop(columns=["dataset", "backbone", "run"])

# %% [markdown]
# ## Hierarchical precision against k (Fig. 3)
# Mean HP@k over queries (and seeds) for k = 1..K, one panel per dataset and protocol. The dotted
# line marks the number of other images of the query's class in the database (on average over the
# queries): a ranking that only knows
# classes has used up its exact matches there, and only a semantically aware one keeps HP high
# beyond it (Barz's "turning point" at k = 100 on CIFAR-100). The dashed grey line is a random
# ranking of the same images.


# %%
def random_ranking(where):
    """mAHP and HP@k of random features for the labels of the panel's first run, and the mean
    number of other images of a query's class."""
    run = next(r for r in runs if panel(r) == where)
    labels = run.retrieval_features("test")[1]
    noise = np.random.default_rng(grid_seed).standard_normal((len(labels), 16))
    ks = [r for r in ks_of(run) if r < len(labels)]
    m = metrics.retrieval_metrics(
        noise, labels, similarity=evaluation(run)[2], K=min(K, len(labels) - 1), recall_ks=ks
    )
    return m | {"others": float(np.bincount(labels)[labels].mean() - 1)}


panels = list(dict.fromkeys(zip(results.dataset, results.protocol, strict=True)))
chance = {where: random_ranking(where) for where in panels}
mean_curves = {key: np.mean(hps, axis=0) for key, hps in curves.items()}


def legend(setup, method):
    """The method, with the paper whose setup trained it when that is not the profile's."""
    return method if setup == "profile" else f"{method} [{setup}]"


HIER_P = ("PA + HIER (proxies=", "PA + HIERsph (proxies=")  # notebook 04 sets P by a rule
main_methods = {
    "CE (classification features)",
    "CE + L2 norm",
    "L_CORR",
    "L_CORR+CLS",
    "KFR",
    "Proxy-Anchor",
    "PA + HIER",
    "PA + HIERsph",
}

# %%
fig, axes = plt.subplots(
    len(panels), 1, figsize=(8, 3.6 * len(panels)), squeeze=False, layout="constrained"
)
for ax, (data_name, protocol) in zip(axes[:, 0], panels, strict=True):
    rows = results[(results.dataset == data_name) & (results.protocol == protocol)]
    rand = chance[data_name, protocol]
    strong, light = iter(plt.get_cmap("tab10").colors), iter(plt.get_cmap("tab20").colors[1::2] * 3)
    for label, setup, k in zip(rows.method, rows.setup, rows.K, strict=True):
        bold = label in main_methods or label.startswith(
            HIER_P
        )  # the papers' methods strong, variants light
        ax.plot(
            np.arange(1, k + 1),
            mean_curves[data_name, setup, label],
            color=next(strong if bold else light),
            lw=1.8 if bold else 0.9,
            label=legend(setup, label),
        )
    ax.plot(
        np.arange(1, len(rand["hp"]) + 1),
        rand["hp"],
        "--",
        color="0.5",
        lw=1,
        label="random ranking",
    )
    ax.axvline(
        rand["others"], color="0.4", ls=":", lw=0.8, label="other images of the query's class"
    )
    ax.set(
        xlabel="k",
        ylabel="HP@k",
        ylim=(0, 1.02),
        xlim=(1, int(rows.K.max())),
        title=f"{data_name}, {protocol}: {int(rows['test classes'].iloc[0])} test classes, K = {int(rows.K.iloc[0])}",
    )
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
report.save_figure(fig, "06_hp_curves", cfg)
plt.show()

# %% [markdown]
# ## Qualitative retrieval (Fig. 1)
# A few fixed test queries (drawn with `grid_seed`) and their top results for up to three models
# of the same dataset and protocol (the first dataset; by default CE with L2-normalised features,
# L_CORR and KFR, when they exist; first seed). The query has a black frame; each result's frame is coloured by the semantic
# similarity $s_G$ of its class to the query's class (dark green = same class, red = another
# family), its value printed above it.

# %%
first = {}  # run name (without its paper's prefix) → its first seed, on the first panel
for run in sorted(runs, key=lambda r: r.seed):
    if panel(run) == panel(runs[0]):
        first.setdefault(run.result["name"], run)
grid = (
    [first[n] for n in grid_runs if n in first]
    + [r for n, r in first.items() if n not in grid_runs]
)[:3]
test, hierarchy, similarity, _ = evaluation(grid[0])
labels = grid[0].retrieval_features("test")[1]
assert (test.labels == labels).all(), "the test set changed since the runs extracted their features"
assert all((r.retrieval_features("test")[1] == labels).all() for r in grid), (
    "grid runs must share a test set"
)
queries = np.random.default_rng(grid_seed).choice(
    len(labels), size=min(grid_queries, len(labels)), replace=False
)


# %%
def top_results(run):
    """[queries, grid_top] database indices, best first, the query itself left out."""
    label, metric = variants(run)[-1]
    feats = run.retrieval_features("test")[0]
    top = metrics.nearest_neighbours(
        feats[queries], feats, k=min(grid_top + 1, len(feats)), metric=distance(metric)
    )
    return label, np.stack([row[row != q][:grid_top] for row, q in zip(top, queries, strict=True)])


def show(ax, image, colour, caption):
    ax.imshow(image, interpolation="nearest")
    ax.set(xticks=[], yticks=[])
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set(visible=True, color=colour, linewidth=3)
    ax.set_title(caption, fontsize=5.5, pad=2)


# %%
results_grid = [top_results(r) for r in grid]
cmap, n_top, step = (
    plt.get_cmap("RdYlGn"),
    results_grid[0][1].shape[1],
    len(grid) + 1,
)  # a spacer row per query
ratios = ([1] * len(grid) + [0.35]) * len(queries)
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
        show(
            row[0],
            test.image(q),
            "black",
            hierarchy.label(hierarchy.classes[labels[q]]) if mi == 0 else "",
        )
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
report.save_figure(
    fig, "06_retrieval_grid", cfg, dataset=grid[0].result["dataset"], seed=grid[0].seed
)
plt.show()

# %% [markdown]
# ## What the table shows
# The sentences below are generated from the numbers above. With the `smoke` profile (one epoch
# of a tiny CNN) every model is near chance and the comparisons are noise; the claims of the
# papers are tested by the `small` and `paper` profiles.


# %%
def clean(record):
    return {
        k: (
            None
            if isinstance(v, float) and np.isnan(v)
            else v.item()
            if isinstance(v, np.generic)
            else v
        )
        for k, v in record.items()
    }


rows = [clean(r) for r in results.to_dict(orient="records")]
hp_curves, chance_rows = {}, {}  # {dataset: {method: HP@k}}, {dataset: {protocol: random ranking}}
for (data_name, setup, label), curve in mean_curves.items():
    hp_curves.setdefault(data_name, {})[legend(setup, label)] = curve.tolist()
for (data_name, protocol), c in chance.items():
    chance_rows.setdefault(data_name, {})[protocol] = {
        "mahp": c["mahp"],
        "map": c["map"],
        "K": len(c["hp"]),
        **{f"recall@{r}": v for r, v in c["recall"].items()},
    }
report.save_metrics(
    {
        "rows": rows,
        "hp_curves": hp_curves,
        "chance": chance_rows,
        "random_mistake_severity": random_severity,
        "max_height": max_height,
        "datasets": list(dict.fromkeys(d for d, _ in panels)),
        "K_requested": K,
        "recall_ks": all_ks,
        "seeds": sorted({r.seed for r in runs}),
        "grid": {
            "dataset": shown(grid[0]),
            "runs": [r.name for r in grid],
            "methods": [label for label, _ in results_grid],
            "queries": queries.tolist(),
        },
        "rerank": {
            "dataset": rerank_dataset and catalog.title(rerank_dataset),
            "seed": rerank_seed,
            "methods": [row[0] for rows in rerank.values() for row in rows],
        },
    },
    "06_metrics",
    cfg,
)


# %%
def sentence(data_name, protocol, setup):
    """What one dataset's runs of one protocol and setup show (the methods are unique there)."""
    rows = results[
        (results.dataset == data_name) & (results.protocol == protocol) & (results.setup == setup)
    ].set_index("method")
    best, best_map, k = rows.mahp.idxmax(), rows["map"].idxmax(), int(rows.K.iloc[0])
    where = data_name if setup == "profile" else f"{data_name}, {setup} setup"
    text = (
        f"{where}, {protocol} ({len(rows)} method{'s' * (len(rows) > 1)}, {int(rows['test classes'].iloc[0])} test classes): the best mAHP@{k} is "
        f"{best}'s {rows.mahp[best]:.3f} against {chance[data_name, protocol]['mahp']:.3f} for a random ranking; "
        f"the best mAP is {best_map}'s {rows['map'][best_map]:.3f}"
    )
    if {"CE (classification features)", "CE + L2 norm"} <= set(rows.index):
        text += f"; L2-normalising CE's features moves mAHP from {rows.mahp['CE (classification features)']:.3f} to {rows.mahp['CE + L2 norm']:.3f}"
    for method in [
        m for m in rows.index if "re-rank" in m
    ]:  # one seed: against CE + L2 on that seed
        ce = per_seed[
            (per_seed.dataset == data_name)
            & (per_seed.setup == setup)
            & (per_seed.method == "CE + L2 norm")
            & (per_seed.seed == rerank_seed)
        ].mahp.iloc[0]
        text += f"; {method} (seed {rerank_seed}) has mAHP {rows.mahp[method]:.3f} against CE + L2 norm's {ce:.3f} on that seed"
    for method in [
        m for m in rows.index if m in ("L_CORR", "PA + HIER") or m.startswith(HIER_P[0])
    ]:
        if method in rows.index:
            text += f"; {method} ranks {int((rows.mahp > rows.mahp[method]).sum()) + 1} of {len(rows)} by mAHP (R@1 {rows['recall@1'][method]:.3f})"
    return text + "."


epochs = sorted({len(r.history) for r in runs})  # as trained, even if the profile changed since
backbones = sorted({r.result["recipe"]["backbone"] for r in runs})
print(
    f"What we found ({'/'.join(backbones)}, {'/'.join(map(str, epochs))} epoch(s), seeds {sorted({r.seed for r in runs})}): "
    + " ".join(
        sentence(*group)
        for group in dict.fromkeys(
            zip(results.dataset, results.protocol, results.setup, strict=True)
        )
    )
)
