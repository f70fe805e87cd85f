"""Notebook 05's re-ranking and robustness pipeline as written before issue 17, not library code.

The reference for tests/test_evaluation_rerank.py and tests/test_evaluation_robustness.py: the leaf of each image
travels as an extra last column of its feature row, the hierarchies come straight from
``visual_hierarchy``, the mAP@k columns from one ``retrieval_metrics`` call per ranking, and the
robustness rows from the notebook's ``corrupted_test`` / ``test_features`` / ``method_on``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import TensorDataset

from hierstudy import visual_hierarchy as vh
from hierstudy.datasets import study_splits
from hierstudy.datasets.corruptions import corrupt
from hierstudy.evaluation import metrics
from hierstudy.features import extract, make_loader
from hierstudy.hierarchy import compare


def with_leaves(x, leaf):
    return np.hstack([x, leaf[:, None]])


def eq6(hierarchy, a):
    def distance(q, g):
        ql, gl = q[:, -1].long(), g[:, -1].long()
        return vh.ranking_distance(q[:, :-1], g[:, :-1], ql, gl, hierarchy, a)

    return distance


def d_h_only(hierarchy):
    return lambda q, g: vh.hierarchical_distance(q[:, -1].long(), g[:, -1].long(), hierarchy)


def fit(train, y_train, test, classes, t, covariance):
    """PCA, class Gaussians, test leaves (eq. 4), the tree at t and Ward's tree."""
    pca = vh.fit_pca(train, 0.95)
    x_train = pca.transform(train)
    gaussians = vh.fit_class_gaussians(x_train, y_train, len(classes), covariance=covariance)
    leaves = vh.assign_leaves(pca.transform(test), gaussians)
    built = vh.build_visual_hierarchy(x_train, y_train, classes, t, covariance=covariance)
    ward = compare.ward_hierarchy(gaussians.means, classes)
    return pca, gaussians, leaves, built, ward


def evaluate(x, metric, labels, similarity, K, map_ks) -> dict:
    m = metrics.retrieval_metrics(
        x, labels, similarity=similarity, metric=metric, K=K, recall_ks=(1,), map_ks=map_ks
    )
    k_top = max(map_ks)
    return {
        "mAP": m["map"],
        f"mAP@{k_top}": m["map_at_k"][k_top],
        f"mAP@{k_top} (÷k)": m["map_at_k_divk"][k_top],
        "R@1": m["recall"][1],
        f"mAHP@{K}": m["mahp"],
        "map_at_k": [m["map_at_k"][k] for k in map_ks],
        "map_at_k_divk": [m["map_at_k_divk"][k] for k in map_ks],
    }


def merging_row(built, covariance, t, semantic) -> dict:
    papers = {0.30: "CUB-200-2011", 0.20: "CIFAR-100"}
    return {
        "covariance": covariance,
        "t": t,
        "paper": papers.get(t, ""),
        "nodes per level": " → ".join(map(str, built.levels)),
        "nodes at level 1": built.levels[min(1, len(built.levels) - 1)],
        "merge levels": len(built.levels) - 1,
        "root added": built.root_added,
        "height": built.hierarchy.max_height,
        "triplet agreement (resolved in both)": compare.triplet_agreement(
            built.hierarchy, semantic
        ),
        "triplet agreement (resolved in either)": compare.triplet_agreement(
            built.hierarchy, semantic, among="either"
        ),
        "cophenetic correlation": compare.cophenetic_correlation(built.hierarchy, semantic),
    }


def robustness_rows(corruption, feats, leaf, trees, alpha, labels, grading) -> list[dict]:
    """``grading``: (similarity, K, map_ks); ``trees``: {"visual", "semantic", "Ward"}."""
    rows = with_leaves(feats, leaf)
    ranked = {"cosine": ("none", 0.0, feats, "cosine")}
    ranked |= {f"cosine + α·D_H ({h})": (h, alpha, rows, eq6(t, alpha)) for h, t in trees.items()}
    return [
        {
            "variant": name,
            "hierarchy": h,
            "alpha": a,
            "corruption": corruption,
            **evaluate(x, d, labels, *grading),
            "leaf accuracy": float((leaf == labels).mean()),
        }
        for name, (h, a, x, d) in ranked.items()
    ]


def clean_network_features(cfg, run, name, seed):
    """HierShapes, protocol "corrupted test images": the whole test batch corrupted with the
    notebook's seed, features of the clean network (float64)."""
    clean = study_splits.tensors(study_splits.splits(cfg)["test"])
    data = clean
    if name is not None:
        x = corrupt(clean.tensors[0].numpy(), name, seed=seed)
        data = TensorDataset(torch.from_numpy(x), clean.tensors[1])
    loader = make_loader(data, 256, shuffle=False, num_workers=0)
    return extract(run.model(), loader, cfg.torch_device())["features"].astype(np.float64)


def method_on(net, classes, threshold, covariance, semantic):
    """The method rebuilt on one network: (summary row, test features, leaves, trees)."""
    train_n, test_n = net.features("train"), net.features("test")
    p = vh.fit_pca(train_n["features"], 0.95)
    v = vh.build_visual_hierarchy(
        p.transform(train_n["features"]),
        train_n["labels"],
        classes,
        threshold,
        covariance=covariance,
    )
    feats = test_n["features"].astype(np.float64)
    leaf = vh.assign_leaves(p.transform(feats), v.gaussians)
    summary = {
        "run": net.name,
        "test accuracy": net.record.test_acc,
        "PCA axes": p.n_components,
        "nodes per level": " → ".join(map(str, v.levels)),
        "triplet agreement with semantic": compare.triplet_agreement(v.hierarchy, semantic),
    }
    trees = {
        "visual": v.ranking_hierarchy,
        "semantic": semantic,
        "Ward": compare.ward_hierarchy(v.gaussians.means, classes),
    }
    return summary, feats, leaf, trees
