import subprocess
from types import SimpleNamespace

import matplotlib
import pandas as pd
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from hierstudy import report  # noqa: E402


def test_outputs_are_stamped_deterministic_and_atomic(smoke):
    table = pd.DataFrame({"method": ["a", "b"], "acc": [0.5, 0.25]})
    csv = report.save_table(table, "00_t", smoke, seed=3)
    first = (csv.read_bytes(), csv.with_suffix(".md").read_bytes())
    report.save_table(table, "00_t", smoke, seed=3)
    assert (csv.read_bytes(), csv.with_suffix(".md").read_bytes()) == first
    assert pd.read_csv(csv).equals(table)
    assert csv.stat().st_mode & 0o777 == 0o644
    assert "profile smoke" in first[1].decode() and "seed 3" in first[1].decode()
    report.save_metrics({"x": 1.5}, "00_m", smoke)
    loaded = report.load_metrics("00_m", smoke)
    assert loaded["x"] == 1.5 and loaded["_provenance"]["profile"] == "smoke"
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    png = report.save_figure(fig, "00_f", smoke)
    assert png.read_bytes()[:4] == b"\x89PNG" and png.with_suffix(".pdf").is_file()
    assert not [p for p in smoke.figures_dir.iterdir() if p.name.startswith(".")]  # no temp left
    with pytest.raises(FileNotFoundError, match="run the notebook"):
        report.load_metrics("missing", smoke)


def test_provenance_commit_marks_a_dirty_tree(project):
    (project / "f.txt").write_text("a")
    (project / "figures").mkdir()
    (project / "figures" / "t.csv").write_text("1")
    for cmd in (
        ["init", "-q"],
        ["add", "f.txt", "figures/t.csv"],
        ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"],
    ):
        subprocess.run(["git", *cmd], cwd=project, check=True)
    report.git_commit.cache_clear()
    clean = report.git_commit()
    (project / "figures" / "t.csv").write_text("2")  # the study's own output: still clean
    report.git_commit.cache_clear()
    assert report.git_commit() == clean
    (project / "f.txt").write_text("b")
    report.git_commit.cache_clear()
    assert len(clean) == 12 and report.git_commit() == clean + "+dirty"
    report.git_commit.cache_clear()


def test_outputs_made_from_runs_stamp_the_commit_their_weights_were_trained_at(smoke):
    def run(commit, dirty, stale=False):
        record = SimpleNamespace(commit=commit, dirty=dirty)
        return SimpleNamespace(record=record, stale=stale)

    assert "weights" not in report.provenance(smoke)
    assert report.provenance(smoke, weights="abc")["weights"] == "abc"
    runs = [run("b" * 12, False), run("a" * 12, True), run("b" * 12, False)]
    assert report.provenance(smoke, weights=runs)["weights"] == f"{'a' * 12}+dirty {'b' * 12}"
    aged = [run(None, None), run("a" * 12, False, stale=True)]
    assert report.provenance(smoke, weights=aged)["weights"] == f"{'a' * 12} unknown (stale)"
    table = pd.DataFrame({"acc": [0.5]})
    md = report.save_table(table, "00_w", smoke, weights="abc").with_suffix(".md").read_text()
    assert md.rstrip().endswith("weights abc</sub>")
    metrics = report.load_metrics(report.save_metrics({}, "00_w", smoke, weights=aged).stem, smoke)
    assert metrics["_provenance"]["weights"].endswith("(stale)")
