import math

import numpy as np
import pandas as pd
import pytest
import torch

from hierstudy import config, runs
from hierstudy import proxy_tree as pt
from hierstudy.datasets import study_splits
from hierstudy.datasets.protocols import zero_shot_classes
from hierstudy.geometry import C
from hierstudy.losses.hier import HIER
from hierstudy.proxy_tree import hier_proxy_tree, nearest_smaller_proxy, proxy_tree


def planted():
    """Root proxy p0 at the origin, family proxies p1, p2 at radius 1, one proxy per class near
    radius 1.4 (p3-p6) and p7 above no class; four classes of 5 samples at radius 1.8."""
    proxies = torch.tensor(
        [
            [0.0, 0.0],
            [1.0, 0.0],
            [0.0, 1.0],
            [1.4, 0.05],
            [1.4, -0.05],
            [-0.03, 1.4],
            [0.03, 1.4],
            [-1.0, -1.0],
        ],
        dtype=torch.float64,
    )
    centres = torch.tensor([[1.8, 0.3], [1.8, -0.3], [-0.3, 1.8], [0.3, 1.8]], dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    samples = centres.repeat_interleave(5, 0) + 0.01 * torch.randn(
        20, 2, generator=gen, dtype=torch.float64
    )
    return proxies, samples, np.repeat(np.arange(4), 5)


PLANTED_EDGES = [
    ("p0", "p1"),
    ("p0", "p2"),
    ("p1", "p3"),
    ("p1", "p4"),
    ("p2", "p5"),
    ("p2", "p6"),
    ("p3", "a"),
    ("p4", "b"),
    ("p5", "c"),
    ("p6", "d"),
]  # p7 pruned


def test_planted_two_level_tree_is_recovered_edge_for_edge():
    proxies, samples, labels = planted()
    h = proxy_tree(samples, labels, proxies, ["a", "b", "c", "d"])
    assert sorted(h.edges()) == PLANTED_EDGES and h.root == "p0"


def test_points_with_no_smaller_proxy_get_minus_one():
    proxies = torch.tensor([[0.5, 0.0], [1.0, 0.0]], dtype=torch.float64)
    points = torch.tensor([[0.1, 0.0], [1.5, 0.0], [0.0, 0.8]], dtype=torch.float64)
    np.testing.assert_array_equal(nearest_smaller_proxy(points, proxies), [-1, 1, 0])


def test_hier_proxy_tree_reads_the_trained_proxies_and_training_embedding_of_a_run(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("HIERSTUDY_ROOT", str(tmp_path))
    cfg = config.load("smoke", per_class={"train": 4, "val": 2, "test": 2}, epochs=1, seeds=(0,))
    run = runs.train(cfg, "hier", 0)
    classes = study_splits.hiershapes_splits(cfg)["train"].hierarchy.classes
    seen = [classes[i] for i in zero_shot_classes(len(classes))[0]]
    # by hand, from the checkpoint: the HIER regulariser is the second loss term (PA, HIER)
    state = run.checkpoint()["losses"][1]
    reg = HIER(state["proxies"].shape[1], state["proxies"].shape[0])
    reg.load_state_dict(state)
    with torch.no_grad():
        proxies = reg.proxy_points().double()
    train = run.features("train")
    expected = proxy_tree(
        torch.from_numpy(train["embedding"]).double(), train["labels"], proxies, seen
    )
    tree = hier_proxy_tree(run, seen)
    assert list(tree.classes) == list(expected.classes) == seen
    assert sorted(tree.edges()) == sorted(expected.edges())
    with pytest.raises(ValueError, match=f"trained on {len(seen)} classes, got {len(classes)}"):
        hier_proxy_tree(run, classes)


def hier_run(folder, proxies, samples, labels, head="hyperbolic") -> runs.Run:
    """A finished ``hier`` run whose HIER term has ``proxies`` (ball points, stored as the
    tangent vectors the loss maps with expmap0) and whose training embedding is ``samples``."""
    norm = proxies.norm(dim=1, keepdim=True).clamp_min(1e-12)
    tangent = torch.atanh(math.sqrt(C) * norm) * proxies / (math.sqrt(C) * norm)
    dim = proxies.shape[1]
    checkpoint = {"epoch": 1, "model": {}, "optimizer": {}, "scaler": None, "rng": {}}
    checkpoint |= {"history": [], "config": {}, "losses": [{}, {"proxies": tangent.float()}]}
    torch.save(checkpoint, folder / "checkpoint.pt")
    np.savez(folder / "features_train.npz", embedding=samples.float().numpy(), labels=labels)
    terms = (runs.TermRecord("pa", 1.0, "embedding", 0), runs.TermRecord("hier", 1.0, "e", 0))
    recipe = runs.RecipeRecord("tiny_cnn", head, 4, dim, terms)
    record = {"name": "hier", "method": "hier", "seed": 0, "dataset": "hiershapes", "knobs": {}}
    record |= {"retrieval": "embedding", "metric": "hyperbolic", "test_acc": None}
    record |= {"val_acc_last5": None, "zero_shot": True, "train_classes": 4, "setup": {}}
    record = runs.RunRecord.from_dict({**record, "recipe": recipe.to_dict()})
    return runs.Run(folder, record, pd.DataFrame())


def test_tree_of_a_hier_run_reads_its_trained_proxies_and_training_embedding(tmp_path, monkeypatch):
    proxies, samples, labels = planted()
    run = hier_run(tmp_path, proxies, samples, labels)
    h = hier_proxy_tree(run, ["a", "b", "c", "d"])
    assert sorted(h.edges()) == PLANTED_EDGES and h.root == "p0"
    # beyond TREE_SAMPLES training samples, a seeded draw of them votes
    monkeypatch.setattr(pt, "TREE_SAMPLES", 7)
    keep = np.sort(np.random.default_rng(0).permutation(20)[:7])
    points = run.loss("hier").proxy_points().detach().double()
    drawn = torch.from_numpy(samples.float().numpy()[keep]).double()
    expected = proxy_tree(drawn, labels[keep], points, ["a", "b", "c", "d"])
    assert hier_proxy_tree(run, ["a", "b", "c", "d"]).edges() == expected.edges()
    sphere = hier_run(tmp_path, proxies, samples, labels, head="embedding")  # HIERsph: no ball
    with pytest.raises(runs.RunError, match="no Poincaré ball"):
        hier_proxy_tree(sphere, ["a", "b", "c", "d"])
