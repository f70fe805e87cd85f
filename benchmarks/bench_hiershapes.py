"""Time HierShapes generation for the small profile, and reading it back from the cache.

Run: ``python benchmarks/bench_hiershapes.py [--quick]``. There is no literal reference to compare
against (a per-pixel loop would take hours); the last line reports the generation time:
``hiershapes: generate <seconds> s, cache load <seconds> s (<N> images, <S> px)``.
"""

import argparse
import tempfile

from _timing import median_time

from hierstudy.datasets import HierShapes
from hierstudy.datasets import hiershapes as hs


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one timed repeat")
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    repeats = 1 if args.quick else 3
    counts = hs.SMALL
    n = len(hs.class_attributes()) * sum(counts.values())

    def generate():
        for split in hs.SPLITS:
            hs.generate(split, seed=0, image_size=args.size, n_per_class=counts[split])

    generation = median_time(generate, repeats)
    with tempfile.TemporaryDirectory() as root:
        HierShapes(root, "train", image_size=args.size)  # writes the cache

        def load():
            for split in hs.SPLITS:
                HierShapes(root, split, image_size=args.size)

        loading = median_time(load, repeats)
    print(f"splits {counts}, {len(hs.class_attributes())} classes, median of {repeats}")
    print(
        f"hiershapes: generate {generation:.2f} s, cache load {loading:.2f} s "
        f"({n} images, {args.size} px)"
    )


if __name__ == "__main__":
    main()
