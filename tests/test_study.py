import json
import logging
import os
import platform
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from fake_results import RETRIEVAL_CSV, WSOL_ROWS, store_localisation, store_retrieval

from hierstudy import config, report, study
from hierstudy.report import publish
from hierstudy.report.headline import headline

ROOT = Path(__file__).resolve().parents[1]


def test_notebooks_are_found_in_order_and_selected():
    found = study.notebooks(ROOT)
    assert found == sorted(found) and found[0].name == "01_tree_construction.py"
    assert study.notebooks(ROOT, ["01"]) == [found[0]]
    assert study.notebooks(ROOT, ["03", "02_barz_embeddings", "02"]) == found[1:3]
    with pytest.raises(study.StudyError, match="no notebook matches \\['99'\\]"):
        study.notebooks(ROOT, ["99"])
    # a prefix is no selection: '' and '0' used to select all eight notebooks
    for wrong in ("", "0", "2", "01_tree", "01_tree_construction.py"):
        with pytest.raises(study.StudyError, match=f"no notebook matches \\[{wrong!r}\\]"):
            study.notebooks(ROOT, [wrong])
    with pytest.raises(study.StudyError, match="no notebook matches"):
        study.notebooks(ROOT, [])


def test_every_notebook_has_a_parameters_cell_with_profile():
    import jupytext

    for path in study.notebooks(ROOT):
        cells = [c for c in jupytext.read(path).cells if c.cell_type == "code"]
        assert "parameters" in cells[0].metadata.get("tags", []), path.name
        # None: $HIERSTUDY_PROFILE or smoke by hand (config.notebook), as the CLI resolves it
        assert cells[0].source.startswith("profile = None  #"), path.name
        assert "config.notebook(profile)" in path.read_text(), path.name


def _one_notebook(project, name: str, source: str) -> None:
    """``notebooks/<name>.py``, the only notebook of the temporary ``project``."""
    (project / "notebooks").mkdir()
    shutil.copy(ROOT / "pyproject.toml", project)
    (project / "notebooks" / f"{name}.py").write_text(source)


def _outputs(executed: Path) -> list[str]:
    """The text outputs of an executed notebook (which must be whole, valid JSON)."""
    import nbformat

    cells = nbformat.read(str(executed), as_version=4).cells
    return [o.get("text", o.get("ename", "")) for c in cells for o in c.get("outputs", [])]


@pytest.mark.notebook
def test_failing_notebook_is_named_with_cell_and_error_and_the_good_copy_kept(project):
    _one_notebook(
        project,
        "01_fails",
        '# %% tags=["parameters"]\nprofile = "small"\nforce = False\nfail = False\n\n'
        "# %%\nprint('ran')\n\n# %%\nif fail:\n    raise ValueError('planted failure')\n",
    )
    folder = project / "runs" / "smoke" / "notebooks"
    study.run("smoke")
    good = (folder / "01_fails.ipynb").read_bytes()
    assert _outputs(folder / "01_fails.ipynb") == ["ran\n"]
    with pytest.raises(study.StudyError) as error:
        study.run("smoke", parameters={"fail": True})
    message = str(error.value)
    assert (
        "01_fails.py" in message
        and "code cell 3 (`if fail:`)" in message
        and "planted failure" in message
        and f"executed copy kept at {folder / '01_fails.failed.ipynb'}" in message
    )
    assert (folder / "01_fails.ipynb").read_bytes() == good  # the last good copy stays
    assert _outputs(folder / "01_fails.failed.ipynb")[-1] == "ValueError"
    assert study.main(["study", "--profile", "smoke", "-p", "fail=True"]) == 1
    study.run("smoke")  # a success replaces the copy and clears the failed one
    assert sorted(p.name for p in folder.iterdir()) == ["01_fails.ipynb"]


@pytest.mark.parametrize("error", [KeyboardInterrupt(), OSError(28, "No space left on device")])
def test_an_interrupted_run_or_a_full_disk_keeps_the_last_good_executed_copy(
    project, monkeypatch, error
):
    """papermill saves the executed copy after each cell: cut short, it is not valid JSON."""
    import papermill

    _one_notebook(project, "01_cut", PARAMETERS + "# %%\nx = 1\n")
    folder = project / "runs" / "smoke" / "notebooks"
    folder.mkdir(parents=True)
    (folder / "01_cut.ipynb").write_text("the last good copy")

    def cut_short(notebook, output, **kw):
        Path(output).write_text('{"cells": [')
        raise error

    monkeypatch.setattr(papermill, "execute_notebook", cut_short)
    with pytest.raises(type(error) if isinstance(error, KeyboardInterrupt) else study.StudyError):
        study.run("smoke")
    assert (folder / "01_cut.ipynb").read_text() == "the last good copy"
    assert (folder / "01_cut.failed.ipynb").read_text() == '{"cells": ['
    assert sorted(p.name for p in folder.iterdir()) == ["01_cut.failed.ipynb", "01_cut.ipynb"]
    if isinstance(error, OSError):  # one line from the CLI, not papermill's traceback
        assert study.main(["study", "--profile", "smoke"]) == 1


def test_a_full_disk_says_the_executed_copy_is_cut_short(project, monkeypatch):
    import papermill

    _one_notebook(project, "01_cut", PARAMETERS + "# %%\nx = 1\n")

    def cut_short(notebook, output, **kw):
        Path(output).write_text('{"cells": [')
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(papermill, "execute_notebook", cut_short)
    with pytest.raises(study.StudyError, match=r"01_cut\.failed\.ipynb \(cut short while saving"):
        study.run("smoke")


def _series(project) -> list[Path]:
    """The real notebooks (sources only) in the temporary ``project``."""
    (project / "notebooks").mkdir()
    shutil.copy(ROOT / "pyproject.toml", project)
    for path in study.notebooks(ROOT):
        shutil.copy(path, project / "notebooks")
    return study.notebooks(project)


@pytest.mark.parametrize(
    "argv, error",
    [
        (["--only", ""], "no notebook matches ['']: give two-digit numbers (02) or full names"),
        (["--only", "0"], "no notebook matches ['0']"),
        (["--only", "01", "-p", "sed=3"], "'sed' is not a parameter of 01_tree_construction"),
        (  # a parameter of 03 only: not silently added to 02 and 04
            ["--only", "02", "03", "04", "-p", "alpha=1e39"],
            "'alpha' is not a parameter of 02_barz_embeddings, 04_hier_proxies",
        ),
        (["--only", "01", "-p", "force=True"], "'force' is set by --force"),
        (["--only", "02", "-p", "dims=(1,"], "-p dims=(1,: '(1,' is neither a Python literal"),
        (["--only", "02", "-p", "seeds=(0,"], "-p seeds=(0,: '(0,' is neither a Python literal"),
        (["--profile", "garbage"], "unknown profile 'garbage'; choose one of ['paper', 'paper_"),
    ],
)
def test_the_cli_refuses_what_it_would_not_run_as_said_before_anything_runs(
    project, monkeypatch, capsys, argv, error
):
    _series(project)
    ran = []
    monkeypatch.setattr(study, "run_notebook", lambda path, *a, **kw: ran.append(path))
    argv = ["study", *(["--profile", "smoke"] if "--profile" not in argv else []), *argv]
    assert study.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"hierstudy: {error}") or f"hierstudy: -p: {error}" in err, err
    assert err.count("\n") == 1 and not ran


def test_a_bad_profile_in_the_environment_is_a_one_line_error(project, monkeypatch, capsys):
    _series(project)
    monkeypatch.setenv("HIERSTUDY_PROFILE", "garbage")
    assert study.main(["study", "--only", "01"]) == 1
    assert capsys.readouterr().err == (
        "hierstudy: unknown profile 'garbage'; "
        "choose one of ['paper', 'paper_check', 'small', 'smoke']\n"
    )


def test_parameters_are_literals_or_bare_words_and_name_the_parameters_cell(project):
    assert study.parse_parameters(
        ["dataset=cub_official", "layer=backbone.layer3", "alpha=1e39", "dims=(64, 512)", "d=None"]
    ) == {
        "dataset": "cub_official",
        "layer": "backbone.layer3",
        "alpha": 1e39,
        "dims": (64, 512),
        "d": None,
    }
    for malformed in ("seeds=(0,", "dims=[1, 2", "name='open", "x={1:", "x=a b", "x="):
        with pytest.raises(study.StudyError, match="neither a Python literal nor a bare word"):
            study.parse_parameters([malformed])
    paths = _series(project)
    assert study.notebook_parameters(paths[5])[:3] == ["profile", "force", "dataset"]
    assert {"grid_queries", "grid_top", "grid_seed"} <= set(study.notebook_parameters(paths[5]))
    study.check_parameters(paths[1:3], {"dataset": "cifar100"})  # in both: accepted


# --- the product: README block, manifest, index (the headline: tests/test_report_headline.py) -----
def test_readme_block_is_replaced_and_nothing_else(tmp_path):
    readme = tmp_path / "README.md"
    before = (
        "# title\n\ntext\n<!-- headline:small:start -->\nold\nrows\n<!-- headline:small:end -->\n"
    )
    after = "\n## more\n<!-- headline:smoke:start -->\nkeep\n<!-- headline:smoke:end -->\n"
    readme.write_text(before + after)
    assert publish.update_readme(readme, "| a |\n|---|\n| 1 |\n", "small")
    text = readme.read_text()
    assert text == before.replace("old\nrows", "| a |\n|---|\n| 1 |") + after
    assert not publish.update_readme(
        readme, "| a |\n|---|\n| 1 |", "small"
    )  # unchanged: not rewritten
    assert [p.name for p in tmp_path.iterdir()] == ["README.md"]  # no temporary file left
    for broken in ("no markers", "<!-- headline:small:end -->\n<!-- headline:small:start -->"):
        readme.write_text(broken)
        with pytest.raises(ValueError, match="needs exactly one <!-- headline:small:start -->"):
            publish.update_readme(readme, "x", "small")


def test_publish_writes_headline_manifest_index_and_the_profiles_readme_block(project, smoke):
    store_retrieval(smoke, RETRIEVAL_CSV)
    store_localisation(smoke, WSOL_ROWS)
    folder = smoke.figures_dir
    folder.mkdir(parents=True)
    (project / "notebooks").mkdir()
    for name, title in (("01_trees", "01 · Trees"), ("06_retrieval", "06 · Retrieval")):
        (project / "notebooks" / f"{name}.py").write_text(f"# %% [markdown]\n# # {title}\n")
    for name in ("01_stats.csv", "01_stats.md", "01_metrics.json", "01_tree.png", "06_per_seed.md"):
        (folder / name).write_text("x")
    (folder / "06_per_seed.csv").write_text("x")
    report.findings("What we found: CE won; KFR lost.", "06_findings", smoke)
    (project / "README.md").write_text(
        "a\n<!-- headline:smoke:start -->\n<!-- headline:smoke:end -->\nb\n"
    )

    (folder / "sop").mkdir()  # notebook 04 run with -p dataset=sop
    (folder / "sop" / "04_metrics.json").write_text("{}")
    (smoke.runs_dir / "notebooks").mkdir(parents=True)
    (smoke.runs_dir / "notebooks" / "01_trees.ipynb").write_text("{}")
    index = study.publish("smoke", {"01_trees": 1.234})
    text = index.read_text()
    assert "- [sop/](sop/): [04_metrics.json](sop/04_metrics.json)" in text
    assert index == folder / "index.md"
    assert text.index("## Headline") < text.index("## 01 · Trees") < text.index("## 06 · Retrieval")
    assert publish.headline_markdown(headline(smoke)) in text
    for link in (
        "[01_stats](01_stats.md) ([csv](01_stats.csv))",
        "[01_metrics.json](01_metrics.json)",
        "![01_tree](01_tree.png)",
        "[06_per_seed](06_per_seed.md) ([csv](06_per_seed.csv))",
        "[01_trees.py](../../notebooks/01_trees.py) · executed, with its outputs: "
        "[01_trees.ipynb](../../runs/smoke/notebooks/01_trees.ipynb)",
        "[manifest.json](manifest.json)",
    ):
        assert link in text, link
    assert "![01_tree](01_tree.png)" in text.split("## 06")[0]  # grouped under its notebook
    found = "**What we found**\n\n- CE won\n- KFR lost\n"
    assert text.index("## 06") < text.index(found) < text.index("[06_per_seed]")  # first, in full
    assert "[06_findings]" not in text  # not listed as a table
    assert (folder / "headline.csv").is_file() and "0.600 ± 0.141" in (
        folder / "headline.md"
    ).read_text()
    readme = (project / "README.md").read_text()
    assert readme.startswith("a\n<!-- headline:smoke:start -->\n| method") and readme.endswith(
        "end -->\nb\n"
    )
    assert "0.600 ± 0.141" in readme

    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["profile"] == "smoke" and manifest["commit"] == report.git_commit()
    assert manifest["notebooks"] == {"01_trees": {"seconds": 1.2, "commit": manifest["commit"]}}
    assert not manifest["complete"] and manifest["config"]["epochs"] == smoke.epochs
    assert (
        manifest["libraries"]["numpy"] == np.__version__ and manifest["torch"] == torch.__version__
    )
    assert manifest["device"] == str(smoke.torch_device())
    assert manifest["python"] == platform.python_version()
    study.publish("smoke", {"06_retrieval": 2.0})  # a later --only run keeps the other entries
    manifest = json.loads((folder / "manifest.json").read_text())
    assert set(manifest["notebooks"]) == {"01_trees", "06_retrieval"} and manifest["complete"]
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # nothing half-written


def test_cli_prints_the_index_path(project, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(study, "run", lambda *args: calls.append(args))
    assert study.main(["study", "--profile", "smoke", "--only", "01", "03"]) == 0
    assert calls == [("smoke", ["01", "03"], False, False, {})]
    assert capsys.readouterr().out.strip() == str(project / "figures" / "smoke" / "index.md")
    assert (
        study.main(["study", "--profile", "smoke", "-p", "dataset=sop", "-p", "dims=(64, 512)"])
        == 0
    )
    assert calls[-1][-1] == {"dataset": "sop", "dims": (64, 512)}
    assert study.main(["study", "--profile", "smoke", "-p", "dataset"]) == 1
    assert "NAME=VALUE, got 'dataset'" in capsys.readouterr().err


def test_parameters_reach_the_notebooks_parameters_cell(project):
    _one_notebook(
        project,
        "01_echo",
        '# %% tags=["parameters"]\nprofile = "small"\nforce = False\ndataset = None\n\n'
        "# %%\nopen('echo.txt', 'w').write(f'{profile} {dataset}')\n",
    )
    study.run("smoke", parameters={"dataset": ("sop", 2)})
    assert (project / "echo.txt").read_text() == "smoke ['sop', 2]"


# --- failure, resumption and determinism of real runs ----------------------------------------------
PARAMETERS = '# %% tags=["parameters"]\nprofile = "small"\nforce = False\n\n'


@pytest.fixture
def figures(project, monkeypatch):
    """The smoke figures folder of the temporary ``project``, which reads its own data/."""
    shutil.copy(ROOT / "pyproject.toml", project)
    monkeypatch.setenv("HIERSTUDY_DATA", str(project / "data"))
    return project / "figures" / "smoke"


@pytest.mark.notebook
def test_a_failure_keeps_earlier_figures_and_the_rerun_reuses_finished_runs(project, figures):
    (project / "notebooks").mkdir()
    (project / "notebooks" / "01_trains.py").write_text(
        PARAMETERS + "# %%\nimport pandas as pd\nfrom hierstudy import config, report, runs\n"
        "cfg = config.load(profile)\nrun = runs.train(cfg, 'ce', 0, force=force)\n"
        "report.save_table(pd.DataFrame({'acc': [run.record.test_acc]}), '01_acc', cfg)\n"
    )
    (project / "notebooks" / "02_fails_once.py").write_text(
        PARAMETERS + "# %%\nfrom pathlib import Path\n\n"
        "if not Path('fixed').exists():\n    raise ValueError('planted failure')\n"
    )
    with pytest.raises(study.StudyError, match="02_fails_once.py failed"):
        study.run("smoke")
    # 01's table is whole, nothing temporary is left, nothing is published for a failed run
    assert sorted(p.name for p in figures.iterdir()) == ["01_acc.csv", "01_acc.md"]
    table = (figures / "01_acc.csv").read_bytes()
    assert 0 <= pd.read_csv(figures / "01_acc.csv").acc[0] <= 1
    done = project / "runs" / "smoke" / "hiershapes" / "ce" / "seed0" / "result.json"
    trained_at = done.stat().st_mtime_ns

    (project / "fixed").touch()
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
    assert not [p for p in (project / "runs").rglob(".*") if p.is_file()]


@pytest.mark.notebook
def test_rerunning_a_training_notebook_with_force_writes_byte_identical_tables(project, figures):
    """Notebook 02 (the cheapest that trains: five 1-epoch smoke models) twice, retraining."""
    shutil.copytree(
        ROOT / "notebooks", project / "notebooks", ignore=shutil.ignore_patterns("*.ipynb")
    )
    done = project / "runs" / "smoke" / "hiershapes" / "corr" / "seed0" / "result.json"
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


def test_reuse_stale_reaches_the_notebooks_kernels(monkeypatch):
    seen = {}
    monkeypatch.setenv("HIERSTUDY_REUSE_STALE", "0")  # restored after the test
    monkeypatch.setattr(study, "run", lambda *a, **k: seen.setdefault("env", dict(os.environ)))
    monkeypatch.setattr(study.config, "load", lambda name=None: study.config.PROFILES["smoke"])
    assert study.main(["study", "--profile", "smoke", "--reuse-stale"]) == 0
    assert seen["env"]["HIERSTUDY_REUSE_STALE"] == "1"


def test_log_output_streams_the_cells_output_not_papermills_own_messages():
    written = []
    bar = SimpleNamespace(write=lambda text, file=None: written.append(text))
    logger = logging.getLogger("papermill")

    def log_output_message(text):  # named as papermill's client method that logs cell output
        logger.info(text)

    with study._streaming(True, bar):
        logger.info("Executing Cell 3---")
        log_output_message("What we found: ...\n")
    log_output_message("after the run")
    assert written == ["What we found: ..."]


def test_a_failure_is_advised_by_what_is_missing(project, monkeypatch):
    """The dataset's folder when ``-p dataset=`` names one without data; else the earlier
    notebooks that never ran under the profile, when a file is missing."""
    monkeypatch.setenv("HIERSTUDY_DATA", str(project / "data"))
    _one_notebook(project, "02_trains", PARAMETERS)
    for name in ("03_trains", "06_reads"):
        (project / "notebooks" / f"{name}.py").write_text(PARAMETERS)
    smoke = config.load("smoke")
    reads = project / "notebooks" / "06_reads.py"
    advice = study._advice(reads, smoke, {"dataset": "cub"}, "FileNotFoundError")
    assert f"-p dataset=cub: CUB folder {project / 'data' / 'CUB_200_2011'} is missing" in advice
    advice = study._advice(reads, smoke, {}, "FileNotFoundError")
    assert advice.endswith("run them first: hierstudy study --profile smoke --only 02 03")
    executed = smoke.runs_dir / "notebooks"
    executed.mkdir(parents=True)
    (executed / "02_trains.ipynb").touch()
    assert study._advice(reads, smoke, {}, "FileNotFoundError").endswith("--only 03")
    assert study._advice(reads, smoke, {}, "ValueError") == ""  # not a missing file
    (executed / "03_trains.ipynb").touch()
    assert study._advice(reads, smoke, {}, "FileNotFoundError") == ""
    assert study._advice(reads, smoke, {"dataset": "hiershapes"}, "FileNotFoundError") == ""


def test_outside_the_repository_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HIERSTUDY_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    assert study.main(["study", "--profile", "smoke", "--only", "01"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"hierstudy: {tmp_path.resolve()} is not inside the hierstudy repository")
    assert err.count("\n") == 1


def test_wordnet_install_says_when_apt_get_fails(monkeypatch, capsys):
    from hierstudy.hierarchy import wordnet

    def missing(allow_download=True):
        raise wordnet.WordNetError("WordNet 3.0 was not found")

    monkeypatch.setattr(wordnet, "debian_wordnet_dir", lambda: None)
    monkeypatch.setattr(wordnet, "load_wordnet", missing)
    monkeypatch.setattr(wordnet, "install_debian_wordnet", lambda: False)
    assert study.main(["wordnet", "--install"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("hierstudy: apt-get could not install them"), err
    assert err.endswith("hierstudy: WordNet 3.0 was not found\n")


def test_a_kernel_that_never_answers_is_one_line_naming_the_loopback(project, monkeypatch, capsys):
    import papermill

    _one_notebook(project, "01_net", PARAMETERS + "# %%\nx = 1\n")

    def no_kernel(notebook, output, **kw):
        raise RuntimeError("Kernel didn't respond in 60 seconds")

    monkeypatch.setattr(papermill, "execute_notebook", no_kernel)
    assert study.main(["study", "--profile", "smoke"]) == 1
    err = capsys.readouterr().err
    assert "hierstudy: notebook 01_net.py could not start its Jupyter kernel" in err, err
    assert "loopback interface must be up" in err and "Traceback" not in err


def test_an_executed_progress_bar_falls_back_to_its_final_text(tmp_path):
    def model(name, **state):
        return {"model_name": name, "state": state}

    state = {
        "box": model("HBoxModel", children=["IPY_MODEL_l", "IPY_MODEL_b", "IPY_MODEL_r"]),
        "l": model("HTMLModel", value="epoch\N{FIGURE SPACE}0/2:\N{FIGURE SPACE}50%"),
        "b": model("FloatProgressModel", value=3.0, max=6.0),
        "r": model("HTMLModel", value=" 3/6 [00:01&lt;00:01]"),
    }
    view = {"data": {study.WIDGET_VIEW: {"model_id": "box"}, "text/plain": ["epoch 0/2:   0%"]}}
    other = {"data": {study.WIDGET_VIEW: {"model_id": "missing"}, "text/plain": ["a slider"]}}
    notebook = {
        "cells": [{"cell_type": "code", "outputs": [view, other]}],
        "metadata": {"widgets": {study.WIDGET_STATE: {"state": state}}},
    }
    path = tmp_path / "run.ipynb"
    path.write_text(json.dumps(notebook))
    study.settle_progress_bars(path)
    outputs = json.loads(path.read_text())["cells"][0]["outputs"]
    assert outputs[0]["data"]["text/plain"] == ["epoch 0/2: 50%|█████     | 3/6 [00:01<00:01]"]
    assert outputs[1]["data"]["text/plain"] == ["a slider"]  # not a tqdm bar: left as it was
