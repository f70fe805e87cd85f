import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hierstudy import config, report, run_files, runs, snapshots
from hierstudy import train as engine
from hierstudy.datasets import DatasetError, study_splits
from hierstudy.losses.hier import HIER
from hierstudy.losses.proxy import ProxyAnchor
from hierstudy.methods import MethodError, hier_proxies


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.setenv("HIERSTUDY_ROOT", str(tmp_path))
    return config.load(
        "smoke", per_class={"train": 4, "val": 2, "test": 2}, epochs=2, batch_size=35, seeds=(0,)
    )


def weights(run):
    return torch.load(run.run_dir / "checkpoint.pt", weights_only=True)["model"]


def count_fits(monkeypatch) -> list:
    """The run folders runs.train trains in from now on (one entry per call of fit)."""
    calls, real = [], runs.fit

    def counting(*args, **kwargs):
        calls.append(kwargs["run_dir"])
        return real(*args, **kwargs)

    monkeypatch.setattr(runs, "fit", counting)
    return calls


def test_kfr_with_alpha_zero_is_exactly_the_baseline_and_phases_switch(tiny):
    ce = runs.train(tiny, "ce", 0)
    zero = runs.train(tiny, "kfr", 0, alpha=0.0)
    for key, value in weights(ce).items():
        assert torch.equal(value, weights(zero)[key]), key
    kfr = runs.train(tiny, "kfr", 0, alpha=30.0, phase1=0.5)
    assert math.isnan(kfr.history.loss_kfr[0]) and kfr.history.loss_kfr[1] > 0
    assert not torch.equal(weights(kfr)["head.fc.weight"], weights(ce)["head.fc.weight"])


def test_finished_runs_are_reloaded_not_retrained(tiny):
    first = runs.train(tiny, "corr", 0)
    stamp = (first.run_dir / "checkpoint.pt").stat().st_mtime_ns
    again = runs.train(tiny, "corr", 0)
    assert (again.run_dir / "checkpoint.pt").stat().st_mtime_ns == stamp
    assert again.record == first.record and first.record.retrieval == "embedding"
    feats, labels = again.retrieval_features("test")
    assert feats.shape == (70, 35) and np.allclose(np.linalg.norm(feats, axis=1), 1, atol=1e-5)
    assert [r.name for r in runs.finished_runs(tiny)] == ["corr"]
    model = again.model()
    assert model.head_name == "embedding" and not model.training


def test_unknown_method_and_knob_are_named(tiny):
    with pytest.raises(MethodError, match="unknown method 'svm'"):
        runs.train(tiny, "svm", 0)
    with pytest.raises(MethodError, match="method 'kfr' has no knob 'beta'; its knobs.*alpha="):
        runs.train(tiny, "kfr", 0, beta=1.0)


def test_knobs_at_their_defaults_do_not_change_the_run(tiny):
    assert runs.train(tiny, "corr_cls", 0, lam=0.1).name == "corr_cls"


def test_run_names_list_non_default_knobs_sorted():
    assert runs.run_name("kfr", {}) == "kfr"
    assert runs.run_name("kfr", {"alpha": 3.0, "phase1": 0.25}) == "kfr-alpha3-phase10.25"
    assert runs.run_name("dml", {"loss": "triplet_l1"}) == "dml-losstriplet_l1"


def test_kfr_knob_adds_the_term_to_another_method_in_its_second_phase(tiny):
    run = runs.train(tiny, "corr", 0, kfr=3.0)
    assert run.name == "corr-kfr3" and run.record.knobs == {"kfr": 3.0}
    assert math.isnan(run.history.loss_kfr[0]) and run.history.loss_kfr[1] > 0
    assert ("kfr", 3.0, "features", 1) in run.record.recipe.terms
    with pytest.raises(MethodError, match="alpha"):
        runs.train(tiny, "kfr", 0, kfr=3.0)


def test_hier_runs_save_a_snapshot_per_epoch_without_changing_the_weights(tiny):
    run = runs.train(tiny, "hier", 0)
    shots = run.snapshots()
    assert sorted(shots) == [0, 1, 2]  # the untrained model, then every epoch
    n = len(run.features("train")["labels"])
    keep = np.sort(np.random.default_rng(0).permutation(n)[: snapshots.SNAPSHOT_IMAGES])
    # the last snapshot is the final model on the same images as features_train
    assert np.allclose(shots[2]["embedding"], run.features("train")["embedding"][keep], atol=1e-5)
    assert not np.allclose(shots[0]["embedding"], shots[2]["embedding"])
    assert shots[2]["proxies"].shape == (hier_proxies(run.record.train_classes), 128)
    # a run that never wrote snapshots would reload with the same weights
    before = weights(run)
    (run.run_dir / "result.json").unlink()
    shutil.rmtree(run.run_dir / "snapshots")
    (run.run_dir / "checkpoint.pt").unlink()
    runs.train(tiny, "hier", 0)
    for key, value in weights(run).items():
        assert torch.equal(value, before[key]), key
    # a forced rerun drops stale snapshots and numbers its own from 0 again
    np.savez(run.run_dir / "snapshots" / "epoch007.npz", stale=np.zeros(1))
    runs.train(tiny, "hier", 0, force=True)
    assert sorted(run.snapshots()) == [0, 1, 2]
    ce = runs.train(tiny, "ce", 0)
    with pytest.raises(FileNotFoundError, match="no snapshots"):
        ce.snapshots()


def test_corruption_knob_trains_and_extracts_on_corrupted_images(tiny):
    run = runs.train(tiny, "ce", 0, corruption="blur")
    assert run.name == "ce-corruptionblur" and run.record.knobs == {"corruption": "blur"}
    baseline = runs.train(tiny, "ce", 0)
    assert not np.allclose(run.features("test")["features"], baseline.features("test")["features"])
    with pytest.raises(DatasetError, match="unknown corruption 'fog'"):
        runs.train(tiny, "ce", 0, corruption="fog")


def test_evaluation_set_is_what_a_runs_test_features_stand_for(tiny):
    closed, zero_shot = runs.train(tiny, "ce", 0), runs.train(tiny, "hier", 0)
    full = study_splits.hiershapes_splits(tiny)["test"]
    for run in (closed, zero_shot):
        test = study_splits.evaluation_set(tiny, "hiershapes", run.record.zero_shot)
        assert (test.labels == run.features("test")["labels"]).all()
        assert test.hierarchy.classes == full.classes
    assert runs.datasets_with_runs(tiny) == ["hiershapes"]


def test_the_record_reads_and_writes_result_json_unchanged(tiny):
    run = runs.train(tiny, "hier", 0, kfr=2.0)
    text = (run.run_dir / "result.json").read_text()
    record = runs.RunRecord.from_json(text)
    assert record.to_json() == text and record == run.record
    assert record.recipe.terms[-1] == runs.TermRecord("kfr", 2.0, "features", 1)
    assert record.recipe.curvature == 0.1 and "curvature" not in json.loads(text)["recipe"]
    assert run.record.to_dict() == json.loads(text) and run.record.recipe.terms[0].name == "pa"
    # a run written before "paper", "dataset" and the head's options were recorded still loads
    old = json.loads(text)
    del old["paper"], old["dataset"], old["recipe"]["model"]
    aged = runs.RunRecord.from_json(json.dumps(old), dataset="hiershapes")
    assert (aged.paper, aged.dataset, aged.recipe.model) == (None, "hiershapes", {})
    # a ball of another curvature is written down (and only then)
    other = runs.RunRecord.from_dict(
        {**old, "dataset": "x", "recipe": {**old["recipe"], "curvature": 1.0}}
    )
    assert json.loads(other.to_json())["recipe"]["curvature"] == 1.0
    with pytest.raises(runs.RunError, match=r"lacks \['dataset'\]"):
        runs.RunRecord.from_json(json.dumps(old))


def test_run_loss_rebuilds_a_term_by_name(tiny):
    hier = runs.train(tiny, "hier", 0)
    states = hier.checkpoint()["losses"]
    reg = hier.loss("hier")
    assert type(reg) is HIER and reg.c == 0.1 and not reg.training
    assert torch.equal(reg.proxies, states[1]["proxies"])
    proxy_anchor = hier.loss("pa")
    assert type(proxy_anchor) is ProxyAnchor
    assert torch.equal(proxy_anchor.proxies, states[0]["loss.proxies"])
    corr = runs.train(tiny, "corr", 0, kfr=3.0)
    phi = corr.checkpoint()["losses"][0]["class_embeddings"]
    assert torch.equal(corr.loss("corr").class_embeddings, phi)
    assert torch.equal(
        corr.loss("kfr").path_distance, corr.checkpoint()["losses"][1]["path_distance"]
    )
    with pytest.raises(
        runs.RunError, match=r"'corr-kfr3' has no loss term 'hier'.*\['corr', 'kfr'\]"
    ):
        corr.loss("hier")


def record(metric: str, head: str, curvature: float | None = None) -> runs.RunRecord:
    return runs.RunRecord(
        name="x",
        method="x",
        seed=0,
        dataset="hiershapes",
        paper=None,
        knobs={},
        retrieval="embedding",
        metric=metric,
        test_acc=None,
        val_acc_last5=None,
        zero_shot=True,
        train_classes=4,
        setup={},
        recipe=runs.RecipeRecord("resnet_small", head, 4, 2, (), curvature=curvature),
    )


def test_run_distance_is_the_retrieval_metric_of_the_run(tmp_path):
    for metric in ("cosine", "dot", "euclidean"):
        assert runs.Run(tmp_path, record(metric, "embedding"), pd.DataFrame()).distance() == metric
    q = torch.tensor([[0.0, 0.0], [0.5, 0.0]])
    g = torch.tensor([[0.5, 0.0], [-0.5, 0.0]])
    # d_c(0, y) = (2/√c) artanh(√c‖y‖): c = 0.1, ‖y‖ = 0.5 → 6.32456 · artanh(0.158114) = 1.00846;
    # c = 1 → 2 artanh(0.5) = 1.09861. (0.5, 0) and (−0.5, 0) lie on a geodesic through the
    # origin: twice that. A point to itself: 0.
    for c, d in ((0.1, 1.0084606), (1.0, 1.0986123)):
        run = runs.Run(tmp_path, record("hyperbolic", "hyperbolic", c), pd.DataFrame())
        distances = run.distance()(q, g)
        assert distances.dtype == torch.float64
        expected = torch.tensor([[d, d], [0.0, 2 * d]], dtype=torch.float64)
        assert torch.allclose(distances, expected, atol=1e-6)


def test_recipe_weight_of_a_term_and_zero_without_it():
    terms = (runs.TermRecord("ce", 1.0, "logits", 0), runs.TermRecord("kfr", 0.3, "features", 4))
    recipe = runs.RecipeRecord("resnet_small", "linear", 4, 2, terms)
    assert recipe.weight("kfr") == 0.3 and recipe.weight("ce") == 1.0
    assert recipe.weight("hier") == 0.0


def test_an_interrupted_forced_retrain_keeps_the_old_run_whole_and_is_resumed(tiny, monkeypatch):
    first = runs.train(tiny, "ce", 0)
    before, result = weights(first), (first.run_dir / "result.json").read_text()
    save = engine.save

    def save_then_stop(*args):  # interrupted after the first epoch's checkpoint
        save(*args)
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(engine, "save", save_then_stop)
        with pytest.raises(KeyboardInterrupt):
            runs.train(tiny, "ce", 0, force=True)
    # the finished run is still the old one, whole: its history, result and weights
    old = runs.Run.load(first.run_dir)
    assert len(old.history) == 2 and (first.run_dir / "result.json").read_text() == result
    for key, value in weights(old).items():
        assert torch.equal(value, before[key]), key
    fits = count_fits(monkeypatch)
    again = runs.train(tiny, "ce", 0)  # continues the forced retrain: neither reloaded nor half
    assert len(fits) == 1 and len(again.history) == 2 and again.run_dir == first.run_dir
    for key, value in weights(again).items():  # the resume is exact
        assert torch.equal(value, before[key]), key
    assert sorted(p.name for p in first.run_dir.parent.iterdir()) == ["seed0", "seed0.lock"]


def test_a_run_of_other_code_is_retrained_unless_stale_runs_are_reused(tiny, monkeypatch, capsys):
    first = runs.train(tiny, "ce", 0)
    made = json.loads((first.run_dir / "result.json").read_text())
    assert len(made["source_hash"]) == 16 and made["source_hash"] == first.record.source_hash
    assert first.record.commit == made["commit"] and not first.stale
    monkeypatch.setattr(
        run_files, "SOURCE", [*run_files.SOURCE, "study.py"]
    )  # as if the code changed
    fits = count_fits(monkeypatch)
    with pytest.warns(runs.StaleRunWarning, match="other code or another recipe made it"):
        stale = runs.train(tiny, "ce", 0, reuse_stale=True)
    assert stale.stale and stale.record == first.record and not fits
    monkeypatch.setenv("HIERSTUDY_REUSE_STALE", "1")
    with pytest.warns(runs.StaleRunWarning):
        assert runs.train(tiny, "ce", 0).stale and not fits
    monkeypatch.delenv("HIERSTUDY_REUSE_STALE")
    again = runs.train(tiny, "ce", 0)
    assert len(fits) == 1 and f"retraining {first.run_dir}" in capsys.readouterr().out
    assert again.record.source_hash != first.record.source_hash and not again.stale
    assert runs.train(tiny, "ce", 0).record == again.record and len(fits) == 1  # now it is reused
    # another recipe of the same name is another source hash: a smaller HierShapes
    smaller = {"train": 3, "val": 2, "test": 2}
    runs.train(config.load("smoke", per_class=smaller, epochs=2, batch_size=35), "ce", 0)
    assert len(fits) == 2


def test_finished_runs_leave_out_stale_runs_unless_they_are_reused(tiny, monkeypatch, capsys):
    runs.train(tiny, "ce", 0)
    runs.train(tiny, "corr", 0)
    assert [r.name for r in runs.finished_runs(tiny)] == ["ce", "corr"]
    monkeypatch.setattr(run_files, "SOURCE", [*run_files.SOURCE, "study.py"])  # other code
    runs.train(tiny, "corr", 0)  # retrained: only ce is left over from the old code
    assert [r.name for r in runs.finished_runs(tiny)] == ["corr"]
    assert "left out 1 stale run(s) of other code: ce/seed0" in capsys.readouterr().out
    reused = runs.finished_runs(tiny, reuse_stale=True)
    assert [(r.name, r.stale) for r in reused] == [("ce", True), ("corr", False)]
    assert report.provenance(tiny, weights=reused)["weights"].endswith("(stale)")


def test_outputs_are_stamped_with_the_commits_of_the_runs_used(tiny):
    assert "weights" not in report.provenance(tiny)  # no run used yet
    run = runs.train(tiny, "ce", 0)
    assert report.provenance(tiny)["weights"] == report.io.trained_at([run])


def test_a_result_json_that_records_no_source_hash_is_stale(tiny, monkeypatch, capsys):
    first = runs.train(tiny, "ce", 0)
    done = first.run_dir / "result.json"
    old = json.loads(done.read_text())
    del old["commit"], old["dirty"], old["source_hash"]
    done.write_text(json.dumps(old))
    aged = runs.Run.load(first.run_dir)
    assert (aged.record.commit, aged.record.dirty, aged.record.source_hash) == (None, None, None)
    assert json.loads(aged.record.to_json()) == old  # the old record reads and writes unchanged
    fits = count_fits(monkeypatch)
    again = runs.train(tiny, "ce", 0)
    assert len(fits) == 1 and "records no source_hash" in capsys.readouterr().out
    assert again.record.source_hash == first.record.source_hash


CHILD = """
from hierstudy import config, runs
fits, real = [], runs.fit
runs.fit = lambda *args, **kwargs: fits.append(1) or real(*args, **kwargs)
profile = config.load(
    "smoke", per_class={"train": 4, "val": 2, "test": 2}, epochs=2, batch_size=35, seeds=(0,)
)
run = runs.train(profile, "hier", 0)
print("trained", len(fits), len(run.history), run.record.source_hash, len(run.snapshots()))
"""


def test_two_processes_asking_for_one_run_share_it(tiny):
    run_dir = tiny.runs_dir / "hiershapes" / "hier" / "seed0"
    env = {**os.environ, "PYTHONPATH": str(Path(runs.__file__).parents[1])}
    command = [sys.executable, "-c", CHILD]
    with run_files.lock(run_dir):  # both start while the run is taken
        children = [
            subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) for _ in "ab"
        ]
        try:
            for child in children:
                assert child.stdout.readline().startswith("hierstudy: waiting for another")
        except BaseException:
            for child in children:
                child.kill()
            raise
    outputs = [child.communicate(timeout=600)[0].split() for child in children]
    assert [child.returncode for child in children] == [0, 0]
    assert sorted(out[1] for out in outputs) == ["0", "1"]  # one trained, the other reused it
    assert outputs[0][2:] == outputs[1][2:] == ["2", runs.Run.load(run_dir).record.source_hash, "3"]
    assert sorted(p.name for p in run_dir.parent.iterdir()) == ["seed0", "seed0.lock"]
