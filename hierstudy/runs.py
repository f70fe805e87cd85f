"""The run cache: train a registered method (or reload the finished run) and read what it saved.

Every notebook that trains calls :func:`train` with a method name of
:func:`hierstudy.methods.list_methods`, a seed and the method's knobs; the run lives in
``runs/<profile>/<dataset>[/<paper>]/<run name>/seed<k>/``:

* ``checkpoint.pt`` and ``metrics.csv`` — written by :func:`hierstudy.train.fit` every epoch;
* ``features_<split>.npz`` — penultimate features, embedding, logits and labels of the train and
  test splits, extracted once after training (what notebooks 05-08 evaluate);
* ``snapshots/epoch<e>.npz`` — a ``hier`` run's embedding and proxies after every epoch;
* ``result.json`` — a :class:`RunRecord` of the recipe, the final accuracies, the representation
  retrieval uses, and what made the run: the ``commit``, whether the training source was ``dirty``
  and the ``source_hash`` of the training source and the recipe
  (:func:`hierstudy.run_files.source_hash`).

A run is a transaction: it trains in ``seed<k>.partial/`` beside its folder, which is renamed to
``seed<k>/`` only once ``result.json`` is written, so ``seed<k>/`` is always one whole finished run
(a forced retrain replaces it only when it has finished). The partial folder has a fixed name so
that an interrupted run, forced or not, resumes from its checkpoint on the next call, provided its
``source_hash`` file matches (else it starts over). ``seed<k>.lock`` (``fcntl.flock``) serialises
the processes asking for one run: the second waits, then reuses the first's run.

A finished run is reloaded instead of retrained unless ``force=True`` or its ``source_hash``
differs from the current one (then it is retrained, with a note saying why); ``reuse_stale=True``
or ``HIERSTUDY_REUSE_STALE=1`` reuses such a run with a :class:`StaleRunWarning` and marks it
:attr:`Run.stale`. Same seed, same profile and same knobs on CPU give the same weights (the
engine's guarantee) and hence the same tables.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from . import methods, run_files, snapshots
from .checkpoint import load_checkpoint
from .config import Profile
from .datasets import MPerClassBatchSampler, catalog
from .datasets.study_splits import StudyData, study_data
from .features import extract, make_loader
from .files import atomic_write, save_npz
from .geometry import Distance, pairwise_distance
from .losses.semantic import nearest_class_prediction
from .models import HierNet
from .records import RecipeRecord, RunError, RunRecord, TermRecord
from .setups import METHOD_PAPER, Setup, setup_for
from .train import TrainConfig, fit, last_epochs_mean

_USED: dict[Path, Run] = {}  # every run this process has trained or loaded, by folder


def used_runs() -> list[Run]:
    """The runs this process has trained or loaded so far (what its outputs are made from: the
    stamp of :func:`hierstudy.report.provenance`)."""
    return list(_USED.values())


class StaleRunWarning(UserWarning):
    """A finished run trained by other code (or an older recipe) is reused: ``reuse_stale``."""


@dataclass
class Run:
    """A finished run: its directory, record and per-epoch history; ``stale``: reused although
    other code or another recipe made it (``reuse_stale``)."""

    run_dir: Path
    record: RunRecord
    history: pd.DataFrame
    stale: bool = False

    def __post_init__(self) -> None:
        _USED[self.run_dir] = self

    @classmethod
    def load(cls, run_dir: Path, dataset: str | None = None) -> Run:
        """The finished run in ``run_dir``; ``dataset`` for records that lack it."""
        text = (run_dir / "result.json").read_text()
        history = pd.read_csv(run_dir / "metrics.csv")
        return cls(run_dir, RunRecord.from_json(text, dataset), history)

    @property
    def method(self) -> str:
        return self.record.method

    @property
    def seed(self) -> int:
        return self.record.seed

    @property
    def name(self) -> str:
        """The run name, prefixed by its paper's setup on a paper's dataset (``barz/ce``)."""
        paper = self.record.paper
        return f"{paper}/{self.record.name}" if paper else self.record.name

    def features(self, split: str = "test") -> dict[str, np.ndarray]:
        with np.load(self.run_dir / f"features_{split}.npz") as data:
            return {k: data[k] for k in data.files}

    def retrieval_features(self, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
        """(representation the method retrieves with, labels)."""
        feats = self.features(split)
        return feats[self.record.retrieval], feats["labels"]

    def checkpoint(self) -> dict:
        """The final checkpoint: ``model`` and ``losses`` (state dicts, e.g. HIER's proxies)."""
        return load_checkpoint(self.run_dir / "checkpoint.pt")

    def snapshots(self) -> dict[int, dict[str, np.ndarray]]:
        """{epoch: {"embedding", "labels", "proxies"}} a ``hier`` run saved after every epoch
        (epoch 0: untrained; :mod:`hierstudy.snapshots`)."""
        return snapshots.load(self.run_dir)

    def model(self) -> HierNet:
        """The trained network (eval mode), rebuilt from the recipe and the checkpoint."""
        net = self.record.recipe.build_model()
        net.load_state_dict(self.checkpoint()["model"])
        return net.eval()

    def loss(self, name: str) -> nn.Module:
        """The trained module of loss term ``name`` (eval mode): e.g. ``"hier"`` (HIER's proxies),
        ``"corr"`` (L_CORR's class embeddings Φ), ``"pa"`` (Proxy-Anchor's proxies)."""
        names = [t.name for t in self.record.recipe.terms]
        if name not in names:
            raise RunError(f"run {self.name!r} has no loss term {name!r}; its terms: {names}")
        state = self.checkpoint()["losses"][names.index(name)]  # one module per term, in order
        module = methods.rebuild_loss(name, state, self.record.knobs, self.record.recipe.curvature)
        module.load_state_dict(state)
        return module.eval()

    def distance(self) -> str | Distance:
        """How the run's retrieval ranks, as ``metric=`` of
        :func:`hierstudy.evaluation.metrics.retrieval_metrics` takes it: the name of a built-in metric
        (``"cosine"``, ``"dot"``, ``"euclidean"``), or for a hyperbolic run the Poincaré distance
        with the recipe's curvature, computed in float64 (``distance(q [n, D], g [m, D]) ->
        [n, m]``, smaller is closer)."""
        if self.record.metric != "hyperbolic":
            return self.record.metric
        return functools.partial(_poincare_distance, c=self.record.recipe.curvature)


def _poincare_distance(q: torch.Tensor, g: torch.Tensor, c: float) -> torch.Tensor:
    return pairwise_distance(q.double(), g.double(), c=c)


def run_name(method: str, knobs: dict) -> str:
    """``kfr`` or ``kfr-alpha3`` — the method plus its non-default knobs, sorted."""
    values = {k: f"{v:g}" if isinstance(v, float | int) else v for k, v in knobs.items()}
    return "-".join([method, *(f"{k}{v}" for k, v in sorted(values.items()))])


@dataclass(frozen=True)
class _Plan:
    """A run resolved from :func:`train`'s arguments, before any data is read."""

    method: methods.Method
    seed: int
    dataset: str
    paper: str | None
    setup: Setup
    knobs: dict  # the method's non-default knobs
    extra: dict  # kfr= and corruption=, when given
    folder: Path  # runs/<profile>/<dataset>[/<paper>]
    recipe: dict  # what run_files.source_hash() hashes besides the code

    @property
    def name(self) -> str:
        return run_name(self.method.name, {**self.knobs, **self.extra})

    @property
    def run_dir(self) -> Path:
        return self.folder / self.name / f"seed{self.seed}"

    @property
    def partial(self) -> Path:
        """Where the run trains until it has finished."""
        return self.run_dir.with_name(f"seed{self.seed}.partial")


def train(
    profile: Profile,
    method: str,
    seed: int = 0,
    *,
    force: bool = False,
    reuse_stale: bool | None = None,
    dataset: str = "hiershapes",
    paper: str | None = None,
    setup: Setup | None = None,
    kfr: float = 0.0,
    corruption: str | None = None,
    progress: bool | None = None,
    **knobs,
) -> Run:
    """Train ``method`` under ``profile`` with ``seed`` (or reload the finished run).

    ``dataset``: ``"hiershapes"`` (the profile's own setup) or a name of
    :data:`hierstudy.datasets.catalog.NAMES`, trained with ``paper``'s setup for it (default: the
    method's paper, :data:`~hierstudy.setups.METHOD_PAPER`); ``setup`` replaces it (e.g. the
    scaled-down one-step checks). ``kfr=α`` adds KFR's α·ℓ_qtr on the backbone features to any
    method but ``kfr`` itself (its second phase, :func:`~hierstudy.methods.add_kfr`); the run is
    then named e.g. ``corr-kfr30``. ``corruption="blur"`` (or ``"saturation"``, ``"occlusion"``)
    trains and extracts on corrupted images (:func:`~hierstudy.datasets.study_splits.study_data`;
    run ``ce-corruptionblur``). A ``hier`` run also saves :meth:`Run.snapshots` of its embedding
    after every epoch.

    ``force``: retrain even a finished run (which stays until the new one has finished).
    ``reuse_stale`` (default: ``$HIERSTUDY_REUSE_STALE == "1"``): reuse a finished run whose
    ``source_hash`` differs, with a :class:`StaleRunWarning`, instead of retraining it.
    ``progress``: the training bar (None: tqdm's choice). The run trains and extracts on
    ``profile.run_threads`` threads. :func:`hierstudy.run_pool.train_many` trains many at once.
    """
    plan = _plan(profile, method, seed, dataset, paper, setup, kfr, corruption, knobs)
    digest = run_files.source_hash(plan.recipe)
    reuse_stale = _reuse_stale(reuse_stale)
    run = None if force else _reusable(plan, digest, reuse_stale)
    if run:
        return run
    with run_files.lock(plan.run_dir):  # another process may have finished or started it meanwhile
        run = None if force else _reusable(plan, digest, reuse_stale, say=True)
        if run:
            return run
        _start(plan, digest, fresh=force)
        with threads(profile.run_threads):
            record, history = _train(profile, plan, digest, kfr, corruption, force, progress)
        run_files.publish(plan.partial, plan.run_dir)
    return Run(plan.run_dir, record, history)


def needs_training(profile: Profile, *args, **kwargs) -> bool:
    """Whether :func:`train` with these arguments would train, rather than reload a run."""
    bound = inspect.signature(train).bind(profile, *args, **kwargs)
    bound.apply_defaults()
    a = bound.arguments
    if a["force"]:
        return True
    plan = _plan(
        profile,
        a["method"],
        a["seed"],
        a["dataset"],
        a["paper"],
        a["setup"],
        a["kfr"],
        a["corruption"],
        a["knobs"],
    )
    return (
        _reusable(plan, run_files.source_hash(plan.recipe), _reuse_stale(a["reuse_stale"])) is None
    )


def _reuse_stale(reuse_stale: bool | None) -> bool:
    return os.environ.get("HIERSTUDY_REUSE_STALE") == "1" if reuse_stale is None else reuse_stale


@contextlib.contextmanager
def threads(n: int | None):
    """torch's intra-op threads set to ``n`` inside the block (None: left as they are)."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _train(
    profile, plan, digest, kfr, corruption, force, progress
) -> tuple[RunRecord, pd.DataFrame]:
    """Train in ``plan.partial`` and write its features and ``result.json``."""
    zero_shot, seed, work = plan.method.zero_shot, plan.seed, plan.partial
    data = study_data(profile, plan.dataset, plan.setup, zero_shot, seed, corruption)
    recipe = _recipe(plan, data, kfr)
    spec = _recipe_record(plan.setup, len(data.hierarchy.classes), recipe)
    torch.manual_seed(seed)  # the initial weights
    model = spec.build_model(plan.setup.weights(profile.root))
    device = profile.torch_device()
    workers = 0 if plan.dataset == "hiershapes" else profile.num_workers
    history = _fit(plan, work, data, recipe, model, force, device, workers, progress)
    test_acc = _save_features(plan, work, data, recipe, model, device, workers)
    commit, dirty = run_files.git_state()
    record = RunRecord(
        name=plan.name,
        method=plan.method.name,
        seed=seed,
        dataset=plan.dataset,
        paper=plan.paper,
        knobs={**plan.knobs, **plan.extra},
        retrieval=recipe.retrieval,
        metric=recipe.metric,
        test_acc=test_acc,
        val_acc_last5=_last5(history),
        zero_shot=zero_shot,
        train_classes=spec.num_classes,
        setup=dataclasses.asdict(plan.setup),
        recipe=spec,
        commit=commit,
        dirty=dirty,
        source_hash=digest,
    )
    text = record.to_json()
    atomic_write(work / "result.json", text.encode())
    return RunRecord.from_json(text), history  # as a reload will see it


def _pending(plan: _Plan, digest: str) -> bool:
    """Whether an interrupted run of this code waits in ``plan.partial`` (it is resumed)."""
    marker = plan.partial / "source_hash"
    return marker.is_file() and marker.read_text() == digest


def _reusable(plan: _Plan, digest: str, reuse_stale: bool, say: bool = False) -> Run | None:
    """The finished run in ``plan.run_dir`` if it is to be reused: not while an interrupted run of
    this code waits to resume, nor when other code made it, unless ``reuse_stale`` (then with a
    warning). ``say``: print why a finished run is retrained."""
    if _pending(plan, digest) or not (plan.run_dir / "result.json").is_file():
        return None
    run = Run.load(plan.run_dir, plan.dataset)
    made = run.record.source_hash
    if made is None:
        why = "its result.json records no source_hash (written before runs recorded one)"
    elif made != digest:
        commit = run.record.commit or "an unknown commit"
        why = f"other code or another recipe made it (source_hash {made} at {commit}, now {digest})"
    else:
        return run
    if reuse_stale:
        warnings.warn(f"reusing the stale run {run.run_dir}: {why}", StaleRunWarning, stacklevel=3)
        return dataclasses.replace(run, stale=True)
    if say:
        print(f"hierstudy: retraining {run.run_dir}: {why}", flush=True)
    return None


def _start(plan: _Plan, digest: str, fresh: bool) -> None:
    """Make ``plan.partial`` ready: kept to resume (same code, not ``fresh``), else emptied."""
    if plan.partial.exists() and (fresh or not _pending(plan, digest)):
        if not fresh:
            print(f"hierstudy: starting {plan.partial} over: other code began it", flush=True)
        shutil.rmtree(plan.partial)
    plan.partial.mkdir(parents=True, exist_ok=True)
    atomic_write(plan.partial / "source_hash", digest.encode())


def _plan(profile, method, seed, dataset, paper, setup, kfr, corruption, knobs) -> _Plan:
    """Resolve the method, the paper, the setup, the knobs (the setup's, then the caller's; those
    at their default dropped) and the run's directory."""
    entry = methods.get_method(method)
    if kfr and method == "kfr":
        raise methods.MethodError("method 'kfr' takes alpha=…, not kfr=…")
    paper = None if dataset == "hiershapes" else paper or METHOD_PAPER[method]
    setup = setup or setup_for(profile, method, dataset, paper)
    knobs = {**setup.knobs.get(method, {}), **knobs}
    entry.check(knobs)
    extra = {**({"kfr": kfr} if kfr else {}), **({"corruption": corruption} if corruption else {})}
    folder = profile.runs_dir / dataset
    folder = folder / paper if paper else folder
    knobs = entry.non_default(knobs)
    recipe = {
        "method": method,
        "seed": seed,
        "dataset": dataset,
        "paper": paper,
        "knobs": {**knobs, **extra},
        "setup": dataclasses.asdict(setup),
        # HierShapes' size comes from the profile (the paper's datasets are what they are)
        "per_class": profile.per_class if dataset == "hiershapes" else None,
        "threads": profile.run_threads,  # the sums' order, hence the weights, depend on them
    }
    return _Plan(entry, seed, dataset, paper, setup, knobs, extra, folder, recipe)


def _recipe(plan: _Plan, data: StudyData, kfr: float) -> methods.Recipe:
    """The method's recipe on the training classes, plus KFR's term for ``kfr=α``."""
    setup = plan.setup
    lr = setup.train.get("lr", 1e-3)
    ctx = methods.Context(
        data.hierarchy, setup.epochs, plan.seed, setup.backbone, setup.backbone_kw, lr
    )
    recipe = plan.method(ctx, **plan.knobs)
    methods.add_kfr(recipe, ctx, kfr)
    recipe.model = {**setup.backbone_kw, **recipe.model}
    return recipe


def _recipe_record(setup: Setup, num_classes: int, recipe: methods.Recipe) -> RecipeRecord:
    terms = tuple(TermRecord(t.name, t.weight, t.input, t.start_epoch) for t in recipe.terms)
    return RecipeRecord(
        backbone=setup.backbone,
        head=recipe.head,
        num_classes=num_classes,
        embed_dim=recipe.embed_dim,
        terms=terms,
        model=recipe.model,
        curvature=recipe.curvature,
    )


def _term(recipe: methods.Recipe, name: str) -> nn.Module:
    return next(t.loss for t in recipe.terms if t.name == name)


def _fit(plan, work, data, recipe, model, force, device, workers, progress) -> pd.DataFrame:
    """Train in ``work`` with the recipe's terms (resuming from its checkpoint, if any)."""
    setup, seed = plan.setup, plan.seed
    if recipe.per_class:
        batch = min(setup.batch_size, recipe.per_class * len(data.hierarchy.classes))
        sampler = MPerClassBatchSampler(data.train_labels, recipe.per_class, batch, seed=seed)
        loader = DataLoader(data.train, batch_sampler=sampler, num_workers=workers)
    else:
        drop_last = len(data.train) > setup.batch_size
        loader = make_loader(
            data.train,
            setup.batch_size,
            shuffle=True,
            seed=seed,
            drop_last=drop_last,
            num_workers=workers,
        )
    config = {"epochs": setup.epochs, "seed": seed, "device": str(device), "resume": not force}
    config["progress"] = progress
    config = TrainConfig(**{**config, **setup.train, **recipe.train})
    evaluation: dict = {}
    if data.val is not None:
        val_loader = make_loader(data.val, 256, shuffle=False, num_workers=workers)
        evaluation = {"val_loader": val_loader}
        if recipe.head == "embedding":  # L_CORR alone: classify by the nearest class embedding
            phi = _term(recipe, "corr").class_embeddings
            evaluation = {
                "eval_fn": lambda net: {"val_acc": _nearest_accuracy(net, val_loader, phi, device)}
            }
    if plan.method.name == "hier":
        reg, train = _term(recipe, "hier"), data.extract["train"]
        evaluation["eval_fn"] = snapshots.writer(work, model, reg, train, device, workers)
    return fit(model, recipe.terms, loader, run_dir=work, config=config, **evaluation)


def _save_features(plan, work, data, recipe, model, device, workers) -> float | None:
    """Write ``features_<split>.npz`` of the extraction sets; the test accuracy of a closed-set
    run (by the logits, or for L_CORR alone by the nearest class embedding)."""
    test_acc = None
    for split, part in data.extract.items():
        feats = extract(model, make_loader(part, 256, shuffle=False, num_workers=workers), device)
        arrays = {k: v for k, v in feats.items() if v is not None}
        if split == "test" and not plan.method.zero_shot:
            if feats["logits"] is not None:
                pred = feats["logits"].argmax(1)
            else:
                phi = _term(recipe, "corr").class_embeddings.cpu()
                pred = nearest_class_prediction(torch.from_numpy(feats["embedding"]), phi).numpy()
            arrays["pred"] = pred
            test_acc = float((pred == feats["labels"]).mean())
        save_npz(work / f"features_{split}.npz", arrays)
    return test_acc


def _last5(history: pd.DataFrame) -> float | None:
    """The validation accuracy as KFR reports it, over at most the last 5 epochs."""
    if "val_acc" not in history:
        return None
    return last_epochs_mean(history["val_acc"], n=min(5, len(history)))


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


def finished_runs(
    profile: Profile, dataset: str = "hiershapes", reuse_stale: bool | None = None
) -> list[Run]:
    """Every complete run under ``runs/<profile>/<dataset>/`` (and its papers' folders), sorted by
    name and seed. A stale run (other code or another recipe made it: a leftover of an older
    study) is left out, with a note naming it, unless ``reuse_stale`` (then it is marked)."""
    found, stale = [], []
    for done in _result_files(profile.runs_dir / dataset):
        run = Run.load(done.parent, dataset)
        if run.record.source_hash == source_hash_of(profile, run.record):
            found.append(run)
        elif _reuse_stale(reuse_stale):
            found.append(dataclasses.replace(run, stale=True))
        else:
            stale.append(f"{run.name}/seed{run.seed}")
    if stale:
        print(f"hierstudy: left out {len(stale)} stale run(s) of other code: {', '.join(stale)}")
    return sorted(found, key=lambda r: (r.name, r.seed))


def source_hash_of(profile: Profile, record: RunRecord) -> str:
    """The ``source_hash`` the current code gives the run of ``record`` under ``profile`` (its
    recipe, as :func:`train` hashes it, rebuilt from the record)."""
    recipe = {
        "method": record.method,
        "seed": record.seed,
        "dataset": record.dataset,
        "paper": record.paper,
        "knobs": record.knobs,
        "setup": record.setup,
        "per_class": profile.per_class if record.dataset == "hiershapes" else None,
        "threads": profile.run_threads,
    }
    return run_files.source_hash(recipe)


def datasets_with_runs(profile: Profile) -> list[str]:
    """The datasets with at least one finished run under ``runs/<profile>/``: HierShapes first,
    then the papers' in :data:`catalog.NAMES` order."""
    order = ["hiershapes", *catalog.NAMES]
    return [name for name in order if _result_files(profile.runs_dir / name)]


def _result_files(folder: Path) -> list[Path]:
    """The ``result.json`` of every finished run under a dataset's folder (with or without a
    paper's subfolder), sorted."""
    found = [*folder.glob("*/seed*/result.json"), *folder.glob("*/*/seed*/result.json")]
    return sorted(p for p in found if p.parent.name[4:].isdigit())  # not seed<k>.partial
