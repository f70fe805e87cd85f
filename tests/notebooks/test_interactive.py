"""A notebook run by hand, as JupyterLab runs it: nbclient, the notebook's folder as the cwd,
the parameters cell as written (no papermill, no ``hierstudy study``)."""

import pytest

from hierstudy import config


@pytest.mark.notebook
def test_notebook_01_by_hand_runs_smoke_and_leaves_the_published_figures_alone(
    notebook_root, monkeypatch
):
    import jupytext
    import nbclient

    published = notebook_root / "figures" / "small"
    published.mkdir(parents=True, exist_ok=True)
    (published / "01_cifar100_tree.png").write_bytes(b"committed")
    monkeypatch.setenv("HIERSTUDY_PROFILE", "smoke")
    monkeypatch.delenv("HIERSTUDY_PUBLISH", raising=False)
    notebook = jupytext.read(notebook_root / "notebooks" / "01_tree_construction.py")
    nbclient.NotebookClient(
        notebook,
        kernel_name="python3",
        resources={"metadata": {"path": str(notebook_root / "notebooks")}},
    ).execute()
    assert config.notebook(None).figures_dir == notebook_root / "runs" / "smoke" / "figures"
    for name in ("01_cifar100_tree.png", "01_hiershapes_examples.png", "01_metrics.json"):
        assert (notebook_root / "runs" / "smoke" / "figures" / name).is_file()
    assert [p.name for p in published.iterdir()] == ["01_cifar100_tree.png"]
    assert (published / "01_cifar100_tree.png").read_bytes() == b"committed"
    first = next(c for c in notebook.cells if c.cell_type == "code" and "import" in c.source)
    assert first.outputs[0].text.startswith(config.PROFILES["smoke"].description)
    images = [
        o for c in notebook.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})
    ]
    assert len(images) == 4  # JupyterLab's inline backend
