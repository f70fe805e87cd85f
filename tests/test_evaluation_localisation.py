import numpy as np
import pytest
import torch
from reference_localisation import (
    literal_best_iou,
    literal_boxes,
    literal_maxboxacc_v2,
    literal_normalize,
)
from scipy import ndimage

from hierstudy.datasets.selection import ScoredImages
from hierstudy.evaluation import localisation
from hierstudy.evaluation.localisation import (
    LocalisationError,
    best_iou,
    box_iou,
    boxacc_at,
    cam_boxes,
    cam_thresholds,
    energy_in_box,
    maxboxacc_v2,
    wsol_scores,
)


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
    assert (
        best_iou(np.full((2, 8, 8), 2.0), [[0, 0, 8, 8]] * 2, convention="continuous") == 0
    ).all()


def test_wsolevaluation_clips_a_box_touching_the_border_and_widens_the_others():
    # Blob on columns 7..11 (the right border, W = 12) and rows 0..9 (H = 10): rectangle
    # (7, 0, 5, 10) -> x1 = min(12, 11) = 11, y1 = min(10, 9) = 9: inclusive 5 × 10, exact.
    cam = blob_map((10, 12), (7, 0, 12, 10))
    assert sorted_boxes(cam_boxes(cam, 0.5, "wsolevaluation")) == [(7, 0, 11, 9)]
    # the GT box as the same corners: IoU 1; as exclusive ends (7, 0, 12, 10) read inclusively:
    # 6 × 11 = 66 pixels holding the 50 predicted ones, IoU 50 / 66
    assert best_iou(cam[None], [[7, 0, 11, 9]], [0.5])[0, 0] == 1
    assert best_iou(cam[None], [[7, 0, 12, 10]], [0.5])[0, 0] == pytest.approx(50 / 66)
    assert best_iou(cam[None], [[7, 0, 12, 10]], [0.5], "continuous")[0, 0] == 1
    # An inner blob, columns 2..4 and rows 3..5: (2, 3, 5, 6) read inclusively is 4 × 4 = 16
    # pixels; against the GT (2, 3, 5, 6) it is IoU 1, against the exact (2, 3, 4, 5) 9 / 16.
    inner = blob_map((10, 12), (2, 3, 5, 6))
    assert sorted_boxes(cam_boxes(inner, 0.5, "wsolevaluation")) == [(2, 3, 5, 6)]
    assert best_iou(inner[None], [[2, 3, 5, 6]], [0.5])[0, 0] == 1
    assert best_iou(inner[None], [[2, 3, 4, 5]], [0.5])[0, 0] == pytest.approx(9 / 16)


def test_wsolevaluation_scores_a_map_without_contour_with_the_box_at_the_origin():
    flat = np.full((1, 8, 8), 2.0)  # normalised to zeros: no pixel above any level
    assert sorted_boxes(cam_boxes(flat[0], 0.3, "wsolevaluation")) == [(0, 0, 0, 0)]
    # [0, 0, 0, 0] is pixel (0, 0): with GT (0, 0, 3, 3) (16 pixels inclusive) IoU 1 / 16,
    # with a GT away from the origin 0, with (0, 0, 1, 1) (4 pixels) 1 / 4
    for gt, expected in (([0, 0, 3, 3], 1 / 16), ([2, 2, 5, 5], 0.0), ([0, 0, 1, 1], 1 / 4)):
        assert best_iou(flat, [gt], [0.0, 0.5])[0].tolist() == pytest.approx([expected] * 2)
    # τ = 1 keeps no pixel of any map (level 255): the box at the origin again
    blob = blob_map((8, 8), (4, 4, 8, 8))[None]
    assert best_iou(blob, [[0, 0, 1, 1]], [1.0])[0, 0] == pytest.approx(1 / 4)
    assert best_iou(blob, [[0, 0, 1, 1]], [1.0], "continuous")[0, 0] == 0


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
    np.testing.assert_array_equal(localisation._levels(taus), expected)


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


@pytest.mark.parametrize("convention", localisation.CONVENTIONS)
@pytest.mark.parametrize("seed", [0, 1])
def test_fast_path_matches_the_literal_opencv_reference_at_every_threshold(seed, convention):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(10, 24, 2)
    cams, gt = random_cams(rng, 6, h, w), random_gt(rng, 6, h, w)
    ref = literal_maxboxacc_v2(cams, gt, cam_thresholds(), convention=convention)
    np.testing.assert_array_equal(best_iou(cams, gt, convention=convention), ref["best_iou"])
    out = maxboxacc_v2(cams, gt, convention=convention)
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
                assert sorted_boxes(cam_boxes(m, tau, "wsolevaluation")) == sorted(
                    literal_boxes(u8, tau, "wsolevaluation")
                )


@pytest.mark.parametrize("convention", localisation.CONVENTIONS)
def test_fast_path_matches_the_literal_reference_on_several_fractional_and_empty_boxes(convention):
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
    best = best_iou(cams, gt, taus, convention)
    np.testing.assert_array_equal(best, literal_best_iou(cams, gt, taus, convention))
    assert (best[1] == 0).all() and (best[2:] > 0).any()
    one_box_each = [  # each box as if it were the image's only one, then the best of them
        best_iou(np.repeat(cams[i : i + 1], len(b), axis=0), b[:, None], taus, convention).max(0)
        for i, b in enumerate(gt)
    ]
    np.testing.assert_array_equal(best, np.stack(one_box_each))


@pytest.mark.parametrize("convention", localisation.CONVENTIONS)
def test_best_iou_is_the_same_in_any_chunking_and_order(convention):
    rng = np.random.default_rng(3)
    cams, gt = random_cams(rng, 20, 16, 18), random_gt(rng, 20, 16, 18)
    taus = [0.1, 0.5, 0.9, 1.0]
    full = best_iou(cams, gt, taus, convention)
    order = rng.permutation(20)
    np.testing.assert_array_equal(
        best_iou(cams[order], [gt[i] for i in order], taus, convention), full[order]
    )
    np.testing.assert_array_equal(best_iou(cams[:1], gt[:1], taus, convention), full[:1])


def test_energy_in_box():
    cam = blob_map((10, 10), (0, 0, 4, 10))  # 40 pixels, columns 0..3
    assert energy_in_box(cam[None], [[2, 0, 10, 10]])[0] == pytest.approx(0.5)
    assert energy_in_box(cam[None], [[0, 0, 4, 10]])[0] == pytest.approx(1.0)
    # union of overlapping boxes counts each pixel once; fractional ends use pixel centres
    two = [[[0, 0, 2, 10], [1, 0, 3.4, 10]]]
    assert energy_in_box(cam[None], two)[0] == pytest.approx(0.75)
    assert np.isnan(energy_in_box(np.zeros((1, 5, 5)), [[0, 0, 5, 5]])[0])
    with pytest.raises(LocalisationError, match="non-negative"):
        energy_in_box(-cam[None], [[0, 0, 5, 5]])


def test_box_share_is_the_union_of_the_boxes_over_the_image():
    # 10 × 10: a half (columns 0-4), and the union of two boxes of 20 and 30 pixels overlapping
    # on 10 (pixel centres inside (1, 2, 6, 6.4): columns 1-5, rows 2-5 and 6 (6.5 > 6.4: no))
    boxes = [[[0, 0, 5, 10]], [[0, 0, 2, 10], [1, 0, 4, 10]], [[1, 2, 6, 6.4]]]
    assert localisation.box_share(boxes, (10, 10)) == pytest.approx((0.5 + 0.4 + 0.2) / 3)


def test_centre_gaussian_is_one_map_centred_with_sigma_a_quarter_of_the_shorter_side():
    maps = localisation.centre_gaussian(3, (8, 12))
    assert maps.shape == (3, 8, 12) and (maps == maps[0]).all()
    sigma, (cy, cx) = 8 / 4, (4, 6)  # pixel (y, x) has its centre at (y + 0.5, x + 0.5)
    for y, x in [(0, 0), (3, 5), (7, 11), (4, 9)]:
        dy, dx = y + 0.5 - cy, x + 0.5 - cx
        assert maps[0, y, x] == pytest.approx(np.exp(-(dx**2 + dy**2) / (2 * sigma**2)))
    assert maps[0].argmax() in {3 * 12 + 5, 3 * 12 + 6, 4 * 12 + 5, 4 * 12 + 6}  # the centre


def test_score_maps_is_one_sweep_of_wsol_scores_plus_top1_loc_and_empty_maps():
    cams, gt = hand_case()  # A, B, C (constant: no box) and D
    labels = np.array([0, 1, 2, 3])
    scored = ScoredImages(np.arange(4), torch.zeros(4, 3, 20, 20), labels, gt)
    cams[2] = 0  # C: an all-zero (empty) map
    found = localisation.score_maps(cams, scored, predicted=[0, 1, 2, 0])
    wsol = wsol_scores(cams, gt)
    assert list(found.scores) == [*wsol, "top1loc_tau0.15_iou30", "empty_cams"]
    assert {k: found.scores[k] for k in wsol} == wsol
    # localised at KFR's point: A, B, D; classified correctly: A, B, C -> A and B
    assert found.scores["top1loc_tau0.15_iou30"] == pytest.approx(2 / 4)
    assert found.scores["empty_cams"] == pytest.approx(1 / 4)
    np.testing.assert_array_equal(found.best, best_iou(cams, gt))
    assert found.maps is cams
    assert "top1loc_tau0.15_iou30" not in localisation.score_maps(cams, scored).scores


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
    with pytest.raises(LocalisationError, match=match):
        call()
