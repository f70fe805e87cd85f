import sys
import types

from hierstudy.train import progress_on


def test_the_training_bar_is_on_in_a_jupyter_kernel_off_without_a_terminal(monkeypatch):
    """tqdm's own ``disable=None`` hides the bar when stderr is no TTY, as in every kernel."""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    shell = types.SimpleNamespace(config={"IPKernelApp": {"connection_file": "kernel.json"}})
    kernel = types.SimpleNamespace(get_ipython=lambda: shell)
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: None))
    assert progress_on(None) is False  # no terminal, no kernel (e.g. a log file)
    monkeypatch.setitem(sys.modules, "IPython", kernel)
    assert progress_on(None) is True
    assert progress_on(False) is False  # asked for: always obeyed
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: None))
    assert progress_on(None) is True  # a terminal
