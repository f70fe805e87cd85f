import pytest

from hierstudy import config, report


def test_profile_resolution_order(monkeypatch):
    monkeypatch.delenv("HIERSTUDY_PROFILE", raising=False)
    assert config.load().name == "small"
    monkeypatch.setenv("HIERSTUDY_PROFILE", "smoke")
    assert config.load().name == "smoke"
    assert config.load("paper").name == "paper"
    assert config.load("smoke", epochs=3).epochs == 3
    with pytest.raises(config.ProfileError, match="unknown profile 'huge'; choose one of \\['pap"):
        config.load("huge")
    assert issubclass(config.ProfileError, ValueError)
    with pytest.raises(ValueError, match="unknown profile fields \\['epoch'\\]"):
        config.load("smoke", epoch=3)


def test_a_notebook_on_another_dataset_writes_to_its_own_folder(project):
    cfg = config.load("paper")
    assert cfg.writing_for("cub", cfg.datasets["hier"]) is cfg  # the default: figures/paper/
    sop = cfg.writing_for("sop", cfg.datasets["hier"])
    assert sop.figures_dir == project / "figures" / "paper" / "sop"
    assert sop.runs_dir == cfg.runs_dir and sop.datasets == cfg.datasets  # only outputs move
    report.save_metrics({"x": 1}, "04_metrics", sop, dataset="sop")
    assert (project / "figures" / "paper" / "sop" / "04_metrics.json").is_file()
    assert not (project / "figures" / "paper" / "04_metrics.json").exists()
