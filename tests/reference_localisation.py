"""Literal reference for hierstudy.evaluation.localisation's scores: Choe et al.'s procedure, one
CAM and one threshold at a time, with OpenCV contours (``wsolevaluation``: ``normalize_scoremap``,
``compute_bboxes_from_scoremaps`` with ``multi_contour_eval=True``, ``BoxEvaluator``).

Both box conventions of hierstudy/evaluation/localisation.py: ``"wsolevaluation"`` (theirs:
``x + w`` clipped to ``W − 1``, ``+ 1`` in widths, the box ``[0, 0, 0, 0]`` for a map without
contours, ground-truth boxes without area left out) and ``"continuous"`` (``(x, y, x + w, y + h)``
with continuous IoU, no box without contours). Slow on purpose; shared by
tests/test_evaluation_localisation.py and benchmarks/bench_cam.py.
"""

from __future__ import annotations

import cv2
import numpy as np


def literal_normalize(cam: np.ndarray) -> np.ndarray:
    """``normalize_scoremap``: min-max to [0, 1]; a constant map becomes zeros."""
    cam = np.array(cam, dtype=np.float64)
    if cam.min() == cam.max():
        return np.zeros_like(cam)
    cam -= cam.min()
    cam /= cam.max()
    return cam


def literal_boxes(
    scoremap_image: np.ndarray, tau: float, convention: str = "continuous"
) -> list[tuple[int, int, int, int]]:
    """Bounding rectangles of all contours of the 8-bit map thresholded at τ, as boxes."""
    _, binary = cv2.threshold(
        scoremap_image, int(tau * np.max(scoremap_image)), 255, cv2.THRESH_BINARY
    )
    contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
    height, width = scoremap_image.shape
    boxes = []
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        if convention == "wsolevaluation":
            boxes.append((x, y, min(x + w, width - 1), min(y + h, height - 1)))
        else:
            boxes.append((x, y, x + w, y + h))
    if convention == "wsolevaluation" and not boxes:
        boxes.append((0, 0, 0, 0))
    return boxes


def literal_iou(a, b, convention: str = "continuous") -> float:
    """IoU of two boxes (x0, y0, x1, y1): continuous, or inclusive corners (``+ 1``)."""
    one = 1.0 if convention == "wsolevaluation" else 0.0
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + one)
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + one)
    area_a = (a[2] - a[0] + one) * (a[3] - a[1] + one)
    union = area_a + (b[2] - b[0] + one) * (b[3] - b[1] + one) - w * h
    return w * h / union if union > 0 else 0.0


def literal_best_iou(cams, gt_boxes, taus, convention: str = "continuous") -> np.ndarray:
    """[N, T]: per CAM and τ, the largest IoU of a contour box with a GT box."""
    out = np.zeros((len(cams), len(taus)))
    for i, cam in enumerate(cams):
        scoremap_image = (literal_normalize(cam) * 255).astype(np.uint8)
        gts = np.asarray(gt_boxes[i], dtype=np.float64).reshape(-1, 4)
        if convention == "wsolevaluation":
            gts = [g for g in gts if g[2] > g[0] and g[3] > g[1]]
        for j, tau in enumerate(taus):
            for box in literal_boxes(scoremap_image, tau, convention):
                for gt in gts:
                    out[i, j] = max(out[i, j], literal_iou(box, gt, convention))
    return out


def literal_maxboxacc_v2(
    cams, gt_boxes, taus, deltas=(0.3, 0.5, 0.7), convention: str = "continuous"
) -> dict:
    """``BoxEvaluator.compute``: per δ the best τ's accuracy, and their mean (and the [N, T] IoUs)."""
    best = literal_best_iou(cams, gt_boxes, taus, convention)
    per_delta = {}
    for delta in deltas:
        correct = np.zeros(len(taus))
        for i in range(len(cams)):
            correct[np.where(best[i] >= delta)[0]] += 1
        per_delta[delta] = (correct / len(cams)).max()
    mean = float(np.mean(list(per_delta.values())))
    return {"maxboxacc_v2": mean, "per_delta": per_delta, "best_iou": best}
