from dataclasses import dataclass

import cv2
import numpy as np
import pytest
import timm
import torch
from reference_cam import (
    literal_best_iou,
    literal_boxes,
    literal_maxboxacc_v2,
    literal_normalize,
)
from scipy import ndimage
from torch import nn

from hierstudy import cam
from hierstudy.cam import (
    CamError,
    balanced_subset,
    best_iou,
    box_iou,
    boxacc_at,
    cam_boxes,
    cam_thresholds,
    energy_in_box,
    gradcam_maps,
    localisation_set,
    maxboxacc_v2,
    vit_reshape_transform,
    wsol_scores,
)
from hierstudy.datasets import paper_transforms
from hierstudy.datasets.base import ArrayDataset
from hierstudy.hierarchy import Hierarchy
from hierstudy.models import build_model


# ----------------------------------------------------------------------------- boxes and IoU
def blob_map(shape, *rects, value=1.0):
    """A map with ``value`` on each rectangle (x0, y0, x1, y1), exclusive ends, 0 elsewhere."""
    out = np.zeros(shape)
    for x0, y0, x1, y1 in rects:
        out[y0:y1, x0:x1] = value
    return out


def sorted_boxes(boxes):
    return sorted(map(tuple, np.asarray(boxes).tolist()))


def test_one_blob_gives_its_exact_box():
    cam = blob_map((20, 30), (10, 5, 20, 9))
    assert sorted_boxes(cam_boxes(cam, 0.5)) == [(10, 5, 20, 9)]


def test_two_blobs_give_two_boxes_and_touching_diagonally_is_one_blob():
    cam = blob_map((20, 30), (2, 2, 6, 5), (15, 10, 25, 18))
    assert sorted_boxes(cam_boxes(cam, 0.2)) == [(2, 2, 6, 5), (15, 10, 25, 18)]
    diagonal = blob_map((20, 30), (2, 2, 6, 5), (6, 5, 9, 8))  # corners touch: 8-connected
    assert sorted_boxes(cam_boxes(diagonal, 0.2)) == [(2, 2, 9, 8)]


def test_a_hole_adds_its_inner_contour_box_grown_by_one_pixel():
    ring = blob_map((20, 20), (4, 4, 16, 16))
    ring[8:12, 8:12] = 0  # hole: columns/rows 8..11
    assert sorted_boxes(cam_boxes(ring, 0.5)) == [(4, 4, 16, 16), (7, 7, 13, 13)]
    assert sorted_boxes(cam_boxes(ring, 0.5)) == sorted_boxes(
        literal_boxes((ring * 255).astype(np.uint8), 0.5)
    )


def test_boxes_reach_the_image_border_unclipped():
    cam = blob_map((10, 12), (7, 0, 12, 10))  # touches the right, top and bottom borders
    assert sorted_boxes(cam_boxes(cam, 0.5)) == [(7, 0, 12, 10)]  # Choe et al. clip x1 to 11


def test_empty_and_constant_maps_have_no_box():
    for flat in (np.zeros((8, 8)), np.full((8, 8), 3.0)):
        for tau in (0.0, 0.15, 0.999):
            assert cam_boxes(flat, tau).shape == (0, 4)
    assert (best_iou(np.full((2, 8, 8), 2.0), [[0, 0, 8, 8]] * 2) == 0).all()


def test_threshold_is_strict_on_the_8_bit_level():
    # values 0, 100.5/255 and 1 -> uint8 0, 100 (255·cam truncated), 255
    cam = blob_map((10, 12), (0, 0, 10, 10), value=100.5 / 255)
    cam[3:6, 3:6] = 1.0
    assert sorted_boxes(cam_boxes(cam, 99.9 / 255)) == [(0, 0, 10, 10)]  # level 99 < 100
    assert sorted_boxes(cam_boxes(cam, 100.5 / 255)) == [(3, 3, 6, 6)]  # level 100: strict >
    assert sorted_boxes(cam_boxes(cam, 0.0)) == [(0, 0, 10, 10)]  # level 0 drops the zeros


def test_tau_to_level_follows_the_reference_arithmetic_on_the_whole_grid():
    taus = cam_thresholds()
    assert len(taus) == 1000 and taus[0] == 0 and taus[-1] == pytest.approx(0.999)
    expected = [int(t * np.max(np.array([255], np.uint8))) for t in taus]  # their int(τ · max)
    np.testing.assert_array_equal(cam._levels(taus), expected)


def test_box_iou_is_continuous_with_exclusive_ends():
    a = [[0, 0, 10, 10]]
    assert box_iou(a, [[5, 0, 15, 10]])[0, 0] == pytest.approx(50 / 150)
    assert box_iou(a, [[10, 0, 20, 10]])[0, 0] == 0  # adjacent: no shared pixel
    assert box_iou(a, [[2, 2, 4, 4]])[0, 0] == pytest.approx(4 / 100)
    assert box_iou([[3, 3, 3, 9]], [[3, 3, 3, 9]])[0, 0] == 0  # no area
    assert box_iou(a, [[0, 0, 10, 10], [0, 0, 5, 10]]).shape == (1, 2)


def test_predicted_and_ground_truth_boxes_share_the_convention():
    """A blob drawn from a GT box (exclusive ends) is found with IoU exactly 1."""
    gt = np.array([[3, 4, 11, 9]])
    cam = blob_map((16, 16), tuple(gt[0]))
    assert (best_iou(cam[None], gt) == 1).all()


# ------------------------------------------------------------------------------ WSOL scores
def hand_case():
    """Four 20 × 20 CAMs whose IoU with the GT box (0, 0, 10, 10) is known at every τ.

    A: 1 on the GT, 0.5 (uint8 127) beside it: box (0, 0, 20, 10), IoU 0.5, while level ≤ 126
       (τ ≤ 0.498), then the GT itself, IoU 1.
    B: 1 on (0, 0, 20, 10): IoU 0.5 at every τ.   C: constant: no box.
    D: two GT boxes, the CAM on the second one: IoU 1 at every τ.
    """
    a = blob_map((20, 20), (10, 0, 20, 10), value=0.5)
    a[0:10, 0:10] = 1
    cams = np.stack(
        [
            a,
            blob_map((20, 20), (0, 0, 20, 10)),
            np.ones((20, 20)),
            blob_map((20, 20), (0, 0, 10, 10)),
        ]
    )
    gt = [[[0, 0, 10, 10]]] * 3 + [[[12, 12, 18, 18], [0, 0, 10, 10]]]
    return cams, gt


def test_maxboxacc_v2_on_a_case_computed_by_hand():
    cams, gt = hand_case()
    out = maxboxacc_v2(cams, gt)
    # δ = 0.3 and 0.5 (IoU 0.5 ≥ 0.5 counts): A, B, D at every τ; δ = 0.7: D, and A from τ = 0.499
    assert out["maxboxacc_v2_iou30"] == pytest.approx(3 / 4)
    assert out["maxboxacc_v2_iou50"] == pytest.approx(3 / 4)
    assert out["maxboxacc_v2_iou70"] == pytest.approx(2 / 4)
    assert out["maxboxacc_v2"] == pytest.approx((3 / 4 + 3 / 4 + 2 / 4) / 3)
    assert out["best_tau_iou30"] == 0.0 and out["best_tau_iou70"] == pytest.approx(0.499)
    ref = literal_maxboxacc_v2(cams, gt, cam_thresholds())
    assert out["maxboxacc_v2"] == pytest.approx(ref["maxboxacc_v2"])


def test_kfr_point_is_boxacc_at_tau_015_iou_30():
    cams, gt = hand_case()
    assert boxacc_at(cams, gt) == pytest.approx(3 / 4)  # A (0.5), B (0.5), D (1)
    assert boxacc_at(cams, gt, tau=0.15, delta=0.7) == pytest.approx(1 / 4)  # D only
    assert boxacc_at(cams, gt, tau=0.6, delta=0.7) == pytest.approx(2 / 4)  # A's core and D
    scores = wsol_scores(cams, gt)
    assert scores["boxacc_tau0.15_iou30"] == pytest.approx(3 / 4)
    assert scores["maxboxacc_v2"] == pytest.approx(maxboxacc_v2(cams, gt)["maxboxacc_v2"])
    assert "maxboxacc_v2_iou70" in scores and "energy_in_box" in scores


def random_cams(rng, n, h, w):
    """Smoothed random maps (some with plateaus, holes and negative values), one constant."""
    cams = [ndimage.gaussian_filter(rng.normal(size=(h, w)), rng.uniform(0.5, 3)) for _ in range(n)]
    cams[0] = np.maximum(cams[0], 0)  # a ReLU'd map: a flat zero region
    cams[1] = np.round(cams[1] * 8)  # coarse plateaus
    cams[2] = rng.random((h, w))  # pure noise: many contours and holes
    cams[3] = np.full((h, w), 0.3)  # constant
    return np.stack(cams)


def random_gt(rng, n, h, w):
    out = []
    for _ in range(n):
        k = rng.integers(1, 4)
        x = np.sort(rng.integers(0, w + 1, (k, 2)), axis=1)
        y = np.sort(rng.integers(0, h + 1, (k, 2)), axis=1)
        out.append(np.stack([x[:, 0], y[:, 0], x[:, 1] + 1, y[:, 1] + 1], axis=1))
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_fast_path_matches_the_literal_opencv_reference_at_every_threshold(seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(10, 24, 2)
    cams, gt = random_cams(rng, 6, h, w), random_gt(rng, 6, h, w)
    ref = literal_maxboxacc_v2(cams, gt, cam_thresholds())
    np.testing.assert_array_equal(best_iou(cams, gt), ref["best_iou"])
    out = maxboxacc_v2(cams, gt)
    assert out["maxboxacc_v2"] == ref["maxboxacc_v2"]
    assert out["maxboxacc_v2_iou50"] == ref["per_delta"][0.5]


def test_boxes_are_opencvs_findcontours_boxes_on_random_maps():
    """Every box, outer and hole (the link-runs tracer's holes corrected), as the reference has it."""
    rng = np.random.default_rng(4)
    for h, w in ((9, 31), (40, 23), (64, 64)):
        for m in random_cams(rng, 5, h, w):
            u8 = (literal_normalize(m) * 255).astype(np.uint8)
            for tau in rng.random(4):
                assert sorted_boxes(cam_boxes(m, tau)) == sorted(literal_boxes(u8, tau))


def test_fast_path_matches_the_literal_reference_on_several_fractional_and_empty_boxes():
    """Boxes as a paper's evaluation transform leaves them: several per image (ImageNet's),
    fractional after a resize, empty where a crop cut one away; an image is right at (τ, δ) when
    a box found has IoU ≥ δ with ANY of its boxes."""
    rng = np.random.default_rng(5)
    h, w = 21, 26
    cams, gt = random_cams(rng, 6, h, w), []
    for _ in range(6):
        k = rng.integers(1, 5)
        x, y = (
            np.sort(rng.uniform(0, w, (k, 2)), axis=1),
            np.sort(rng.uniform(0, h, (k, 2)), axis=1),
        )
        gt.append(np.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], axis=1))
    gt[0][0, 2] = gt[0][0, 0]  # one box cut away by a crop: empty
    gt[1] = np.array([[0.0, 0.0, 0.0, h]])  # every box of the image cut away
    taus = cam_thresholds()
    best = best_iou(cams, gt, taus)
    np.testing.assert_array_equal(best, literal_best_iou(cams, gt, taus))
    assert (best[1] == 0).all() and (best[2:] > 0).any()
    one_box_each = [  # each box as if it were the image's only one, then the best of them
        best_iou(np.repeat(cams[i : i + 1], len(b), axis=0), b[:, None], taus).max(axis=0)
        for i, b in enumerate(gt)
    ]
    np.testing.assert_array_equal(best, np.stack(one_box_each))


def test_best_iou_is_the_same_in_any_chunking_and_order():
    rng = np.random.default_rng(3)
    cams, gt = random_cams(rng, 20, 16, 18), random_gt(rng, 20, 16, 18)
    full = best_iou(cams, gt, [0.1, 0.5, 0.9])
    order = rng.permutation(20)
    np.testing.assert_array_equal(
        best_iou(cams[order], [gt[i] for i in order], [0.1, 0.5, 0.9]), full[order]
    )
    np.testing.assert_array_equal(best_iou(cams[:1], gt[:1], [0.1, 0.5, 0.9]), full[:1])


def test_energy_in_box():
    cam = blob_map((10, 10), (0, 0, 4, 10))  # 40 pixels, columns 0..3
    assert energy_in_box(cam[None], [[2, 0, 10, 10]])[0] == pytest.approx(0.5)
    assert energy_in_box(cam[None], [[0, 0, 4, 10]])[0] == pytest.approx(1.0)
    # union of overlapping boxes counts each pixel once; fractional ends use pixel centres
    two = [[[0, 0, 2, 10], [1, 0, 3.4, 10]]]
    assert energy_in_box(cam[None], two)[0] == pytest.approx(0.75)
    assert np.isnan(energy_in_box(np.zeros((1, 5, 5)), [[0, 0, 5, 5]])[0])
    with pytest.raises(CamError, match="non-negative"):
        energy_in_box(-cam[None], [[0, 0, 5, 5]])


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: best_iou(np.zeros((2, 5)), [[0, 0, 1, 1]] * 2), r"\[N, H, W\]"),
        (lambda: best_iou(np.full((1, 5, 5), np.nan), [[0, 0, 1, 1]]), "NaN"),
        (lambda: best_iou(np.zeros((2, 5, 5)), [[0, 0, 1, 1]]), "1 sets of ground-truth"),
        (lambda: best_iou(np.zeros((1, 5, 5)), [[3, 0, 1, 1]]), "x0 ≤ x1"),
        (lambda: best_iou(np.zeros((1, 5, 5)), [np.zeros((0, 4))]), r"k ≥ 1"),
        (lambda: best_iou(np.zeros((1, 5, 5)), [[0, 0, 1, 1]], [1.5]), r"τ in \[0, 1\]"),
        (lambda: boxacc_at(np.zeros((1, 5, 5)), [[0, 0, 1, 1]], delta=0), r"δ must be in"),
        (lambda: maxboxacc_v2(np.zeros((1, 5, 5)), [[0, 0, 1, 1]], step=0), "step"),
        (lambda: cam_boxes(np.zeros((2, 5, 5)), 0.5), "one map"),
    ],
)
def test_bad_inputs_raise(call, match):
    with pytest.raises(CamError, match=match):
        call()


# ------------------------------------------------------------------------- the scored images
def literal_subset(labels, max_images, seed):
    """Notebook 07's draw before it became a function: max(1, max // C) per class, in class order."""
    rng, classes = np.random.default_rng(seed), np.unique(labels)
    per_class = max(1, max_images // len(classes))
    picks = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in classes]
    return np.sort(np.concatenate(picks))


def test_balanced_subset_draws_the_same_number_per_class_seeded():
    labels = np.repeat(np.arange(5), [12, 9, 30, 7, 10])
    np.testing.assert_array_equal(balanced_subset(labels, 100), np.arange(len(labels)))
    subset = balanced_subset(labels, 23, seed=3)
    np.testing.assert_array_equal(subset, literal_subset(labels, 23, seed=3))
    assert (np.bincount(labels[subset]) == 23 // 5).all()
    assert not np.array_equal(subset, balanced_subset(labels, 23, seed=4))


def test_balanced_subset_with_more_classes_than_images_keeps_one_of_each_of_some_classes():
    labels = np.repeat(np.arange(40), 3)
    subset = balanced_subset(labels, 10, seed=1)
    assert len(subset) == 10 and len(np.unique(labels[subset])) == 10
    assert np.array_equal(subset, np.sort(subset))
    np.testing.assert_array_equal(subset, balanced_subset(labels, 10, seed=1))
    assert np.isin(subset, literal_subset(labels, 10, seed=1)).all()  # drawn from those picks
    with pytest.raises(CamError, match="max_images"):
        balanced_subset(labels, 0)
    with pytest.raises(CamError, match="1-D integer"):
        balanced_subset(labels.reshape(4, -1), 5)


def box_dataset(boxes, **kwargs):
    """Three 20 × 24 images of classes a, b, c, the value of each pixel its column."""
    images = np.broadcast_to(np.arange(24, dtype=np.uint8)[None, :, None], (3, 20, 24, 3))
    tree = Hierarchy([("r", "a"), ("r", "x"), ("x", "b"), ("x", "c")], ["a", "b", "c"])
    return ArrayDataset(images, [0, 1, 2], tree.classes, tree, boxes=boxes, **kwargs)


def test_localisation_set_moves_every_box_with_the_evaluation_transform():
    boxes = [
        np.array([[2, 4, 14, 12]]),
        np.array([[0, 0, 6, 10], [12, 10, 24, 20]]),
        np.array([[22, 2, 24, 8]]),
    ]
    data = box_dataset(boxes)
    images, labels, out = localisation_set(data, [2, 1], paper_transforms("vh", size=48))
    assert images.shape == (2, 3, 48, 48) and images.dtype == torch.float32
    np.testing.assert_array_equal(labels, [2, 1])
    scale = np.array([48 / 24, 48 / 20] * 2)  # "vh" evaluation: resize to 48 × 48
    np.testing.assert_allclose(out[0], boxes[2] * scale)
    np.testing.assert_allclose(out[1], boxes[1] * scale)  # both boxes of image 1
    assert data.transform is None and not data.return_boxes  # the caller's dataset untouched
    # "hier" evaluation at 20: short side to round(20 · 256 / 224) = 23 (20 × 24 → 23 × 27),
    # centre crop 20 × 20 from row 2, column 4; the box at columns 22-23 is cut away: empty
    _, _, cropped = localisation_set(data, [2, 0], paper_transforms("hier", size=20))
    assert cropped[0][0, 0] == cropped[0][0, 2] == 20
    expected = np.array([[2 * 27 / 24 - 4, 4 * 23 / 20 - 2, 14 * 27 / 24 - 4, 12 * 23 / 20 - 2]])
    np.testing.assert_allclose(cropped[1], np.clip(expected, 0, 20), rtol=1e-6)
    own, _, native = localisation_set(box_dataset(boxes, transform=paper_transforms()), [0])
    assert own.shape == (1, 3, 20, 24) and np.array_equal(native[0], boxes[0])


def test_localisation_set_bad_inputs():
    with pytest.raises(CamError, match="no ground-truth boxes"):
        localisation_set(box_dataset(None), [0])
    with pytest.raises(CamError, match="image 1 .* has no ground-truth box"):
        localisation_set(box_dataset([np.ones((1, 4)), np.zeros((0, 4)), np.ones((1, 4))]), [0, 1])
    with pytest.raises(CamError, match="indices is empty"):
        localisation_set(box_dataset([np.ones((1, 4))] * 3), [])
    widths = iter([10, 12])
    with pytest.raises(CamError, match="differ in size"):  # a transform giving two sizes
        localisation_set(
            box_dataset([np.ones((1, 4))] * 3),
            [0, 1],
            lambda image, boxes: (image[..., : next(widths)], boxes),
        )


# ------------------------------------------------------------------------------------ Grad-CAM
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
    grids = cam.layer_grids(net, x, ["fc", "conv2", "conv1"])
    assert list(grids.items()) == [("conv1", (16, 16)), ("conv2", (8, 8))]  # fc: a vector


def test_layer_grids_restore_modes_and_release_hooks():
    net = TinyCNN()
    net.train()
    running = net.bn.running_mean.clone()
    cam.layer_grids(net, torch.randn(2, 3, 16, 16), ["conv1", "bn"])
    assert net.training and net.bn.training
    assert torch.equal(net.bn.running_mean, running)  # eval mode: statistics untouched
    assert not net.conv1._forward_hooks and not net.bn._forward_hooks
    with pytest.raises(CamError, match="no submodule 'conv9'"):
        cam.layer_grids(net, torch.randn(1, 3, 16, 16), ["conv1", "conv9"])
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
        cam.coarse_grid_fallback(net, torch.randn(1, 3, size, size), "last", min_grid) == expected
    )


def test_coarse_grid_fallback_on_the_study_backbones():
    torch.manual_seed(0)
    resnet = build_model("resnet_small", 5)
    assert resnet.target_layer_name == "backbone.layer4"
    small, large = torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 224, 224)
    grids = cam.layer_grids(resnet, small, [f"backbone.layer{i}" for i in range(1, 5)])
    assert list(grids.values()) == [(16, 16), (8, 8), (4, 4), (2, 2)]
    assert cam.coarse_grid_fallback(resnet, small, "backbone.layer4") == "backbone.layer2"
    assert cam.coarse_grid_fallback(resnet, large, "backbone.layer4") == "backbone.layer4"  # 7 × 7
    tiny = build_model("tiny_cnn", 5)  # blocks: 16, 8, 4, 4 at 32 px
    assert cam.coarse_grid_fallback(tiny, small[..., :32, :32], tiny.target_layer_name) == (
        "backbone.blocks.1"
    )
    vit = tiny_vit()  # tokens, not maps: the last block whatever its grid
    assert cam.coarse_grid_fallback(vit, torch.zeros(1, 3, 32, 32), "blocks.1.norm1") == (
        "blocks.1.norm1"
    )
    with pytest.raises(CamError, match="min_grid"):
        cam.coarse_grid_fallback(resnet, small, "backbone.layer4", 0)
    with pytest.raises(CamError, match="no submodule"):
        cam.coarse_grid_fallback(resnet, small, "backbone.layer9")
