import json
from collections import Counter

import numpy as np
import pytest
import torch
from torchvision.transforms import v2

from hierstudy.datasets import DatasetError, HierShapes
from hierstudy.datasets import hiershapes as hs

SIZE = 32
# Pins the generator's bytes: any change to the drawing, the random streams or numpy's PCG64
# breaks this, and must then bump hiershapes.VERSION (cached manifests go stale with it).
GOLDEN_VAL_0_32_1 = "5251476acbc39fc1375b78ed62d579c90f23e005c358d58bf0d9440ca0edaba0"


@pytest.fixture(scope="module")
def val():
    return hs.generate("val", seed=0, image_size=SIZE, n_per_class=3)


def test_taxonomy_depth_leaves_and_uneven_branching():
    h = hs.taxonomy()
    assert len(h.classes) >= 30
    assert h.is_tree and h.root == hs.ROOT
    assert all(h.depth(c) >= 3 for c in h.classes)
    assert h.classes == tuple(a["id"] for a in hs.class_attributes())
    assert h.label("round/circle/red-solid") == "red solid circle"
    fan_out = {d: {len(h.children(n)) for n in h.nodes if h.depth(n) == d} for d in (1, 2)}
    assert len(fan_out[1]) > 1 and len(fan_out[2]) > 1  # uneven at both inner levels


def test_confusers_are_far_apart_and_share_colour_or_texture():
    h = hs.taxonomy()
    attributes = {a["id"]: a for a in hs.class_attributes()}
    weak, strong = hs.confusers(), hs.confusers(strong=True)
    assert len(weak) >= 5 and len(strong) >= 2 and set(strong) <= set(weak)
    for a, b in weak:
        assert h.lcs(a, b) == hs.ROOT
        assert attributes[a]["colour"] == attributes[b]["colour"]
    for a, b in strong:
        assert attributes[a]["texture"] == attributes[b]["texture"]


def test_object_colour_mostly_follows_the_families(val):
    """Mean object colour is closer within a family than across families (on average)."""
    attributes = hs.class_attributes()
    mean = np.stack(
        [
            val["images"][val["labels"] == k][val["masks"][val["labels"] == k]].mean(axis=0)
            for k in range(len(attributes))
        ]
    )
    distance = np.linalg.norm(mean[:, None] - mean[None], axis=-1)
    family = np.array([a["family"] for a in attributes])
    same = family[:, None] == family[None]
    off_diagonal = ~np.eye(len(family), dtype=bool)
    assert distance[same & off_diagonal].mean() < 0.8 * distance[~same].mean()


def test_same_seed_same_bytes_other_seed_other_bytes():
    a = hs.generate("val", seed=0, image_size=SIZE, n_per_class=1)
    assert hs.checksum(a) == GOLDEN_VAL_0_32_1
    assert hs.checksum(hs.generate("val", seed=1, image_size=SIZE, n_per_class=1)) != (
        GOLDEN_VAL_0_32_1
    )
    test = hs.generate("test", seed=0, image_size=SIZE, n_per_class=1)
    assert not np.array_equal(a["images"], test["images"])  # splits use their own streams


def test_arrays_shapes_dtypes_and_split_sizes(val):
    n = len(hs.class_attributes()) * 3
    assert val["images"].shape == (n, SIZE, SIZE, 3) and val["images"].dtype == np.uint8
    assert val["boxes"].shape == (n, 4) and val["boxes"].dtype == np.float32
    assert val["masks"].shape == (n, SIZE, SIZE) and val["masks"].dtype == bool
    assert Counter(val["labels"].tolist()) == dict.fromkeys(range(n // 3), 3)


def test_boxes_inside_the_image_and_tight_around_the_mask(val):
    boxes, masks = val["boxes"], val["masks"]
    x0, y0, x1, y1 = boxes.T
    assert (x0 >= 0).all() and (y0 >= 0).all() and (x1 <= SIZE).all() and (y1 <= SIZE).all()
    assert (x1 - x0 >= 2).all() and (y1 - y0 >= 2).all()
    for box, mask in zip(boxes.astype(int), masks, strict=True):
        a, b, c, d = box
        assert mask[b:d, a:c].sum() == mask.sum()  # the whole object is inside
        assert mask[b, a:c].any() and mask[d - 1, a:c].any()  # and touches every side
        assert mask[b:d, a].any() and mask[b:d, c - 1].any()


def test_object_pixels_have_the_class_colour(val):
    """Solid objects: pixels in the mask within jitter (18) + noise (20) of the class colour."""
    attributes = hs.class_attributes()
    for k, a in enumerate(attributes):
        if a["texture"] != "solid":
            continue
        rows = np.flatnonzero(val["labels"] == k)
        pixels = val["images"][rows][val["masks"][rows]].astype(int)
        colour = np.array(hs.COLOURS[a["colour"]])
        assert np.abs(pixels - colour).max() <= 38, a["id"]


def test_position_scale_and_rotation_vary(val):
    boxes = val["boxes"]
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    sides = boxes[:, 2:] - boxes[:, :2]
    assert centres.std(axis=0).min() > 2 and sides.std() > 2
    # the long axis of the bars (second moments of their masks) points in many directions
    h = hs.taxonomy()
    bars = np.isin(
        val["labels"], h.class_indices(["line-art/bar/white-solid", "line-art/bar/purple-striped"])
    )
    y, x = np.mgrid[:SIZE, :SIZE]
    angles = []
    for mask in val["masks"][bars]:
        dx, dy = x[mask] - x[mask].mean(), y[mask] - y[mask].mean()
        angles.append(
            np.degrees(0.5 * np.arctan2(2 * (dx * dy).mean(), (dx * dx - dy * dy).mean()))
        )
    assert np.ptp(angles) > 45


def test_dataset_items_and_boxes_follow_a_flip(tmp_path):
    ds = HierShapes(tmp_path, "val", image_size=SIZE, n_per_class=1, cache=False)
    image, label = ds[4]
    assert image.dtype == torch.float32 and image.shape == (3, SIZE, SIZE)
    expected = torch.from_numpy(ds.images[4]).permute(2, 0, 1).float() / 255
    assert torch.allclose(image, expected, atol=1e-6) and image.max() > 0.5
    assert label == ds.labels[4] and ds.classes == ds.hierarchy.classes
    flipped = HierShapes(
        tmp_path,
        "val",
        image_size=SIZE,
        n_per_class=1,
        cache=False,
        transform=v2.RandomHorizontalFlip(p=1.0),
        return_boxes=True,
    )
    image, _, boxes = flipped[4]
    x0, y0, x1, y1 = ds.boxes[4]
    assert torch.equal(image, torch.from_numpy(ds.images[4][:, ::-1].copy()).permute(2, 0, 1))
    assert boxes.tolist() == [[SIZE - x1, y0, SIZE - x0, y1]]
    assert not list(tmp_path.iterdir())  # cache=False writes nothing


def test_cache_is_written_then_reused(tmp_path, monkeypatch):
    first = HierShapes(tmp_path, "val", image_size=SIZE, n_per_class={"train": 1, "val": 2})
    folder = tmp_path / "hiershapes" / f"seed0_{SIZE}px_1-2-40"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["seed"] == 0 and manifest["image_size"] == SIZE
    assert manifest["n_per_class"] == {"train": 1, "val": 2, "test": 40}
    assert manifest["sha256"]["val"] == first.checksum
    assert sorted(p.name for p in folder.iterdir()) == [
        "manifest.json",
        "test.npz",
        "train.npz",
        "val.npz",
    ]
    monkeypatch.setattr(hs, "generate", lambda *a, **k: pytest.fail("regenerated"))
    again = HierShapes(tmp_path, "val", image_size=SIZE, n_per_class={"train": 1, "val": 2})
    assert again.checksum == first.checksum and np.array_equal(again.masks, first.masks)
    train = HierShapes(tmp_path, "train", image_size=SIZE, n_per_class={"train": 1, "val": 2})
    assert len(train) == len(hs.class_attributes())


def _tiny(root):
    return HierShapes(root, "val", image_size=SIZE, n_per_class=1)


def test_manifest_mismatch_regenerates_with_a_warning(tmp_path):
    reference = _tiny(tmp_path)
    path = next((tmp_path / "hiershapes").iterdir()) / "manifest.json"
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps(dict(manifest, version=0)))
    with pytest.warns(UserWarning, match="does not match"):
        again = _tiny(tmp_path)
    assert again.checksum == reference.checksum
    assert json.loads(path.read_text()) == manifest


@pytest.mark.parametrize("damage", ["garbage", "truncate", "other-arrays"])
def test_corrupted_cache_file_regenerates_with_a_warning(tmp_path, damage):
    reference = _tiny(tmp_path)
    path = next((tmp_path / "hiershapes").iterdir()) / "val.npz"
    if damage == "garbage":
        path.write_bytes(b"not an npz file")
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:1000])
    else:
        arrays = hs.generate("val", seed=5, image_size=SIZE, n_per_class=1)
        np.savez(path, **dict(arrays, masks=np.packbits(arrays["masks"], axis=-1)))
    with pytest.warns(UserWarning, match="val.npz"):
        again = _tiny(tmp_path)
    assert again.checksum == reference.checksum
    assert hs.checksum(hs._load_split(path, SIZE)) == reference.checksum
    assert not list(path.parent.glob("*.tmp"))


def test_data_root_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("HIERSTUDY_DATA", str(tmp_path))
    HierShapes(None, "val", image_size=SIZE, n_per_class=1)
    assert (tmp_path / "hiershapes" / f"seed0_{SIZE}px_1-1-1" / "manifest.json").is_file()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"split": "dev"}, "split"),
        ({"image_size": 16}, "image_size"),
        ({"seed": -1}, "seed"),
        ({"n_per_class": 0}, "n_per_class"),
        ({"n_per_class": {"valid": 3}}, "unknown splits"),
        ({"n_per_class": 2.5}, "n_per_class"),
    ],
)
def test_bad_requests_raise(tmp_path, kwargs, match):
    with pytest.raises(DatasetError, match=match):
        HierShapes(tmp_path, **{"split": "val", "cache": False, **kwargs})
