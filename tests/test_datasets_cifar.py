import io
import os
import pickle
import struct
import sys
import types

import numpy as np
import pytest
import torch
import torchvision.datasets

from hierstudy.datasets import CIFAR, DatasetCorruptError, DatasetError, DatasetNotFoundError, cifar
from hierstudy.hierarchy import Hierarchy

NAMES = [f"thing{i:02d}" for i in range(100)]


def names_hierarchy(names, prefix=""):
    """root → group of ten → class (ids ``prefix + name``)."""
    edges = [("root", f"g{i // 10}") for i in range(len(names))]
    edges += [(f"g{i // 10}", prefix + n) for i, n in enumerate(names)]
    return Hierarchy(edges, [prefix + n for n in names])


def cifar_rows(images):
    """uint8 [N, 32, 32, 3] → CIFAR's rows: 1024 red, 1024 green, 1024 blue bytes per image."""
    return images.transpose(0, 3, 1, 2).reshape(len(images), -1)


def write_pickle(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        pickle.dump(obj, handle)


@pytest.fixture
def cifar100(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-100-python"
    data = {}
    for split, n in (("train", 5), ("test", 3)):
        images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, 100, n).tolist()
        write_pickle(
            folder / split,
            {"data": cifar_rows(images), "fine_labels": labels, "coarse_labels": [0] * n},
        )
        data[split] = images, labels
    write_pickle(folder / "meta", {"fine_label_names": NAMES, "coarse_label_names": ["x"] * 20})
    return tmp_path, data


def test_cifar100_pickles_read_back(cifar100):
    root, data = cifar100
    for split in ("train", "test"):
        ds = CIFAR(root, 100, split, hierarchy=names_hierarchy(NAMES))
        images, labels = data[split]
        assert np.array_equal(ds.images, images) and ds.labels.tolist() == labels
        assert ds.classes == tuple(NAMES) and ds.hierarchy.classes == tuple(NAMES)
        assert not ds.has_boxes and ds.image_boxes(0).shape == (0, 4)
        image, label = ds[1]
        assert label == labels[1]
        expected = torch.from_numpy(images[1]).permute(2, 0, 1) / 255.0
        assert torch.allclose(image, expected, atol=1e-6)


def test_hierarchy_in_another_order_is_aligned_and_wnids_map_by_position(cifar100):
    root, _ = cifar100
    shuffled = names_hierarchy(NAMES[::-1])
    ds = CIFAR(root, 100, "test", hierarchy=shuffled)
    assert ds.hierarchy.classes == tuple(NAMES)
    assert ds.hierarchy.lcs(NAMES[0], NAMES[9]) == "g9"  # grouping of the given hierarchy kept
    wnids = names_hierarchy(NAMES, prefix="n0")  # other ids, same count: by position
    assert CIFAR(root, 100, "test", hierarchy=wnids).hierarchy.classes[0] == "n0thing00"
    with pytest.raises(DatasetError, match="neither name"):
        CIFAR(root, 100, "test", hierarchy=names_hierarchy(NAMES[:50]))


def test_default_hierarchy_comes_from_wordnet_module(cifar100, monkeypatch):
    calls = []

    def cifar_hierarchy(num_classes, class_names, **kwargs):
        calls.append((num_classes, list(class_names), kwargs))
        return names_hierarchy(class_names)

    fake = types.ModuleType("hierstudy.hierarchy.wordnet")
    fake.cifar_hierarchy = cifar_hierarchy
    monkeypatch.setitem(sys.modules, "hierstudy.hierarchy.wordnet", fake)
    ds = CIFAR(cifar100[0], 100, "test")
    assert calls == [(100, NAMES, {"tree": True})] and ds.hierarchy.classes == tuple(NAMES)


def barz_file(path, classes=range(100)):
    """Barz & Denzler's ``cifar.parent-child.txt`` format: ``parent child`` numbers, 0..99 the
    fine labels, inner nodes from 100 up (here 102 → 100, 101; 100 → evens; 101 → 103 → odds)."""
    lines = ["102 100", "102 101", "101 103"]
    lines += [f"{100 if k % 2 == 0 else 103} {k}" for k in classes]
    path.write_text("\n".join(lines) + "\n")


def test_default_cifar100_hierarchy_is_barz_file_when_the_folder_holds_it(cifar100, capsys):
    root, _ = cifar100
    barz_file(root / "cifar.parent-child.txt")
    ds = CIFAR(root, 100, "test")
    h = ds.hierarchy
    assert h.classes == tuple(NAMES) and h.is_tree and h.max_height == 3
    assert h.lcs(NAMES[0], NAMES[2]) == "taxon:100" and h.lcs(NAMES[1], NAMES[3]) == "taxon:103"
    assert h.lcs(NAMES[0], NAMES[1]) == "taxon:102"
    assert h.dissimilarity()[0, 1] == 1 and h.dissimilarity()[1, 3] == pytest.approx(1 / 3)
    assert "Barz & Denzler" in cifar.taxonomy(root) and capsys.readouterr().out == ""
    assert "WordNet" in cifar.taxonomy(root, num_classes=10)
    barz_file(root / "cifar.parent-child.txt", classes=range(99))
    with pytest.raises(DatasetCorruptError, match=r"lacks 1 of the 100 CIFAR classes.*\['99'\]"):
        CIFAR(root, 100, "test")


def test_cifar100_without_barz_file_falls_back_to_wordnet_with_a_note(
    cifar100, monkeypatch, capsys
):
    fake = types.ModuleType("hierstudy.hierarchy.wordnet")
    fake.cifar_hierarchy = lambda num_classes, class_names, **kwargs: names_hierarchy(class_names)
    monkeypatch.setitem(sys.modules, "hierstudy.hierarchy.wordnet", fake)
    CIFAR(cifar100[0], 100, "test")
    CIFAR(cifar100[0], 100, "train")
    out = capsys.readouterr().out
    assert out.count("no cifar.parent-child.txt") == 1 and "WordNet tree" in out
    assert "WordNet" in cifar.taxonomy(cifar100[0])


def test_cifar10_batches_read_back(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    names = [f"c{i}" for i in range(10)]
    rng = np.random.default_rng(1)
    expected = []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        images = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, 10, 2).tolist()
        write_pickle(folder / name, {"data": cifar_rows(images), "labels": labels})
        expected.append((images, labels))
    write_pickle(folder / "batches.meta", {"label_names": names})
    train = CIFAR(tmp_path, 10, "train", hierarchy=names_hierarchy(names))
    assert np.array_equal(train.images, np.concatenate([e[0] for e in expected[:5]]))
    assert train.labels.tolist() == sum((e[1] for e in expected[:5]), [])
    test = CIFAR(tmp_path, 10, "test", hierarchy=names_hierarchy(names))
    assert test.labels.tolist() == expected[5][1] and len(test) == 2


def test_missing_file_names_it_and_how_to_download(cifar100):
    root, _ = cifar100
    (root / "cifar-100-python" / "train").unlink()
    with pytest.raises(
        DatasetNotFoundError, match=r"cifar-100-python/train is missing.*download=True"
    ):
        CIFAR(root, 100, "train", hierarchy=names_hierarchy(NAMES))
    (root / "cifar-100-python" / "meta").unlink()
    with pytest.raises(DatasetNotFoundError, match="meta is missing"):
        CIFAR(root, 100, "test", hierarchy=names_hierarchy(NAMES))


@pytest.mark.parametrize(
    "content, match",
    [
        (b"\x80\x04garbage", "test is damaged"),
        (pickle.dumps({"data": np.zeros((2, 3072), np.uint8)}), "lacks valid"),
        (pickle.dumps({"data": np.zeros((2, 3000), np.uint8), "fine_labels": [0, 1]}), "lacks"),
        (pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "fine_labels": [0]}), "1 labels"),
        (pickle.dumps({"data": np.zeros((1, 3072), np.uint8), "fine_labels": [100]}), "outside"),
    ],
)
def test_damaged_file_is_named(cifar100, content, match):
    root, _ = cifar100
    (root / "cifar-100-python" / "test").write_bytes(content)
    with pytest.raises(DatasetCorruptError, match=match):
        CIFAR(root, 100, "test", hierarchy=names_hierarchy(NAMES))


def test_meta_with_wrong_class_count_is_corrupt(cifar100):
    root, _ = cifar100
    write_pickle(root / "cifar-100-python" / "meta", {"fine_label_names": NAMES[:10]})
    with pytest.raises(DatasetCorruptError, match="names 10 classes"):
        CIFAR(root, 100, "test", hierarchy=names_hierarchy(NAMES))


def test_bad_arguments(cifar100):
    root, _ = cifar100
    with pytest.raises(DatasetError, match="10 or 100"):
        CIFAR(root, 20)
    with pytest.raises(DatasetError, match="split"):
        CIFAR(root, 100, "val")


def test_download_only_when_asked(cifar100, monkeypatch):
    calls = []

    class Recorder(torchvision.datasets.CIFAR100):
        def __init__(self, root, train, download):
            calls.append((root, train, download))

    monkeypatch.setattr(torchvision.datasets, "CIFAR100", Recorder)
    root, _ = cifar100
    CIFAR(root, 100, "test", hierarchy=names_hierarchy(NAMES))
    assert calls == []
    CIFAR(root, 100, "test", hierarchy=names_hierarchy(NAMES), download=True)
    assert calls == [(str(root), False, True)]


class Payload:
    """A pickled object whose unpickling calls ``call(*args)``, as a crafted dataset file would."""

    def __init__(self, call, *args):
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


@pytest.mark.parametrize("how", ["shell", "open"])
def test_crafted_pickle_is_refused_before_it_runs(cifar100, tmp_path, how):
    root, _ = cifar100
    marker = tmp_path / "PWNED"
    payload = (
        Payload(os.system, f"touch {marker}") if how == "shell" else Payload(open, marker, "w")
    )
    write_pickle(root / "cifar-100-python" / "test", {"data": payload, "fine_labels": [0]})
    with pytest.raises(DatasetCorruptError, match=r"cifar-100-python/test is damaged.*asks for"):
        CIFAR(root, 100, "test", hierarchy=names_hierarchy(NAMES))
    assert not marker.exists()


class Python2Pickler(pickle._Pickler):
    """Writes strings and bytes as Python 2's cPickle did (BINSTRING), as in the CIFAR release."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes(self, obj):
        self.write(b"T" + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    def save_str(self, obj):
        self.save_bytes(obj.encode("latin1"))

    dispatch[bytes], dispatch[str] = save_bytes, save_str


def test_python2_and_protocol5_pickles_of_numpy_arrays_still_read(cifar100):
    root, data = cifar100
    images, labels = data["test"]
    entry = {
        "batch_label": "testing batch 1 of 1",
        "data": cifar_rows(images),
        "fine_labels": labels,
    }
    buffer = io.BytesIO()
    Python2Pickler(buffer, protocol=2).dump(entry)
    numpy1 = buffer.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    for content in (numpy1, pickle.dumps(entry, protocol=5)):
        (root / "cifar-100-python" / "test").write_bytes(content)
        ds = CIFAR(root, 100, "test", hierarchy=names_hierarchy(NAMES))
        assert np.array_equal(ds.images, images) and ds.labels.tolist() == labels


@pytest.mark.parametrize(
    "entry, match",
    [
        ({"data": np.full((1, 3072), 300), "fine_labels": [0]}, "the pixel 300, outside 0..255"),
        ({"data": np.full((1, 3072), -1.5), "fine_labels": [0]}, r"float64 pixels \(e.g. -1.5\)"),
        ({"data": np.zeros((2, 3072), np.uint8), "fine_labels": [0.7, 1.2]}, "float64 labels"),
        ({"data": np.zeros((1, 3072), np.uint8), "fine_labels": [-1]}, "the label -1, outside"),
    ],
)
def test_out_of_range_pixels_and_non_integer_labels_name_the_file(cifar100, entry, match):
    root, _ = cifar100
    write_pickle(root / "cifar-100-python" / "test", entry)
    with pytest.raises(DatasetCorruptError, match=f"cifar-100-python/test holds {match}"):
        CIFAR(root, 100, "test", hierarchy=names_hierarchy(NAMES))
