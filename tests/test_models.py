import math
import sys

import pytest
import torch
from torch import nn

from hierstudy import models
from hierstudy.models import HEADS, HyperbolicHead, ModelError, build_backbone, build_model

FEATURE_DIMS = {
    "tiny_cnn": 128,
    "resnet_small": 256,
    "resnet18": 512,
    "resnet34": 512,
    "resnet50": 2048,
    "wide_resnet50_2": 2048,
    "wide_resnet101_2": 2048,
    "deit_small_patch16_224": 384,
    "vit_small_patch16_224": 384,
    "cvt_13": 384,
    "cvt_21": 384,
}


@pytest.fixture
def no_downloads(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a download was attempted")

    import timm.models._builder

    monkeypatch.setattr(timm.models._builder, "load_pretrained", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    if "huggingface_hub" in sys.modules:
        monkeypatch.setattr(sys.modules["huggingface_hub"], "hf_hub_download", refuse)


@pytest.mark.parametrize("name", sorted(FEATURE_DIMS))
def test_backbones_construct_by_name_without_downloading(name, no_downloads):
    if name.startswith("cvt"):
        pytest.importorskip("transformers")
    kw = {"img_size": 64} if "patch16" in name else {}
    with torch.device("meta"):  # no memory, no initialisation: the big ones build in ms
        net, dim, target, classifier = build_backbone(name, **kw)
    assert dim == FEATURE_DIMS[name]
    assert target is not None and isinstance(net.get_submodule(target), nn.Module)
    assert classifier is None or not any(k.startswith(classifier + ".") for k in net.state_dict())


@pytest.mark.parametrize("head", HEADS)
def test_head_output_shapes(head):
    model = build_model("tiny_cnn", 5, head=head, embed_dim=7)
    out = model(torch.rand(3, 3, 16, 16))
    assert out.features.shape == (3, model.feature_dim) == (3, 128)
    has_embedding = head != "linear"
    has_logits = head in ("linear", "embedding+linear")
    assert (out.embedding is not None) == has_embedding
    assert (out.logits is not None) == has_logits
    if has_embedding:
        assert out.embedding.shape == (3, 7)
    if has_logits:
        assert out.logits.shape == (3, 5)
    if head.startswith("embedding"):
        torch.testing.assert_close(out.embedding.norm(dim=1), torch.ones(3))
    assert model.target_layer is model.backbone.blocks[-1]


def test_classifier_sits_on_the_normalised_embedding():
    model = build_model("tiny_cnn", 4, head="embedding+linear", embed_dim=6)
    out = model(torch.rand(2, 3, 16, 16))
    linear = model.head.classifier
    torch.testing.assert_close(out.logits, out.embedding @ linear.weight.T + linear.bias)


def test_the_barz_code_variant_puts_relu_and_batchnorm_before_the_classifier():
    model = build_model("tiny_cnn", 4, head="embedding+linear", relu_bn_classifier=True).eval()
    out = model(torch.rand(3, 3, 16, 16))
    relu, bn, linear = model.head.classifier
    assert isinstance(relu, nn.ReLU) and isinstance(bn, nn.BatchNorm1d)
    torch.testing.assert_close(out.logits, linear(bn(out.embedding.clamp_min(0))))


def test_small_resnet_forward_on_64px():
    model = build_model("resnet_small", 10)
    out = model(torch.rand(2, 3, 64, 64))
    assert out.features.shape == (2, 256) and out.logits.shape == (2, 10)
    assert model.target_layer is model.backbone.layer4


def test_uint8_input_is_scaled_to_unit_range():
    model = build_model("tiny_cnn", 3).eval()
    x = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    torch.testing.assert_close(model(x).logits, model(x.float() / 255).logits)


def _literal_poincare(u, c=0.1, r=2.3):
    """docs/hier.md §Embedding steps 2-4 written out row by row."""
    rows = []
    for row in u:
        norm = math.sqrt(sum(v * v for v in row.tolist()))
        row = row * min(1.0, r / (norm + 1e-5))
        n = max(math.sqrt(sum(v * v for v in row.tolist())), 1e-5)
        z = math.tanh(math.sqrt(c) * n) * row / (math.sqrt(c) * n)
        max_norm = (1 - 1e-3) / math.sqrt(c)
        zn = math.sqrt(sum(v * v for v in z.tolist()))
        rows.append(z / zn * max_norm if zn > max_norm else z)
    return torch.stack(rows)


@pytest.mark.parametrize("clip_r", [2.3, None])
def test_hyperbolic_head_matches_the_literal_map(clip_r):
    torch.manual_seed(0)
    head = HyperbolicHead(12, 8, curvature=0.1, clip_r=clip_r)
    f = torch.randn(6, 12)
    z, logits = head(f)
    u = head.proj(torch.nn.functional.layer_norm(f, (12,)))
    expected = _literal_poincare(u.detach(), 0.1, clip_r if clip_r else float("inf"))
    torch.testing.assert_close(z.detach(), expected, rtol=1e-5, atol=1e-6)
    assert logits is None
    assert (z.norm(dim=1) < 1 / math.sqrt(0.1)).all()
    if clip_r:  # every u beyond the clip lands on one sphere, tanh(√c r)/√c ≈ 1.965
        radius = math.tanh(math.sqrt(0.1) * 2.3) / math.sqrt(0.1)
        clipped = u.norm(dim=1) > 2.3
        assert clipped.any()
        torch.testing.assert_close(z.norm(dim=1)[clipped], torch.full_like(z[clipped, 0], radius))


def test_hyperbolic_head_init_is_orthogonal_with_zero_bias_and_plain_layernorm():
    head = HyperbolicHead(16, 8)
    w = head.proj.weight.detach()
    torch.testing.assert_close(w @ w.T, torch.eye(8), atol=1e-5, rtol=0)
    assert (head.proj.bias == 0).all()
    assert not head.norm.elementwise_affine


@pytest.mark.parametrize("riemannian", [True, False])
def test_hyperbolic_gradient_is_rescaled_by_the_inverse_metric(riemannian):
    torch.manual_seed(1)
    head = HyperbolicHead(6, 4, curvature=0.1, riemannian=riemannian)
    f = torch.randn(5, 6)
    weights = torch.randn(5, 4)
    (head(f)[0] * weights).sum().backward()
    got = head.proj.bias.grad.clone()
    # literal: gradient of the plain map, each row's upstream gradient scaled by (1 - c|z|²)²/4
    u = head.proj(torch.nn.functional.layer_norm(f, (6,)))
    z = _differentiable_poincare(u)
    scale = (1 - 0.1 * z.detach().pow(2).sum(1, keepdim=True)).pow(2) / 4
    upstream = weights * scale if riemannian else weights
    (bias_grad,) = torch.autograd.grad((z * upstream).sum(), head.proj.bias)
    torch.testing.assert_close(got, bias_grad, rtol=1e-5, atol=1e-7)


def _differentiable_poincare(u, c=0.1, r=2.3):
    norm = u.norm(dim=1, keepdim=True)
    u = u * torch.clamp(r / (norm + 1e-5), max=1.0)
    n = u.norm(dim=1, keepdim=True)
    return torch.tanh(math.sqrt(c) * n) * u / (math.sqrt(c) * n)


def test_bad_requests_raise_model_error():
    with pytest.raises(ModelError, match="unknown backbone 'resnet_nonexistent'"):
        build_model("resnet_nonexistent", 3)
    with pytest.raises(ModelError, match="unknown head"):
        build_model("tiny_cnn", 3, head="softmax")
    with pytest.raises(ModelError, match="needs num_classes"):
        build_model("tiny_cnn", None, head="linear")
    with pytest.raises(ModelError, match="embed_dim"):
        build_model("tiny_cnn", None, head="embedding", embed_dim=0)
    with pytest.raises(ModelError, match="curvature"):
        HyperbolicHead(4, 2, curvature=0.0)
    assert build_model("tiny_cnn", None, head="hyperbolic").head_name == "hyperbolic"


def test_torchvision_weights_file_loads_into_the_timm_resnet(tmp_path, no_downloads):
    import torchvision

    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)  # includes torchvision's fc, which is dropped
    model = build_model("resnet18", 7, pretrained=path)
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, reference.state_dict()[key]), key
    assert model.head.fc.out_features == 7


def test_weights_from_a_study_checkpoint_and_a_ddp_state_dict(tmp_path):
    source = build_model("tiny_cnn", 4)
    torch.save({"model": source.state_dict(), "epoch": 3}, tmp_path / "ckpt.pt")
    torch.save({"module." + k: v for k, v in source.backbone.state_dict().items()}, tmp_path / "d")
    for name in ("ckpt.pt", "d"):
        model = build_model("tiny_cnn", 9, head="embedding+linear", pretrained=tmp_path / name)
        for key, value in source.backbone.state_dict().items():
            assert torch.equal(model.backbone.state_dict()[key], value)


def test_unusable_weights_files_name_the_file_and_the_problem(tmp_path):
    with pytest.raises(ModelError, match="missing.pth does not exist"):
        build_model("tiny_cnn", 3, pretrained=tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(ModelError, match="junk.pth cannot be read"):
        build_model("tiny_cnn", 3, pretrained=tmp_path / "junk.pth")
    wide = models.TinyCNN(widths=(16, 32, 64, 256))
    torch.save(wide.state_dict(), tmp_path / "wide.pth")
    with pytest.raises(ModelError, match=r"wide.pth does not fit.*mis-shaped"):
        build_model("tiny_cnn", 3, pretrained=tmp_path / "wide.pth")
    torch.save({"blocks.0.0.weight": torch.zeros(16, 3, 3, 3)}, tmp_path / "part.pth")
    with pytest.raises(ModelError, match=r"part.pth does not fit.* missing"):
        build_model("tiny_cnn", 3, pretrained=tmp_path / "part.pth")


def test_vit_target_layer_gives_nonzero_gradcam_maps():
    from hierstudy.gradcam import gradcam_maps, vit_reshape_transform

    torch.manual_seed(0)
    model = build_model("vit_tiny_patch16_224", 5, img_size=32, patch_size=8, depth=2)
    assert model.target_layer_name == "backbone.blocks.1.norm1"
    gen = torch.Generator().manual_seed(0)
    maps = gradcam_maps(
        model,
        torch.rand(3, 3, 32, 32, generator=gen),
        torch.tensor([0, 1, 2]),
        model.target_layer,
        reshape_transform=vit_reshape_transform(model),
    )
    # with the last block's output every map was all zeros (no gradient reaches the patch tokens);
    # a single map may still be zero where the ReLU of Grad-CAM leaves nothing
    assert maps.shape == (3, 32, 32) and (maps.reshape(3, -1).max(1) > 0.5).sum() >= 2
