import pytest
import torch

from hierstudy import config, runs


@pytest.fixture(autouse=True)
def one_thread():
    """Two shared cores and small tensors: one intra-op thread avoids oversubscription stalls."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def no_runs_used(monkeypatch):
    """Each test starts with no run used: outputs are stamped with the runs a process used."""
    monkeypatch.setattr(runs, "_USED", {})


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A temporary project root (``$HIERSTUDY_ROOT``): its own figures/, runs/ and data/."""
    monkeypatch.setenv("HIERSTUDY_ROOT", str(tmp_path))
    return tmp_path


@pytest.fixture
def smoke(project):
    """The ``smoke`` profile of the temporary ``project``."""
    return config.load("smoke")
