"""WordNet 3.0 through nltk, online or offline, and the class → synset maps of the study.

Offline, nltk's reader needs an NLTK-style folder ``corpora/wordnet/`` holding the WordNet
database files plus ``lexnames`` and ``index.sense``. Debian's ``wordnet-base`` and
``wordnet-sense-index`` install the database under ``/usr/share/wordnet`` (or ``$WNSEARCHDIR``)
without ``lexnames``; :func:`load_wordnet` builds the folder in a cache from those files, writing
the fixed table of the 45 lexicographer files (``man 5 lexnames``). Online, ``nltk.download``.

Hierarchies from synsets (:func:`synset_hierarchy`):

* ``tree=False``: the full hypernym DAG (hypernyms and instance hypernyms) of the classes'
  ancestors;
* ``tree=True``: a tree by the YOLO9000 rule the Barz paper cites (Barz & Denzler (WACV 2019),
  Sec. 3.2): classes with a single root path first, then, class by class in the given order, the
  root path that adds the fewest new nodes (ties: the lexicographically smallest path of wnids);
* ``heights="classes"`` (default): node heights within the hierarchy itself;
  ``heights="wordnet"``: heights within the whole WordNet noun hypernym graph (no instance
  hypernyms) with the subtrees below the classes removed — the Barz authors' ImageNet evaluation
  convention (docs/ambiguities.md); the d_G denominator is then the height of ``entity``.

:func:`barz_evaluation_hierarchy` puts together what the Barz authors evaluate ImageNet with
(docs/conventions.md): the noun hypernym DAG, WordNet heights, the deepest common subsumer.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import warnings
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from .tree import Hierarchy, HierarchyError

# The fixed table of WordNet 3.0's lexicographer files (lexnames(5WN)): number, name, category.
LEXNAMES = (
    "adj.all 3",
    "adj.pert 3",
    "adv.all 4",
    "noun.Tops 1",
    "noun.act 1",
    "noun.animal 1",
    "noun.artifact 1",
    "noun.attribute 1",
    "noun.body 1",
    "noun.cognition 1",
    "noun.communication 1",
    "noun.event 1",
    "noun.feeling 1",
    "noun.food 1",
    "noun.group 1",
    "noun.location 1",
    "noun.motive 1",
    "noun.object 1",
    "noun.person 1",
    "noun.phenomenon 1",
    "noun.plant 1",
    "noun.possession 1",
    "noun.process 1",
    "noun.quantity 1",
    "noun.relation 1",
    "noun.shape 1",
    "noun.state 1",
    "noun.substance 1",
    "noun.time 1",
    "verb.body 2",
    "verb.change 2",
    "verb.cognition 2",
    "verb.communication 2",
    "verb.competition 2",
    "verb.consumption 2",
    "verb.contact 2",
    "verb.creation 2",
    "verb.emotion 2",
    "verb.motion 2",
    "verb.perception 2",
    "verb.possession 2",
    "verb.social 2",
    "verb.stative 2",
    "verb.weather 2",
    "adj.ppl 3",
)
_DATABASE_FILES = (
    "data.noun",
    "data.verb",
    "data.adj",
    "data.adv",
    "index.noun",
    "index.verb",
    "index.adj",
    "index.adv",
    "noun.exc",
    "verb.exc",
    "adj.exc",
    "adv.exc",
)
INSTALL_HINT = (
    "WordNet 3.0 was not found. Install it with `hierstudy wordnet --install` (as root), or "
    "offline with `apt-get install wordnet-base wordnet-sense-index` (Debian/Ubuntu), or online "
    "with `python -c \"import nltk; nltk.download('wordnet')\"`."
)


class WordNetError(HierarchyError):
    """WordNet is missing, or a synset / wnid is unknown."""


def cache_dir() -> Path:
    """Where hierstudy keeps derived files: ``$HIERSTUDY_CACHE`` or ``~/.cache/hierstudy``."""
    return Path(os.environ.get("HIERSTUDY_CACHE", Path.home() / ".cache" / "hierstudy"))


def debian_wordnet_dir() -> Path | None:
    """The Debian WordNet database folder (``$WNSEARCHDIR`` or ``/usr/share/wordnet``), if any."""
    for candidate in (os.environ.get("WNSEARCHDIR"), "/usr/share/wordnet"):
        if candidate and (Path(candidate) / "data.noun").is_file():
            return Path(candidate)
    return None


def build_nltk_folder(source: Path, target: Path) -> Path:
    """Assemble ``target/corpora/wordnet`` from a WordNet database folder; return that folder."""
    missing = [f for f in (*_DATABASE_FILES, "index.sense") if not (source / f).is_file()]
    if missing:
        raise WordNetError(f"{source} lacks {missing}. {INSTALL_HINT}")
    folder = target / "corpora" / "wordnet"
    tmp = folder.with_name(f"wordnet.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in (*_DATABASE_FILES, "index.sense"):  # copies: nltk refuses links leaving its root
        shutil.copyfile(source / name, tmp / name)
    cntlist = source / "cntlist.rev"
    (tmp / "cntlist.rev").write_text(cntlist.read_text() if cntlist.is_file() else "")
    lines = (f"{i:02d}\t{name}\t{cat}" for i, (name, cat) in enumerate(x.split() for x in LEXNAMES))
    (tmp / "lexnames").write_text("\n".join(lines) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return folder


def install_debian_wordnet() -> bool:
    """``apt-get install`` the Debian WordNet packages when running as root; True on success."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return False
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "wordnet-base", "wordnet-sense-index"],
    ):
        if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
            return False
    return debian_wordnet_dir() is not None


@functools.lru_cache(maxsize=1)
def load_wordnet(allow_download: bool = True):
    """An nltk ``WordNetCorpusReader`` for WordNet 3.0.

    Order: nltk data already present; a folder built from Debian's files; ``nltk.download``
    (if ``allow_download``); otherwise :class:`WordNetError` saying exactly what to install.
    """
    try:
        import nltk
        from nltk.corpus.reader.wordnet import WordNetCorpusReader
    except ImportError:
        raise WordNetError(f"nltk is not installed (`pip install nltk`). {INSTALL_HINT}") from None

    class Reader(WordNetCorpusReader):
        def map_wn(self, version="wordnet"):
            """No map to other WordNet versions: it serves only the multilingual OMW functions
            and took 8 of the reader's 13 s of start-up."""
            return None

    def reader(folder):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "multilingual functions are not available"
                return Reader(str(folder), None)
        except (OSError, LookupError, ValueError) as error:  # a damaged or partial folder
            cause = next(iter(str(error).strip().splitlines()), type(error).__name__)
            raise WordNetError(
                f"WordNet in {folder} cannot be read ({cause}). {INSTALL_HINT}"
            ) from None

    target = cache_dir() / "nltk_data"
    if str(target) not in nltk.data.path:
        nltk.data.path.append(str(target))  # nltk only opens files below its data paths
    try:
        return reader(nltk.data.find("corpora/wordnet"))
    except LookupError:
        pass
    source = debian_wordnet_dir()
    if source is not None and (source / "index.sense").is_file():
        return reader(build_nltk_folder(source, target))
    if allow_download:
        try:
            if nltk.download("wordnet", download_dir=str(target), quiet=True, raise_on_error=True):
                return reader(nltk.data.find("corpora/wordnet"))
        except Exception:  # noqa: BLE001 - offline: fall through to the install hint
            pass
    raise WordNetError(INSTALL_HINT)


# --------------------------------------------------------------------------------- synsets
def wnid(synset) -> str:
    """ImageNet-style id of a noun synset: ``n`` + 8-digit offset."""
    return f"{synset.pos()}{synset.offset():08d}"


def is_wnid(text: str) -> bool:
    """True for an ImageNet-style noun id: ``n`` and 8 digits (``n02084071``)."""
    return re.fullmatch(r"n\d{8}", text) is not None


def synset_of(name_or_wnid: str, wn=None):
    """The synset for a wnid (``n02084071``) or an nltk name (``dog.n.01``); anything else, or an
    id WordNet lacks, raises :class:`WordNetError` naming it."""
    text = str(name_or_wnid)
    if not is_wnid(text) and re.fullmatch(r".+\.[nvasr]\.\d+", text) is None:
        raise WordNetError(
            f"{text!r} is neither a WordNet noun id ('n' and 8 digits, e.g. n02084071) nor a "
            "synset name ('lemma.pos.nn', e.g. dog.n.01)"
        )
    wn = wn or load_wordnet()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # nltk warns before returning None for a bad offset
            if is_wnid(text):
                found = wn.synset_from_pos_and_offset("n", int(text[1:]))
            else:
                found = wn.synset(text)
    except Exception as error:  # nltk raises WordNetError / ValueError / LookupError
        raise WordNetError(f"unknown synset or wnid {text!r}: {error}") from None
    if found is None:
        raise WordNetError(f"unknown synset or wnid {text!r}: no such offset in WordNet")
    return found


def synset_hierarchy(
    synsets: Sequence[str],
    *,
    tree: bool = False,
    instance_hypernyms: bool = True,
    heights: str = "classes",
    lcs_rule: str = "least_height",
    wn=None,
) -> Hierarchy:
    """A hierarchy over WordNet synsets (given as wnids or nltk names); node ids are wnids;
    ``lcs_rule``: :class:`~hierstudy.hierarchy.tree.Hierarchy`'s."""
    wn = wn or load_wordnet()
    classes = [synset_of(s, wn) for s in synsets]
    if tree:
        edges = _yolo9000_tree(classes, instance_hypernyms)
    else:
        edges, queue, seen = set(), list(classes), set(classes)
        while queue:
            s = queue.pop()
            for p in _hypernyms(s, instance_hypernyms):
                edges.add((wnid(p), wnid(s)))
                if p not in seen:
                    seen.add(p)
                    queue.append(p)
    nodes = {n for edge in edges for n in edge} | {wnid(s) for s in classes}
    names = {wnid(s): s.name() for s in _walk_up(classes, instance_hypernyms)}
    kwargs = {}
    if heights == "wordnet":
        table = _wordnet_noun_heights(tuple(sorted(wnid(s) for s in classes)), wn)
        kwargs = {"heights": {n: table[n] for n in nodes}, "max_height": max(table.values())}
    elif heights != "classes":
        raise ValueError(f"heights must be 'classes' or 'wordnet', not {heights!r}")
    classes = [wnid(s) for s in classes]
    return Hierarchy(sorted(edges), classes, names=names, lcs_rule=lcs_rule, **kwargs)


def _hypernyms(synset, instance_hypernyms: bool):
    found = synset.hypernyms() + (synset.instance_hypernyms() if instance_hypernyms else [])
    return sorted(set(found), key=wnid)


def _walk_up(synsets, instance_hypernyms: bool) -> set:
    seen, stack = set(synsets), list(synsets)
    while stack:
        for p in _hypernyms(stack.pop(), instance_hypernyms):
            if p not in seen:
                seen.add(p)
                stack.append(p)
    return seen


def _root_paths(synset, instance_hypernyms: bool) -> list[tuple[str, ...]]:
    """Every path root → synset as a tuple of wnids, sorted."""
    parents = _hypernyms(synset, instance_hypernyms)
    if not parents:
        return [(wnid(synset),)]
    paths = [p + (wnid(synset),) for q in parents for p in _root_paths(q, instance_hypernyms)]
    return sorted(set(paths))


def _yolo9000_tree(classes, instance_hypernyms: bool) -> set[tuple[str, str]]:
    """Edges of the YOLO9000 tree: single-path classes first, then fewest-new-nodes paths."""
    paths = [_root_paths(c, instance_hypernyms) for c in classes]
    chosen: dict[str, str] = {}  # child -> parent

    def add(path):
        for parent, child in zip(path, path[1:], strict=False):
            chosen.setdefault(child, parent)

    for options in paths:
        if len(options) == 1:
            add(options[0])
    for options in paths:
        if len(options) > 1:
            in_tree = set(chosen) | set(chosen.values())
            add(min(options, key=lambda p: (sum(n not in in_tree for n in p), p)))
    return {(p, c) for c, p in chosen.items()}


@functools.lru_cache(maxsize=4)
def _wordnet_noun_heights(class_wnids: tuple[str, ...], wn) -> dict[str, int]:
    """Heights in the WordNet noun hypernym graph with the subtrees below the classes removed."""
    children: dict[str, list[str]] = {}
    for s in wn.all_synsets("n"):
        children.setdefault(wnid(s), [])
        for p in s.hypernyms():
            children.setdefault(wnid(p), []).append(wnid(s))
    removed, stack = set(), [c for c in class_wnids]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in removed:
                removed.add(child)
                stack.append(child)
    removed -= set(class_wnids)
    for c in class_wnids:
        children[c] = []
    height: dict[str, int] = {}
    for root in children:
        if root in removed or root in height:
            continue
        stack = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            kids = [k for k in children[node] if k not in removed]
            if expanded:
                height[node] = 1 + max((height[k] for k in kids), default=-1)
            elif node not in height:
                stack.append((node, True))
                stack.extend((k, False) for k in kids if k not in height)
    return height


# ------------------------------------------------------------------------------ class maps
def _data_lines(filename: str) -> list[list[str]]:
    text = resources.files("hierstudy.resources").joinpath(filename).read_text()
    return [line.split() for line in text.splitlines() if line.strip() and line[0] != "#"]


def cifar_synsets(num_classes: int) -> dict[str, str]:
    """CIFAR-10 / CIFAR-100 class name → WordNet 3.0 noun synset name (the study's own map)."""
    if num_classes not in (10, 100):
        raise ValueError(f"CIFAR has 10 or 100 classes, not {num_classes}")
    return {name: synset for name, synset in _data_lines(f"cifar{num_classes}_wordnet.txt")}


def cifar_hierarchy(num_classes: int, class_names: Sequence[str] | None = None, **kwargs):
    """The WordNet hierarchy of CIFAR-10/100 with node ids = wnids and classes in CIFAR order."""
    mapping = cifar_synsets(num_classes)
    names = list(class_names or mapping)
    unknown = [n for n in names if n not in mapping]
    if unknown:
        raise WordNetError(f"CIFAR-{num_classes} classes without a synset: {unknown}")
    return synset_hierarchy([mapping[n] for n in names], **kwargs)


def timm_synsets(name: str = "imagenet") -> list[str]:
    """wnid list that timm ships: ``imagenet`` (1k), ``mini_imagenet`` (100), ``imagenet21k_goog``."""
    path = resources.files("timm.data._info").joinpath(f"{name}_synsets.txt")
    if not path.is_file():
        raise WordNetError(f"timm ships no {name}_synsets.txt")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def imagenet_hierarchy(wnids: Sequence[str] | None = None, **kwargs) -> Hierarchy:
    """The WordNet hierarchy of ImageNet-1k (or of the given wnids, e.g. Mini-ImageNet's)."""
    return synset_hierarchy(list(wnids) if wnids is not None else timm_synsets(), **kwargs)


def barz_evaluation_hierarchy(wnids: Sequence[str] | None = None, wn=None) -> Hierarchy:
    """The hierarchy Barz & Denzler's code scores ImageNet's retrieval with, over ``wnids``
    (default ImageNet-1k's, timm's order): the WordNet noun hypernym DAG without instance
    hypernyms (their ``ILSVRC/wordnet.parent-child.pruned.txt``, "all children of ILSVRC classes
    removed", cvjena/semantic-embeddings), heights in all of WordNet (``heights="wordnet"``) and
    the LCS of greatest depth (``lcs_rule="deepest"``: ``class_hierarchy.py``,
    ``ClassHierarchy.lcs`` / ``lcs_height``). Training uses the tree
    (``hierarchy_for(name, tree=True)``, their ``wordnet.parent-child.mintree.txt``)."""
    wnids = list(wnids) if wnids is not None else timm_synsets()
    return synset_hierarchy(
        wnids, instance_hypernyms=False, heights="wordnet", lcs_rule="deepest", wn=wn
    )


WORDNET_DATASETS = ("cifar10", "cifar100", "mini_imagenet", "imagenet1k")


def hierarchy_for(name: str, *, tree: bool = False, **kwargs) -> Hierarchy:
    """The WordNet hierarchy of a dataset of ``WORDNET_DATASETS``: CIFAR-10/100 through the
    study's class → synset maps, Mini-ImageNet and ImageNet-1k through timm's wnid lists; the
    hypernym DAG, or with ``tree`` the YOLO9000 tree (``kwargs``: :func:`synset_hierarchy`'s)."""
    if name in ("cifar10", "cifar100"):
        return cifar_hierarchy(int(name[5:]), tree=tree, **kwargs)
    if name in ("mini_imagenet", "imagenet1k"):
        wnids = timm_synsets("imagenet" if name == "imagenet1k" else name)
        return imagenet_hierarchy(wnids, tree=tree, **kwargs)
    raise WordNetError(f"no WordNet hierarchy for {name!r}; choose one of {WORDNET_DATASETS}")
