from dataclasses import dataclass

import cv2
import numpy as np
import pytest
import timm
import torch
from torch import nn

from hierstudy import config, gradcam, runs
from hierstudy.datasets import selection, study_splits
from hierstudy.evaluation import localisation
from hierstudy.gradcam import CamError, gradcam_maps, vit_reshape_transform
from hierstudy.models import ModelOutput, build_model


class TinyCNN(nn.Module):
    def __init__(self, classes=4):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.conv2 = nn.Conv2d(6, 8, 3, padding=1, stride=2)
        self.fc = nn.Linear(8, classes)

    def forward(self, x):
        a = self.conv2(torch.relu(self.bn(self.conv1(x))))
        return self.fc(a.mean(dim=(2, 3)))


@dataclass
class Output:
    features: torch.Tensor
    logits: torch.Tensor | None


class Wrapped(nn.Module):
    """Returns a ModelOutput-like dataclass, as hierstudy.models.HierNet does."""

    def __init__(self, net, with_logits=True):
        super().__init__()
        self.net, self.with_logits = net, with_logits

    def forward(self, x):
        logits = self.net(x)
        return Output(logits, logits if self.with_logits else None)


def manual_gradcam(net, layer, x, labels, reshape=lambda t: t):
    """Grad-CAM by hand: ReLU(Σ_k mean ∂y_c/∂A_k · A_k), then pytorch-grad-cam's scaling."""
    store = {}
    handle = layer.register_forward_hook(lambda m, i, o: store.update(a=o))
    net.eval()
    logits = net(x)
    handle.remove()
    grads = torch.autograd.grad(logits[torch.arange(len(x)), labels].sum(), store["a"])[0]
    a, grads = reshape(store["a"]), reshape(grads)
    cam = torch.relu((grads.mean(dim=(2, 3), keepdim=True) * a).sum(1)).detach().numpy()
    out = []
    for m in cam:
        m = (m - m.min()) / (1e-7 + (m - m.min()).max())
        m = cv2.resize(np.float32(m), (x.shape[3], x.shape[2]))
        out.append((m - m.min()) / (1e-7 + (m - m.min()).max()))
    return np.stack(out)


def test_gradcam_is_the_formula_for_the_ground_truth_class_in_batches():
    torch.manual_seed(0)
    net, x = TinyCNN(), torch.randn(5, 3, 16, 16)
    labels = torch.tensor([0, 3, 1, 1, 2])
    maps = gradcam_maps(net, x, labels, net.conv2, batch_size=2)
    assert maps.shape == (5, 16, 16) and maps.dtype == np.float32
    assert maps.min() >= 0 and maps.max() <= 1
    np.testing.assert_allclose(maps, manual_gradcam(net, net.conv2, x, labels), atol=1e-5)
    other = gradcam_maps(net, x, (labels + 1) % 4, net.conv2)
    assert np.abs(other - maps).max() > 0.1  # the target class matters


def test_gradcam_targets_the_ground_truth_class_semantically():
    """Class 0 reads channel 0 (a blob top-left), class 1 channel 1 (a blob bottom-right)."""
    net = nn.Sequential(nn.Conv2d(2, 2, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with torch.no_grad():
        net[0].weight.copy_(torch.eye(2)[:, :, None, None])
        net[0].bias.zero_()
    x = torch.zeros(2, 2, 12, 12)
    x[:, 0, 1:4, 1:4] = 1
    x[:, 1, 8:11, 8:11] = 1
    maps = gradcam_maps(net, x, [0, 1], net[0])
    assert maps[0, :6, :6].sum() > 5 * maps[0, 6:, 6:].sum()
    assert maps[1, 6:, 6:].sum() > 5 * maps[1, :6, :6].sum()


def test_gradcam_restores_modes_flags_grads_and_releases_hooks():
    torch.manual_seed(1)
    net = TinyCNN()
    net.train()
    net.bn.eval()
    net.conv1.requires_grad_(False)
    sentinel = torch.full_like(net.fc.weight, 7.0)
    net.fc.weight.grad = sentinel
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():  # Grad-CAM needs gradients even inside no_grad
        maps = gradcam_maps(net, x, [0, 1, 2], net.conv2)
    assert net.training and net.conv1.training and not net.bn.training
    assert not net.conv1.weight.requires_grad and net.conv2.weight.requires_grad
    assert net.fc.weight.grad is sentinel and (sentinel == 7).all()
    assert net.conv2.weight.grad is None and net.conv1.weight.grad is None
    assert not net.conv2._forward_hooks and not net.conv2._backward_hooks
    assert maps.max() > 0
    net.requires_grad_(False)  # a fully frozen model gives the same maps
    np.testing.assert_allclose(gradcam_maps(net, x, [0, 1, 2], net.conv2), maps, atol=1e-6)


def test_gradcam_backward_pass_stops_at_the_target_layer():
    """Only ∂y_c/∂A is needed: the layers before the target keep no graph (the same maps)."""
    torch.manual_seed(4)
    net, x, labels = TinyCNN(), torch.randn(3, 3, 16, 16), [2, 0, 1]
    graph = {}
    for name in ("conv1", "conv2"):
        getattr(net, name).register_forward_hook(
            lambda m, i, out, name=name: graph.update({name: out.requires_grad})
        )
    maps = gradcam_maps(net, x, labels, net.conv2)
    assert graph == {"conv1": False, "conv2": True}
    np.testing.assert_allclose(maps, manual_gradcam(net, net.conv2, x, labels), atol=1e-5)
    # a target without parameters (a ReLU module): its output needs the earlier layers' graph
    seq = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 5, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(5, 3),
    )
    relu_maps = gradcam_maps(seq, x, labels, seq[3])
    assert relu_maps.max() > 0
    np.testing.assert_allclose(relu_maps, manual_gradcam(seq, seq[3], x, labels), atol=1e-5)


def test_gradcam_reads_logits_from_a_model_output_or_a_score_function():
    torch.manual_seed(2)
    net, x = TinyCNN(), torch.randn(2, 3, 16, 16)
    plain = gradcam_maps(net, x, [1, 2], net.conv2)
    np.testing.assert_allclose(gradcam_maps(Wrapped(net), x, [1, 2], net.conv2), plain, atol=1e-6)
    no_logits = Wrapped(net, with_logits=False)
    with pytest.raises(CamError, match="class scores"):
        gradcam_maps(no_logits, x, [1, 2], net.conv2)
    by_features = gradcam_maps(no_logits, x, [1, 2], net.conv2, scores=lambda out: out.features)
    np.testing.assert_allclose(by_features, plain, atol=1e-6)


def test_gradcam_bad_inputs():
    net, x = TinyCNN(), torch.randn(2, 3, 8, 8)
    with pytest.raises(CamError, match="number of classes"):
        gradcam_maps(net, x, [0, 4], net.conv2)
    with pytest.raises(CamError, match="non-negative class indices"):
        gradcam_maps(net, x, [0, -1], net.conv2)
    with pytest.raises(CamError, match="2 non-negative"):
        gradcam_maps(net, x, [0], net.conv2)
    with pytest.raises(CamError, match="tensor"):
        gradcam_maps(net, x[0], [0], net.conv2)
    assert net.training  # restored after the failure too


def tiny_vit(name="vit_tiny_patch16_224"):
    torch.manual_seed(0)
    return timm.create_model(
        name, pretrained=False, img_size=32, patch_size=8, depth=2, num_classes=3
    )


def test_vit_reshape_drops_prefix_tokens_in_row_major_order():
    for name, prefix in (("vit_tiny_patch16_224", 1), ("deit_tiny_distilled_patch16_224", 2)):
        vit = tiny_vit(name)
        assert vit.num_prefix_tokens == prefix
        tokens = torch.zeros(2, prefix + 16, 5)
        tokens[:, prefix:, :] = torch.arange(16.0)[None, :, None]
        tokens[:, :prefix] = -1
        grid = vit_reshape_transform(vit)(tokens)
        assert grid.shape == (2, 5, 4, 4)
        torch.testing.assert_close(grid[0, 3], torch.arange(16.0).reshape(4, 4))
        with pytest.raises(CamError, match="expected tokens"):
            vit_reshape_transform(vit)(tokens[:, 1:])
    with pytest.raises(CamError, match="not a timm ViT"):
        vit_reshape_transform(TinyCNN())


def test_gradcam_on_a_vit_with_the_reshape_transform():
    vit, x = tiny_vit("deit_tiny_distilled_patch16_224"), torch.randn(3, 3, 32, 32)
    labels, layer, reshape = (
        torch.tensor([0, 1, 2]),
        vit.blocks[-1].norm1,
        vit_reshape_transform(vit),
    )
    maps = gradcam_maps(vit, x, labels, layer, reshape)
    assert maps.shape == (3, 32, 32) and maps.max() > 0
    np.testing.assert_allclose(maps, manual_gradcam(vit, layer, x, labels, reshape), atol=1e-5)
    with pytest.raises(ValueError, match="shape"):  # tokens are not a feature map
        gradcam_maps(vit, x, labels, layer)


# ------------------------------------------------------------------------- the target layer
def test_layer_grids_are_in_forward_order_and_skip_non_maps():
    net, x = TinyCNN(), torch.randn(1, 3, 16, 16)
    grids = gradcam.layer_grids(net, x, ["fc", "conv2", "conv1"])
    assert list(grids.items()) == [("conv1", (16, 16)), ("conv2", (8, 8))]  # fc: a vector


def test_layer_grids_restore_modes_and_release_hooks():
    net = TinyCNN()
    net.train()
    running = net.bn.running_mean.clone()
    gradcam.layer_grids(net, torch.randn(2, 3, 16, 16), ["conv1", "bn"])
    assert net.training and net.bn.training
    assert torch.equal(net.bn.running_mean, running)  # eval mode: statistics untouched
    assert not net.conv1._forward_hooks and not net.bn._forward_hooks
    with pytest.raises(CamError, match="no submodule 'conv9'"):
        gradcam.layer_grids(net, torch.randn(1, 3, 16, 16), ["conv1", "conv9"])
    assert not net.conv1._forward_hooks  # nothing registered before the bad name was found


class Swapped(nn.Module):
    """Children declared in the opposite order to the one they run in."""

    def __init__(self):
        super().__init__()
        self.last = nn.Conv2d(4, 4, 3, stride=4, padding=1)  # declared first, runs last
        self.middle = nn.Conv2d(4, 4, 3, stride=2, padding=1)
        self.first = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return self.last(self.middle(self.first(x))).mean(dim=(2, 3))


@pytest.mark.parametrize(
    ("size", "min_grid", "expected"),
    [
        (32, 7, "middle"),  # last 4 × 4 < 7: the last earlier map of ≥ 7 × 7 (16 × 16)
        (32, 4, "last"),  # the last block is fine enough: KFR's choice
        (32, 17, "first"),  # 32 × 32
        (32, 33, "last"),  # nothing qualifies: the last block
        (64, 7, "last"),  # 8 × 8
    ],
)
def test_coarse_grid_fallback_takes_the_last_map_fine_enough_in_forward_order(
    size, min_grid, expected
):
    net = Swapped()
    assert (
        gradcam.coarse_grid_fallback(net, torch.randn(1, 3, size, size), "last", min_grid)
        == expected
    )


def test_coarse_grid_fallback_on_the_study_backbones():
    torch.manual_seed(0)
    resnet = build_model("resnet_small", 5)
    assert resnet.target_layer_name == "backbone.layer4"
    small, large = torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 224, 224)
    grids = gradcam.layer_grids(resnet, small, [f"backbone.layer{i}" for i in range(1, 5)])
    assert list(grids.values()) == [(16, 16), (8, 8), (4, 4), (2, 2)]
    assert gradcam.coarse_grid_fallback(resnet, small, "backbone.layer4") == "backbone.layer2"
    assert (
        gradcam.coarse_grid_fallback(resnet, large, "backbone.layer4") == "backbone.layer4"
    )  # 7 × 7
    tiny = build_model("tiny_cnn", 5)  # blocks: 16, 8, 4, 4 at 32 px
    assert gradcam.coarse_grid_fallback(tiny, small[..., :32, :32], tiny.target_layer_name) == (
        "backbone.blocks.1"
    )
    vit = tiny_vit()  # tokens, not maps: the last block whatever its grid
    assert gradcam.coarse_grid_fallback(vit, torch.zeros(1, 3, 32, 32), "blocks.1.norm1") == (
        "blocks.1.norm1"
    )
    with pytest.raises(CamError, match="min_grid"):
        gradcam.coarse_grid_fallback(resnet, small, "backbone.layer4", 0)
    with pytest.raises(CamError, match="no submodule"):
        gradcam.coarse_grid_fallback(resnet, small, "backbone.layer9")


def test_cam_layers_apply_the_rule_once_and_list_the_scored_layers():
    torch.manual_seed(0)
    tiny = build_model("tiny_cnn", 5)  # blocks: 16, 8, 4, 4 cells at 32 px
    images = torch.zeros(3, 3, 32, 32, dtype=torch.uint8)
    layers = gradcam.cam_layers(tiny, images)
    assert layers == gradcam.CamLayers("backbone.blocks.1", (8, 8), "backbone.blocks.3", (4, 4))
    assert layers.scored() == ["backbone.blocks.1", "backbone.blocks.3"]
    assert layers.scored(last_block=False) == ["backbone.blocks.1"]
    given = gradcam.cam_layers(tiny, images, layer="backbone.blocks.0")
    assert (given.layer, given.grid, given.last_grid) == ("backbone.blocks.0", (16, 16), (4, 4))
    kept = gradcam.cam_layers(tiny, images, min_grid=4)  # the last block is fine enough
    assert kept.layer == kept.last_block and kept.scored() == ["backbone.blocks.3"]


# ----------------------------------------------------------------------------- trained runs
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("root")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HIERSTUDY_ROOT", str(root))
        yield config.load(
            "smoke",
            per_class={"train": 4, "val": 2, "test": 2},
            epochs=1,
            batch_size=35,
            seeds=(0,),
        )


def test_class_scores_are_the_logits_or_l_corrs_dot_products_with_its_class_embeddings(tiny):
    assert gradcam.class_scores(runs.train(tiny, "ce", 0)) is None  # a classifier: its logits
    corr = runs.train(tiny, "corr", 0)
    scores = gradcam.class_scores(corr)
    phi = corr.checkpoint()["losses"][0]["class_embeddings"]
    feats = corr.features("test")
    out = corr.model()(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    torch.testing.assert_close(scores(out), out.embedding @ phi.T, rtol=0, atol=0)
    # ψᵀφ ranks the classes as L_CORR's nearest-embedding prediction does (unit φ)
    test_out = ModelOutput(None, torch.from_numpy(feats["embedding"]), None)
    np.testing.assert_array_equal(scores(test_out).argmax(1).numpy(), feats["pred"])


def test_localise_is_grad_cam_at_the_layer_scored_with_the_runs_predictions(tiny):
    run = runs.train(tiny, "ce", 0)
    test = study_splits.hiershapes_splits(tiny)["test"]
    subset = selection.balanced_subset(test.labels, 20, seed=1)
    scored = selection.scored_images(test, subset)
    found = gradcam.localise(run, scored, "backbone.blocks.1", batch_size=7)
    model = run.model()
    maps = gradcam.gradcam_maps(model, scored.images, scored.labels, model.backbone.blocks[1])
    np.testing.assert_array_equal(found.maps, maps)
    predicted = run.features("test")["pred"][subset]
    expected = localisation.score_maps(maps, scored, predicted)
    assert found.scores == expected.scores and "top1loc_tau0.15_iou30" in found.scores
    np.testing.assert_array_equal(found.best, expected.best)
    again = gradcam.localise(run, scored, "backbone.blocks.1", model=model)
    np.testing.assert_array_equal(again.maps, maps)
    with pytest.raises(gradcam.CamError, match="no submodule"):
        gradcam.localise(run, scored, "backbone.blocks.9", model=model)
    shifted = np.roll(subset, 1)  # 20 images of 20 classes: every label moves
    assert (test.labels[shifted] != scored.labels).all()
    elsewhere = selection.ScoredImages(shifted, scored.images, scored.labels, scored.boxes)
    with pytest.raises(gradcam.CamError, match="not the scored split's"):
        gradcam.localise(run, elsewhere, "backbone.blocks.1", model=model)
