import shutil
from pathlib import Path

import pytest

from hierstudy import study

ROOT = Path(__file__).resolve().parents[1]


def test_notebooks_are_found_in_order_and_selected():
    found = study.notebooks(ROOT)
    assert found == sorted(found) and found[0].name == "01_tree_construction.py"
    assert study.notebooks(ROOT, ["01"]) == [found[0]]
    with pytest.raises(study.StudyError, match="no notebook matches \\['99'\\]"):
        study.notebooks(ROOT, ["99"])


def test_every_notebook_has_a_parameters_cell_with_profile():
    import jupytext

    for path in study.notebooks(ROOT):
        cells = [c for c in jupytext.read(path).cells if c.cell_type == "code"]
        assert "parameters" in cells[0].metadata.get("tags", []), path.name
        assert 'profile = "small"' in cells[0].source, path.name


@pytest.mark.notebook
def test_failing_notebook_is_named_with_cell_and_error_and_copy_kept(tmp_path, monkeypatch):
    (tmp_path / "notebooks").mkdir()
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    (tmp_path / "notebooks" / "01_fails.py").write_text(
        '# %% tags=["parameters"]\nprofile = "small"\nforce = False\n\n'
        "# %%\nx = 1\n\n# %%\nraise ValueError('planted failure')\n"
    )
    monkeypatch.setenv("HIERSTUDY_ROOT", str(tmp_path))
    with pytest.raises(study.StudyError) as error:
        study.run("smoke")
    message = str(error.value)
    assert "01_fails.py" in message and "code cell 3 (`raise ValueError('planted failure')`)" in message and "planted failure" in message
    assert (tmp_path / "runs" / "smoke" / "notebooks" / "01_fails.ipynb").is_file()
    assert study.main(["study", "--profile", "smoke"]) == 1
