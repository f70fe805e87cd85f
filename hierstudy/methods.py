"""The methods the study trains, by name: a registry of recipe builders (like timm's models).

A builder takes a :class:`Context` (the training classes' hierarchy, epochs, seed, backbone)
and the method's knobs, and returns a :class:`Recipe`: the head, the loss terms the training
engine sums, and the representation retrieval ranks with. ``@register_method(name)`` adds one;
:func:`get_method` finds it, :func:`list_methods` lists them::

    recipe = get_method("kfr")(ctx, alpha=3.0)  # knobs checked against kfr's signature
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .embeddings import class_embeddings
from .hierarchy import Hierarchy
from .losses.dml import KINDS, UniformTupleLoss
from .losses.hier import HIER, C, HIERSph
from .losses.kfr import KFRLoss
from .losses.proxy import MultiSimilarity, ProxyAnchor
from .losses.semantic import CenterLoss, CorrelationLoss
from .models import build_backbone
from .objective import Term


class MethodError(ValueError):
    """An unknown method, or a knob the method does not have."""


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
    curvature: float | None = None  # c of the Poincaré ball (curvature −c): hyperbolic heads


@dataclass(frozen=True)
class Method:
    """A registered method: its builder and protocol (zero-shot retrieval or classification)."""

    name: str
    builder: Callable[..., Recipe]
    zero_shot: bool = False

    @property
    def knobs(self) -> dict[str, Any]:
        """The method's knobs and their defaults (the builder's arguments after ``ctx``)."""
        params = list(inspect.signature(self.builder).parameters.values())[1:]
        return {p.name: p.default for p in params}

    def check(self, knobs: dict) -> None:
        """:class:`MethodError` naming the method and its knobs if ``knobs`` has another one."""
        unknown = sorted(set(knobs) - set(self.knobs))
        if unknown:
            allowed = ", ".join(f"{k}={v!r}" for k, v in self.knobs.items()) or "none"
            raise MethodError(
                f"method {self.name!r} has no knob {', '.join(map(repr, unknown))}; "
                f"its knobs (with defaults): {allowed}"
            )

    def non_default(self, knobs: dict) -> dict:
        """``knobs`` without those at their default value (they do not change the run)."""
        defaults = self.knobs
        return {k: v for k, v in knobs.items() if not (k in defaults and defaults[k] == v)}

    def __call__(self, ctx: Context, **knobs) -> Recipe:
        self.check(knobs)
        return self.builder(ctx, **knobs)


_REGISTRY: dict[str, Method] = {}


def register_method(name: str, zero_shot: bool = False):
    """Register the decorated builder ``f(ctx, **knobs) -> Recipe`` as method ``name``.

    ``zero_shot``: the method follows the zero-shot retrieval protocol (Kim et al., HIER, CVPR
    2023, Sec. 4): it trains on the first half of the classes and is tested on the rest.
    """

    def register(builder: Callable[..., Recipe]) -> Callable[..., Recipe]:
        if name in _REGISTRY:
            raise MethodError(f"method {name!r} is already registered")
        _REGISTRY[name] = Method(name, builder, zero_shot)
        return builder

    return register


def list_methods() -> list[str]:
    """The registered methods' names, sorted."""
    return sorted(_REGISTRY)


def get_method(name: str) -> Method:
    """The registered method ``name``; :class:`MethodError` lists the choices."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise MethodError(f"unknown method {name!r}; choose one of {list_methods()}") from None


def is_zero_shot(name: str) -> bool:
    """Whether method ``name`` follows the zero-shot retrieval protocol."""
    return get_method(name).zero_shot


@register_method("ce")
def ce(ctx: Context) -> Recipe:
    """Plain cross-entropy: the baseline of every paper."""
    return Recipe("linear", [Term("ce", nn.CrossEntropyLoss())])


@register_method("kfr")
def kfr(
    ctx: Context,
    alpha: float = 30.0,
    phase1: float = 0.5,
    standardise: str = "vector",
    reduction: str = "mean",
    edge_weight: float = 1.0,
) -> Recipe:
    """Zhao et al. (KFR, 2024), eq. 7: CE first, then CE + α·ℓ_qtr on the features.

    ``phase1`` is the fraction of the epochs trained with CE alone (Sec. IV-B's two phases);
    α = 30 is the paper's value for ResNet-34 and CvT (Sec. IV-D). ``reduction`` and
    ``edge_weight`` set the scale α multiplies (:class:`~hierstudy.losses.kfr.KFRLoss`;
    ``reduction="sum"`` is the paper's L1 distance, on which its α was chosen).
    """
    recipe = Recipe("linear", [Term("ce", nn.CrossEntropyLoss())])
    return add_kfr(recipe, ctx, alpha, phase1, standardise, reduction, edge_weight)


def add_kfr(
    recipe: Recipe,
    ctx: Context,
    alpha: float,
    phase1: float = 0.5,
    standardise: str = "vector",
    reduction: str = "mean",
    edge_weight: float = 1.0,
) -> Recipe:
    """``recipe`` + α·ℓ_qtr (Zhao et al. (KFR, 2024), eq. 6, with the tree distance d_T of eq. 1,
    k = ``edge_weight``) on the backbone features from epoch ``phase1 · epochs`` on; nothing
    when α = 0.

    The ``kfr=α`` knob of :func:`hierstudy.runs.train` puts KFR's term on top of any method.
    """
    if alpha > 0:
        loss = KFRLoss(
            ctx.hierarchy.path_distance(k=1.0),
            standardise=standardise,
            reduction=reduction,
            edge_weight=edge_weight,
            generator=ctx.generator(1),
        )
        start = int(round(phase1 * ctx.epochs))
        recipe.terms.append(Term("kfr", loss, weight=alpha, input="features", start_epoch=start))
    return recipe


@register_method("corr")
def corr(ctx: Context) -> Recipe:
    """Barz & Denzler (WACV 2019), eq. 8: L_CORR = mean_b (1 − ψ(I_b)ᵀ φ(c_{y_b})) towards the
    fixed class embeddings φ of their Algorithm 1; retrieval by the dot product of the unit
    embeddings (Sec. 4)."""
    phi = class_embeddings(ctx.hierarchy.similarity())
    return Recipe(
        "embedding",
        [Term("corr", CorrelationLoss(phi), input="embedding")],
        retrieval="embedding",
        metric="dot",
        embed_dim=ctx.num_classes,
    )


@register_method("corr_cls")
def corr_cls(ctx: Context, lam: float = 0.1, relu_bn: bool = False) -> Recipe:
    """Barz & Denzler (WACV 2019), eq. 9: L_CORR + λ·L_CLS, L_CLS the cross-entropy of a softmax
    layer on the embedding, λ = 0.1.

    ``relu_bn=True``: the authors' code puts ReLU → BatchNorm between the embedding and the
    classifier.
    """
    recipe = corr(ctx)
    recipe.head = "embedding+linear"
    recipe.terms.append(Term("ce", nn.CrossEntropyLoss(), weight=lam))
    recipe.model = {"relu_bn_classifier": relu_bn}
    return recipe


@register_method("center")
def center(ctx: Context, lam: float = 0.1) -> Recipe:
    """CE + λ·center loss (Wen et al. (ECCV 2016), eq. 2, as a batch mean) on the features: a
    baseline of Barz & Denzler (WACV 2019), Tables 1-3. λ = 0.1: the authors' code
    (cvjena/semantic-embeddings, ``learn_center_loss.py``, ``--center_loss_weight`` default,
    the weight of ``center_loss_model``'s loss against the softmax's 1.0); the paper gives none."""
    centers = CenterLoss(ctx.num_classes, ctx.feature_dim, generator=ctx.generator(5))
    return Recipe(
        "linear",
        [Term("ce", nn.CrossEntropyLoss()), Term("center", centers, weight=lam, input="features")],
    )


@register_method("dml")
def dml(ctx: Context, loss: str = "triplet_l2", weight: float = 1.0) -> Recipe:
    """CE + a classical DML term on the features, its tuples drawn uniformly from the batch like
    KFR's: the comparison of Zhao et al. (KFR, 2024), Table II and Sec. IV-C.4."""
    term = UniformTupleLoss(loss, generator=ctx.generator(2))
    return Recipe(
        "linear",
        [Term("ce", nn.CrossEntropyLoss()), Term(loss, term, weight=weight, input="features")],
    )


# HIER's absolute learning rates (docs/hier.md §Combination and recipe: AdamW 1e-4, Proxy-Anchor
# proxies ×1e4 = 1, HIER proxies ×50 = 5e-3), kept whatever the base lr: at the study's 1e-3 the
# multipliers are 1e3 and 5.
_PA_LR, _HIER_LR = 1.0, 5e-3


def _metric_loss(ctx: Context, metric: str, dim: int) -> nn.Module:
    if metric == "pa":  # Proxy-Anchor (Kim et al., CVPR 2020), α = 32, δ = 0.1
        return ProxyAnchor(
            ctx.num_classes, dim, lr_scale=_PA_LR / ctx.lr, generator=ctx.generator(3)
        )
    if metric == "ms":  # Multi-Similarity (Wang et al., CVPR 2019), α = 2, β = 50, base 0.5
        return MultiSimilarity()
    raise MethodError(f"metric loss must be 'pa' or 'ms', not {metric!r}")


@register_method("dml_zero_shot", zero_shot=True)
def dml_zero_shot(ctx: Context, metric: str = "pa", dim: int = 128) -> Recipe:
    """Proxy-Anchor (Kim et al., CVPR 2020) or Multi-Similarity (Wang et al., CVPR 2019) alone on
    the L2-normalised embedding: the baselines HIER regularises (Kim et al. (HIER, CVPR 2023),
    docs/hier.md §Combination and recipe), with 2 images per class in a batch."""
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


@register_method("hier", zero_shot=True)
def hier(
    ctx: Context,
    metric: str = "pa",
    dim: int = 128,
    lam: float = 0.5,
    proxies: int | None = None,
    sphere: bool = False,
    mobius_eps: float = 0.0,
) -> Recipe:
    """Kim et al. (HIER, CVPR 2023): L_metric + λ·L_HIER, λ = 0.5 (docs/hier.md §Combination and
    recipe; L_HIER as written out in docs/hier.md §The loss).

    Poincaré-ball head of curvature −c, c = 0.1 (docs/hier.md §Embedding), retrieval by the
    hyperbolic distance; ``sphere=True`` is HIERsph (the paper's Table 2 ablation: unit sphere,
    cosine distance); ``proxies`` None: :func:`hier_proxies`; ``mobius_eps``: the authors' ε in
    L_HIER's Möbius denominator (:class:`~hierstudy.losses.hier.HIER`; the ball only).
    """
    proxies = proxies or hier_proxies(ctx.num_classes)
    generator, lr_scale = ctx.generator(4), _HIER_LR / ctx.lr
    if sphere:
        reg = HIERSph(dim, proxies, lr_scale=lr_scale, generator=generator)
    else:
        reg = HIER(dim, proxies, c=C, lr_scale=lr_scale, generator=generator, mobius_eps=mobius_eps)
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
        curvature=None if sphere else C,
    )


def rebuild_loss(
    name: str, state: dict[str, torch.Tensor], knobs: dict, curvature: float | None
) -> nn.Module:
    """An untrained module of the loss term ``name`` of a finished run, shaped like its
    checkpointed ``state`` (which the caller loads); ``knobs`` are the run's non-default knobs,
    ``curvature`` its Poincaré ball's c (None: no ball)."""
    if name == "ce":
        return nn.CrossEntropyLoss()
    if name == "kfr":
        return KFRLoss(
            state["path_distance"],
            standardise=knobs.get("standardise", "vector"),
            reduction=knobs.get("reduction", "mean"),
            edge_weight=knobs.get("edge_weight", 1.0),
        )
    if name == "corr":
        return CorrelationLoss(state["class_embeddings"])
    if name == "center":
        return CenterLoss(*state["centers"].shape)
    if name == "pa":
        return ProxyAnchor(*state["loss.proxies"].shape)
    if name == "ms":
        return MultiSimilarity()
    if name == "hier":
        num_proxies, dim = state["proxies"].shape
        return (
            HIERSph(dim, num_proxies)
            if curvature is None
            else HIER(dim, num_proxies, c=curvature, mobius_eps=knobs.get("mobius_eps", 0.0))
        )
    if name in KINDS:
        return UniformTupleLoss(name)
    raise MethodError(f"no method has a loss term named {name!r}")
