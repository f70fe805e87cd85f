"""The hierarchy-aware ranking on corrupted images: Fig. 3 of Venkataramanan et al. (ICVS 2023).

The corruptions are those of Sec. 3.3 and 4.2 (:mod:`hierstudy.datasets.corruptions`: an 11 x 11
blur, a saturation factor per image, a 70 x 70-at-224-px black square). Two protocols:

* **retrained**, the paper's: Sec. 4.2 applies each corruption "to all the images" and "the
  networks were retrained on the modified images, with the same training parameters". One network
  per corruption, ``runs.train(..., corruption=name)`` (each image corrupted once, with its own
  seed, before augmentation); the paper does not say whether the hierarchy is rebuilt, and we
  rebuild it (PCA, class Gaussians, merging at the same t, Ward's tree) from that network's
  training features, since the method (Sec. 3.1) builds it from the latent space it ranks in.
* **corrupted test images**, cheaper: the clean-trained network, its hierarchies and its training
  Gaussians; only the test features are re-extracted, from corrupted test images.

Either way the rankings are cosine and eq. 6 with the visual, semantic and Ward trees
(:func:`~hierstudy.evaluation.rerank.rankings`), scored as Fig. 2
(:class:`~hierstudy.evaluation.rerank.RetrievalScores`), with the share of test images whose leaf
(eq. 4) is their class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, TensorDataset

from hierstudy import runs
from hierstudy.config import Profile
from hierstudy.datasets.corruptions import corrupt
from hierstudy.datasets.study_splits import splits, study_data, tensors
from hierstudy.evaluation.rerank import RetrievalScores, VisualReranker, rankings
from hierstudy.features import extract, make_loader
from hierstudy.hierarchy import Hierarchy
from hierstudy.hierarchy.compare import triplet_agreement
from hierstudy.setups import setup_for

BATCH = 256  # images per batch of the re-extraction


class RobustnessError(ValueError):
    """A network's test set is not the clean run's."""


def protocol(retrained: bool) -> str:
    """The protocol's name in the tables: "retrained" or "corrupted test images"."""
    return "retrained" if retrained else "corrupted test images"


def test_images(
    profile: Profile, run: runs.Run, corruption: str | None = None, *, retrained: bool = False
) -> Dataset:
    """The test images of ``run``'s dataset as its network reads them, clean when ``corruption``
    is None. A corrupted set is the one ``runs.train(..., corruption=...)`` extracts (each image
    with its own seed), except on HierShapes for the clean-trained network (not ``retrained``):
    there the whole test batch is corrupted at once with the run's seed."""
    dataset, seed = run.record.dataset, run.seed
    setup = setup_for(profile, run.method, dataset, run.record.paper)
    if corruption is None:
        test = splits(profile, dataset, setup, seed=seed)["test"]
        return tensors(test) if dataset == "hiershapes" else test
    if dataset == "hiershapes" and not retrained:
        clean = test_images(profile, run)
        images = corrupt(clean.tensors[0].numpy(), corruption, seed=seed)
        return TensorDataset(torch.from_numpy(images), clean.tensors[1])
    data = study_data(profile, dataset, setup, zero_shot=False, seed=seed, corruption=corruption)
    return data.extract["test"]


def picture(data: Dataset, i: int) -> np.ndarray:
    """uint8 [H, W, 3] image ``i`` of a :func:`test_images` set, before the network's resizing."""
    if isinstance(data, TensorDataset):
        return data.tensors[0][i].numpy().transpose(1, 2, 0)
    return data.image(i)


def test_features(profile: Profile, run: runs.Run, data: Dataset, model=None) -> np.ndarray:
    """[N, D] float64 penultimate features of ``data`` under ``run``'s network (``model``: that
    network, rebuilt from its checkpoint when None), extracted as ``runs.train`` does."""
    workers = 0 if run.record.dataset == "hiershapes" else profile.num_workers
    loader = make_loader(data, BATCH, shuffle=False, num_workers=workers)
    model = run.model() if model is None else model
    return extract(model, loader, profile.torch_device())["features"].astype(np.float64)


@dataclass(frozen=True)
class Robustness:
    """What :func:`robustness` measured.

    Attributes:
        table: one row per corruption ("none": the clean images) and ranking: "variant",
            "hierarchy", "alpha", "corruption", the :class:`RetrievalScores` columns and
            "leaf accuracy".
        networks: retrained only (else empty), one row per network: "corruption", "run",
            "test accuracy", "PCA axes", "nodes per level", "triplet agreement with semantic".
        drift: corrupted test images only (else None): the largest absolute difference between
            the stored clean test features and those re-extracted with the rebuilt network.
        protocol: :func:`protocol`.
    """

    table: pd.DataFrame
    networks: pd.DataFrame
    drift: float | None
    protocol: str


def robustness(
    profile: Profile,
    run: runs.Run,
    corruptions,
    reranker: VisualReranker,
    scores: RetrievalScores,
    alpha: float,
    *,
    retrained: bool,
    force: bool = False,
) -> Robustness:
    """Fig. 3: cosine and eq. 6 (visual, semantic, Ward) on the clean and each corrupted test set.

    ``run``: the clean network; ``reranker``: fitted on its training features (its t, covariance
    and PCA variance are reused for the retrained networks); ``scores``: of its test labels and
    semantic taxonomy. ``retrained`` chooses the protocol (module docstring); ``force`` retrains
    those networks.
    """
    semantic, feats = scores.semantic, run.features("test")["features"].astype(np.float64)
    cases, networks, drift = [("none", feats, reranker)], [], None
    if retrained:
        networks.append(_network("none", run, reranker, semantic))
        for name in corruptions:
            net, fitted, x = _retrained(profile, run, name, reranker, scores.labels, force)
            networks.append(_network(name, net, fitted, semantic))
            cases.append((name, x, fitted))
    else:
        model = run.model()
        again = test_features(profile, run, test_images(profile, run), model)
        drift = float(np.abs(again - feats).max())
        for name in corruptions:
            x = test_features(profile, run, test_images(profile, run, name), model)
            cases.append((name, x, reranker))
    rows = []
    for name, x, r in cases:
        variants = {"cosine": ("none", 0.0, "cosine"), **rankings(r, alpha, semantic)}
        leaf = float((r.leaves(x) == scores.labels).mean())
        rows += [row | {"leaf accuracy": leaf} for row in scores.rows(x, variants, corruption=name)]
    return Robustness(pd.DataFrame(rows), pd.DataFrame(networks), drift, protocol(retrained))


def _retrained(profile, run, corruption, reranker, labels, force):
    """The network retrained on ``corruption`` (same method, seed, dataset, setup and knobs), the
    re-ranker rebuilt from its training features (same t, covariance, PCA variance) and its
    [N, D] float64 test features."""
    net = runs.train(
        profile,
        run.method,
        run.seed,
        force=force,
        dataset=run.record.dataset,
        paper=run.record.paper,
        corruption=corruption,
        **run.record.knobs,
    )
    train, test = net.features("train"), net.features("test")
    if not np.array_equal(test["labels"], labels):
        raise RobustnessError(f"{net.name} was tested on other images than {run.name}")
    fitted = VisualReranker(
        reranker.threshold,
        covariance=reranker.covariance,
        variance=reranker.variance,
        shrinkage=reranker.shrinkage,
    ).fit(train["features"], train["labels"], reranker.classes)
    return net, fitted, test["features"].astype(np.float64)


def _network(corruption: str, net: runs.Run, reranker: VisualReranker, semantic: Hierarchy):
    """The retrained table's row of one network and the hierarchy rebuilt from it."""
    return {
        "corruption": corruption,
        "run": net.name,
        "test accuracy": net.record.test_acc,
        "PCA axes": reranker.pca.n_components,
        "nodes per level": " → ".join(map(str, reranker.visual.levels)),
        "triplet agreement with semantic": triplet_agreement(reranker.visual.hierarchy, semantic),
    }
