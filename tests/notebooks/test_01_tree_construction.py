from pathlib import Path

import pytest

from hierstudy import config, report, study


@pytest.mark.notebook
def test_notebook_01_under_smoke_reproduces_barz_toy_and_stats(capfd):
    study.run("smoke", only=["01"])
    assert "without encryption" not in capfd.readouterr().err  # the kernel's warning, silenced
    cfg = config.load("smoke")
    metrics = report.load_metrics("01_metrics", cfg)
    assert metrics["toy_dG_dog_cat"] == pytest.approx(1 / 3)
    assert metrics["toy_dG_dog_trout"] == pytest.approx(2 / 3)
    assert metrics["toy_dT_dog_trout"] == 4
    rows = {(r["dataset"], r["kind"]): r for r in metrics["stats"]}
    assert rows[("cifar100", "tree (YOLO9000)")]["classes"] == 100
    assert rows[("cifar100", "tree (YOLO9000)")]["triangle violations (d_G)"] == 0
    assert rows[("cifar100", "DAG")]["triangle violations (d_G)"] > 0
    assert 0 < metrics["cifar100_spearman_dG_dT"] < 1
    shapes = metrics["hiershapes"]
    assert shapes["classes"] >= 30 and shapes["height"] >= 3 and shapes["tree"]
    assert shapes["confuser pairs"] > 0 and shapes["train_images"] == 12 * shapes["classes"]
    for name in (
        "01_hiershapes_examples.png",
        "01_cifar100_tree.png",
        "01_cifar100_distances.pdf",
        "01_hierarchy_stats.md",
    ):
        assert (cfg.figures_dir / name).is_file()
    found = (cfg.figures_dir / "01_findings.md").read_text().splitlines()
    assert found[0] == "**What we found**"
    assert "- the toy example matches Barz's Fig. 2 (d\\_G = 0.333 and 0.667)" in found
    assert found[-1].startswith("- under the smoke profile")
    assert "**What we found**" in (cfg.figures_dir / "index.md").read_text()


@pytest.mark.notebook
def test_the_executed_notebook_01_shows_every_figure_inline():
    """Each of 01's four saved figures is also an image output of the executed copy (the kernel
    draws inline, not with Agg, which shows nothing)."""
    import nbformat

    executed = config.load("smoke").runs_dir / "notebooks" / "01_tree_construction.ipynb"
    if not executed.is_file():
        study.run("smoke", only=["01"])
    cells = nbformat.read(executed, as_version=4).cells
    images = [
        c.source.splitlines()[0]
        for c in cells
        if c.cell_type == "code"
        for o in c.outputs
        if "image/png" in o.get("data", {})
    ]
    assert len(images) == 4, images


@pytest.mark.notebook
def test_the_notebook_tests_run_in_a_temporary_root_not_in_the_checkout(notebook_root):
    checkout, root = Path(__file__).resolve().parents[2], notebook_root.resolve()
    cfg = config.load("smoke")
    assert cfg.root == root != checkout
    for folder in (cfg.runs_dir, cfg.figures_dir, cfg.data_dir):
        assert folder.is_relative_to(root) and not folder.is_relative_to(checkout)
