import dataclasses
import math

import numpy as np
import pytest
import torch

from hierstudy import config, experiments


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.setenv("HIERSTUDY_ROOT", str(tmp_path))
    return config.load(
        "smoke", per_class={"train": 4, "val": 2, "test": 2}, epochs=2, batch_size=35, seeds=(0,)
    )


def weights(run):
    return torch.load(run.run_dir / "checkpoint.pt", weights_only=True)["model"]


def test_kfr_with_alpha_zero_is_exactly_the_baseline_and_phases_switch(tiny):
    ce = experiments.train(tiny, "ce", 0)
    zero = experiments.train(tiny, "kfr", 0, alpha=0.0)
    for key, value in weights(ce).items():
        assert torch.equal(value, weights(zero)[key]), key
    kfr = experiments.train(tiny, "kfr", 0, alpha=30.0, phase1=0.5)
    assert math.isnan(kfr.history.loss_kfr[0]) and kfr.history.loss_kfr[1] > 0
    assert not torch.equal(weights(kfr)["head.fc.weight"], weights(ce)["head.fc.weight"])


def test_finished_runs_are_reloaded_not_retrained(tiny):
    first = experiments.train(tiny, "corr", 0)
    stamp = (first.run_dir / "checkpoint.pt").stat().st_mtime_ns
    again = experiments.train(tiny, "corr", 0)
    assert (again.run_dir / "checkpoint.pt").stat().st_mtime_ns == stamp
    assert again.result == first.result and first.result["retrieval"] == "embedding"
    feats, labels = again.retrieval_features("test")
    assert feats.shape == (70, 35) and np.allclose(np.linalg.norm(feats, axis=1), 1, atol=1e-5)
    assert [r.name for r in experiments.finished_runs(tiny)] == ["corr"]
    model = again.model()
    assert model.head_name == "embedding" and not model.training


def test_unknown_method_and_knob_are_named(tiny):
    with pytest.raises(experiments.ExperimentError, match="unknown method 'svm'"):
        experiments.train(tiny, "svm", 0)
    with pytest.raises(experiments.ExperimentError, match="method 'kfr'.*beta"):
        experiments.train(tiny, "kfr", 0, beta=1.0)


def test_knobs_at_their_defaults_do_not_change_the_run(tiny):
    assert experiments.train(tiny, "corr_cls", 0, lam=0.1).name == "corr_cls"


def test_run_names_list_non_default_knobs_sorted():
    assert experiments.run_name("kfr", {}) == "kfr"
    assert experiments.run_name("kfr", {"alpha": 3.0, "phase1": 0.25}) == "kfr-alpha3-phase10.25"
    assert experiments.run_name("dml", {"loss": "triplet_l1"}) == "dml-losstriplet_l1"


def test_kfr_knob_adds_the_term_to_another_method_in_its_second_phase(tiny):
    run = experiments.train(tiny, "corr", 0, kfr=3.0)
    assert run.name == "corr-kfr3" and run.result["knobs"] == {"kfr": 3.0}
    assert math.isnan(run.history.loss_kfr[0]) and run.history.loss_kfr[1] > 0
    assert ("kfr", 3.0, "features", 1) in [tuple(t) for t in run.result["recipe"]["terms"]]
    with pytest.raises(experiments.ExperimentError, match="alpha"):
        experiments.train(tiny, "kfr", 0, kfr=3.0)


def test_hier_proxies_follow_the_rule_and_reach_the_papers_512():
    assert [experiments.hier_proxies(n) for n in (17, 98, 100, 11318)] == [128, 512, 512, 512]
    assert experiments.hier_proxies(1) == 8 and experiments.hier_proxies(26) == 256


def test_hier_runs_save_a_snapshot_per_epoch_without_changing_the_weights(tiny):
    run = experiments.train(tiny, "hier", 0)
    shots = experiments.snapshots(run)
    assert sorted(shots) == [0, 1, 2]  # the untrained model, then every epoch
    n = len(run.features("train")["labels"])
    keep = np.sort(np.random.default_rng(0).permutation(n)[: experiments.SNAPSHOT_IMAGES])
    # the last snapshot is the final model on the same images as features_train
    assert np.allclose(shots[2]["embedding"], run.features("train")["embedding"][keep], atol=1e-5)
    assert not np.allclose(shots[0]["embedding"], shots[2]["embedding"])
    assert shots[2]["proxies"].shape == (experiments.hier_proxies(run.result["train_classes"]), 128)
    # a run that never wrote snapshots would reload with the same weights
    before = weights(run)
    (run.run_dir / "result.json").unlink()
    import shutil

    shutil.rmtree(run.run_dir / "snapshots")
    (run.run_dir / "checkpoint.pt").unlink()
    experiments.train(tiny, "hier", 0)
    for key, value in weights(run).items():
        assert torch.equal(value, before[key]), key
    # a forced rerun drops stale snapshots and numbers its own from 0 again
    np.savez(run.run_dir / "snapshots" / "epoch007.npz", stale=np.zeros(1))
    experiments.train(tiny, "hier", 0, force=True)
    assert sorted(experiments.snapshots(run)) == [0, 1, 2]
    ce = experiments.train(tiny, "ce", 0)
    with pytest.raises(experiments.ExperimentError, match="no snapshots"):
        experiments.snapshots(ce)


def test_corruption_knob_trains_and_extracts_on_corrupted_images(tiny):
    clean = experiments.study_data(tiny, "hiershapes", experiments.setup_for(tiny, "ce"), False)
    data = experiments.study_data(
        tiny, "hiershapes", experiments.setup_for(tiny, "ce"), False, corruption="occlusion"
    )
    images, clean_images = data.train.tensors[0], clean.train.tensors[0]
    assert images.shape == clean_images.shape and not torch.equal(images, clean_images)
    changed = images != clean_images
    assert (images[changed] == 0).all()  # an occlusion only blacks pixels out
    # the extracted training images are corrupted exactly like the ones trained on
    assert torch.equal(data.extract["train"].tensors[0], images)
    run = experiments.train(tiny, "ce", 0, corruption="blur")
    assert run.name == "ce-corruptionblur" and run.result["knobs"] == {"corruption": "blur"}
    baseline = experiments.train(tiny, "ce", 0)
    assert not np.allclose(run.features("test")["features"], baseline.features("test")["features"])
    with pytest.raises(experiments.ExperimentError, match="unknown corruption 'fog'"):
        experiments.train(tiny, "ce", 0, corruption="fog")


def test_corruption_of_a_file_dataset_is_fixed_per_image_and_covers_every_split(tmp_path):
    from fake_datasets import write_cub

    write_cub(tmp_path / "data", per_class=6)
    profile = config.load("paper_check", data_root=tmp_path / "data")
    setup = experiments.setup_for(profile, "ce", "cub_official", "vh")
    clean = experiments.study_data(profile, "cub_official", setup, False)
    data = experiments.study_data(profile, "cub_official", setup, False, corruption="occlusion")
    first, again = data.extract["test"][0][0], data.extract["test"][0][0]
    assert torch.equal(first, again) and not torch.equal(first, clean.extract["test"][0][0])
    assert not torch.equal(data.val[0][0], clean.val[0][0])  # the held-out images too
    raw = data.extract["train"].image(1)
    assert raw.dtype == np.uint8 and raw.shape == clean.extract["train"].image(1).shape
    assert (data.train.image(1) == raw).all()  # the augmented copy sees the same corruption
    # a setup validating on the test split (the others' way): one object, corrupted once, with
    # the test images' seeds
    on_test = dataclasses.replace(setup, validation=0.0)
    both = experiments.study_data(profile, "cub_official", on_test, False, corruption="occlusion")
    assert both.val is both.extract["test"]
    assert torch.equal(both.extract["test"][0][0], first)


def test_zero_shot_study_data_names_the_seen_and_the_test_hierarchies(tiny):
    setup = experiments.setup_for(tiny, "hier")
    data = experiments.study_data(tiny, "hiershapes", setup, True)
    full = experiments.hiershapes_splits(tiny)["test"].hierarchy
    assert data.hierarchy.classes == full.classes[: len(full.classes) // 2]
    assert data.test_hierarchy.classes == full.classes  # HierShapes keeps the global labels
    test_labels = data.extract["test"].tensors[1].numpy()
    assert test_labels.min() == len(full.classes) // 2


def test_evaluation_set_is_what_a_runs_test_features_stand_for(tiny):
    closed, zero_shot = experiments.train(tiny, "ce", 0), experiments.train(tiny, "hier", 0)
    for run in (closed, zero_shot):
        test = experiments.evaluation_set(tiny, "hiershapes", run.result["zero_shot"])
        assert (test.labels == run.features("test")["labels"]).all()
        assert test.hierarchy.classes == experiments.hiershapes_splits(tiny)["test"].classes
    full = experiments.hiershapes_splits(tiny)["test"]
    unseen = experiments.evaluation_set(tiny, "hiershapes", True)
    assert (unseen.image(0) == full.images[full.labels >= len(full.classes) // 2][0]).all()
    assert experiments.datasets_with_runs(tiny) == ["hiershapes"]
    with pytest.raises(experiments.ExperimentError, match="'cub' has no closed-set test set"):
        experiments.evaluation_set(tiny, "cub", False)


def test_vh_setup_holds_out_a_fifth_of_the_training_images_to_validate_on(tmp_path):
    from fake_datasets import write_cub

    write_cub(tmp_path, classes=3, per_class=10)  # 5 official training images per class
    cfg = config.load("paper_check", data_root=tmp_path)
    setup = experiments.setup_for(cfg, "ce", "cub_official", "vh")
    assert setup.validation == 0.2
    data = experiments.study_data(cfg, "cub_official", setup, False, seed=1)
    official = experiments.splits(cfg, "cub_official", setup)
    train, val = data.extract["train"], data.val
    assert np.bincount(train.labels).tolist() == [4, 4, 4] and np.bincount(val.labels).tolist() == [
        1,
        1,
        1,
    ]
    assert sorted(map(str, train.paths + val.paths)) == sorted(map(str, official["train"].paths))
    assert data.train.paths == train.paths and data.train.transform is not train.transform
    assert (data.train_labels == train.labels).all()
    assert data.extract["test"].paths == official["test"].paths  # the test split is untouched
    other = experiments.study_data(cfg, "cub_official", setup, False, seed=2).val.paths
    assert other != val.paths  # the held-out images follow the run's seed
    write_cub(tmp_path, classes=3, per_class=4)  # 2 training images per class: none to hold out
    with pytest.raises(experiments.ExperimentError, match="leaves no validation image"):
        experiments.study_data(cfg, "cub_official", setup, False)
