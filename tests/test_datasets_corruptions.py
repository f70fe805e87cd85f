"""Tests of hierstudy.datasets.corruptions (Venkataramanan et al. (ICVS 2023), Sec. 4.2) against
OpenCV's blur, PIL's colour enhancement and the occlusion's definition."""

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance

from hierstudy.datasets import DatasetError, corruptions
from hierstudy.datasets.corruptions import (
    CORRUPTIONS,
    change_saturation,
    corrupt,
    gaussian_blur,
    occlude,
)


def image_batch(n=3, h=48, w=40, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 3, h, w), dtype=np.uint8)


def test_gaussian_blur_matches_opencv():
    images = image_batch()
    blurred = gaussian_blur(images)
    assert isinstance(blurred, np.ndarray) and blurred.dtype == np.uint8
    for image, ours in zip(images, blurred, strict=True):
        ref = cv2.GaussianBlur(np.ascontiguousarray(image.transpose(1, 2, 0)), (11, 11), 1.0)
        assert np.abs(ref.astype(int) - ours.transpose(1, 2, 0).astype(int)).max() <= 1
    flat = torch.full((1, 3, 20, 20), 77, dtype=torch.uint8)
    assert torch.equal(gaussian_blur(flat), flat)


def test_change_saturation():
    images = image_batch(n=40)
    assert np.array_equal(change_saturation(images, factors=(1.0,)), images)
    grey = change_saturation(images, factors=(0.0,))
    assert (grey == grey[:, :1]).all()  # all channels equal: no colour left
    assert np.array_equal(change_saturation(grey, seed=3), grey)  # grey has no saturation
    doubled = change_saturation(images[:2], factors=(2.0,))
    for image, ours in zip(images[:2], doubled, strict=True):
        pil = ImageEnhance.Color(Image.fromarray(image.transpose(1, 2, 0))).enhance(2.0)
        assert np.abs(np.asarray(pil, int) - ours.transpose(1, 2, 0)).max() <= 1
    a, b = change_saturation(images, seed=1), change_saturation(images, seed=1)
    assert np.array_equal(a, b) and not np.array_equal(a, change_saturation(images, seed=2))
    with pytest.raises(DatasetError, match="RGB"):
        change_saturation(images[:, :1])


def test_occlusion_is_one_scaled_black_rectangle_per_image():
    images = torch.full((5, 3, 112, 64), 255, dtype=torch.uint8)
    out = occlude(images, seed=4)
    ph, pw = 35, 20  # 70 * 112 / 224, 70 * 64 / 224
    for image in out:
        black = (image == 0).all(0)
        rows, cols = np.flatnonzero(black.any(1)), np.flatnonzero(black.any(0))
        assert black.sum() == ph * pw and len(rows) == ph and len(cols) == pw
        assert (image.int().sum(0)[~black] == 3 * 255).all()
    assert torch.equal(out, occlude(images, seed=4))
    assert not torch.equal(out, occlude(images, seed=5))
    with pytest.raises(DatasetError, match="uint8"):
        occlude(images.float())


def test_corruptions_do_not_depend_on_the_image_batch(monkeypatch):
    images = image_batch(n=7)
    whole = [gaussian_blur(images), change_saturation(images), occlude(images)]
    monkeypatch.setattr(corruptions, "IMAGE_BATCH", 3)
    parts = [gaussian_blur(images), change_saturation(images), occlude(images)]
    for a, b in zip(whole, parts, strict=True):
        assert np.array_equal(a, b)


def test_corrupt_applies_the_papers_parameters_by_name():
    images = image_batch(n=4, h=112, w=64)
    expected = {
        "blur": gaussian_blur(images, kernel_size=11, sigma=1.0),
        "saturation": change_saturation(images, (0.1, 0.5, 1.0, 2.0, 5.0), seed=3),
        "occlusion": occlude(images, size=70, reference=224, seed=3),
    }
    assert tuple(expected) == CORRUPTIONS
    for kind, out in expected.items():
        assert np.array_equal(corrupt(images, kind, seed=3), out), kind
    black = (corrupt(images, "occlusion") == 0).all(1)
    assert (black.sum((1, 2)) >= 35 * 20).all()  # 70 x 70 at 224 px is 35 x 20 here
    with pytest.raises(DatasetError, match="unknown corruption 'fog'"):
        corrupt(images, "fog")
