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


def test_a_notebook_run_by_hand_is_smoke_and_never_writes_the_published_figures(
    project, monkeypatch
):
    monkeypatch.delenv("HIERSTUDY_PROFILE", raising=False)
    monkeypatch.delenv("HIERSTUDY_PUBLISH", raising=False)
    by_hand = config.notebook(None)
    assert by_hand.name == "smoke" and by_hand.interactive
    assert by_hand.figures_dir == project / "runs" / "smoke" / "figures"
    assert by_hand.runs_dir == project / "runs" / "smoke"  # the same runs as the CLI's
    monkeypatch.setenv("HIERSTUDY_PROFILE", "small")
    assert config.notebook(None).figures_dir == project / "runs" / "small" / "figures"
    cub = config.notebook(None).writing_for("cub", "hiershapes")
    assert cub.figures_dir == project / "runs" / "small" / "figures" / "cub"
    monkeypatch.setenv("HIERSTUDY_PUBLISH", "1")  # asked for
    assert config.notebook(None).figures_dir == project / "figures" / "small"
    monkeypatch.delenv("HIERSTUDY_PUBLISH")
    named = config.notebook("small")  # papermill's -p profile small, hierstudy study
    assert not named.interactive and named.figures_dir == project / "figures" / "small"


def test_outside_the_repository_the_library_refuses_to_write(tmp_path, monkeypatch):
    monkeypatch.delenv("HIERSTUDY_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    cfg = config.load("smoke")
    with pytest.raises(config.ProjectError, match="not inside the hierstudy repository.*ROOT"):
        report.save_metrics({"x": 1}, "01_metrics", cfg)
    assert list(tmp_path.iterdir()) == []  # no figures/, runs/ or data/ here
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "pyproject.toml").touch()
    inside = tmp_path / "notebooks"
    monkeypatch.chdir(inside)  # JupyterLab's cwd: the notebook's folder
    assert cfg.figures_dir == tmp_path / "figures" / "smoke"
