"""What ``result.json`` records of a finished run: :class:`RunRecord`, with the recipe it trained
(:class:`RecipeRecord`, enough to rebuild the network) and where the weights came from."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from .geometry import C
from .models import HierNet, build_model


class RunError(ValueError):
    """A run directory, loss term or snapshot that is not there."""


class TermRecord(NamedTuple):
    """One loss term of a trained recipe (a JSON list in ``result.json``)."""

    name: str
    weight: float
    input: str
    start_epoch: int


@dataclass(frozen=True)
class RecipeRecord:
    """The network a run trained (enough to rebuild it) and its loss terms, in order."""

    backbone: str
    head: str
    num_classes: int
    embed_dim: int
    terms: tuple[TermRecord, ...]
    model: dict = field(default_factory=dict)  # build_model options (backbone_kw included)
    # c of the Poincaré ball of a hyperbolic head; result.json stores it only when it is not C
    curvature: float | None = None

    def __post_init__(self):
        if self.curvature is None and self.head == "hyperbolic":
            object.__setattr__(self, "curvature", C)

    @classmethod
    def from_dict(cls, d: dict) -> RecipeRecord:
        terms = tuple(TermRecord(*t) for t in d["terms"])
        keys = ("backbone", "head", "num_classes", "embed_dim")
        model, curvature = d.get("model", {}), d.get("curvature")
        return cls(**{k: d[k] for k in keys}, terms=terms, model=model, curvature=curvature)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["terms"] = [list(t) for t in self.terms]
        if self.curvature is None or self.curvature == C:
            del d["curvature"]
        return d

    def weight(self, name: str) -> float:
        """The weight of loss term ``name`` (e.g. KFR's α for ``"kfr"``); 0 when there is none."""
        return next((t.weight for t in self.terms if t.name == name), 0.0)

    def build_model(self, pretrained: Path | None = None) -> HierNet:
        """The untrained network (``pretrained``: the backbone's weights file)."""
        ball = {"curvature": self.curvature} if self.head == "hyperbolic" else {}
        return build_model(
            self.backbone,
            self.num_classes,
            self.head,
            embed_dim=self.embed_dim,
            pretrained=pretrained,
            **self.model,
            **ball,
        )


@dataclass(frozen=True)
class RunRecord:
    """What ``result.json`` records of a finished run."""

    name: str  # run_name(method, knobs)
    method: str
    seed: int
    dataset: str
    paper: str | None  # the paper whose setup trained it (None: HierShapes)
    knobs: dict  # the non-default knobs, with kfr= and corruption=
    retrieval: str  # the ModelOutput field retrieval ranks
    metric: str  # "cosine", "dot", "euclidean" or "hyperbolic"
    test_acc: float | None  # None for zero-shot runs
    val_acc_last5: float | None  # mean of the last (up to) 5 epochs' val_acc
    zero_shot: bool
    train_classes: int
    setup: dict  # dataclasses.asdict of the Setup
    recipe: RecipeRecord
    # what made it (None in runs written before they were recorded: such runs are stale)
    commit: str | None = None  # git commit of the package, 12 digits
    dirty: bool | None = None  # whether the files of SOURCE differed from the commit
    source_hash: str | None = None  # source_hash(): SOURCE and the recipe

    @classmethod
    def from_dict(cls, d: dict) -> RunRecord:
        names = [f.name for f in dataclasses.fields(cls)]
        d = {"paper": None, **dict.fromkeys(_PROVENANCE), **d}  # older runs lack them
        missing = [k for k in names if k not in d]
        if missing:
            raise RunError(f"a run record lacks {missing}")
        return cls(**{**{k: d[k] for k in names}, "recipe": RecipeRecord.from_dict(d["recipe"])})

    def to_dict(self) -> dict:
        d = {**dataclasses.asdict(self), "recipe": self.recipe.to_dict()}
        return {k: v for k, v in d.items() if k not in _PROVENANCE or v is not None}

    @classmethod
    def from_json(cls, text: str, dataset: str | None = None) -> RunRecord:
        """The record of a ``result.json``; ``dataset`` fills the key older runs lack."""
        d = json.loads(text)
        return cls.from_dict({"dataset": dataset, **d} if dataset else d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"


_PROVENANCE = ("commit", "dirty", "source_hash")
