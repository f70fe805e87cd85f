"""The study's shared protocol: train or reload each method on the profile's data.

Every notebook that trains calls :func:`train` with a method name from :data:`METHODS`, a seed and
the method's knobs; the run lives in ``runs/<profile>/<dataset>/<run name>/seed<k>/``:

* ``checkpoint.pt`` and ``metrics.csv`` — written by :func:`hierstudy.train.fit` every epoch, so an
  interrupted run resumes where it stopped;
* ``features_<split>.npz`` — penultimate features, embedding, logits and labels of the train and
  test splits, extracted once after training (what notebooks 05-08 evaluate);
* ``result.json`` — written last (atomically): the marker that the run is complete, with the
  recipe, the final accuracies and which representation retrieval should use.

A complete run is reloaded instead of retrained unless ``force=True``. Same seed, same profile and
same knobs on CPU give the same weights (the engine's guarantee) and hence the same tables.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from .config import Profile
from .datasets import HierDataset, HierShapes, MPerClassBatchSampler, catalog, paper_transforms
from .datasets.base import stratified_split
from .embeddings import class_embeddings
from .files import atomic_write, save_npz
from .hierarchy import Hierarchy
from .losses.dml import UniformTupleLoss
from .losses.hier import HIER, HIERSph
from .losses.kfr import KFRLoss
from .losses.proxy import MultiSimilarity, ProxyAnchor
from .losses.semantic import CenterLoss, CorrelationLoss, nearest_class_prediction
from .models import build_backbone, build_model
from .setups import METHOD_PAPER, Setup, paper_setup, profile_setup
from .train import Term, TrainConfig, extract, fit, load_checkpoint, make_loader
from .visual_hierarchy import CORRUPTIONS, corrupt


class ExperimentError(ValueError):
    """An unknown method or knob, or a run directory that cannot be used."""


@dataclass
class Context:
    """What a method needs to build its head and loss terms."""

    hierarchy: Hierarchy
    epochs: int
    seed: int
    backbone: str
    backbone_kw: dict = field(default_factory=dict)
    lr: float = 1e-3  # the base learning rate

    @property
    def feature_dim(self) -> int:
        return build_backbone(self.backbone, **self.backbone_kw)[1]

    @property
    def num_classes(self) -> int:
        return len(self.hierarchy.classes)

    def generator(self, offset: int = 0) -> torch.Generator:
        return torch.Generator().manual_seed(10_000 * self.seed + offset)


@dataclass
class Recipe:
    """A method's head, loss terms and the representation retrieval ranks with."""

    head: str
    terms: list[Term]
    retrieval: str = "features"  # ModelOutput field
    metric: str = "cosine"
    embed_dim: int = 128
    train: dict = field(default_factory=dict)  # TrainConfig overrides
    per_class: int | None = None  # m-per-class batches (m images of each class in a batch)
    model: dict = field(default_factory=dict)  # build_model options of the head


def _ce(ctx: Context) -> Recipe:
    """Plain cross-entropy: the baseline of every paper."""
    return Recipe("linear", [Term("ce", nn.CrossEntropyLoss())])


def _kfr(ctx: Context, alpha: float = 30.0, phase1: float = 0.5, standardise: str = "vector"):
    """KFR (000_352f6443065d4c19.txt eq. 7): CE first, then CE + α·ℓ_qtr on the features.

    ``phase1`` is the fraction of the epochs trained with CE alone (Sec. IV-B's two phases).
    """
    return add_kfr(
        Recipe("linear", [Term("ce", nn.CrossEntropyLoss())]), ctx, alpha, phase1, standardise
    )


def add_kfr(
    recipe: Recipe, ctx: Context, alpha: float, phase1: float = 0.5, standardise: str = "vector"
) -> Recipe:
    """``recipe`` + α·ℓ_qtr (eq. 6) on the backbone features from epoch ``phase1 · epochs`` on.

    The ``kfr=α`` knob of :func:`train` puts KFR's term on top of any method (notebook 08).
    """
    if alpha > 0:
        loss = KFRLoss(
            ctx.hierarchy.path_distance(k=1.0), standardise=standardise, generator=ctx.generator(1)
        )
        start = int(round(phase1 * ctx.epochs))
        recipe.terms.append(Term("kfr", loss, weight=alpha, input="features", start_epoch=start))
    return recipe


def _corr(ctx: Context) -> Recipe:
    """Barz & Denzler L_CORR (001_078dd69429c88981.txt eq. 8) towards Algorithm 1's embeddings."""
    phi = class_embeddings(ctx.hierarchy.similarity())
    return Recipe(
        "embedding",
        [Term("corr", CorrelationLoss(phi), input="embedding")],
        retrieval="embedding",
        metric="dot",
        embed_dim=ctx.num_classes,
    )


def _corr_cls(ctx: Context, lam: float = 0.1, relu_bn: bool = False) -> Recipe:
    """L_CORR+CLS (001_078dd69429c88981.txt eq. 9): L_CORR + λ·CE on a softmax over z, λ = 0.1.

    ``relu_bn=True``: the authors' code puts ReLU → BatchNorm between z and the classifier.
    """
    recipe = _corr(ctx)
    recipe.head = "embedding+linear"
    recipe.terms.append(Term("ce", nn.CrossEntropyLoss(), weight=lam))
    recipe.model = {"relu_bn_classifier": relu_bn}
    return recipe


def _center(ctx: Context, lam: float = 0.01) -> Recipe:
    """CE + λ·center loss (Wen et al. 2016) on the features: a baseline of Barz's Tables 1-3."""
    centers = CenterLoss(ctx.num_classes, ctx.feature_dim)
    return Recipe(
        "linear",
        [Term("ce", nn.CrossEntropyLoss()), Term("center", centers, weight=lam, input="features")],
    )


def _dml(ctx: Context, loss: str = "triplet_l2", weight: float = 1.0) -> Recipe:
    """CE + a classical DML term on the features, tuples drawn like KFR's (KFR Table II)."""
    term = UniformTupleLoss(loss, generator=ctx.generator(2))
    return Recipe(
        "linear",
        [Term("ce", nn.CrossEntropyLoss()), Term(loss, term, weight=weight, input="features")],
    )


# HIER's absolute learning rates (HIER.md: AdamW 1e-4, Proxy-Anchor proxies ×1e4 = 1, HIER
# proxies ×50 = 5e-3), kept whatever the base lr: at the study's 1e-3 the multipliers are 1e3, 5.
_PA_LR, _HIER_LR = 1.0, 5e-3


def _metric_loss(ctx: Context, metric: str, dim: int):
    if metric == "pa":  # Proxy-Anchor (Kim et al. 2020), alpha 32, delta 0.1
        return ProxyAnchor(
            ctx.num_classes, dim, lr_scale=_PA_LR / ctx.lr, generator=ctx.generator(3)
        )
    if metric == "ms":  # Multi-Similarity (Wang et al. 2019), alpha 2, beta 50, base 0.5
        return MultiSimilarity()
    raise ExperimentError(f"metric loss must be 'pa' or 'ms', not {metric!r}")


def _dml_zero_shot(ctx: Context, metric: str = "pa", dim: int = 128) -> Recipe:
    """Proxy-Anchor or Multi-Similarity alone on the L2-normalised embedding (HIER's baselines)."""
    term = Term(metric, _metric_loss(ctx, metric, dim), input="embedding")
    return Recipe(
        "embedding", [term], retrieval="embedding", metric="cosine", embed_dim=dim, per_class=2
    )


def hier_proxies(num_classes: int) -> int:
    """HIER's number of hierarchical proxies for ``num_classes`` training classes: about 5 per
    class, rounded up to a power of two, at most the paper's 512 — so 512 on all four of its
    datasets (CUB and Cars train on ~100 classes, SOP and In-shop on thousands) and 128 on
    HierShapes' 17, where the O(P²) proxy term at P = 512 dominated a run's time."""
    return min(512, 2 ** math.ceil(math.log2(5 * max(num_classes, 1))))


def _hier(
    ctx: Context,
    metric: str = "pa",
    dim: int = 128,
    lam: float = 0.5,
    proxies: int | None = None,
    sphere: bool = False,
) -> Recipe:
    """L_metric + λ·L_HIER (003_7a830569df0e77f8.txt; written out in methods/HIER.md), λ = 0.5.

    Poincaré-ball head (c = 0.1), retrieval by hyperbolic distance; ``sphere=True`` is HIERsph
    (Table 2's ablation: unit sphere, cosine distance); ``proxies`` None: :func:`hier_proxies`.
    """
    kind = HIERSph if sphere else HIER
    proxies = proxies or hier_proxies(ctx.num_classes)
    reg = kind(dim, proxies, lr_scale=_HIER_LR / ctx.lr, generator=ctx.generator(4))
    terms = [
        Term(metric, _metric_loss(ctx, metric, dim), input="embedding"),
        Term("hier", reg, weight=lam, input="embedding"),
    ]
    return Recipe(
        "embedding" if sphere else "hyperbolic",
        terms,
        retrieval="embedding",
        metric="cosine" if sphere else "hyperbolic",
        embed_dim=dim,
        per_class=2,
    )


METHODS: dict[str, Callable[..., Recipe]] = {
    "ce": _ce,
    "kfr": _kfr,
    "dml": _dml,
    "center": _center,
    "dml_zero_shot": _dml_zero_shot,
    "hier": _hier,
    "corr": _corr,
    "corr_cls": _corr_cls,
}
# Zero-shot retrieval protocol (HIER, Sec. 4): train on the first half of the classes, test on
# the rest; the model never sees a test class.
ZERO_SHOT = {"dml_zero_shot", "hier"}


# ---------------------------------------------------------------------------------- data
def hiershapes_splits(profile: Profile, seed: int = 0) -> dict[str, HierShapes]:
    """The profile's HierShapes train / val / test splits (generated once, then cached)."""
    return {
        split: HierShapes(
            profile.data_dir,
            split,
            seed=seed,
            image_size=profile.image_size,
            n_per_class=profile.per_class,
        )
        for split in ("train", "val", "test")
    }


def splits(
    profile: Profile, dataset: str = "hiershapes", setup: Setup | None = None, seed: int = 0
) -> dict[str, HierDataset | None]:
    """Train / val / test of ``dataset`` with ``setup``'s evaluation transform (no augmentation).

    HierShapes: :func:`hiershapes_splits`. A paper's dataset: :func:`catalog.open_splits`, whose
    ``test`` hierarchy is the one a run's test features are labelled in.
    """
    if dataset == "hiershapes":
        return dict(hiershapes_splits(profile))
    if setup is None:
        raise ExperimentError(f"dataset {dataset!r} needs the setup whose transform to apply")
    evaluation = paper_transforms(setup.transform, False, size=setup.image_size)
    return catalog.open_splits(dataset, root=profile.data_dir, transform=evaluation, seed=seed)


def evaluation_set(profile: Profile, dataset: str, zero_shot: bool = False) -> HierDataset:
    """The images a run's ``features_test`` rows stand for, in order, with the labels and the
    ``hierarchy`` whose class order those labels index — what every run on ``dataset`` is
    evaluated against, without a model.

    HierShapes: the test split (full taxonomy, labels kept), for ``zero_shot`` runs only its
    unseen second half of the classes. A paper's dataset: its test split (``zero_shot`` is the
    dataset's own protocol and must agree).
    """
    if dataset != "hiershapes":
        if zero_shot != (dataset in catalog.ZERO_SHOT):
            asked, kind = ("zero-shot", "closed-set") if zero_shot else ("closed-set", "zero-shot")
            raise ExperimentError(f"{dataset!r} has no {asked} test set: its runs are {kind}")
        return catalog.open_split(dataset, "test", root=profile.data_dir)
    test = hiershapes_splits(profile)["test"]
    return test.subset(np.flatnonzero(test.labels >= len(test.classes) // 2)) if zero_shot else test


def tensors(dataset: HierShapes, classes: np.ndarray | None = None, relabel: bool = True):
    """uint8 images [N, 3, H, W] and labels (the model scales uint8 itself: loading is free).

    ``classes``: keep only these labels; ``relabel`` numbers them 0.. in that order.
    """
    keep = (
        np.ones(len(dataset.labels), bool) if classes is None else np.isin(dataset.labels, classes)
    )
    labels = dataset.labels[keep]
    if classes is not None and relabel:
        labels = np.searchsorted(np.asarray(classes), labels)
    images = torch.from_numpy(np.ascontiguousarray(dataset.images[keep].transpose(0, 3, 1, 2)))
    return TensorDataset(images, torch.from_numpy(labels))


@dataclass
class StudyData:
    """What a run trains and is evaluated on: the training classes' hierarchy, the (augmented)
    training set and its labels, the validation set (None for zero-shot), the sets whose
    features are saved (``train``: training classes; ``test``: the evaluated classes) and the
    hierarchy whose class order the ``test`` labels index."""

    hierarchy: Hierarchy
    train: Dataset
    train_labels: np.ndarray
    val: Dataset | None
    extract: dict[str, Dataset]
    test_hierarchy: Hierarchy


def study_data(
    profile: Profile,
    dataset: str,
    setup: Setup,
    zero_shot: bool,
    seed: int = 0,
    corruption: str | None = None,
) -> StudyData:
    """The :class:`StudyData` of ``dataset``. HierShapes' zero-shot protocol trains on the first
    half of the classes and tests on the rest (labels kept); a paper's zero-shot dataset brings
    its own class split (labels numbered within each split).

    ``corruption`` (a name of :data:`~hierstudy.visual_hierarchy.CORRUPTIONS`): every image of
    every split is corrupted once, with a seed fixed per image, before any augmentation — the
    modified datasets Venkataramanan et al. retrain on (002_da6e8fd647b41bd8.txt Sec. 4.2).
    """
    data = _study_data(profile, dataset, setup, zero_shot, seed)
    if corruption is None:
        return data
    if corruption not in CORRUPTIONS:
        raise ExperimentError(f"unknown corruption {corruption!r}; choose one of {CORRUPTIONS}")
    done: dict[int, Dataset] = {}  # a split used twice (train and its extraction) stays one

    def corrupted(part: Dataset | None, offset: int) -> Dataset | None:
        if part is None or id(part) in done:
            return None if part is None else done[id(part)]
        if isinstance(part, TensorDataset):
            out = TensorDataset(
                corrupt(part.tensors[0], corruption, seed=offset), *part.tensors[1:]
            )
        else:
            out = copy.copy(part)
            out.image = functools.partial(_corrupted_image, part.image, corruption, offset)
        done[id(part)] = out
        return out

    test = corrupted(data.extract["test"], 2 * _SPLIT_SEEDS)  # first: val may be this object
    return dataclasses.replace(
        data,
        train=corrupted(data.train, 0),
        val=corrupted(data.val, _SPLIT_SEEDS),
        extract={"train": corrupted(data.extract["train"], 0), "test": test},
    )


_SPLIT_SEEDS = 10**7  # corruption seeds: train images 0.., held-out val 1e7.., test 2e7..


def _corrupted_image(image: Callable, kind: str, offset: int, i: int) -> np.ndarray:
    """uint8 [H, W, C] image ``i`` of a file dataset, corrupted with its own seed."""
    return corrupt(image(i).transpose(2, 0, 1)[None], kind, seed=offset + i)[0].transpose(1, 2, 0)


def _study_data(profile: Profile, dataset: str, setup: Setup, zero_shot: bool, seed: int):
    if dataset == "hiershapes":
        parts = hiershapes_splits(profile)
        full = parts["train"].hierarchy
        n = len(full.classes)
        seen = np.arange(n // 2 if zero_shot else n)
        hierarchy = full.restrict([full.classes[i] for i in seen]) if zero_shot else full
        train_set = tensors(parts["train"], seen)
        unseen = np.setdiff1d(np.arange(n), seen) if zero_shot else seen
        extract = {
            "train": tensors(parts["train"], seen, relabel=False),
            "test": tensors(parts["test"], unseen, relabel=False),
        }
        val = None if zero_shot else tensors(parts["val"])
        return StudyData(hierarchy, train_set, train_set.tensors[1].numpy(), val, extract, full)
    if zero_shot != (dataset in catalog.ZERO_SHOT):
        kind = "zero-shot retrieval" if zero_shot else "classification"
        raise ExperimentError(
            f"dataset {dataset!r} has no {kind} protocol: use one of "
            f"{catalog.ZERO_SHOT if zero_shot else catalog.CLASSIFICATION}"
        )
    parts = splits(profile, dataset, setup, seed)
    train, val = parts["train"], parts["val"]
    if setup.validation and not zero_shot:  # held out of the training images, seeded by the run
        kept, held = stratified_split(train.labels, 1.0 - setup.validation, seed)
        if not len(held):
            raise ExperimentError(
                f"holding out {setup.validation:.0%} of {dataset!r}'s "
                f"{len(train)} training images leaves no validation image"
            )
        train, val = train.subset(kept), train.subset(held)
    train_set = copy.copy(train)  # the same files, read once, with the augmentation
    train_set.transform = paper_transforms(setup.transform, True, size=setup.image_size)
    return StudyData(
        train_set.hierarchy,
        train_set,
        train_set.labels,
        val,
        {"train": train, "test": parts["test"]},
        parts["test"].hierarchy,
    )


# ----------------------------------------------------------------------------------- runs
@dataclass
class Run:
    """A finished run: its directory, per-epoch history and result record."""

    method: str
    seed: int
    run_dir: Path
    history: pd.DataFrame
    result: dict

    @property
    def name(self) -> str:
        """The run name, prefixed by its paper's setup on a paper's dataset (``barz/ce``)."""
        paper = self.result.get("paper")
        return f"{paper}/{self.result['name']}" if paper else self.result["name"]

    def features(self, split: str = "test") -> dict[str, np.ndarray]:
        with np.load(self.run_dir / f"features_{split}.npz") as data:
            return {k: data[k] for k in data.files}

    def retrieval_features(self, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
        """(representation the method retrieves with, labels)."""
        feats = self.features(split)
        return feats[self.result["retrieval"]], feats["labels"]

    def checkpoint(self) -> dict:
        """The final checkpoint: ``model`` and ``losses`` (state dicts, e.g. HIER's proxies)."""
        return load_checkpoint(self.run_dir / "checkpoint.pt")

    def model(self):
        """The trained network (eval mode), rebuilt from the recipe and the checkpoint."""
        recipe = self.result["recipe"]
        net = build_model(
            recipe["backbone"],
            recipe["num_classes"],
            recipe["head"],
            embed_dim=recipe["embed_dim"],
            **recipe.get("model", {}),
        )
        net.load_state_dict(self.checkpoint()["model"])
        return net.eval()


def run_name(method: str, knobs: dict) -> str:
    """``kfr`` or ``kfr-alpha3`` — the method plus its non-default knobs, sorted."""
    return "-".join(
        [
            method,
            *(
                f"{k}{v:g}" if isinstance(v, float | int) else f"{k}{v}"
                for k, v in sorted(knobs.items())
            ),
        ]
    )


def setup_for(
    profile: Profile, method: str, dataset: str = "hiershapes", paper: str | None = None
) -> Setup:
    """The setup :func:`train` uses: the profile's own on HierShapes, else ``paper``'s (default:
    the method's paper) for ``dataset``, within the profile's ``setup_limits``. Its
    ``knobs[method]`` are the paper's knob values."""
    if dataset == "hiershapes":
        return profile_setup(profile)
    setup = paper_setup(paper or METHOD_PAPER[method], dataset)
    limits = profile.setup_limits
    return dataclasses.replace(setup, **{k: min(getattr(setup, k), v) for k, v in limits.items()})


def train(
    profile: Profile,
    method: str,
    seed: int = 0,
    *,
    force: bool = False,
    dataset: str = "hiershapes",
    paper: str | None = None,
    setup: Setup | None = None,
    kfr: float = 0.0,
    corruption: str | None = None,
    **knobs,
) -> Run:
    """Train ``method`` under ``profile`` with ``seed`` (or reload the finished run).

    ``dataset``: ``"hiershapes"`` (the profile's own setup) or a name of
    :data:`hierstudy.datasets.catalog.NAMES`, trained with ``paper``'s setup for it (default: the
    method's paper, :data:`~hierstudy.setups.METHOD_PAPER`); ``setup`` replaces it (e.g. the
    scaled-down one-step checks). ``kfr=α`` adds KFR's α·ℓ_qtr on the backbone features to any
    method but ``kfr`` itself (its second phase, :func:`add_kfr`); the run is then named e.g.
    ``corr-kfr30``. ``corruption="blur"`` (or ``"saturation"``, ``"occlusion"``) trains and
    extracts on corrupted images (:func:`study_data`; run ``ce-corruptionblur``). A ``hier``
    run also saves :func:`snapshots` of its embedding after every epoch. Runs live in
    ``runs/<profile>/<dataset>[/<paper>]/<name>/seed<k>/``.
    """
    if method not in METHODS:
        raise ExperimentError(f"unknown method {method!r}; choose one of {sorted(METHODS)}")
    if kfr and method == "kfr":
        raise ExperimentError("method 'kfr' takes alpha=…, not kfr=…")
    folder = profile.runs_dir / dataset
    if dataset == "hiershapes":
        paper = None
    else:
        paper = paper or METHOD_PAPER[method]
        folder = folder / paper
    setup = setup or setup_for(profile, method, dataset, paper)
    knobs = {**setup.knobs.get(method, {}), **knobs}
    defaults = inspect.signature(METHODS[method]).parameters
    knobs = {k: v for k, v in knobs.items() if not (k in defaults and defaults[k].default == v)}
    extra = {**({"kfr": kfr} if kfr else {}), **({"corruption": corruption} if corruption else {})}
    name = run_name(method, {**knobs, **extra})
    run_dir = folder / name / f"seed{seed}"
    done = run_dir / "result.json"
    if done.is_file() and not force:
        result = json.loads(done.read_text())
        return Run(method, seed, run_dir, pd.read_csv(run_dir / "metrics.csv"), result)

    zero_shot = method in ZERO_SHOT
    data = study_data(profile, dataset, setup, zero_shot, seed, corruption)
    ctx = Context(
        data.hierarchy,
        setup.epochs,
        seed,
        setup.backbone,
        setup.backbone_kw,
        setup.train.get("lr", 1e-3),
    )
    try:
        recipe = METHODS[method](ctx, **knobs)
    except TypeError as error:
        raise ExperimentError(f"method {method!r}: {error}") from None
    add_kfr(recipe, ctx, kfr)
    recipe.model = {**setup.backbone_kw, **recipe.model}
    torch.manual_seed(seed)  # the initial weights
    model = build_model(
        setup.backbone,
        ctx.num_classes,
        recipe.head,
        embed_dim=recipe.embed_dim,
        pretrained=setup.weights(profile.root),
        **recipe.model,
    )
    device = profile.torch_device()
    workers = 0 if dataset == "hiershapes" else profile.num_workers
    if recipe.per_class:
        batch = min(setup.batch_size, recipe.per_class * ctx.num_classes)
        sampler = MPerClassBatchSampler(data.train_labels, recipe.per_class, batch, seed=seed)
        train_loader = DataLoader(data.train, batch_sampler=sampler, num_workers=workers)
    else:
        train_loader = make_loader(
            data.train,
            setup.batch_size,
            shuffle=True,
            seed=seed,
            drop_last=len(data.train) > setup.batch_size,
            num_workers=workers,
        )
    config = TrainConfig(
        **{
            "epochs": setup.epochs,
            "seed": seed,
            "device": str(device),
            "resume": not force,
            **setup.train,
            **recipe.train,
        }
    )
    if force:
        (run_dir / "checkpoint.pt").unlink(missing_ok=True)
    evaluation: dict = {}
    if data.val is not None:
        val_loader = make_loader(data.val, 256, shuffle=False, num_workers=workers)
        evaluation = {"val_loader": val_loader}
        if recipe.head == "embedding":  # L_CORR alone: classify by the nearest class embedding
            phi = recipe.terms[0].loss.class_embeddings
            evaluation = {
                "eval_fn": lambda net: {"val_acc": _nearest_accuracy(net, val_loader, phi, device)}
            }
    if method == "hier":
        evaluation["eval_fn"] = _snapshot_writer(
            run_dir, model, recipe.terms[1].loss, data.extract["train"], device, workers
        )
    history = fit(model, recipe.terms, train_loader, run_dir=run_dir, config=config, **evaluation)

    test_acc = None
    for split, part in data.extract.items():
        feats = extract(model, make_loader(part, 256, shuffle=False, num_workers=workers), device)
        arrays = {k: v for k, v in feats.items() if v is not None}
        if split == "test" and not zero_shot:
            if feats["logits"] is not None:
                pred = feats["logits"].argmax(1)
            else:
                phi = recipe.terms[0].loss.class_embeddings.cpu()
                pred = nearest_class_prediction(torch.from_numpy(feats["embedding"]), phi).numpy()
            arrays["pred"] = pred
            test_acc = float((pred == feats["labels"]).mean())
        save_npz(run_dir / f"features_{split}.npz", arrays)
    result = {
        "name": name,
        "method": method,
        "seed": seed,
        "dataset": dataset,
        "paper": paper,
        "knobs": {**knobs, **extra},
        "retrieval": recipe.retrieval,
        "metric": recipe.metric,
        "test_acc": test_acc,
        "val_acc_last5": float(history["val_acc"].tail(5).mean()) if "val_acc" in history else None,
        "zero_shot": zero_shot,
        "train_classes": ctx.num_classes,
        "setup": dataclasses.asdict(setup),
        "recipe": {
            "backbone": setup.backbone,
            "head": recipe.head,
            "num_classes": ctx.num_classes,
            "embed_dim": recipe.embed_dim,
            "model": recipe.model,
            "terms": [(t.name, t.weight, t.input, t.start_epoch) for t in recipe.terms],
        },
    }
    text = json.dumps(result, indent=2, sort_keys=True) + "\n"
    atomic_write(done, text.encode())
    return Run(method, seed, run_dir, history, json.loads(text))  # as a reload will see it


def finished_runs(profile: Profile, dataset: str = "hiershapes") -> list[Run]:
    """Every complete run under ``runs/<profile>/<dataset>/`` (and its papers' folders), sorted by
    name and seed."""
    runs = []
    for done in _result_files(profile.runs_dir / dataset):
        result = {"dataset": dataset, **json.loads(done.read_text())}  # older runs lack the key
        runs.append(
            Run(
                result["method"],
                result["seed"],
                done.parent,
                pd.read_csv(done.parent / "metrics.csv"),
                result,
            )
        )
    return sorted(runs, key=lambda r: (r.name, r.seed))


def datasets_with_runs(profile: Profile) -> list[str]:
    """The datasets with at least one finished run under ``runs/<profile>/``: HierShapes first,
    then the papers' in :data:`catalog.NAMES` order."""
    order = ["hiershapes", *catalog.NAMES]
    return [name for name in order if _result_files(profile.runs_dir / name)]


def _result_files(folder: Path) -> list[Path]:
    """The ``result.json`` of every finished run under a dataset's folder (with or without a
    paper's subfolder), sorted."""
    return sorted([*folder.glob("*/seed*/result.json"), *folder.glob("*/*/seed*/result.json")])


SNAPSHOT_IMAGES = 512  # training images whose embedding a HIER run saves after every epoch


def _snapshot_writer(
    run_dir: Path, model: nn.Module, reg: nn.Module, train: Dataset, device, workers: int
) -> Callable[[nn.Module], dict]:
    """An ``eval_fn`` saving ``snapshots/epoch<e>.npz`` after every epoch: the embedding and
    labels of a fixed, seeded subset of the training images and the proxies' points (HIER's
    Fig. 4). Epoch 0, the untrained model, is written at once; a run resumed from its checkpoint
    continues from the checkpoint's epoch (later snapshots, e.g. of an interrupted epoch or of a
    ``force`` rerun, are dropped). Reads no global random state: the weights are unchanged."""
    folder = run_dir / "snapshots"
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint = run_dir / "checkpoint.pt"
    completed = load_checkpoint(checkpoint)["epoch"] if checkpoint.is_file() else 0
    for path in folder.glob("epoch*.npz"):
        if int(path.stem[5:]) > completed or not completed:
            path.unlink()
    n = len(train)
    keep = np.sort(np.random.default_rng(0).permutation(n)[:SNAPSHOT_IMAGES])
    loader = make_loader(
        torch.utils.data.Subset(train, keep.tolist()), 256, shuffle=False, num_workers=workers
    )

    def save(net: nn.Module, epoch: int) -> None:
        feats = extract(net, loader, device)
        with torch.no_grad():
            proxies = reg.proxy_points().detach().float().cpu().numpy()
        arrays = {"embedding": feats["embedding"], "labels": feats["labels"], "proxies": proxies}
        save_npz(folder / f"epoch{epoch:03d}.npz", arrays)

    next_epoch = [completed + 1]

    def write(net: nn.Module) -> dict:
        save(net, next_epoch[0])
        next_epoch[0] += 1
        return {}

    if not completed:
        save(model, 0)
    return write


def snapshots(run: Run) -> dict[int, dict[str, np.ndarray]]:
    """{epoch: {"embedding", "labels", "proxies"}} saved by a ``hier`` run (epoch 0: untrained)."""
    paths = sorted((run.run_dir / "snapshots").glob("epoch*.npz"))
    if not paths:
        raise ExperimentError(f"{run.run_dir} has no snapshots: retrain it with force=True")
    out = {}
    for path in paths:
        with np.load(path) as data:
            out[int(path.stem[5:])] = {k: data[k] for k in data.files}
    return out


@torch.no_grad()
def _nearest_accuracy(model, loader, phi: torch.Tensor, device) -> float:
    model.eval()
    correct = total = 0
    for images, labels in loader:
        pred = nearest_class_prediction(model(images.to(device)).embedding, phi.to(device))
        correct += int((pred.cpu() == labels).sum())
        total += len(labels)
    model.train()
    return correct / total
