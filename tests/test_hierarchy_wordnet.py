import numpy as np
import pytest

from hierstudy.hierarchy import HierarchyError, wordnet


@pytest.fixture(scope="module")
def wn():
    return wordnet.load_wordnet()


def test_nltk_folder_built_from_debian_files(tmp_path):
    source = wordnet.debian_wordnet_dir()
    if source is None:
        pytest.skip("Debian's wordnet-base is not installed here (CI installs it)")
    folder = wordnet.build_nltk_folder(source, tmp_path)
    lines = (folder / "lexnames").read_text().splitlines()
    assert len(lines) == 45 and lines[3] == "03\tnoun.Tops\t1" and lines[44] == "44\tadj.ppl\t3"
    assert (folder / "index.sense").stat().st_size > 1_000_000


def test_incomplete_wordnet_folder_names_what_is_missing(tmp_path):
    (tmp_path / "data.noun").write_text("")
    with pytest.raises(wordnet.WordNetError, match="index.noun.*apt-get install wordnet-base"):
        wordnet.build_nltk_folder(tmp_path, tmp_path / "out")


def test_missing_wordnet_says_exactly_what_to_install(monkeypatch):
    import nltk

    monkeypatch.setattr(nltk.data, "find", lambda *a, **k: (_ for _ in ()).throw(LookupError()))
    monkeypatch.setattr(wordnet, "debian_wordnet_dir", lambda: None)
    with pytest.raises(wordnet.WordNetError) as error:
        wordnet.load_wordnet.__wrapped__(allow_download=False)
    assert "apt-get install wordnet-base wordnet-sense-index" in str(error.value)
    assert "nltk.download('wordnet')" in str(error.value)
    assert "`hierstudy wordnet --install`" in str(error.value) and "\n" not in str(error.value)


def test_unreadable_wordnet_folder_is_one_line_with_the_install_hint(monkeypatch, tmp_path):
    import nltk

    monkeypatch.setattr(nltk.data, "find", lambda *a, **k: tmp_path)  # found, but empty
    with pytest.raises(wordnet.WordNetError) as error:
        wordnet.load_wordnet.__wrapped__(allow_download=False)
    message = str(error.value)
    assert message.startswith(f"WordNet in {tmp_path} cannot be read") and "\n" not in message
    assert "`hierstudy wordnet --install`" in message


@pytest.mark.parametrize("bad", ["n0244", "dog", "n0208407x", "v01166351", "cats", "n020840711"])
def test_malformed_wnid_is_named_without_loading_wordnet(monkeypatch, bad):
    monkeypatch.setattr(wordnet, "load_wordnet", lambda: pytest.fail("WordNet was loaded"))
    with pytest.raises(wordnet.WordNetError, match=rf"^'{bad}' is neither a WordNet noun id"):
        wordnet.synset_of(bad)


def test_wnid_round_trip_and_unknown_ids(wn):
    dog = wordnet.synset_of("dog.n.01", wn)
    assert wordnet.wnid(dog) == "n02084071"
    assert wordnet.synset_of("n02084071", wn) == dog
    for bad in ("n99999999", "nodog.n.01"):
        with pytest.raises(wordnet.WordNetError, match="unknown synset or wnid"):
            wordnet.synset_of(bad, wn)


@pytest.mark.parametrize("num_classes", [10, 100])
def test_cifar_maps_cover_every_class_with_existing_distinct_leaf_synsets(wn, num_classes):
    mapping = wordnet.cifar_synsets(num_classes)
    assert len(mapping) == num_classes and len(set(mapping.values())) == num_classes
    h = wordnet.cifar_hierarchy(num_classes, tree=True, wn=wn)
    assert h.is_tree and h.root == "n00001740"  # entity.n.01
    h.require_leaf_classes()
    assert [h.label(c) for c in h.classes] == list(mapping.values())


def test_cifar_dag_keeps_every_hypernym_and_tree_drops_some(wn):
    dag = wordnet.cifar_hierarchy(100, wn=wn)
    tree = wordnet.cifar_hierarchy(100, tree=True, wn=wn)
    assert not dag.is_tree and set(tree.nodes) <= set(dag.nodes)
    apple = wordnet.wnid(wn.synset("apple.n.01"))
    assert len(dag.parents(apple)) == 2 and len(tree.parents(apple)) == 1


def test_yolo9000_rule_prefers_the_path_adding_fewest_nodes(wn):
    # apple.n.01 has two root paths (edible fruit / pome); pear.n.01 has one through edible fruit,
    # so the tree built after pear must route apple through edible fruit too.
    h = wordnet.synset_hierarchy(["pear.n.01", "apple.n.01"], tree=True, wn=wn)
    assert h.label(h.parents(wordnet.wnid(wn.synset("apple.n.01")))[0]) == "edible_fruit.n.01"
    assert h.lcs(*h.classes) == wordnet.wnid(wn.synset("edible_fruit.n.01"))


def test_wordnet_height_convention_counts_non_class_descendants(wn):
    own = wordnet.synset_hierarchy(["dog.n.01", "cat.n.01"], tree=True, wn=wn)
    full = wordnet.synset_hierarchy(["dog.n.01", "cat.n.01"], tree=True, heights="wordnet", wn=wn)
    carnivore = wordnet.wnid(wn.synset("carnivore.n.01"))
    assert own.height(carnivore) == 2 and full.height(carnivore) > 2  # bears, seals ... below it
    assert full.max_height > own.max_height
    assert full.height(own.classes[0]) == 0  # the subtree below each class is removed
    with pytest.raises(ValueError, match="heights must be"):
        wordnet.synset_hierarchy(["dog.n.01"], heights="bogus", wn=wn)


def test_barz_authors_lcs_of_a_dog_breed_and_a_cat_is_carnivore_not_domestic_animal(wn):
    # Chihuahua and tabby share domestic_animal (depth 7, WordNet height 6) and carnivore (depth
    # 11, height 7): the authors' deepest rule takes carnivore, s_G 12/19 instead of 13/19.
    classes = ["n02085620", "n02123045"]
    kwargs = {"instance_hypernyms": False, "heights": "wordnet", "wn": wn}
    least = wordnet.synset_hierarchy(classes, **kwargs)
    deepest = wordnet.synset_hierarchy(classes, lcs_rule="deepest", **kwargs)
    assert least.label(least.lcs(*classes)) == "domestic_animal.n.01"
    assert deepest.label(deepest.lcs(*classes)) == "carnivore.n.01"
    assert deepest.max_height == least.max_height == 19  # entity, WordNet heights
    assert deepest.similarity()[0, 1] == pytest.approx(12 / 19)
    assert least.similarity()[0, 1] == pytest.approx(13 / 19)


def test_imagenet_lists_from_timm(wn):
    mini = wordnet.timm_synsets("mini_imagenet")
    assert len(mini) == 100 and len(wordnet.timm_synsets("imagenet")) == 1000
    h = wordnet.imagenet_hierarchy(mini, tree=True, wn=wn)
    assert h.classes == tuple(mini) and h.is_tree
    d = h.dissimilarity()
    assert np.all(np.diag(d) == 0) and h.triangle_violations(d)[0] == 0
    with pytest.raises(HierarchyError, match="unknown synset"):
        wordnet.imagenet_hierarchy(["n00000000"], wn=wn)
    with pytest.raises(wordnet.WordNetError, match="no nonexistent_synsets.txt"):
        wordnet.timm_synsets("nonexistent")


def test_hierarchy_for_a_dataset_name_is_its_cifar_or_timm_hierarchy(wn):
    for tree in (False, True):
        assert wordnet.hierarchy_for("cifar10", tree=tree, wn=wn).edges() == (
            wordnet.cifar_hierarchy(10, tree=tree, wn=wn).edges()
        )
    mini = wordnet.hierarchy_for("mini_imagenet", tree=True, wn=wn)
    assert mini.classes == tuple(wordnet.timm_synsets("mini_imagenet")) and mini.is_tree
    assert not wordnet.hierarchy_for("cifar100", wn=wn).is_tree  # the DAG by default
    with pytest.raises(wordnet.WordNetError, match="no WordNet hierarchy for 'cub'"):
        wordnet.hierarchy_for("cub")


def test_the_wordnet_command_without_wordnet_prints_one_line(monkeypatch, capsys):
    from hierstudy import study

    def missing(allow_download=True):
        raise wordnet.WordNetError(f"WordNet 3.0 is not available. {wordnet.INSTALL_HINT}")

    monkeypatch.setattr(wordnet, "load_wordnet", missing)
    assert study.main(["wordnet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("hierstudy: WordNet 3.0 is not available") and err.count("\n") == 1
