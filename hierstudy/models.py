"""Backbones by name and the study's heads: classifier, Barz embedding, HIER hyperbolic embedding.

``build_model("resnet18", num_classes=10, head="linear")`` returns a :class:`HierNet` whose
``forward(x)`` gives a :class:`ModelOutput` (penultimate ``features``, ``embedding``, ``logits``).

Backbones never download anything: timm models are created with ``pretrained=False`` and a user's
own weights file is loaded with ``torch.load(weights_only=True)`` (``pretrained="path.pth"``).
Names: ``tiny_cnn`` (smoke profile), ``resnet_small`` (small profile: a ResNet-10 at half width,
the fastest of the ResNets measured at 64 × 64 on a 2-core CPU, see benchmarks/bench_train.py),
``resnet110w`` (Barz & Denzler's CIFAR network: ResNet-110 with 32/64/128 channels),
the papers' ResNet-18/34/50, Wide-ResNet-50-2/101-2, DeiT-S and ViT-S (timm; pass ``img_size=64``
for small images), CvT-13/21 (the HuggingFace ``transformers`` port of Microsoft's CvT, an
optional dependency) and any other timm model name. timm's ResNets use torchvision's parameter
names, so a torchvision ResNet state dict loads into them.

Heads (``head=``):

* ``"linear"``: logits = W f + b.
* ``"embedding"``: z = normalise(W f + b), the L2-normalised embedding layer of Barz & Denzler
  (Barz & Denzler (WACV 2019), Sec. 4: "the last layer is followed by L2 normalization").
* ``"embedding+linear"``: the same z plus a classifier on it, for L_CORR+CLS (ibid., eq. 9: "a
  fully-connected layer with softmax activation on top of the embedding layer"). The classifier
  sees the normalised z. The authors' code (cvjena/semantic-embeddings, ``cls_model``) puts
  ReLU → BatchNorm between z and that layer: ``relu_bn_classifier=True`` gives that variant.
* ``"hyperbolic"``: HIER's embedding in the Poincaré ball (Kim et al. (HIER, CVPR 2023); the
  steps are written out in docs/hier.md), see :class:`HyperbolicHead`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .geometry import CLIP_R, C, to_ball

HEADS = ("linear", "embedding", "embedding+linear", "hyperbolic")
NAMED_BACKBONES = (
    "tiny_cnn",
    "resnet_small",
    "resnet110w",
    "resnet18",
    "resnet34",
    "resnet50",
    "wide_resnet50_2",
    "wide_resnet101_2",
    "deit_small_patch16_224",
    "vit_small_patch16_224",
    "cvt_13",
    "cvt_21",
)


class ModelError(ValueError):
    """A model cannot be built as asked (unknown name, bad size, unusable weights file)."""


@dataclass
class ModelOutput:
    """What a :class:`HierNet` returns; ``embedding`` / ``logits`` are None when the head has none.

    features [B, F] (backbone penultimate), embedding [B, D], logits [B, C].
    """

    features: Tensor
    embedding: Tensor | None = None
    logits: Tensor | None = None


class TinyCNN(nn.Module):
    """Four conv3×3–BN–ReLU blocks (widths 16, 32, 64, 128), 2×2 max-pool between, global mean."""

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 128), in_chans: int = 3) -> None:
        super().__init__()
        blocks, previous = [], in_chans
        for i, width in enumerate(widths):
            pool = [nn.MaxPool2d(2)] if i < len(widths) - 1 else []
            conv = nn.Conv2d(previous, width, 3, padding=1, bias=False)
            blocks.append(nn.Sequential(conv, nn.BatchNorm2d(width), nn.ReLU(inplace=True), *pool))
            previous = width
        self.blocks = nn.Sequential(*blocks)
        self.num_features = previous

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(x).mean(dim=(2, 3))


class _CvT(nn.Module):
    """CvT (Wu et al., ICCV 2021) from ``transformers``: features = LayerNorm(final cls token).

    Parameter names match ``CvtForImageClassification`` minus its ``classifier``, so a local copy
    of its weights loads.
    """

    def __init__(self, depth: tuple[int, int, int], **config) -> None:
        super().__init__()
        try:
            from transformers import CvtConfig, CvtModel
        except ImportError as error:
            raise ModelError(
                "CvT needs the optional package 'transformers' (pip install transformers)"
            ) from error
        cfg = CvtConfig(depth=list(depth), **config)
        self.cvt = CvtModel(cfg, add_pooling_layer=False)
        self.layernorm = nn.LayerNorm(cfg.embed_dim[-1])
        self.num_features = cfg.embed_dim[-1]

    def forward(self, x: Tensor) -> Tensor:
        cls_token = self.cvt(pixel_values=x).cls_token_value  # [B, 1, F]
        return self.layernorm(cls_token.squeeze(1))


def build_backbone(name: str, **kw) -> tuple[nn.Module, int, str | None, str | None]:
    """``name`` → (module mapping [B, 3, H, W] to [B, F], F, target layer name, classifier key).

    The target layer is the backbone's last feature block (its qualified name), for Grad-CAM
    (for a ViT, the last block's ``norm1``).
    The classifier key names the parameters of the original classifier (``"fc"``, ``"head"``)
    that a full-model weights file holds and the backbone lacks. ``kw`` goes to the constructor
    (e.g. ``img_size=64`` for ViTs, ``drop_path_rate``). Never downloads.
    """
    if name == "tiny_cnn":
        net = TinyCNN(**kw)
        return net, net.num_features, f"blocks.{len(net.blocks) - 1}", None
    if name in ("cvt_13", "cvt_21"):
        depth = (1, 2, 10) if name == "cvt_13" else (1, 4, 16)
        net = _CvT(depth, **kw)
        return net, net.num_features, f"cvt.encoder.stages.{len(depth) - 1}", "classifier"
    import timm

    if name == "resnet_small":
        kw = {"block": "basic", "layers": (1, 1, 1, 1), "channels": (32, 64, 128, 256), **kw}
        net = _small_resnet(**kw)
    elif name == "resnet110w":
        net = CifarResNet(**kw)
    elif timm.is_model(name):
        net = timm.create_model(name, pretrained=False, num_classes=0, **kw)
    else:
        raise ModelError(
            f"unknown backbone {name!r}: use one of {NAMED_BACKBONES} or a timm model name"
        )
    info = getattr(net, "feature_info", None)
    target = info[-1]["module"] if info else None
    if hasattr(net, "blocks") and hasattr(net, "patch_embed"):
        # ViT / DeiT: after the last block only the class token reaches the head, so Grad-CAM
        # needs the last block's first norm, whose patch tokens still get gradients
        target = f"blocks.{len(net.blocks) - 1}.norm1"
    classifier = getattr(net, "pretrained_cfg", {}).get("classifier", "fc")
    return net, int(net.num_features), target, classifier


class CifarResNet(nn.Module):
    """He et al.'s CIFAR ResNet-(6n+2): a 3×3 stem and three stages of n basic blocks at strides
    1, 2, 2, then global average pooling. Barz & Denzler (WACV 2019, Sec. 5.1)
    widen ResNet-110 (n = 18) to 32/64/128 channels: "ResNet-110w"."""

    def __init__(self, depth: int = 110, channels: tuple[int, int, int] = (32, 64, 128)) -> None:
        from timm.models.resnet import BasicBlock

        super().__init__()
        if (depth - 2) % 6:
            raise ModelError(f"a CIFAR ResNet has depth 6n + 2, not {depth}")
        n = (depth - 2) // 6
        self.stem = nn.Sequential(
            nn.Conv2d(3, channels[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(channels[0]),
            nn.ReLU(inplace=True),
        )
        stages, width = [], channels[0]
        for k, out in enumerate(channels):
            stride = 1 if k == 0 else 2
            blocks = []
            for i in range(n):
                down = None
                if i == 0 and (stride != 1 or width != out):
                    down = nn.Sequential(
                        nn.Conv2d(width, out, 1, stride, bias=False), nn.BatchNorm2d(out)
                    )
                blocks.append(BasicBlock(width, out, stride if i == 0 else 1, downsample=down))
                width = out
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.num_features = width
        self.feature_info = [{"module": f"stages.{len(channels) - 1}"}]

    def forward(self, x: Tensor) -> Tensor:
        return self.stages(self.stem(x)).mean((2, 3))


def _small_resnet(block: str, layers, channels, stem_width: int = 32, **kw) -> nn.Module:
    from timm.models.resnet import BasicBlock, Bottleneck, ResNet

    blocks = {"basic": BasicBlock, "bottleneck": Bottleneck}
    return ResNet(
        blocks[block], layers, num_classes=0, channels=channels, stem_width=stem_width, **kw
    )


class LinearHead(nn.Module):
    """logits = W f + b: [B, F] → (None, [B, C])."""

    def __init__(self, in_dim: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_dim, num_classes)

    def forward(self, features: Tensor) -> tuple[None, Tensor]:
        return None, self.fc(features)


class EmbeddingHead(nn.Module):
    """Barz & Denzler's embedding (WACV 2019, Sec. 4): z = normalise(W f + b), optionally a
    classifier on z (eq. 9, L_CORR+CLS; ``relu_bn``: the authors' code's ReLU → BatchNorm before
    it). [B, F] → ([B, D], [B, C] or None)."""

    def __init__(
        self, in_dim: int, dim: int, num_classes: int | None = None, relu_bn: bool = False
    ) -> None:
        super().__init__()
        self.fc = nn.Linear(in_dim, dim)
        self.classifier = None
        if num_classes:
            linear = nn.Linear(dim, num_classes)
            self.classifier = (
                nn.Sequential(nn.ReLU(), nn.BatchNorm1d(dim), linear) if relu_bn else linear
            )

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor | None]:
        z = F.normalize(self.fc(features), dim=-1)
        return z, (self.classifier(z) if self.classifier is not None else None)


class HyperbolicHead(nn.Module):
    """HIER's embedding into the Poincaré ball of curvature −c (Kim et al. (HIER, CVPR 2023);
    docs/hier.md §Embedding).

    1. u = Linear(LayerNorm(f)) (LayerNorm without affine; orthogonal weight, zero bias);
    2. clip in the tangent space: u ← u · min(1, r / (‖u‖ + 1e-5));
    3. z = exp_0(u) = tanh(√c‖u‖) u / (√c‖u‖);
    4. project onto ‖z‖ ≤ (1 − 1e-3)/√c (the authors' margin; geoopt's own would be 4e-3);
    5. optionally (``riemannian=True``, the authors' default) rescale the backward gradient by
       the inverse metric (1 − c‖z‖²)²/4.
    Steps 2-5 are :func:`hierstudy.geometry.to_ball`, shared with HIER's proxies (the tests
    check it against geoopt).

    [B, F] → ([B, D] points with ‖z‖ < 1/√c, None).
    """

    def __init__(
        self,
        in_dim: int,
        dim: int,
        curvature: float = C,
        clip_r: float | None = CLIP_R,
        riemannian: bool = True,
    ) -> None:
        super().__init__()
        if not curvature > 0:
            raise ModelError(f"curvature c must be > 0, got {curvature}")
        if clip_r is not None and not clip_r > 0:
            raise ModelError(f"clip_r must be > 0 or None, got {clip_r}")
        self.norm = nn.LayerNorm(in_dim, elementwise_affine=False)
        self.proj = nn.Linear(in_dim, dim)
        nn.init.orthogonal_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        self.c, self.clip_r, self.riemannian = float(curvature), clip_r, riemannian

    def forward(self, features: Tensor) -> tuple[Tensor, None]:
        u = self.proj(self.norm(features))
        return to_ball(u, self.c, self.clip_r, self.riemannian and torch.is_grad_enabled()), None

    def extra_repr(self) -> str:
        return f"c={self.c}, clip_r={self.clip_r}, riemannian={self.riemannian}"


class HierNet(nn.Module):
    """Backbone + head. ``forward(x [B, 3, H, W]) -> ModelOutput``.

    uint8 input is scaled to float in [0, 1] first (so loaders may keep images as uint8 and move
    4× fewer bytes to the GPU); float input is used as given.
    Attributes: ``feature_dim`` (F), ``head_name``, ``target_layer`` (the backbone's last
    feature block, for Grad-CAM; None if unknown).
    """

    def __init__(
        self,
        backbone: nn.Module,
        feature_dim: int,
        head: nn.Module,
        head_name: str,
        target_layer: str | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.feature_dim = feature_dim
        self.head_name = head_name
        self.target_layer_name = f"backbone.{target_layer}" if target_layer else None

    @property
    def target_layer(self) -> nn.Module | None:
        return self.get_submodule(self.target_layer_name) if self.target_layer_name else None

    def forward(self, x: Tensor) -> ModelOutput:
        if x.dtype == torch.uint8:
            x = x.float().div_(255)
        features = self.backbone(x)
        embedding, logits = self.head(features)
        return ModelOutput(features, embedding, logits)


def build_model(
    backbone: str,
    num_classes: int | None,
    head: str = "linear",
    embed_dim: int = 128,
    pretrained: str | Path | None = None,
    *,
    curvature: float = C,
    clip_r: float | None = CLIP_R,
    relu_bn_classifier: bool = False,
    **kw,
) -> HierNet:
    """A :class:`HierNet`: backbone ``backbone`` (see :func:`build_backbone`) and head ``head``.

    ``num_classes`` is needed by the heads with a classifier ("linear", "embedding+linear");
    ``embed_dim`` is D of the embedding heads; ``curvature`` / ``clip_r`` configure the
    hyperbolic head; ``relu_bn_classifier`` selects the Barz code's "embedding+linear" variant. ``pretrained`` is a local weights file for the backbone (see
    :func:`load_backbone_weights`); the head always starts fresh. ``kw`` goes to the backbone.
    """
    if head not in HEADS:
        raise ModelError(f"unknown head {head!r}: use one of {HEADS}")
    needs_classes = head in ("linear", "embedding+linear")
    if needs_classes and (num_classes is None or int(num_classes) < 1):
        raise ModelError(f"head {head!r} needs num_classes >= 1, got {num_classes}")
    if head != "linear" and int(embed_dim) < 1:
        raise ModelError(f"embed_dim must be >= 1, got {embed_dim}")
    net, dim, target, classifier = build_backbone(backbone, **kw)
    if pretrained is not None:
        load_backbone_weights(net, pretrained, classifier)
    if head == "linear":
        module = LinearHead(dim, int(num_classes))
    elif head == "hyperbolic":
        module = HyperbolicHead(dim, int(embed_dim), curvature=curvature, clip_r=clip_r)
    else:
        classes = int(num_classes) if needs_classes else None
        module = EmbeddingHead(dim, int(embed_dim), classes, relu_bn=relu_bn_classifier)
    return HierNet(net, dim, module, head, target)


def load_backbone_weights(
    backbone: nn.Module, path: str | Path, classifier: str | None = None
) -> None:
    """Load a local state dict into ``backbone``, strictly, with ``weights_only=True``.

    Accepted: the backbone's own state dict; a full timm / torchvision / HuggingFace model's
    (the ``classifier`` parameters are dropped); a :class:`HierNet`'s or a study checkpoint's
    (``{"model": ...}``: the ``backbone.`` part is used); ``{"state_dict": ...}``; DDP's
    ``module.`` prefixes. Missing, unexpected or mis-shaped parameters raise :class:`ModelError`.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"weights file {path} does not exist (no weights are ever downloaded)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ModelError(f"weights file {path} cannot be read: {error}") from error
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ModelError(f"weights file {path} does not hold a state dict of tensors")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if any(k.startswith("backbone.") for k in state):
        state = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
    if classifier:
        state = {k: v for k, v in state.items() if not k.startswith(classifier + ".")}
    own = backbone.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [
        f"{k}: file {tuple(state[k].shape)}, model {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if missing or unexpected or mismatched:
        raise ModelError(
            f"weights file {path} does not fit the backbone: {len(missing)} missing "
            f"{missing[:5]}, {len(unexpected)} unexpected {unexpected[:5]}, "
            f"{len(mismatched)} mis-shaped {mismatched[:3]}"
        )
    backbone.load_state_dict(state)
