from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torchvision import tv_tensors
from toy_hierarchies import LEAF_AND_PAIR

from hierstudy.datasets import HierShapes, paper_transforms
from hierstudy.datasets.base import ArrayDataset, DatasetError
from hierstudy.datasets.selection import balanced_subset, localisation_set, scored_images


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
    with pytest.raises(DatasetError, match="max_images"):
        balanced_subset(labels, 0)
    with pytest.raises(DatasetError, match="1-D integer"):
        balanced_subset(labels.reshape(4, -1), 5)


def box_dataset(boxes, **kwargs):
    """Three 20 × 24 images of classes a, b, c, the value of each pixel its column."""
    images = np.broadcast_to(np.arange(24, dtype=np.uint8)[None, :, None], (3, 20, 24, 3))
    return ArrayDataset(
        images, [0, 1, 2], LEAF_AND_PAIR.classes, LEAF_AND_PAIR, boxes=boxes, **kwargs
    )


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
    with pytest.raises(DatasetError, match="no ground-truth boxes"):
        localisation_set(box_dataset(None), [0])
    with pytest.raises(DatasetError, match="image 1 .* has no ground-truth box"):
        localisation_set(box_dataset([np.ones((1, 4)), np.zeros((0, 4)), np.ones((1, 4))]), [0, 1])
    with pytest.raises(DatasetError, match="indices is empty"):
        localisation_set(box_dataset([np.ones((1, 4))] * 3), [])
    widths = iter([10, 12])
    with pytest.raises(DatasetError, match="differ in size"):  # a transform giving two sizes
        localisation_set(
            box_dataset([np.ones((1, 4))] * 3),
            [0, 1],
            lambda image, boxes: (image[..., : next(widths)], boxes),
        )


def test_scored_images_read_hiershapes_as_stored_and_a_papers_dataset_through_its_setup():
    shapes = HierShapes(None, "test", image_size=32, n_per_class=2, cache=False)
    subset = np.array([3, 10, 41])
    scored = scored_images(shapes, subset)
    assert scored.images.dtype == torch.uint8 and not scored.normalised  # the model scales it
    np.testing.assert_array_equal(
        scored.images.numpy(), shapes.images[subset].transpose(0, 3, 1, 2)
    )
    np.testing.assert_array_equal(scored.labels, shapes.labels[subset])
    for boxes, tight in zip(scored.boxes, shapes.boxes[subset], strict=True):
        assert boxes.dtype == np.float64 and np.array_equal(boxes, tight[None])
    assert scored.n_boxes == 3 and scored.boxless == 0
    np.testing.assert_array_equal(scored.display(1), shapes.images[10])

    boxes = [np.array([[2, 4, 14, 12]]), np.array([[22, 2, 24, 8]]), np.array([[0, 0, 6, 10]])]
    hier = SimpleNamespace(transform="hier", image_size=20)  # resize 23, centre crop 20
    cropped = scored_images(box_dataset(boxes), [1, 0, 2], hier)
    images, labels, moved = localisation_set(
        box_dataset(boxes), [1, 0, 2], paper_transforms("hier", size=20)
    )
    assert torch.equal(cropped.images, images) and np.array_equal(cropped.labels, labels)
    assert all(np.array_equal(a, b) for a, b in zip(cropped.boxes, moved, strict=True))
    assert cropped.normalised and cropped.n_boxes == 3
    assert cropped.boxless == 1  # image 1's only box lies in the columns the crop cut away
    plain = paper_transforms("hier", size=20, normalize=False)(
        tv_tensors.Image(torch.from_numpy(np.array(box_dataset(boxes).image(0))).permute(2, 0, 1))
    )
    np.testing.assert_allclose(cropped.display(1), plain.permute(1, 2, 0).numpy(), atol=1e-6)
    with pytest.raises(DatasetError, match="pass one"):
        scored_images(box_dataset(boxes), [0])
