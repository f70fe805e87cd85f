"""Class-distance matrices (LCS height, Barz & Denzler's d_G eq. 1, KFR's d_T eq. 1): vectorised vs
literal pair loop.

Full run: ImageNet-1k's WordNet tree (1000 classes, target < 2 s and >= 10x); --quick:
Mini-ImageNet's (100 classes).
"""

import argparse

from _timing import last_line, median_time
from reference_hierarchy import literal_matrices

from hierstudy.hierarchy import wordnet


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    wnids = wordnet.timm_synsets("mini_imagenet" if args.quick else "imagenet")
    h = wordnet.imagenet_hierarchy(wnids, tree=True)
    print(f"{h} (WordNet loading not timed)")

    def fast():
        return h.lcs_height(), h.dissimilarity(), h.path_distance(k=1.0)

    fast_s = median_time(fast, repeats=5)
    reference_s = median_time(lambda: literal_matrices(h), repeats=1, warmup=0)
    print(f"{len(h.classes)} classes: all three matrices in {fast_s:.3f} s")
    print(last_line("hierarchy", fast_s, reference_s))


if __name__ == "__main__":
    main()
