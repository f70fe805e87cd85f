import sys
import types

import pandas as pd
import pytest

from hierstudy.report import display


def test_findings_are_a_heading_and_one_bullet_per_clause_outside_parentheses(monkeypatch):
    shown = []
    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: object()
    ipython.display = types.SimpleNamespace(display=lambda data, raw: shown.append(data))
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", ipython.display)
    text = "What we found (smoke, 1 seed): L_CORR beat CE (0.7; 0.6); mAHP rose by 3 *2 $."
    display.findings(text)
    assert shown[-1]["text/plain"] == text  # papermill's log and a terminal read this
    assert shown[-1]["text/markdown"] == (
        "**What we found (smoke, 1 seed)**\n\n- L\\_CORR beat CE (0.7; 0.6)\n"
        "- mAHP rose by 3 \\*2 \\$"
    )
    display.findings(["What we found.", "1. one", "2. two"])
    assert shown[-1]["text/markdown"] == "**What we found**\n\n- 1. one\n- 2. two"


def test_findings_outside_jupyter_print_the_sentence(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: None))
    display.findings("What we found: a; b.")
    assert capsys.readouterr().out == "What we found: a; b.\n"


def test_tables_show_three_significant_digits():
    with pd.option_context("display.float_format", display.significant):
        shown = pd.DataFrame({"acc": [0.0285714, 1 / 3, 1.7e-15, 12345.6, 0.0]}).to_string()
    assert shown.split() == [
        "acc",
        "0",
        "0.0286",
        "1",
        "0.333",
        "2",
        "1.7e-15",
        "3",
        "12,346",
        "4",
        "0",
    ]


def test_findings_saved_with_a_name_are_the_markdown_shown(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: None))
    profile = types.SimpleNamespace(figures_dir=tmp_path)
    display.findings("What we found: a_1; b (c; d).", "03_findings", profile)
    assert capsys.readouterr().out == "What we found: a_1; b (c; d).\n"
    assert (tmp_path / "03_findings.md").read_text() == (
        "**What we found**\n\n- a\\_1\n- b (c; d)\n"
    )


def test_a_wide_table_reads_as_its_constant_columns_and_narrow_parts():
    table = pd.DataFrame(
        {
            "method": ["CE", "KFR"],
            "setup": ["profile", "profile"],
            **{f"m{i}": [i, i + 1] for i in range(7)},
        }
    )
    same, parts = display.readable(table, ["method"], per_part=3)
    assert same == {"setup": "profile"}
    assert [list(p.columns) for p in parts] == [
        ["method", "m0", "m1", "m2"],
        ["method", "m3", "m4", "m5"],
        ["method", "m6"],
    ]
    assert parts[2]["m6"].tolist() == [6, 7]


def test_jupyter_shows_missing_values_as_a_dash_and_three_digits(monkeypatch):
    class Formatter(dict):
        def for_type(self, kind, function):
            self[kind] = function

    formatters = {"text/html": Formatter(), "text/plain": Formatter()}
    shell = types.SimpleNamespace(display_formatter=types.SimpleNamespace(formatters=formatters))
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))
    with pd.option_context("display.float_format", None):
        display.table_format()
        table = pd.DataFrame({"acc": [0.0285714, float("nan")], "n": [5, 1]})
        html = formatters["text/html"][pd.DataFrame](table)
        printed = []
        formatters["text/plain"][pd.DataFrame](
            table, types.SimpleNamespace(text=printed.append), False
        )
    assert "<td>0.0286</td>" in html and "<td>—</td>" in html and "NaN" not in html
    assert printed[0].split() == ["acc", "n", "0", "0.0286", "5", "1", "—", "1"]


def test_smoke_findings_say_the_numbers_only_show_that_it_runs(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: None))
    smoke = types.SimpleNamespace(figures_dir=tmp_path, name="smoke", description="tiny")
    display.findings("What we found: a; b.", "01_findings", smoke)
    assert (tmp_path / "01_findings.md").read_text().splitlines()[-1] == (
        "- under the smoke profile (tiny) these numbers only show that the notebook runs"
    )
    display.findings(["What we found", "a"], "02_findings", smoke)
    assert "only show that the notebook runs" in (tmp_path / "02_findings.md").read_text()
    small = types.SimpleNamespace(figures_dir=tmp_path, name="small", description="laptop")
    display.findings("What we found: a; b.", "03_findings", small)
    assert "notebook runs" not in (tmp_path / "03_findings.md").read_text()


def test_findings_saved_without_a_profile_is_a_clear_error():
    with pytest.raises(ValueError, match="findings '01_findings': saving them needs the profile"):
        display.findings("What we found: a.", "01_findings")
