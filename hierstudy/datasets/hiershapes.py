"""HierShapes: the study's embedded, procedurally generated hierarchical image dataset.

The taxonomy is root → family (round / angular / line-art) → shape → colour-texture variant:
35 leaf classes three levels below the root, with uneven fan-out (3 families; 4, 5 and 3 shapes;
2 to 5 variants). Visual similarity mostly follows it: a family shares a kind of geometry and a
colour palette, a shape its geometry, and variants differ only in colour and texture. A few
deliberate confusers break the rule: leaves of different families that share a colour, some also
a texture (:func:`confusers`), so a purely visual hierarchy differs from the semantic one.

Each image (RGB uint8, ``image_size`` square) shows one object at a random position, scale and
rotation over a cluttered background (a tinted gradient, small distractor blobs of any palette
colour, per-pixel noise), with the object's mask and its tight box.

Determinism: images depend only on (seed, split, image_size, n_per_class). Randomness comes from
``numpy.random.Generator(PCG64)`` seeded with ``SeedSequence([seed, split, chunk])`` and only its
integer and uniform draws; pixels use only +, -, ×, /, floor and comparisons on float32 (exactly
rounded IEEE operations) — rotations come from the rational parametrisation
cos = (1 - t²)/(1 + t²), sin = 2t/(1 + t²) instead of libm's sin/cos, which may differ in the
last bit between machines. The same request gives the same bytes everywhere (for a given numpy
random stream, which numpy may change between major versions); ``checksum`` proves it.

Cache: ``<root>/hiershapes/seed<seed>_<size>px_<train>-<val>-<test>/`` holds
``{train,val,test}.npz`` and ``manifest.json`` (generator version, seed, size, counts, sha256 of
each split's arrays), all written atomically (:mod:`hierstudy.files`). One folder per
request, so profiles do not evict each other. A missing or mismatching manifest, or a split file
that is unreadable or fails its checksum, makes the three splits be regenerated (with a warning
when a cache was present but wrong): the data are derived, so regeneration beats an error.
"""

from __future__ import annotations

import hashlib
import json
import warnings
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from hierstudy.datasets.base import ArrayDataset, DatasetError, data_root
from hierstudy.files import atomic_write, save_npz
from hierstudy.hierarchy import Hierarchy

VERSION = 1
ROOT = "hiershapes"
SPLITS = ("train", "val", "test")
SMALL = {"train": 100, "val": 20, "test": 40}
_CHUNK = 256  # images drawn per generator stream; part of the definition of the bytes

COLOURS = {
    "red": (215, 45, 40),
    "orange": (240, 135, 30),
    "yellow": (235, 205, 45),
    "green": (50, 165, 70),
    "teal": (35, 160, 165),
    "blue": (45, 85, 215),
    "purple": (135, 65, 190),
    "magenta": (215, 60, 165),
    "white": (235, 235, 235),
}
TEXTURES = ("solid", "striped", "dotted", "checked")

# family → shape → variants "colour-texture". Families lean on a palette (round: warm, angular:
# cool, line-art: purple / magenta / white); the variants out of their family's palette are the
# confusers.
TAXONOMY: dict[str, dict[str, tuple[str, ...]]] = {
    "round": {
        "circle": ("red-solid", "orange-solid", "yellow-solid", "red-striped", "blue-dotted"),
        "ellipse": ("red-solid", "orange-striped", "yellow-dotted"),
        "ring": ("orange-solid", "yellow-solid"),
        "half-disc": ("red-solid", "yellow-striped"),
    },
    "angular": {
        "triangle": ("blue-solid", "green-solid", "teal-striped", "red-solid"),
        "square": ("blue-solid", "green-checked", "teal-solid"),
        "diamond": ("blue-striped", "green-solid"),
        "hexagon": ("teal-solid", "blue-dotted"),
        "star": ("green-striped", "yellow-solid", "teal-checked"),
    },
    "line-art": {
        "cross": ("purple-solid", "magenta-solid", "white-solid", "red-striped"),
        "bar": ("purple-striped", "white-solid"),
        "chevron": ("magenta-checked", "purple-dotted", "green-checked"),
    },
}
_SHAPES = tuple(shape for shapes in TAXONOMY.values() for shape in shapes)


def class_attributes() -> list[dict[str, str]]:
    """Per class, in label order: ``{"id", "family", "shape", "colour", "texture"}``."""
    out = []
    for family, shapes in TAXONOMY.items():
        for shape, variants in shapes.items():
            for variant in variants:
                colour, texture = variant.split("-")
                out.append(
                    {
                        "id": f"{family}/{shape}/{variant}",
                        "family": family,
                        "shape": shape,
                        "colour": colour,
                        "texture": texture,
                    }
                )
    return out


def taxonomy() -> Hierarchy:
    """The HierShapes class hierarchy: ids like ``round/circle/red-solid``, names like
    ``red solid circle``; the class order is the label order."""
    attributes = class_attributes()
    edges, names = [], {ROOT: "HierShapes"}
    for a in attributes:
        shape = f"{a['family']}/{a['shape']}"
        edges += [(ROOT, a["family"]), (a["family"], shape), (shape, a["id"])]
        names[a["family"]] = f"{a['family']} shapes"
        names[shape] = a["shape"]
        names[a["id"]] = f"{a['colour']} {a['texture']} {a['shape']}"
    return Hierarchy(edges, [a["id"] for a in attributes], names=names)


def confusers(strong: bool = False) -> list[tuple[str, str]]:
    """Pairs of classes from different families sharing their colour (``strong``: and texture)."""
    attributes = class_attributes()
    pairs = []
    for i, a in enumerate(attributes):
        for b in attributes[i + 1 :]:
            same = a["colour"] == b["colour"] and (not strong or a["texture"] == b["texture"])
            if a["family"] != b["family"] and same:
                pairs.append((a["id"], b["id"]))
    return pairs


# ------------------------------------------------------------------------------- geometry
_R3 = np.float32(np.sqrt(np.float32(3.0)) / 2)  # sqrt is exactly rounded: same on every machine


def _triangle(u, v, flip=1.0):
    """Regular triangle of circumradius 1 (inradius 1/2), pointing up (down when flip = -1)."""
    v = v * flip
    return (v >= -0.5) & (_R3 * u + 0.5 * v <= 0.5) & (-_R3 * u + 0.5 * v <= 0.5)


_SHAPE_MASKS: dict[str, Callable] = {
    "circle": lambda u, v: u * u + v * v <= 0.9,
    "ellipse": lambda u, v: u * u + (v * v) / 0.3 <= 1.0,
    "ring": lambda u, v: (u * u + v * v <= 1.0) & (u * u + v * v >= 0.3),
    "half-disc": lambda u, v: (u * u + (v + 0.4) * (v + 0.4) <= 1.0) & (v >= -0.4),
    "triangle": _triangle,
    "square": lambda u, v: (np.abs(u) <= 0.7) & (np.abs(v) <= 0.7),
    "diamond": lambda u, v: np.abs(u) + np.abs(v) <= 1.0,
    "hexagon": lambda u, v: (
        (np.abs(u) <= _R3) & (np.abs(0.5 * u + _R3 * v) <= _R3) & (np.abs(0.5 * u - _R3 * v) <= _R3)
    ),
    "star": lambda u, v: _triangle(u, v) | _triangle(u, v, -1.0),
    "cross": lambda u, v: (
        ((np.abs(u) <= 0.22) & (np.abs(v) <= 0.95)) | ((np.abs(v) <= 0.22) & (np.abs(u) <= 0.95))
    ),
    "bar": lambda u, v: (np.abs(u) <= 0.95) & (np.abs(v) <= 0.22),
    "chevron": lambda u, v: (np.abs(v + 0.9 * np.abs(u) - 0.45) <= 0.3) & (np.abs(u) <= 0.85),
}
_EXTENT = 1.1  # every shape lies within this radius (in object units) of its centre


def _texture(name, u, v, phase):
    """Boolean [b, H, W]: where the darker second colour of a texture goes (object units)."""
    pu, pv = phase[:, 0, None, None], phase[:, 1, None, None]
    if name == "striped":
        return (np.floor(u * 2.5 + pu).astype(np.int32) & 1) == 1
    if name == "checked":
        cells = np.floor(u * 2.5 + pu).astype(np.int32) + np.floor(v * 2.5 + pv).astype(np.int32)
        return (cells & 1) == 1
    if name == "dotted":
        fu, fv = u * 2.2 + pu, v * 2.2 + pv
        fu, fv = fu - np.floor(fu) - 0.5, fv - np.floor(fv) - 0.5
        return fu * fu + fv * fv <= 0.09
    return np.zeros(u.shape, dtype=bool)


def _grid(size: int) -> np.ndarray:
    return np.arange(size, dtype=np.float32) + np.float32(0.5)  # pixel centres


def _render(rng: np.random.Generator, labels: np.ndarray, size: int):
    """Images uint8 [B, H, W, 3], boxes float32 [B, 4], masks bool [B, H, W] of one chunk."""
    attributes = class_attributes()
    shape_of = np.array([_SHAPES.index(a["shape"]) for a in attributes])[labels]
    texture_of = np.array([TEXTURES.index(a["texture"]) for a in attributes])[labels]
    palette = np.array(list(COLOURS.values()), dtype=np.int16)
    colour_of = np.array([list(COLOURS).index(a["colour"]) for a in attributes])[labels]
    b, f32 = len(labels), np.float32
    grid = _grid(size)
    x, y = grid[None, None, :], grid[None, :, None]

    # background: a tinted grey with a linear gradient
    grey = rng.integers(60, 170, (b, 1, 1, 1)) + rng.integers(-25, 26, (b, 1, 1, 3))
    slope = (rng.random((b, 2), dtype=f32) - f32(0.5)) * f32(80.0 / size)
    ramp = slope[:, 0, None, None] * (x - size / 2) + slope[:, 1, None, None] * (y - size / 2)
    background = (grey + np.floor(ramp)[..., None].astype(np.int16)).astype(np.int16)

    # layer of every pixel: 0 background, 1-4 distractors, 5 object, 6 object's texture
    layer = np.zeros((b, size, size), dtype=np.int8)
    count = rng.integers(1, 5, b)
    centres = rng.random((b, 4, 2), dtype=f32) * f32(size)
    radii = (f32(0.03) + f32(0.04) * rng.random((b, 4), dtype=f32)) * f32(size)
    square = rng.integers(0, 2, (b, 4)) == 1
    paints = np.zeros((b, 7, 3), dtype=np.int16)
    paints[:, 1:5] = palette[rng.integers(0, len(palette), (b, 4))] + rng.integers(
        -20, 21, (b, 4, 3)
    )
    for k in range(4):  # small discs or squares of any palette colour, under the object
        dx = np.abs(x - centres[:, k, 0, None, None]) / radii[:, k, None, None]
        dy = np.abs(y - centres[:, k, 1, None, None]) / radii[:, k, None, None]
        blob = np.where(square[:, k, None, None], np.maximum(dx, dy) <= 1, dx * dx + dy * dy <= 1)
        layer[blob & (k < count)[:, None, None]] = k + 1

    # the object: scale, position, rotation (rational parametrisation, see module docstring)
    radius = (f32(0.2) + f32(0.2) * rng.random(b, dtype=f32)) * f32(size)
    margin = f32(_EXTENT) * radius
    centre = margin[:, None] + (f32(size) - 2 * margin[:, None]) * rng.random((b, 2), dtype=f32)
    t = f32(2.0) * rng.random(b, dtype=f32) - f32(1.0)
    turn = np.where(rng.integers(0, 2, b) == 1, f32(-1.0), f32(1.0))
    cos = turn * (1 - t * t) / (1 + t * t)
    sin = turn * (2 * t) / (1 + t * t)
    phase = rng.random((b, 2), dtype=f32)
    paints[:, 5] = palette[colour_of] + rng.integers(-18, 19, (b, 3))
    paints[:, 6] = paints[:, 5] * 2 // 5
    dx = x - centre[:, 0, None, None]
    dy = y - centre[:, 1, None, None]
    c, s, r = cos[:, None, None], sin[:, None, None], radius[:, None, None]
    u = (c * dx + s * dy) / r
    v = (c * dy - s * dx) / r

    mask = np.zeros((b, size, size), dtype=bool)
    dark = np.zeros((b, size, size), dtype=bool)
    for index, name in enumerate(_SHAPES):
        rows = np.flatnonzero(shape_of == index)
        if rows.size:
            mask[rows] = _SHAPE_MASKS[name](u[rows], v[rows])
    for index, name in enumerate(TEXTURES):
        rows = np.flatnonzero(texture_of == index)
        if rows.size:
            dark[rows] = _texture(name, u[rows], v[rows], phase[rows])
    layer[mask] = 5
    layer[mask & dark] = 6

    flat = layer.astype(np.int64) + 7 * np.arange(b)[:, None, None]
    image = np.where((layer > 0)[..., None], paints.reshape(-1, 3)[flat], background)
    image += rng.integers(-20, 21, image.shape, dtype=np.int16)
    image = np.clip(image, 0, 255).astype(np.uint8)
    return image, _boxes_of(mask), mask


def _boxes_of(mask: np.ndarray) -> np.ndarray:
    """Tight float32 [B, 4] boxes (x0, y0, x1, y1; exclusive ends) of non-empty masks [B, H, W]."""
    cols, rows = mask.any(axis=1), mask.any(axis=2)
    if not (cols.any(axis=1).all()):
        raise RuntimeError("an object mask is empty: the image size is too small for the shapes")
    w, h = cols.shape[1], rows.shape[1]
    x0, x1 = cols.argmax(axis=1), w - cols[:, ::-1].argmax(axis=1)
    y0, y1 = rows.argmax(axis=1), h - rows[:, ::-1].argmax(axis=1)
    return np.stack([x0, y0, x1, y1], axis=1).astype(np.float32)


def generate(
    split: str = "train", seed: int = 0, image_size: int = 64, n_per_class: int = SMALL["train"]
) -> dict[str, np.ndarray]:
    """Generate one split: ``images`` uint8 [N, S, S, 3], ``labels`` int64 [N] (class-major),
    ``boxes`` float32 [N, 4], ``masks`` bool [N, S, S]; N = 35 · ``n_per_class``.

    Vectorised over chunks of 256 images; each chunk has its own seeded generator stream.
    """
    _check_request(split, seed, image_size, {split: n_per_class})
    n_classes = len(class_attributes())
    labels = np.repeat(np.arange(n_classes, dtype=np.int64), n_per_class)
    parts = []
    for chunk, start in enumerate(range(0, len(labels), _CHUNK)):
        sequence = np.random.SeedSequence([seed, SPLITS.index(split), chunk])
        rng = np.random.Generator(np.random.PCG64(sequence))
        parts.append(_render(rng, labels[start : start + _CHUNK], image_size))
    images, boxes, masks = (np.concatenate(p) for p in zip(*parts, strict=True))
    return {"images": images, "labels": labels, "boxes": boxes, "masks": masks}


def checksum(arrays: Mapping[str, np.ndarray]) -> str:
    """sha256 over the arrays' names, dtypes, shapes and bytes (sorted by name)."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{a.dtype.str}:{a.shape};".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def _check_request(split, seed, image_size, counts) -> None:
    if split not in SPLITS:
        raise DatasetError(f"split must be one of {SPLITS}, got {split!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DatasetError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(image_size, (int, np.integer)) or image_size < 24:
        raise DatasetError(f"image_size must be an integer >= 24, got {image_size!r}")
    for name, n in counts.items():
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise DatasetError(f"n_per_class[{name!r}] must be a positive integer, got {n!r}")


# ---------------------------------------------------------------------------------- cache
def _manifest(seed, image_size, counts) -> dict:
    return {
        "generator": "hiershapes",
        "version": VERSION,
        "seed": int(seed),
        "image_size": int(image_size),
        "n_per_class": {s: int(counts[s]) for s in SPLITS},
        "classes": len(class_attributes()),
    }


def _load_split(path: Path, size: int) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in ("images", "labels", "boxes", "masks")}
    arrays["masks"] = np.unpackbits(arrays["masks"], axis=-1, count=size).astype(bool)
    return arrays


def load_or_generate(
    root: str | Path | None, split: str, seed: int, image_size: int, counts: Mapping[str, int]
) -> tuple[dict[str, np.ndarray], str]:
    """The arrays of one split and their checksum from the cache, (re)generating the three
    splits when needed."""
    _check_request(split, seed, image_size, counts)
    tag = f"seed{seed}_{image_size}px_{'-'.join(str(counts[s]) for s in SPLITS)}"
    folder = data_root(root) / "hiershapes" / tag
    expected = _manifest(seed, image_size, counts)
    manifest_path = folder / "manifest.json"
    problem = None
    if manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text())
            sums = manifest.pop("sha256")
        except (ValueError, KeyError, AttributeError) as error:
            manifest, problem = None, f"unreadable manifest ({error})"
        if manifest is not None and manifest != expected:
            problem = "manifest does not match the request"
        elif manifest is not None:
            try:
                arrays = _load_split(folder / f"{split}.npz", image_size)
                if checksum(arrays) == sums[split]:
                    return arrays, sums[split]
                problem = f"{split}.npz fails its checksum"
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
                problem = f"{split}.npz is unreadable ({type(error).__name__}: {error})"
    if problem:
        warnings.warn(f"HierShapes cache {folder}: {problem}; regenerating", stacklevel=3)
    folder.mkdir(parents=True, exist_ok=True)
    sums, out = {}, None
    for name in SPLITS:
        arrays = generate(name, seed, image_size, counts[name])
        sums[name] = checksum(arrays)
        packed = dict(arrays, masks=np.packbits(arrays["masks"], axis=-1))
        save_npz(folder / f"{name}.npz", packed)
        out = arrays if name == split else out
    text = json.dumps(dict(expected, sha256=sums), indent=2) + "\n"
    atomic_write(manifest_path, text.encode())
    return out, sums[split]


class HierShapes(ArrayDataset):
    """The generated dataset as a torch ``Dataset`` of ``(image, label)``.

    Attributes: ``images`` uint8 [N, S, S, 3], ``labels`` int64 [N], ``boxes`` float32 [N, 4]
    (tight around the object, exclusive ends), ``masks`` bool [N, S, S], ``classes`` (class ids,
    label order), ``hierarchy`` (:func:`taxonomy`), ``checksum``.

    Args:
        root: data directory (default ``$HIERSTUDY_DATA`` or the checkout's ``data/``).
        split: ``"train"``, ``"val"`` or ``"test"``.
        seed: generation seed; splits use independent streams.
        image_size: side in pixels (>= 24).
        n_per_class: images per class, an int for every split or a mapping per split
            (missing splits take :data:`SMALL`); part of the cache key.
        transform: applied to the uint8 ``tv_tensors.Image``; default: float in [0, 1].
        return_boxes: items become ``(image, label, boxes [1, 4])``.
        cache: read/write the cache under ``root``; ``False`` generates in memory only.
    """

    def __init__(
        self,
        root: str | Path | None = None,
        split: str = "train",
        *,
        seed: int = 0,
        image_size: int = 64,
        n_per_class: int | Mapping[str, int] | None = None,
        transform: Callable | None = None,
        return_boxes: bool = False,
        cache: bool = True,
    ) -> None:
        if isinstance(n_per_class, Mapping):
            unknown = set(n_per_class) - set(SPLITS)
            if unknown:
                raise DatasetError(f"n_per_class has unknown splits {sorted(unknown)}")
            counts = {**SMALL, **n_per_class}
        else:
            counts = dict(SMALL) if n_per_class is None else dict.fromkeys(SPLITS, n_per_class)
        _check_request(split, seed, image_size, counts)
        if cache:
            arrays, self.checksum = load_or_generate(root, split, seed, image_size, counts)
        else:
            arrays = generate(split, seed, image_size, counts[split])
            self.checksum = checksum(arrays)
        self.masks = arrays["masks"]
        self.split, self.seed, self.image_size = split, seed, image_size
        hierarchy = taxonomy()
        super().__init__(
            arrays["images"],
            arrays["labels"],
            hierarchy.classes,
            hierarchy,
            boxes=arrays["boxes"],
            transform=transform,
            return_boxes=return_boxes,
        )

    def _take(self, indices: np.ndarray) -> None:
        super()._take(indices)
        self.masks = self.masks[indices]  # ``checksum`` stays that of the whole split
