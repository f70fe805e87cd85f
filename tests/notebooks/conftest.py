import os
from pathlib import Path

import pytest
from fake_datasets import notebook_project

CHECKOUT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session", autouse=True)
def notebook_root(tmp_path_factory) -> Path:
    """One temporary project root for the whole session (``$HIERSTUDY_ROOT``, its own data/ and
    weights/), holding a copy of the notebooks and ``pyproject.toml``: the notebook tests never
    read or write the checkout's runs/, figures/ or data/, and a later notebook reuses the runs an
    earlier one trained in the same session. Tests that need their own root (the ``paper_check``
    ones) set ``$HIERSTUDY_ROOT`` again with ``monkeypatch``, which restores this one after them.
    The kernels import this checkout's ``hierstudy`` (first on ``$PYTHONPATH``), as they did when
    they ran in it."""
    root = notebook_project(tmp_path_factory.mktemp("project"))
    patch = pytest.MonkeyPatch()
    patch.setenv("HIERSTUDY_ROOT", str(root))
    patch.setenv("HIERSTUDY_DATA", str(root / "data"))
    patch.setenv("HIERSTUDY_WEIGHTS", str(root / "weights"))
    patch.setenv("PYTHONPATH", os.pathsep.join([str(CHECKOUT), os.environ.get("PYTHONPATH", "")]))
    yield root
    patch.undo()
