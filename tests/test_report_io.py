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
    ax.set(xlabel="x", ylabel="y")
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


def test_a_figure_without_axis_labels_or_colour_bar_is_refused_by_name(smoke):
    import numpy as np

    fig, (curve, heat) = plt.subplots(1, 2)
    curve.plot([0, 1], [1, 2])
    curve.set(xlabel="epoch", title="loss")
    image = heat.imshow(np.eye(3))
    heat.set(xticks=range(3), xticklabels=["cat", "dog", "trout"], yticks=[], title="d_G")
    with pytest.raises(report.FigureError) as error:
        report.save_figure(fig, "00_bad", smoke)
    assert str(error.value).startswith(
        "figure 00_bad: a heatmap in 'd_G' has no colour bar; the y axis of 'loss' has no label; "
        "the y axis of 'd_G' has no label"
    )
    assert not list(smoke.figures_dir.glob("00_bad*"))
    curve.set_ylabel("loss")
    heat.set_ylabel("class")
    with pytest.raises(
        report.FigureError, match="^figure 00_bad: a heatmap in 'd_G' has no colour bar \\("
    ):
        report.check_figure(fig, "00_bad")
    fig.colorbar(image, ax=heat)
    report.check_figure(fig, "00_good")
    report.save_figure(plt.figure(), "00_empty", smoke)  # nothing plotted, nothing to label


def test_what_needs_no_label_pictures_axes_off_shared_axes_and_one_shared_colour_bar():
    import numpy as np

    fig, axes = plt.subplots(1, 4, sharey=True)
    axes[0].imshow(np.zeros((4, 4, 3)))  # a picture
    axes[1].plot([0, 1])
    axes[1].set_axis_off()  # e.g. a tree drawing
    axes[2].plot([0, 1])
    axes[2].set(xlabel="k", ylabel="HP@k")
    axes[3].plot([0, 1])
    axes[3].set_xlabel("k")  # y: shared with axes[2]
    report.check_figure(fig, "00_ok")
    fig, (a, b) = plt.subplots(1, 2)
    first = a.imshow(np.eye(2), vmin=0, vmax=1)
    b.imshow(np.eye(2), vmin=0, vmax=1)
    for ax in (a, b):
        ax.set(xlabel="class", ylabel="class")
    fig.colorbar(first, ax=[a, b])  # one bar for two heatmaps on the same scale
    report.check_figure(fig, "00_two_heatmaps")
    b.images[0].set_clim(0, 2)  # another scale: its own bar needed
    with pytest.raises(report.FigureError, match="colour bar"):
        report.check_figure(fig, "00_two_heatmaps")


def test_the_shared_plots_pass_the_check():
    import numpy as np
    import torch
    from test_report_plots import SIZE

    from hierstudy.datasets import HierShapes
    from hierstudy.datasets.selection import ScoredImages
    from hierstudy.evaluation.localisation import cam_thresholds
    from hierstudy.report import plots

    fig, axes = plt.subplots(1, 2)
    for ax, matrix in zip(axes, (np.eye(50), np.eye(3)), strict=True):
        fig.colorbar(plots.heatmap(matrix, ax, labels=list("abc") if len(matrix) == 3 else None))
    report.check_figure(fig, "heatmaps")
    report.check_figure(
        plots.plot_examples(
            HierShapes(None, "val", image_size=SIZE, n_per_class=1, cache=False),
            per_branch=2,
            depth=1,
        ),
        "examples",
    )
    boxes = [np.array([[0.0, 0.0, 4.0, 4.0]])] * 2
    images = ScoredImages(np.arange(2), torch.zeros(2, 3, 8, 8, dtype=torch.uint8), [0, 1], boxes)
    maps = np.random.default_rng(0).random((2, 8, 8))
    report.check_figure(plots.cam_grid([("m", images, maps)], [0, 1], ["a", "b"]), "cams")
    iou = np.zeros((2, len(cam_thresholds())))
    report.check_figure(plots.boxacc_curves({"m": iou}), "boxacc")
