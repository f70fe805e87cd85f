"""Grad-CAM maps of the ground-truth class, the class scores they explain and the layer they are
taken at.

Grad-CAM (Selvaraju et al. (ICCV 2017), ref. [51] of Zhao et al. (KFR, 2024)) comes from
pytorch-grad-cam, for the ground-truth class ("GT-known"), with hooks released and the model's
train/eval modes, ``requires_grad`` flags and ``.grad`` tensors put back afterwards. The maps are
scored by :mod:`hierstudy.evaluation.localisation`; :func:`localise` does both for one run at one
layer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from hierstudy.evaluation import localisation

if TYPE_CHECKING:
    from hierstudy.datasets.selection import ScoredImages
    from hierstudy.runs import Run


class CamError(ValueError):
    """Inputs to Grad-CAM are unusable (images, labels, layers)."""


class _Scores(nn.Module):
    """Adapter for pytorch-grad-cam: the wrapped model's class scores [B, C]."""

    def __init__(self, model: nn.Module, scores: Callable | None) -> None:
        super().__init__()
        self.model = model
        self.scores = scores

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        s = self.scores(out) if self.scores is not None else getattr(out, "logits", out)
        if not isinstance(s, torch.Tensor) or s.ndim != 2:
            raise CamError(
                "Grad-CAM needs class scores [B, C]: the model gives none (an embedding-only "
                "head?); pass scores=callable(output) -> [B, C]"
            )
        return s


class _GroundTruth(ClassifierOutputTarget):
    """The score of the ground-truth class; a label out of range is a CamError (pytorch-grad-cam's
    context manager would swallow the IndexError)."""

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        if self.category >= model_output.shape[-1]:
            raise CamError(f"label {self.category} ≥ number of classes {model_output.shape[-1]}")
        return super().__call__(model_output)


def gradcam_maps(
    model: nn.Module,
    images: torch.Tensor,
    labels,
    target_layer: nn.Module,
    reshape_transform: Callable | None = None,
    batch_size: int = 64,
    scores: Callable | None = None,
) -> np.ndarray:
    """Grad-CAM of each image for its ground-truth class: float32 [N, H, W] in [0, 1].

    Args:
        model: returns logits [B, C], or an object with ``.logits`` (``HierNet``'s ModelOutput).
        images: [N, 3, H, W] as the model takes them; labels: [N] ground-truth classes.
        target_layer: the layer whose activations and gradients make the map (a CNN's last block;
            for a ViT e.g. ``blocks[-1].norm1`` with ``reshape_transform=vit_reshape_transform``).
        scores: optional ``callable(model output) -> [B, C]`` for models without logits.
    Maps are pytorch-grad-cam's: ReLU(Σ_k mean(∂y_c/∂A_k) A_k), resized bilinearly to H × W,
    min-max scaled per image (all zeros where the ReLU leaves nothing). Only ∂y_c/∂A is needed:
    during the call only the target layer's parameters require gradients (all of them if it has
    none), so that A does and the backward pass stops there — the layers before it keep no graph,
    which saves their backward pass and its memory (e.g. a ResNet's first three stages).
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise CamError(f"images must be a tensor [N, C, H, W], got {getattr(images, 'shape', ())}")
    y = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
    if y.shape != (len(images),) or not np.issubdtype(y.dtype, np.integer) or (y < 0).any():
        raise CamError(f"labels must be {len(images)} non-negative class indices, got {y!r:.80}")
    if not isinstance(target_layer, nn.Module):
        raise CamError(f"target_layer must be a module of the model, got {target_layer!r:.80}")
    if batch_size < 1:
        raise CamError(f"batch_size must be ≥ 1, got {batch_size}")
    modes = [(m, m.training) for m in model.modules()]
    params = [(p, p.requires_grad, p.grad) for p in model.parameters()]
    maps = []
    try:
        layer = {id(p) for p in target_layer.parameters()} & {id(p) for p, _, _ in params}
        for p, _, _ in params:  # a frozen model still needs gradients at the target layer
            p.requires_grad_(not layer or id(p) in layer)
        with (
            torch.enable_grad(),
            GradCAM(_Scores(model, scores), [target_layer], reshape_transform) as cam,
        ):
            for start in range(0, len(images), batch_size):
                targets = [_GroundTruth(int(c)) for c in y[start : start + batch_size]]
                maps.append(cam(input_tensor=images[start : start + batch_size], targets=targets))
    finally:
        for m, training in modes:
            m.training = training
        for p, requires_grad, grad in params:
            p.requires_grad_(requires_grad)
            p.grad = grad
    if sum(len(m) for m in maps) != len(images):  # pytorch-grad-cam swallows IndexErrors
        raise CamError("Grad-CAM failed on a batch (an IndexError inside the model?)")
    return np.concatenate(maps).astype(np.float32, copy=False)


def layer_grids(
    model: nn.Module, images: torch.Tensor, names: Sequence[str]
) -> dict[str, tuple[int, int]]:
    """(h, w) of the maps [B, C, h, w] that the named submodules output on ``images``.

    One forward pass in eval mode without gradients (train/eval modes put back, hooks released);
    the dict is in the order the modules first ran. A module whose output is not a 4-D map (a
    ViT's tokens, a pooled vector) or that does not run is left out.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise CamError(f"images must be a tensor [N, C, H, W], got {getattr(images, 'shape', ())}")
    grids: dict[str, tuple[int, int] | None] = {}

    def hook(name):
        def record(module, inputs, output):
            grids.setdefault(name, None)  # keeps the order of the first call
            if isinstance(output, torch.Tensor) and output.ndim == 4:
                grids[name] = (int(output.shape[2]), int(output.shape[3]))

        return record

    modules = [_submodule(model, n) for n in names]  # every name checked before any hook
    handles = [m.register_forward_hook(hook(n)) for m, n in zip(modules, names, strict=True)]
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        with torch.no_grad():
            model(images)
    finally:
        for h in handles:
            h.remove()
        for m, training in modes:
            m.training = training
    return {n: g for n, g in grids.items() if g is not None}


def coarse_grid_fallback(
    model: nn.Module, images: torch.Tensor, last_block: str, min_grid: int = 7
) -> str:
    """The Grad-CAM layer: ``last_block`` if its map is at least ``min_grid`` × ``min_grid``,
    else the last module before it among its siblings (the children of its parent, in the order
    the forward pass runs them) whose map is.

    Zhao et al. (KFR, 2024), Sec. IV-D, take the last block, whose 7 × 7 map on their ResNets
    at 224 px is the default ``min_grid``; on small images the last block's grid can be
    2 × 2, too coarse to place a box. ``last_block`` itself is returned when no sibling qualifies
    or when its output is no map (a ViT's tokens, which keep one grid through all blocks).
    Generic over backbones: one forward pass of ``images`` (one image suffices) with hooks.
    """
    if min_grid < 1:
        raise CamError(f"min_grid must be ≥ 1, got {min_grid}")
    _submodule(model, last_block)
    parent_name, _, _ = last_block.rpartition(".")
    parent = _submodule(model, parent_name) if parent_name else model
    prefix = f"{parent_name}." if parent_name else ""
    siblings = [prefix + n for n, _ in parent.named_children()]
    grids = layer_grids(model, images, siblings)
    if last_block not in grids:
        return last_block
    order = list(grids)
    up_to_last = order[: order.index(last_block) + 1]
    fine = [n for n in up_to_last if min(grids[n]) >= min_grid]
    return fine[-1] if fine else last_block


def class_scores(run: Run) -> Callable | None:
    """The class scores Grad-CAM explains for a trained run, as ``scores=`` of
    :func:`gradcam_maps` takes them: None (the model's logits) for a classifier; for L_CORR alone,
    which has no logits and classifies by the nearest class embedding φ(c) (Barz & Denzler
    (WACV 2019), Algorithm 1), the dot products ψ(x)ᵀφ(c) of the unit-norm embedding ψ(x) with
    the class embeddings Φ [C, D] of its ``corr`` term: they rank the classes as its
    nearest-embedding prediction does."""
    if run.record.recipe.head != "embedding":
        return None
    phi = run.loss("corr").class_embeddings.float()
    return lambda out: out.embedding @ phi.T


@dataclass(frozen=True)
class CamLayers:
    """The layer Grad-CAM reads and the model's last block (KFR's layer), with their map grids
    (h, w)."""

    layer: str
    grid: tuple[int, int]
    last_block: str
    last_grid: tuple[int, int]

    def scored(self, last_block: bool = True) -> list[str]:
        """``layer``, then the last block when it is another layer and ``last_block``."""
        return [
            self.layer,
            *([self.last_block] if last_block and self.last_block != self.layer else []),
        ]


def cam_layers(
    model: nn.Module, images: torch.Tensor, min_grid: int = 7, layer: str | None = None
) -> CamLayers:
    """The study's Grad-CAM layer for ``model`` (a :class:`~hierstudy.models.HierNet`, whose
    ``target_layer_name`` is its last block): ``layer`` if given, else
    :func:`coarse_grid_fallback` of the last block at ``min_grid``; the grids from one image of
    ``images`` (the models of a setup share a backbone: one probe serves them all)."""
    last = model.target_layer_name
    layer = layer or coarse_grid_fallback(model, images[:1], last, min_grid)
    grids = layer_grids(model, images[:1], [layer, last])
    return CamLayers(layer, grids[layer], last, grids[last])


def localise(
    run: Run,
    scored: ScoredImages,
    layer: str,
    *,
    model: nn.Module | None = None,
    batch_size: int = 128,
) -> localisation.Localisation:
    """``run``'s GT-known Grad-CAM maps of the images ``scored`` at ``layer`` (:func:`gradcam_maps`
    of its :func:`class_scores`), scored by :func:`~hierstudy.evaluation.localisation.score_maps`
    with the run's predicted classes of those images (from its saved test features).

    ``model``: the run's network when already built (default: :meth:`~hierstudy.runs.Run.model`).
    """
    model = run.model() if model is None else model
    maps = gradcam_maps(
        model,
        scored.images,
        scored.labels,
        _submodule(model, layer),
        batch_size=batch_size,
        scores=class_scores(run),
    )
    feats = run.features("test")
    if not np.array_equal(feats["labels"][scored.indices], scored.labels):
        raise CamError(f"run {run.name!r}'s test features are not the scored split's")
    return localisation.score_maps(maps, scored, feats["pred"][scored.indices])


def _submodule(model: nn.Module, name: str) -> nn.Module:
    try:
        return model.get_submodule(name)
    except AttributeError:
        raise CamError(f"{type(model).__name__} has no submodule {name!r}") from None


def vit_reshape_transform(vit: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """Tokens [B, T, C] of a timm ViT / DeiT → [B, C, h, w], dropping its prefix tokens.

    ``vit`` is the timm model (or a module whose ``.backbone`` is): ``num_prefix_tokens`` (class,
    distillation and register tokens, which timm puts first) and ``patch_embed.grid_size`` (h, w)
    are read from it; patch tokens are in row-major order.
    """
    vit = vit if hasattr(vit, "patch_embed") else getattr(vit, "backbone", vit)
    grid = getattr(getattr(vit, "patch_embed", None), "grid_size", None)
    if grid is None:
        raise CamError(f"{type(vit).__name__} is not a timm ViT (no patch_embed.grid_size)")
    (h, w), prefix = grid, int(getattr(vit, "num_prefix_tokens", 1))

    def reshape(tokens: torch.Tensor) -> torch.Tensor:
        if tokens.ndim != 3 or tokens.shape[1] != prefix + h * w:
            raise CamError(f"expected tokens [B, {prefix} + {h}·{w}, C], got {tuple(tokens.shape)}")
        return tokens[:, prefix:].reshape(len(tokens), h, w, -1).permute(0, 3, 1, 2)

    return reshape
