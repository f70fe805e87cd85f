import json
import platform
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hierstudy import config, report, study

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


def _one_notebook(root, monkeypatch, name: str, source: str) -> None:
    """A project at ``root`` whose only notebook is ``notebooks/<name>.py``."""
    (root / "notebooks").mkdir()
    shutil.copy(ROOT / "pyproject.toml", root)
    (root / "notebooks" / f"{name}.py").write_text(source)
    monkeypatch.setenv("HIERSTUDY_ROOT", str(root))


@pytest.mark.notebook
def test_failing_notebook_is_named_with_cell_and_error_and_copy_kept(tmp_path, monkeypatch):
    _one_notebook(
        tmp_path,
        monkeypatch,
        "01_fails",
        '# %% tags=["parameters"]\nprofile = "small"\nforce = False\n\n'
        "# %%\nx = 1\n\n# %%\nraise ValueError('planted failure')\n",
    )
    with pytest.raises(study.StudyError) as error:
        study.run("smoke")
    message = str(error.value)
    assert (
        "01_fails.py" in message
        and "code cell 3 (`raise ValueError('planted failure')`)" in message
        and "planted failure" in message
    )
    assert (tmp_path / "runs" / "smoke" / "notebooks" / "01_fails.ipynb").is_file()
    assert study.main(["study", "--profile", "smoke"]) == 1


# --- the product: headline, README block, manifest, index ---------------------------------------
RETRIEVAL_CSV = """\
method,run,protocol,K,seed,mahp,balanced_accuracy,map,recall@1,mistake_severity
CE (classification features),ce,closed set,250,0,0.5,0.6,0.4,0.7,2.0
CE (classification features),ce,closed set,250,1,0.7,0.8,0.4,0.9,2.5
KFR (α=10),kfr-alpha10,closed set,250,0,0.3,0.25,0.2,0.1,1.5
PA + HIER,hier,zero-shot,250,0,0.45,,0.35,0.55,
"""
WSOL_ROWS = [  # 07_metrics.json["rows"]: the per-seed rows at the Grad-CAM layer 07 reports
    {
        "model": "CE (baseline)",
        "seed": 0,
        "test_acc": 0.6,
        "maxboxacc_v2": 0.2,
        "energy_in_box": 0.9,
    },
    {
        "model": "CE (baseline)",
        "seed": 1,
        "test_acc": 0.8,
        "maxboxacc_v2": 0.4,
        "energy_in_box": 0.9,
    },
    {"model": "centre Gaussian (no model)", "seed": "-", "test_acc": None, "maxboxacc_v2": 0.56},
]


def _figures(tmp_path, monkeypatch, retrieval=RETRIEVAL_CSV, wsol=WSOL_ROWS):
    monkeypatch.setenv("HIERSTUDY_ROOT", str(tmp_path))
    folder = tmp_path / "figures" / "smoke"
    folder.mkdir(parents=True)
    (folder / "06_per_seed.csv").write_text(retrieval)
    (folder / "07_metrics.json").write_text(json.dumps({"rows": wsol, "seeds": [0, 1]}))
    return folder


def test_headline_aggregates_seeds_joins_localisation_by_run_and_marks_gaps(tmp_path, monkeypatch):
    _figures(tmp_path, monkeypatch)
    table = study.headline("smoke").set_index("method")
    assert list(table.columns) == [
        "protocol",
        "seeds",
        "accuracy",
        "balanced accuracy",
        "mAHP@250",
        "mAP",
        "R@1",
        "mistake severity",
        "MaxBoxAccV2",
    ]
    # KFR (α=10) ran on one seed of two: a sweep variant, left to notebook 06's tables
    assert list(table.index) == [
        "CE (classification features)",
        "PA + HIER",
        "centre Gaussian (no model)",
    ]
    ce = table.loc["CE (classification features)"]
    # mean ± sample std (ddof 1) over the two seeds: 0.5, 0.7 -> 0.600 ± 0.141
    assert (ce.seeds, ce["mAHP@250"], ce["mAP"], ce["mistake severity"]) == (
        2,
        "0.600 ± 0.141",
        "0.400 ± 0.000",
        "2.250 ± 0.354",
    )
    # notebook 07's "CE (baseline)" is run "ce": its accuracy and MaxBoxAccV2 join the CE row
    assert (ce.accuracy, ce.MaxBoxAccV2) == ("0.700 ± 0.141", "0.300 ± 0.141")
    hier = table.loc["PA + HIER"]
    assert (hier.protocol, hier["balanced accuracy"], hier["mistake severity"]) == (
        "zero-shot",
        "—",
        "—",
    )
    centre = table.loc["centre Gaussian (no model)"]  # only in 07: appended with what it has
    assert centre.MaxBoxAccV2 == "0.560" and set(
        centre.drop(["protocol", "seeds", "MaxBoxAccV2"])
    ) == {"—"}


def test_headline_prefers_a_run_column_and_handles_missing_tables_columns_and_mixed_k(
    tmp_path, monkeypatch
):
    retrieval = RETRIEVAL_CSV.replace("hier,zero-shot,250", "hier,zero-shot,143").replace(
        ",recall@1", ",r1"
    )
    wsol = [{"model": "my CE", "run": "ce", "seed": 0, "test_acc": 0.5}]
    _figures(tmp_path, monkeypatch, retrieval, wsol)
    table = study.headline("smoke").set_index("method")
    assert "mAHP@K" in table and list(table.K) == ["250", "143"]  # no extra row: "my CE" is ce
    assert set(table["R@1"]) == {"—"} and set(table.MaxBoxAccV2) == {"—"}
    assert table.loc["CE (classification features)", "accuracy"] == "0.500"
    (tmp_path / "figures" / "smoke" / "06_per_seed.csv").unlink()
    only_07 = study.headline("smoke")
    assert list(only_07.method) == ["my CE"] and only_07.accuracy[0] == "0.500"
    (tmp_path / "figures" / "smoke" / "07_metrics.json").unlink()
    assert study.headline("smoke").empty


def test_headline_keeps_datasets_apart_and_joins_07_on_its_own_dataset(tmp_path, monkeypatch):
    retrieval = """\
dataset,method,run,protocol,K,seed,mahp,balanced_accuracy,map,recall@1,mistake_severity
HierShapes,CE + L2 norm,ce,closed set,250,0,0.5,0.6,0.4,0.7,2.0
ImageNet-1k,CE + L2 norm,kfr/ce,closed set,250,0,0.1,0.2,0.3,0.4,5.0
ImageNet-1k,CE + L2 norm,barz/ce,closed set,250,0,0.3,0.2,0.3,0.4,5.0
ImageNet-1k,L_CORR+CLS,barz/corr_cls,closed set,250,0,0.2,0.3,0.4,0.5,4.0
"""
    wsol = [
        {"model": "CE", "run": "kfr/ce", "seed": 0, "test_acc": 0.25, "maxboxacc_v2": 0.5},
        {"model": "CE", "run": "barz/ce", "seed": 0, "test_acc": 0.3, "maxboxacc_v2": 0.4},
    ]
    folder = _figures(tmp_path, monkeypatch, retrieval, wsol)
    saved = json.loads((folder / "07_metrics.json").read_text())
    saved["_provenance"] = {"dataset": "imagenet1k"}  # 07 scored ImageNet-1k's models
    (folder / "07_metrics.json").write_text(json.dumps(saved))
    table = study.headline("smoke")
    assert list(table.columns[:4]) == ["dataset", "method", "run", "protocol"]
    rows = table.set_index(["dataset", "run", "method"])
    assert (rows.seeds == 1).all()  # one seed of each setup's CE: not two seeds of one CE
    assert rows.loc[("HierShapes", "ce", "CE + L2 norm"), "mAHP@250"] == "0.500"
    assert rows.loc[("HierShapes", "ce", "CE + L2 norm"), "accuracy"] == "—"  # 07: ImageNet
    assert rows.loc[("ImageNet-1k", "kfr/ce", "CE + L2 norm"), "mAHP@250"] == "0.100"
    assert rows.loc[("ImageNet-1k", "kfr/ce", "CE + L2 norm"), "accuracy"] == "0.250"
    assert rows.loc[("ImageNet-1k", "barz/ce", "CE + L2 norm"), "MaxBoxAccV2"] == "0.400"
    assert rows.loc[("ImageNet-1k", "barz/corr_cls", "L_CORR+CLS"), "accuracy"] == "—"
    assert len(table) == 4


def test_readme_block_is_replaced_and_nothing_else(tmp_path):
    readme = tmp_path / "README.md"
    before = (
        "# title\n\ntext\n<!-- headline:small:start -->\nold\nrows\n<!-- headline:small:end -->\n"
    )
    after = "\n## more\n<!-- headline:smoke:start -->\nkeep\n<!-- headline:smoke:end -->\n"
    readme.write_text(before + after)
    assert study.update_readme(readme, "| a |\n|---|\n| 1 |\n", "small")
    text = readme.read_text()
    assert text == before.replace("old\nrows", "| a |\n|---|\n| 1 |") + after
    assert not study.update_readme(
        readme, "| a |\n|---|\n| 1 |", "small"
    )  # unchanged: not rewritten
    assert [p.name for p in tmp_path.iterdir()] == ["README.md"]  # no temporary file left
    for broken in ("no markers", "<!-- headline:small:end -->\n<!-- headline:small:start -->"):
        readme.write_text(broken)
        with pytest.raises(ValueError, match="needs exactly one <!-- headline:small:start -->"):
            study.update_readme(readme, "x", "small")


def test_publish_writes_headline_manifest_index_and_the_profiles_readme_block(
    tmp_path, monkeypatch
):
    folder = _figures(tmp_path, monkeypatch)
    (tmp_path / "notebooks").mkdir()
    for name, title in (("01_trees", "01 · Trees"), ("06_retrieval", "06 · Retrieval")):
        (tmp_path / "notebooks" / f"{name}.py").write_text(f"# %% [markdown]\n# # {title}\n")
    for name in ("01_stats.csv", "01_stats.md", "01_metrics.json", "01_tree.png", "06_per_seed.md"):
        (folder / name).write_text("x")
    (tmp_path / "README.md").write_text(
        "a\n<!-- headline:smoke:start -->\n<!-- headline:smoke:end -->\nb\n"
    )

    (folder / "sop").mkdir()  # notebook 04 run with -p dataset=sop
    (folder / "sop" / "04_metrics.json").write_text("{}")
    index = study.publish("smoke", {"01_trees": 1.234})
    text = index.read_text()
    assert "- [sop/](sop/): [04_metrics.json](sop/04_metrics.json)" in text
    assert index == folder / "index.md"
    assert text.index("## Headline") < text.index("## 01 · Trees") < text.index("## 06 · Retrieval")
    assert study.headline_markdown(study.headline("smoke")) in text
    for link in (
        "[01_stats](01_stats.md) ([csv](01_stats.csv))",
        "[01_metrics.json](01_metrics.json)",
        "![01_tree](01_tree.png)",
        "[06_per_seed](06_per_seed.md) ([csv](06_per_seed.csv))",
        "[01_trees.py](../../notebooks/01_trees.py)",
        "[manifest.json](manifest.json)",
    ):
        assert link in text, link
    assert "![01_tree](01_tree.png)" in text.split("## 06")[0]  # grouped under its notebook
    assert (folder / "headline.csv").is_file() and "0.600 ± 0.141" in (
        folder / "headline.md"
    ).read_text()
    readme = (tmp_path / "README.md").read_text()
    assert readme.startswith("a\n<!-- headline:smoke:start -->\n| method") and readme.endswith(
        "end -->\nb\n"
    )
    assert "0.600 ± 0.141" in readme

    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["profile"] == "smoke" and manifest["commit"] == report.git_commit()
    assert manifest["notebooks"] == {"01_trees": {"seconds": 1.2, "commit": manifest["commit"]}}
    assert not manifest["complete"] and manifest["config"]["epochs"] == config.load("smoke").epochs
    assert (
        manifest["libraries"]["numpy"] == np.__version__ and manifest["torch"] == torch.__version__
    )
    assert manifest["device"] == str(config.load("smoke").torch_device())
    assert manifest["python"] == platform.python_version()
    study.publish("smoke", {"06_retrieval": 2.0})  # a later --only run keeps the other entries
    manifest = json.loads((folder / "manifest.json").read_text())
    assert set(manifest["notebooks"]) == {"01_trees", "06_retrieval"} and manifest["complete"]
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # nothing half-written


def test_cli_prints_the_index_path(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HIERSTUDY_ROOT", str(tmp_path))
    calls = []
    monkeypatch.setattr(study, "run", lambda *args: calls.append(args))
    assert study.main(["study", "--profile", "smoke", "--only", "01", "03"]) == 0
    assert calls == [("smoke", ["01", "03"], False, False, {})]
    assert capsys.readouterr().out.strip() == str(tmp_path / "figures" / "smoke" / "index.md")
    assert (
        study.main(["study", "--profile", "smoke", "-p", "dataset=sop", "-p", "dims=(64, 512)"])
        == 0
    )
    assert calls[-1][-1] == {"dataset": "sop", "dims": (64, 512)}
    assert study.main(["study", "--profile", "smoke", "-p", "dataset"]) == 1
    assert "NAME=VALUE, got 'dataset'" in capsys.readouterr().err


def test_parameters_reach_the_notebooks_parameters_cell(tmp_path, monkeypatch):
    _one_notebook(
        tmp_path,
        monkeypatch,
        "01_echo",
        '# %% tags=["parameters"]\nprofile = "small"\nforce = False\ndataset = None\n\n'
        "# %%\nopen('echo.txt', 'w').write(f'{profile} {dataset}')\n",
    )
    study.run("smoke", parameters={"dataset": ("sop", 2)})
    assert (tmp_path / "echo.txt").read_text() == "smoke ['sop', 2]"


# --- failure, resumption and determinism of real runs ----------------------------------------------
PARAMETERS = '# %% tags=["parameters"]\nprofile = "small"\nforce = False\n\n'


def _project(tmp_path, monkeypatch):
    """A temporary project root (its own figures/, runs/ and data/)."""
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    monkeypatch.setenv("HIERSTUDY_ROOT", str(tmp_path))
    monkeypatch.setenv("HIERSTUDY_DATA", str(tmp_path / "data"))
    return tmp_path / "figures" / "smoke"


@pytest.mark.notebook
def test_a_failure_keeps_earlier_figures_and_the_rerun_reuses_finished_runs(tmp_path, monkeypatch):
    figures = _project(tmp_path, monkeypatch)
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "01_trains.py").write_text(
        PARAMETERS
        + "# %%\nimport pandas as pd\nfrom hierstudy import config, experiments, report\n"
        "cfg = config.load(profile)\nrun = experiments.train(cfg, 'ce', 0, force=force)\n"
        "report.save_table(pd.DataFrame({'acc': [run.result['test_acc']]}), '01_acc', cfg)\n"
    )
    (tmp_path / "notebooks" / "02_fails_once.py").write_text(
        PARAMETERS + "# %%\nfrom pathlib import Path\n\n"
        "if not Path('fixed').exists():\n    raise ValueError('planted failure')\n"
    )
    with pytest.raises(study.StudyError, match="02_fails_once.py failed"):
        study.run("smoke")
    # 01's table is whole, nothing temporary is left, nothing is published for a failed run
    assert sorted(p.name for p in figures.iterdir()) == ["01_acc.csv", "01_acc.md"]
    table = (figures / "01_acc.csv").read_bytes()
    assert 0 <= pd.read_csv(figures / "01_acc.csv").acc[0] <= 1
    done = tmp_path / "runs" / "smoke" / "hiershapes" / "ce" / "seed0" / "result.json"
    trained_at = done.stat().st_mtime_ns

    (tmp_path / "fixed").touch()
    study.run("smoke")
    assert done.stat().st_mtime_ns == trained_at  # the finished run is reloaded, not retrained
    assert (figures / "01_acc.csv").read_bytes() == table
    assert sorted(p.name for p in figures.iterdir()) == [
        "01_acc.csv",
        "01_acc.md",
        "index.md",
        "manifest.json",
    ]
    manifest = json.loads((figures / "manifest.json").read_text())
    assert set(manifest["notebooks"]) == {"01_trains", "02_fails_once"} and manifest["complete"]
    assert not [p for p in (tmp_path / "runs").rglob(".*") if p.is_file()]


@pytest.mark.notebook
def test_rerunning_a_training_notebook_with_force_writes_byte_identical_tables(
    tmp_path, monkeypatch
):
    """Notebook 02 (the cheapest that trains: five 1-epoch smoke models) twice, retraining."""
    figures = _project(tmp_path, monkeypatch)
    shutil.copytree(
        ROOT / "notebooks", tmp_path / "notebooks", ignore=shutil.ignore_patterns("*.ipynb")
    )
    done = tmp_path / "runs" / "smoke" / "hiershapes" / "corr" / "seed0" / "result.json"
    outputs, trained_at = [], []
    for _ in range(2):
        study.run("smoke", only=["02"], force=True)
        outputs.append(
            {
                p.name: p.read_bytes()
                for p in figures.iterdir()
                if p.suffix in {".csv", ".md", ".json"} and p.name != "manifest.json"
            }
        )
        trained_at.append(done.stat().st_mtime_ns)
    assert trained_at[0] != trained_at[1]  # force retrained
    assert {
        "02_accuracy.csv",
        "02_accuracy.md",
        "02_exactness.md",
        "02_metrics.json",
        "index.md",
    } <= set(outputs[0])
    assert outputs[0].keys() == outputs[1].keys()
    for name, first in outputs[0].items():
        assert outputs[1][name] == first, f"{name} differs between two forced runs"
