import json

import pytest

from hierstudy import config, files, report


def test_profile_resolution_order(monkeypatch):
    monkeypatch.delenv("HIERSTUDY_PROFILE", raising=False)
    assert config.load().name == "small"
    monkeypatch.setenv("HIERSTUDY_PROFILE", "smoke")
    assert config.load().name == "smoke"
    assert config.load("paper").name == "paper"
    assert config.load("smoke", epochs=3).epochs == 3
    with pytest.raises(ValueError, match="unknown profile 'huge'"):
        config.load("huge")
    with pytest.raises(ValueError, match="unknown profile fields \\['epoch'\\]"):
        config.load("smoke", epoch=3)


def test_atomic_write_leaves_old_file_when_interrupted(tmp_path, monkeypatch):
    target = tmp_path / "t.json"
    target.write_text(json.dumps({"old": 1}))

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        files.atomic_write(target, b"new")
    assert json.loads(target.read_text()) == {"old": 1}
    assert list(tmp_path.iterdir()) == [target]


def test_a_notebook_on_another_dataset_writes_to_its_own_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HIERSTUDY_ROOT", str(tmp_path))
    cfg = config.load("paper")
    assert cfg.writing_for("cub", cfg.datasets["hier"]) is cfg  # the default: figures/paper/
    sop = cfg.writing_for("sop", cfg.datasets["hier"])
    assert sop.figures_dir == tmp_path / "figures" / "paper" / "sop"
    assert sop.runs_dir == cfg.runs_dir and sop.datasets == cfg.datasets  # only outputs move
    report.save_metrics({"x": 1}, "04_metrics", sop, dataset="sop")
    assert (tmp_path / "figures" / "paper" / "sop" / "04_metrics.json").is_file()
    assert not (tmp_path / "figures" / "paper" / "04_metrics.json").exists()
