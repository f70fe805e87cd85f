import json

import matplotlib
import pandas as pd
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from hierstudy import config, files, report  # noqa: E402


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


def test_outputs_are_stamped_deterministic_and_atomic(tmp_path, monkeypatch):
    monkeypatch.setenv("HIERSTUDY_ROOT", str(tmp_path))
    cfg = config.load("smoke")
    table = pd.DataFrame({"method": ["a", "b"], "acc": [0.5, 0.25]})
    csv = report.save_table(table, "00_t", cfg, seed=3)
    first = (csv.read_bytes(), csv.with_suffix(".md").read_bytes())
    report.save_table(table, "00_t", cfg, seed=3)
    assert (csv.read_bytes(), csv.with_suffix(".md").read_bytes()) == first
    assert pd.read_csv(csv).equals(table)
    assert csv.stat().st_mode & 0o777 == 0o644
    assert "profile smoke" in first[1].decode() and "seed 3" in first[1].decode()
    report.save_metrics({"x": 1.5}, "00_m", cfg)
    loaded = report.load_metrics("00_m", cfg)
    assert loaded["x"] == 1.5 and loaded["_provenance"]["profile"] == "smoke"
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    png = report.save_figure(fig, "00_f", cfg)
    assert png.read_bytes()[:4] == b"\x89PNG" and png.with_suffix(".pdf").is_file()
    assert not [p for p in cfg.figures_dir.iterdir() if p.name.startswith(".")]  # no temp left
    with pytest.raises(FileNotFoundError, match="run the notebook"):
        report.load_metrics("missing", cfg)


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


def test_provenance_commit_marks_a_dirty_tree(tmp_path, monkeypatch):
    import subprocess

    monkeypatch.setenv("HIERSTUDY_ROOT", str(tmp_path))
    (tmp_path / "f.txt").write_text("a")
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "t.csv").write_text("1")
    for cmd in (
        ["init", "-q"],
        ["add", "f.txt", "figures/t.csv"],
        ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"],
    ):
        subprocess.run(["git", *cmd], cwd=tmp_path, check=True)
    report.git_commit.cache_clear()
    clean = report.git_commit()
    (tmp_path / "figures" / "t.csv").write_text("2")  # the study's own output: still clean
    report.git_commit.cache_clear()
    assert report.git_commit() == clean
    (tmp_path / "f.txt").write_text("b")
    report.git_commit.cache_clear()
    assert len(clean) == 12 and report.git_commit() == clean + "+dirty"
    report.git_commit.cache_clear()


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
