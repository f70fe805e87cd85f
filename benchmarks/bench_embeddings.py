"""Barz & Denzler's Algorithm 1 (WACV 2019): LAPACK Cholesky vs the literal row-by-row loop.

Times ``hierstudy.embeddings.class_embeddings`` and
``tests/reference_embeddings.algorithm1_literal`` on the same S of 1000 classes (ImageNet-1k's
WordNet tree if WordNet is installed, else a random tree with 1000 leaves), then the fast path alone
once on ~21k classes (ImageNet-21k as timm lists it, or a random tree of that size) — a 21843²
float64 Cholesky, 3.8 GB, factored in place.

    python benchmarks/bench_embeddings.py [--quick] [--repeats R] [--large N] [--threads T]

``--quick`` (under a minute): random trees only, 3 repeats, large n = 4000.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _timing import last_line, median_time  # also puts tests/ on the path
from reference_embeddings import algorithm1_literal
from toy_hierarchies import random_tree_edges

from hierstudy.embeddings import class_embeddings, pairwise_distance_error


def tree_similarity(edges: list[tuple[str, str]]) -> np.ndarray:
    """s_G of a tree's leaves in depth-first order, filled block by block (no [n, n] temporaries).

    In depth-first order every node's leaves are contiguous, so S[a:b, a:b] = s_G(node), written
    from the root down, leaves each pair with the value of its lowest common ancestor.
    """
    children: dict[str, list[str]] = {}
    has_parent = set()
    for parent, child in edges:
        children.setdefault(parent, []).append(child)
        has_parent.add(child)
    (root,) = set(children) - has_parent
    order, stack = [], [root]
    while stack:  # pre-order
        node = stack.pop()
        order.append(node)
        stack.extend(reversed(children.get(node, [])))
    height, span, leaves = {}, {}, 0
    for node in order:
        if node not in children:
            span[node] = (leaves, leaves + 1)
            leaves += 1
    for node in reversed(order):  # children before parents
        kids = children.get(node, [])
        if kids:
            height[node] = 1 + max(height[k] for k in kids)
            span[node] = (span[kids[0]][0], span[kids[-1]][1])
        else:
            height[node] = 0
    top = height[root]
    s = np.empty((leaves, leaves))
    for node in order:
        a, b = span[node]
        s[a:b, a:b] = 1.0 - height[node] / top
    return s


def imagenet_similarity(name: str) -> tuple[np.ndarray | None, str]:
    """s_G of timm's ``name`` wnids in WordNet's YOLO9000 tree, or (None, why not)."""
    try:
        from hierstudy.hierarchy import wordnet
    except ImportError as error:
        return None, f"hierstudy.hierarchy.wordnet does not import ({error})"
    try:
        wnids = wordnet.timm_synsets(name)
        wn = wordnet.load_wordnet(allow_download=False)
        inner = _inner_classes(wnids, wn, wordnet)
        if inner:
            return None, (
                f"{inner} of the {len(wnids)} {name} synsets are hypernyms of others (not "
                "leaves), so s_G(c, c) < 1 and Algorithm 1 does not apply"
            )
        hierarchy = wordnet.imagenet_hierarchy(wnids, tree=True)
        hierarchy.require_leaf_classes()
        return hierarchy.similarity(), repr(hierarchy)
    except Exception as error:  # noqa: BLE001 - WordNet missing or the lead's API changed
        return None, f"WordNet unavailable ({type(error).__name__}: {str(error)[:120]})"


def _inner_classes(wnids: list[str], wn, wordnet) -> int:
    classes = set(wnids)
    above = set()
    for w in wnids:
        synset = wordnet.synset_of(w, wn)
        above.update(wordnet.wnid(s) for s in synset.closure(lambda s: s.hypernyms()))
    return len(classes & above)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--large", type=int, default=None, help="classes of the large run")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="BLAS threads of the reference (0: default); the library pins its own calls to one",
    )
    args = parser.parse_args()
    repeats = args.repeats or (3 if args.quick else 5)
    rng = np.random.default_rng(0)
    if args.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)

    s, source = (
        (None, "--quick: random trees only") if args.quick else imagenet_similarity("imagenet")
    )
    if s is None:
        print(f"1000 classes: random tree ({source})")
        s = tree_similarity(random_tree_edges(rng, 1000))
    else:
        print(f"1000 classes: ImageNet-1k WordNet tree, {source}")
    phi = class_embeddings(s)
    print(
        f"  n = {len(s)}: max |ΦΦᵀ - S| = {np.abs(phi @ phi.T - s).max():.2g}, min Φ = "
        f"{phi.min():.2g}, max pairwise distance error {pairwise_distance_error(phi, s):.2g}"
    )
    fast = median_time(lambda: class_embeddings(s), repeats)
    reference = median_time(lambda: algorithm1_literal(s), max(1, repeats // 2))
    print(
        f"  fast {fast:.4f} s, literal {reference:.3f} s (median of {repeats} / {max(1, repeats // 2)})"
    )

    large = args.large or (4000 if args.quick else 21843)
    s = None
    if not args.quick and large == 21843:
        s, source = imagenet_similarity("imagenet21k_goog")
    if s is None:
        print(f"{large} classes: random tree ({source if not args.quick else '--quick'})")
        s = tree_similarity(random_tree_edges(rng, large))
    else:
        print(f"{large} classes: ImageNet-21k WordNet tree, {source}")
    start = time.perf_counter()
    phi = class_embeddings(s, overwrite=True)  # once only: S is factored in place
    seconds = time.perf_counter() - start
    print(f"  fast path once: {seconds:.2f} s for n = {len(phi)} ({phi.nbytes / 2**30:.1f} GiB)")
    print(last_line("embeddings", fast, reference))


if __name__ == "__main__":
    main()
