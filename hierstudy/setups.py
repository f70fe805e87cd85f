"""The papers' training setups: backbone, image size, augmentation, batch, optimiser, schedule.

:func:`hierstudy.runs.train` uses the profile's own small setup on HierShapes and, on a
paper's dataset, the setup :func:`paper_setup` returns for the method's paper. Each entry cites the
sentence it comes from; values a paper does not give are marked ``# choice`` and listed in
:data:`CHOICES`, which :func:`describe` prints with the setup.

Pretrained backbones are never downloaded: the setup names a weights file that the user puts in
``$HIERSTUDY_WEIGHTS`` (default ``<root>/weights``), e.g. ``resnet50.pth`` saved from
``timm.create_model("resnet50", pretrained=True).state_dict()`` or torchvision's file.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from .config import Profile
from .geometry import AUTHORS_MOBIUS_EPS


class SetupError(ValueError):
    """No setup for this paper and dataset, or its weights file is missing."""


@dataclass(frozen=True, kw_only=True)
class Setup:
    """How one paper trains on one dataset. ``train`` holds :class:`~hierstudy.train.TrainConfig`
    fields; ``pretrained``: the backbone starts from ``<weights dir>/<backbone>.pth``; ``knobs``
    gives methods the paper's values (KFR's α per backbone, HIER's embedding size), which an
    explicit knob of :func:`~hierstudy.runs.train` overrides."""

    backbone: str
    image_size: int
    transform: str  # a name of hierstudy.datasets.paper_transforms
    batch_size: int
    epochs: int
    train: dict = field(default_factory=dict)
    pretrained: bool = False
    backbone_kw: dict = field(default_factory=dict)
    knobs: dict = field(default_factory=dict)  # method → its knobs' values in this paper
    # share of the training images held out (per class, seeded by the run) to validate on;
    # 0: the dataset's own "val" split (the test images of the classification datasets)
    validation: float = 0.0

    def weights(self, root: Path) -> Path | None:
        """The weights file of a pretrained setup; :class:`SetupError` if it is missing."""
        if not self.pretrained:
            return None
        folder = Path(os.environ.get("HIERSTUDY_WEIGHTS", root / "weights"))
        path = folder / f"{self.backbone}.pth"
        if not path.is_file():
            raise SetupError(
                f"the paper fine-tunes a pretrained {self.backbone}: put its ImageNet weights at "
                f"{path} (e.g. torch.save(timm.create_model({self.backbone!r}, pretrained=True)"
                ".state_dict(), path) on a machine with internet); nothing is downloaded here"
            )
        return path


_SGDR = {
    "optimizer": "sgd",
    "lr": 0.1,
    "lr_end": 1e-6,
    "schedule": "sgdr",
    "sgdr_cycle_epochs": 12,
    "sgdr_mult": 2,
    "grad_clip": 10.0,
    "weight_decay": 5e-4,
}
_KFR_SCRATCH = {"optimizer": "adamw", "lr": 1e-3, "lr_end": 1e-4, "schedule": "linear"}
_KFR_FINETUNE = {"optimizer": "adamw", "lr": 1e-5, "schedule": "constant"}
_KFR30 = {"kfr": {"alpha": 30.0}}
# HIER's numbers come from the authors' code, so its paper setup takes their Möbius ε
# (docs/conventions.md, HIER; HIER-CVPR23, hier/hyptorch/pmath.py, _mobius_addition_batch)
_HIER512 = {"hier": {"dim": 512, "mobius_eps": AUTHORS_MOBIUS_EPS}, "dml_zero_shot": {"dim": 512}}
_HIER = {
    "optimizer": "adamw",
    "lr": 1e-4,
    "weight_decay": 1e-4,
    "schedule": "cosine",
    "grad_clip_value": 10.0,
}

# (paper, dataset) → Setup
SETUPS: dict[tuple[str, str], Setup] = {
    # Barz & Denzler (WACV 2019), Sec. 5.1.1: ResNet-110w, SGDR 0.1 → 1e-6 in 12-epoch cycles that
    # double, 5 cycles = 372 epochs, batch 100, gradient norm clipped at 10; weight decay 5e-4:
    # choice
    ("barz", "cifar100"): Setup(
        backbone="resnet110w",
        image_size=32,
        transform="cifar",
        batch_size=100,
        epochs=372,
        train=_SGDR,
    ),
    ("barz", "cifar10"): Setup(
        backbone="resnet110w",
        image_size=32,
        transform="cifar",
        batch_size=100,
        epochs=372,
        train=_SGDR,
    ),
    # ibid. Sec. 5.3: ResNet-50, one SGDR cycle 0.1 → 1e-6 over 80 epochs, batch 128, flips +
    # scale augmentation + random crops
    ("barz", "imagenet1k"): Setup(
        backbone="resnet50",
        image_size=224,
        transform="hier",
        batch_size=128,
        epochs=80,
        train={**_SGDR, "sgdr_cycle_epochs": 80},
    ),
    # Zhao et al. (KFR, 2024), Sec. IV-B/D: ResNet-34 from scratch on CIFAR at 64 × 64, two
    # phases, AdamW 1e-3 → 1e-4, batch 32, α = 30; 100 epochs: choice
    ("kfr", "cifar100"): Setup(
        backbone="resnet34",
        image_size=64,
        transform="kfr",
        batch_size=32,
        epochs=100,
        train=_KFR_SCRATCH,
        knobs=_KFR30,
    ),
    ("kfr", "cifar10"): Setup(
        backbone="resnet34",
        image_size=64,
        transform="kfr",
        batch_size=32,
        epochs=100,
        train=_KFR_SCRATCH,
        knobs=_KFR30,
    ),
    # ibid.: CvT from scratch with SAM and 15 % dropout (α = 30); SAM's ρ = 0.05: choice
    ("kfr_cvt", "cifar100"): Setup(
        backbone="cvt_13",
        image_size=64,
        transform="kfr",
        batch_size=32,
        epochs=100,
        train={**_KFR_SCRATCH, "sam_rho": 0.05},
        backbone_kw={"drop_rate": [0.15] * 3},
        knobs=_KFR30,
    ),
    # ibid.: pretrained WRN-50 fine-tuned at a constant 1e-5 on Mini-ImageNet (α = 1), WRN-101 on
    # ImageNet-1k (α = 100, batch 20); fine-tuning has no CE-only phase; 30 / 10 epochs: choice
    ("kfr", "mini_imagenet"): Setup(
        backbone="wide_resnet50_2",
        image_size=224,
        transform="kfr",
        batch_size=32,
        epochs=30,
        train=_KFR_FINETUNE,
        pretrained=True,
        knobs={"kfr": {"alpha": 1.0, "phase1": 0.0}},
    ),
    ("kfr", "imagenet1k"): Setup(
        backbone="wide_resnet101_2",
        image_size=224,
        transform="kfr",
        batch_size=20,
        epochs=10,
        train=_KFR_FINETUNE,
        pretrained=True,
        knobs={"kfr": {"alpha": 100.0, "phase1": 0.0}},
    ),
    # Kim et al. (HIER, CVPR 2023), as docs/hier.md §Combination and recipe gives it: pretrained
    # ResNet-50, 512-d, AdamW 1e-4, 2 images per class (90 classes per batch), per-element
    # gradient clamp ±10, RandomResizedCrop 224 + flip; 60 epochs, weight decay 1e-4 and the
    # cosine decay: choice
    **{
        ("hier", name): Setup(
            backbone="resnet50",
            image_size=224,
            transform="hier",
            batch_size=180,
            epochs=60,
            train=_HIER,
            pretrained=True,
            knobs=_HIER512,
        )
        for name in ("cub", "cars196", "sop", "inshop")
    },
    # Venkataramanan et al. (ICVS 2023), Sec. 4.2: ResNet-50 (CUB, 224 × 224, flip + rotation
    # ±30°, SGD, 100 epochs, batch 12) and ResNet-110 (CIFAR-100, SGD, 400 epochs, batch 24), both
    # on 80 % of the training images, validated on the other 20 %; pretrained ResNet-50, lr
    # 0.01 / 0.1 with cosine decay and momentum 0.9: choice
    ("vh", "cub_official"): Setup(
        backbone="resnet50",
        image_size=224,
        transform="vh",
        batch_size=12,
        epochs=100,
        train={"optimizer": "sgd", "lr": 0.01, "schedule": "cosine", "weight_decay": 1e-4},
        pretrained=True,
        validation=0.2,
    ),
    ("vh", "cifar100"): Setup(
        backbone="resnet110w",
        image_size=32,
        transform="cifar",
        batch_size=24,
        epochs=400,
        train={"optimizer": "sgd", "lr": 0.1, "schedule": "cosine", "weight_decay": 5e-4},
        backbone_kw={"channels": [16, 32, 64]},
        validation=0.2,
    ),
}

# What each paper's setup takes where the paper gives no value (the "choice" comments above).
CHOICES = {
    "barz": "weight decay 5e-4 (not in the paper).",
    "kfr": "100 epochs from scratch, 30 (Mini-ImageNet) / 10 (ImageNet-1k) fine-tuning epochs, "
    "a linear lr decay 1e-3 → 1e-4 (the paper gives only the end points).",
    "kfr_cvt": "100 epochs, SAM ρ = 0.05, a linear lr decay 1e-3 → 1e-4 (the paper gives only "
    "the end points).",
    "hier": "60 epochs, weight decay 1e-4, cosine decay (docs/hier.md gives lr and batch only).",
    "vh": "ImageNet-pretrained ResNet-50 on CUB, SGD lr 0.01 (CUB) / 0.1 (CIFAR-100) with "
    "momentum 0.9 and cosine decay (the paper names SGD, epochs and batch only).",
}

# Which paper's setup a method follows by default (CE is every paper's baseline: KFR's here).
METHOD_PAPER = {
    "ce": "kfr",
    "kfr": "kfr",
    "dml": "kfr",
    "corr": "barz",
    "corr_cls": "barz",
    "center": "barz",
    "dml_zero_shot": "hier",
    "hier": "hier",
}


def paper_setup(paper: str, dataset: str) -> Setup:
    """The setup ``paper`` uses on ``dataset``; :class:`SetupError` names the known pairs."""
    try:
        return SETUPS[paper, dataset]
    except KeyError:
        known = ", ".join(f"{p}/{d}" for p, d in SETUPS)
        raise SetupError(f"no setup for paper {paper!r} on {dataset!r}; known: {known}") from None


def setup_for(
    profile: Profile, method: str, dataset: str = "hiershapes", paper: str | None = None
) -> Setup:
    """The setup :func:`~hierstudy.runs.train` uses: the profile's own on HierShapes, else
    ``paper``'s (default: the method's paper) for ``dataset``, within the profile's
    ``setup_limits``. Its ``knobs[method]`` are the paper's knob values."""
    if dataset == "hiershapes":
        return profile_setup(profile)
    setup = paper_setup(paper or METHOD_PAPER[method], dataset)
    limits = profile.setup_limits
    return dataclasses.replace(setup, **{k: min(getattr(setup, k), v) for k, v in limits.items()})


def profile_setup(profile: Profile) -> Setup:
    """The profile's own setup on HierShapes: its backbone, size, batch and epochs, AdamW
    1e-3 → 1e-4 (KFR's from-scratch schedule), no augmentation."""
    return Setup(
        backbone=profile.backbone,
        image_size=profile.image_size,
        transform="plain",
        batch_size=profile.batch_size,
        epochs=profile.epochs,
        train=dict(_KFR_SCRATCH),
    )


def describe(paper: str, dataset: str) -> str:
    """``paper``'s setup on ``dataset`` as text a notebook prints: every field, then the values
    the study chose where the paper gives none (:data:`CHOICES`)."""
    setup = paper_setup(paper, dataset)
    fields = "\n".join(f"  {k}: {v}" for k, v in dataclasses.asdict(setup).items())
    return f"{paper} on {dataset}:\n{fields}\n  not in the paper: {CHOICES[paper]}"
