import pytest
import torch
from torchvision import tv_tensors

from hierstudy.datasets import DatasetError, paper_transforms
from hierstudy.datasets.transforms import IMAGENET_MEAN, IMAGENET_STD


def image(h, w, value=None):
    data = torch.randint(
        0, 256, (3, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    return tv_tensors.Image(
        data if value is None else torch.full((3, h, w), value, dtype=torch.uint8)
    )


@pytest.mark.parametrize(
    "paper, train, size, source, out",
    [
        ("plain", False, None, (32, 40), (32, 40)),
        ("plain", True, 24, (32, 40), (24, 24)),
        ("kfr", True, 64, (32, 32), (64, 64)),
        ("kfr", False, 64, (32, 32), (64, 64)),
        ("kfr", True, None, (300, 200), (224, 224)),
        ("hier", True, None, (300, 200), (224, 224)),
        ("hier", False, None, (300, 400), (224, 224)),
        ("vh", True, None, (100, 150), (224, 224)),
        ("vh", False, 112, (100, 150), (112, 112)),
        ("cifar", True, None, (32, 32), (32, 32)),
        ("cifar", False, None, (32, 32), (32, 32)),
    ],
)
def test_output_size_and_dtype(paper, train, size, source, out):
    result = paper_transforms(paper, train, size=size)(image(*source))
    assert result.shape == (3, *out) and result.dtype == torch.float32


def test_plain_is_a_scaling_and_others_normalise():
    source = image(8, 8)
    assert torch.allclose(paper_transforms("plain")(source), source.float() / 255, atol=1e-6)
    grey = paper_transforms("kfr", size=8)(image(8, 8, value=255))
    expected = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(grey.mean(dim=(1, 2)), expected, atol=1e-5)
    raw = paper_transforms("kfr", size=8, normalize=False)(image(8, 8, value=255))
    assert torch.equal(raw, torch.ones(3, 8, 8))


def test_hier_evaluation_is_resize_256_then_centre_crop():
    source = image(256, 512)
    result = paper_transforms("hier", False, normalize=False)(source)
    # shorter side 256 → 256 × 512 unchanged, centre crop 224: columns 144..367, rows 16..239
    assert torch.allclose(result, source[:, 16:240, 144:368].float() / 255, atol=1e-6)


def test_training_transforms_are_random_and_move_boxes():
    torch.manual_seed(0)
    t = paper_transforms("kfr", True, size=32, normalize=False)
    source = image(32, 32)
    boxes = tv_tensors.BoundingBoxes([[4, 4, 12, 20]], format="XYXY", canvas_size=(32, 32))
    outputs = [t(source, boxes) for _ in range(4)]
    assert any(not torch.equal(outputs[0][0], o[0]) for o in outputs[1:])
    assert any(o[1].tolist() != [[4, 4, 12, 20]] for o in outputs)


def test_unknown_paper_or_bad_size():
    with pytest.raises(DatasetError, match="unknown paper"):
        paper_transforms("simclr")
    with pytest.raises(DatasetError, match="size"):
        paper_transforms("kfr", size=0)


def test_cifar_training_shifts_within_an_eighth_and_evaluation_keeps_the_image():
    torch.manual_seed(0)
    source = image(32, 32) / 255
    assert torch.allclose(paper_transforms("cifar", normalize=False)(source), source)
    t = paper_transforms("cifar", True, normalize=False)
    shifted = [t(source) for _ in range(8)]
    assert any(not torch.allclose(s, source) for s in shifted)
    windows = [
        source[:, 4 + dy : 28 + dy, 4 + dx : 28 + dx] for dy in range(-4, 5) for dx in range(-4, 5)
    ]
    for s in shifted:  # the centre 24 × 24 of a shift by at most 4 px is a window of the source
        centre = s[:, 4:28, 4:28]
        assert any(torch.allclose(c, w) for w in windows for c in (centre, centre.flip(-1)))
