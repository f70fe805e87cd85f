"""Profiles: one frozen dataclass per scale of the study (smoke, small, paper).

``load(profile=None, **overrides)`` resolves the profile from the argument, then
``$HIERSTUDY_PROFILE``, then ``"small"``; ``notebook(profile)`` is what a notebook's parameters
cell resolves to (``smoke`` by default, not publishing when run by hand). Notebooks branch on the
profile's values, never on its name, so a new profile is one more entry in ``PROFILES``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path


class ProjectError(RuntimeError):
    """No project root: the cwd is outside the repository and ``$HIERSTUDY_ROOT`` is unset."""


def project_root() -> Path:
    """``$HIERSTUDY_ROOT``, else the nearest folder above the cwd holding ``notebooks/`` and
    ``pyproject.toml`` (so JupyterLab, started in ``notebooks/``, writes where papermill does).
    Raises :class:`ProjectError` elsewhere, rather than writing ``figures/``, ``runs/`` and
    ``data/`` into whatever folder the cwd is."""
    if os.environ.get("HIERSTUDY_ROOT"):
        return Path(os.environ["HIERSTUDY_ROOT"]).resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "notebooks").is_dir() and (folder / "pyproject.toml").is_file():
            return folder
    raise ProjectError(
        f"{here} is not inside the hierstudy repository (no folder above it holds notebooks/ and "
        "pyproject.toml), so there is nowhere to write figures/, runs/ and data/: run from the "
        "repository or set $HIERSTUDY_ROOT to it"
    )


class ProfileError(ValueError):
    """An unknown profile, or an unknown field to override; the message lists the known ones."""


@dataclass(frozen=True)
class Profile:
    """Everything a notebook needs to know about the scale it runs at."""

    name: str
    description: str
    dataset: str = "hiershapes"  # the embedded default; `paper` notebooks name their own
    # the dataset each paper's notebook trains on: "barz" 02, "kfr" 03, "hier" 04, "vh" 05,
    # "wsol" 07 (a name of hierstudy.datasets.catalog, or "hiershapes")
    datasets: dict[str, str] = field(
        default_factory=lambda: dict.fromkeys(("barz", "kfr", "hier", "vh", "wsol"), "hiershapes")
    )
    image_size: int = 64
    per_class: dict[str, int] = field(default_factory=lambda: {"train": 60, "val": 10, "test": 30})
    backbone: str = "resnet_small"
    epochs: int = 8
    batch_size: int = 64
    seeds: tuple[int, ...] = (0, 1, 2)
    num_workers: int = 0
    # intra-op threads of one training run, fixed so that its weights do not depend on the
    # machine's cores or on the runs training beside it (None: torch's default, for GPUs)
    run_threads: int | None = 1
    # runs trained at once by hierstudy.run_pool.train_many (None: cores // run_threads on CPU)
    run_workers: int | None = None
    device: str = "auto"  # "auto" -> cuda if available, else cpu
    wordnet_datasets: tuple[str, ...] = ("cifar10", "cifar100", "mini_imagenet", "imagenet1k")
    data_root: Path | None = None  # None -> $HIERSTUDY_DATA or <root>/data
    # notebook 05's robustness study retrains on corrupted images (the authors' protocol) instead
    # of evaluating the clean-trained model on corrupted test images
    retrain_corrupted: bool = False
    # caps on every paper setup (e.g. {"batch_size": 4, "epochs": 1}): the dry run `paper_check`
    setup_limits: dict[str, int] = field(default_factory=dict)
    # a subfolder of figures/<profile>/ for the outputs of a notebook run on another dataset than
    # the profile's own for it (see `writing_for`)
    outputs: str = ""
    # a notebook run by hand (see `notebook`): its figures and tables go to runs/<profile>/figures/
    # (git-ignored), never over the published figures/<profile>/
    interactive: bool = False

    @property
    def root(self) -> Path:
        return project_root()

    @property
    def figures_dir(self) -> Path:
        published = (
            self.runs_dir / "figures" if self.interactive else self.root / "figures" / self.name
        )
        return published / self.outputs

    def writing_for(self, dataset: str | None, default: str | None) -> Profile:
        """This profile, with the outputs of a notebook that ran on ``dataset`` instead of its
        ``default`` going to ``figures/<profile>/<dataset>/``, so that they replace neither the
        default run's nor each other's."""
        return self if dataset == default else dataclasses.replace(self, outputs=dataset or "")

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs" / self.name

    @property
    def data_dir(self) -> Path:
        if self.data_root is not None:
            return Path(self.data_root)
        return Path(os.environ.get("HIERSTUDY_DATA", self.root / "data"))

    def torch_device(self):
        import torch

        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        description="CI: embedded data, a few hundred images, tiny CNN, 1 epoch",
        image_size=32,
        per_class={"train": 12, "val": 4, "test": 8},
        backbone="tiny_cnn",
        epochs=1,
        batch_size=32,
        seeds=(0,),
        run_workers=1,  # runs of seconds: starting worker processes would cost more
        wordnet_datasets=("cifar10", "cifar100", "mini_imagenet"),
    ),
    "small": Profile(
        name="small",
        description="a laptop CPU: embedded data at full size, a small ResNet, 5 seeds",
        seeds=(0, 1, 2, 3, 4),  # five: a paired t-interval over three excludes only big effects
    ),
    "paper": Profile(
        name="paper",
        description="a GPU: the papers' datasets, backbones and hyper-parameters",
        dataset="paper",
        datasets={
            "barz": "cifar100",
            "kfr": "cifar100",
            "hier": "cub",
            "vh": "cub_official",
            "wsol": "imagenet1k",
        },
        image_size=224,
        backbone="resnet50",
        epochs=100,
        batch_size=128,
        num_workers=8,
        run_threads=None,
        run_workers=1,
        retrain_corrupted=True,
    ),
}
PROFILES["paper_check"] = dataclasses.replace(
    PROFILES["paper"],
    name="paper_check",
    description="a dry run of `paper`: its datasets and setups, one epoch of batch-4 steps, one seed",
    seeds=(0,),
    num_workers=0,
    setup_limits={"batch_size": 4, "epochs": 1},
)


def load(profile: str | None = None, **overrides) -> Profile:
    """The profile named by the argument, ``$HIERSTUDY_PROFILE`` or ``"small"``, with overrides."""
    name = profile or os.environ.get("HIERSTUDY_PROFILE") or "small"
    if name not in PROFILES:
        raise ProfileError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    known = [f.name for f in dataclasses.fields(Profile)]
    unknown = set(overrides) - set(known)
    if unknown:
        raise ProfileError(f"unknown profile fields {sorted(unknown)}; the fields are {known}")
    return dataclasses.replace(PROFILES[name], **overrides)


def notebook(profile: str | None = None) -> Profile:
    """The profile of a notebook's parameters cell. Named (``hierstudy study`` and papermill's
    ``-p profile NAME`` set it): that profile, publishing to ``figures/<profile>/``. None, as in a
    notebook run by hand in JupyterLab: ``$HIERSTUDY_PROFILE``, else ``smoke`` (minutes, not the
    half hour of ``small``), writing to ``runs/<profile>/figures/`` so that the committed figures
    stay as published, unless ``$HIERSTUDY_PUBLISH=1``."""
    if profile:
        return load(profile)
    name = os.environ.get("HIERSTUDY_PROFILE") or "smoke"
    return load(name, interactive=os.environ.get("HIERSTUDY_PUBLISH") != "1")
