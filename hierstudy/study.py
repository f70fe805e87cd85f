"""Run the notebook series with papermill, and the ``hierstudy`` command line.

``hierstudy study --profile smoke --only 01`` executes ``notebooks/01_*.py`` (jupytext percent
files, converted in memory) with ``profile`` injected into the cell tagged ``parameters``;
``--only`` takes notebook numbers (``01``) or full names (``01_tree_construction``), ``-p NAME=VALUE``
only names of the parameters cell of every selected notebook. Everything is checked before the
first notebook runs. The executed copy ``runs/<profile>/notebooks/<name>.ipynb`` is replaced only
when the notebook succeeds; the copy of a failed or interrupted run is kept beside it as
``<name>.failed.ipynb``, for inspection. Figures and tables go to ``figures/<profile>/`` through
:mod:`hierstudy.report`.

After the notebooks succeed, :func:`hierstudy.report.publish.publish` turns
``figures/<profile>/`` into one product (the headline, the manifest and the index).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import html
import json
import logging
import os
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

from . import config
from .files import atomic_write
from .report.publish import publish


class StudyError(RuntimeError):
    """A notebook of the series failed; the message names the notebook, the cell and the error."""


def notebooks(root: Path | None = None, only: list[str] | None = None) -> list[Path]:
    """The numbered notebooks in order (all when ``only`` is None), or those named in ``only`` by
    their two-digit number ("02") or their full name ("02_barz_embeddings"), nothing else."""
    folder = (root or config.project_root()) / "notebooks"
    found = sorted(folder.glob("[0-9][0-9]_*.py"))
    if not found:
        raise StudyError(f"no notebooks found in {folder}")
    if only is None:
        return found

    def named(o: str) -> list[Path]:
        return [p for p in found if o == p.stem or (re.fullmatch(r"\d\d", o) and o == p.stem[:2])]

    missing = [o for o in only if not named(o)]
    if missing or not only:
        raise StudyError(
            f"no notebook matches {missing}: give two-digit numbers (02) or full names "
            f"(02_barz_embeddings); have {[p.stem for p in found]}"
        )
    wanted = {p for o in only for p in named(o)}
    return [p for p in found if p in wanted]


INJECTED = ("profile", "force")  # set by run_notebook from --profile and --force
# the kernel's backend: plt.show() and a figure as a cell's value land in the executed notebook
INLINE = "module://matplotlib_inline.backend_inline"
# the kernel runs on this machine: no warning per notebook that its local TCP is unencrypted
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]


def notebook_parameters(path: Path) -> list[str]:
    """The names the cell tagged ``parameters`` of the notebook at ``path`` assigns."""
    import jupytext

    names: list[str] = []
    for cell in jupytext.read(path).cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            for node in ast.walk(ast.parse(cell.source)):
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                    names.append(node.id)
    return names


def check_parameters(paths: list[Path], parameters: dict) -> None:
    """Refuse a parameter that is not in the parameters cell of every notebook of ``paths`` (or that
    the command line sets itself), before anything runs; papermill would inject it silently."""
    problems = [f"{n!r} is set by --{n}" for n in parameters if n in INJECTED]
    declared = {p.stem: notebook_parameters(p) for p in paths}
    for name in (n for n in parameters if n not in INJECTED):
        lacking = [stem for stem, names in declared.items() if name not in names]
        if lacking:
            problems.append(f"{name!r} is not a parameter of {', '.join(lacking)}")
    if problems:
        takes = "; ".join(
            f"{stem} takes {', '.join(n for n in names if n not in INJECTED) or 'none'}"
            for stem, names in declared.items()
        )
        raise StudyError(f"-p: {'; '.join(problems)} ({takes})")


def run_notebook(
    path: Path,
    profile: str,
    *,
    force: bool = False,
    log_output: bool = False,
    parameters: dict | None = None,
    progress: dict | None = None,
) -> Path:
    """Execute one notebook under ``profile`` (``parameters`` override its parameters cell, e.g.
    ``{"dataset": "sop"}``); return the executed copy's path. Figures show inline in the executed
    copy (matplotlib's inline backend). ``progress``: tqdm options of a per-cell bar (None: no
    bar)."""
    import jupytext
    import papermill
    from papermill.exceptions import PapermillExecutionError

    prof = config.load(profile)
    folder = prof.runs_dir / "notebooks"
    out, failed = folder / f"{path.stem}.ipynb", folder / f"{path.stem}.failed.ipynb"
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=folder, prefix=f".{path.stem}.", suffix=".ipynb")
    os.close(fd)
    running = Path(name)  # papermill saves after every cell: never over the last good copy
    notebook = jupytext.read(path)
    env = {"HIERSTUDY_ROOT": str(prof.root), "HIERSTUDY_PROFILE": profile, "MPLBACKEND": INLINE}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        papermill.execute_notebook(
            notebook,
            str(running),
            parameters={**_injectable(parameters or {}), "profile": profile, "force": force},
            kernel_name="python3",
            language="python",
            cwd=str(prof.root),
            progress_bar=progress or False,
            log_output=log_output,
            extra_arguments=KERNEL_ARGUMENTS,
        )
    except BaseException as error:  # failed, interrupted or out of disk space
        os.replace(running, failed)
        if isinstance(error, PapermillExecutionError):
            advice = _advice(path, prof, parameters or {}, error.ename)
            raise StudyError(
                f"notebook {path.name} failed in {_describe_cell(failed)} "
                f"({error.ename}: {error.evalue}){advice}; executed copy kept at {failed}"
            ) from None
        if isinstance(error, OSError):  # e.g. no space left while papermill saves
            raise StudyError(
                f"notebook {path.name} could not be executed ({type(error).__name__}: {error}); "
                f"what was executed is at {failed}{_cut_short(failed)}"
            ) from error
        if isinstance(error, RuntimeError) and "Kernel didn't respond" in str(error):
            raise StudyError(
                f"notebook {path.name} could not start its Jupyter kernel ({error}): the kernel "
                "talks to this process over 127.0.0.1, so the loopback interface must be up "
                "(e.g. `ip link set lo up` inside `unshare -n`)"
            ) from error
        raise
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    settle_progress_bars(running)
    os.chmod(running, 0o644)  # mkstemp makes files private; the executed copy is an ordinary file
    os.replace(running, out)
    failed.unlink(missing_ok=True)  # an older failure's copy: this run replaced it
    return out


WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def settle_progress_bars(executed: Path) -> None:
    """Give each progress bar of the ``executed`` notebook its final text as the plain-text
    fallback that viewers without widgets show (tqdm leaves its first state there, "0%"); the bar
    itself renders from the widget state papermill saved in the notebook's metadata."""
    notebook = json.loads(executed.read_text(encoding="utf-8"))
    state = notebook["metadata"].get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})

    def final_text(model_id: str) -> str | None:
        children = state.get(model_id, {}).get("state", {}).get("children", [])
        parts = [state.get(c.removeprefix("IPY_MODEL_"), {}).get("state", {}) for c in children]
        if len(parts) != 3 or "max" not in parts[1]:  # not tqdm's [text, bar, text]
            return None
        done = round(10 * parts[1]["value"] / parts[1]["max"]) if parts[1]["max"] else 10
        left, right = (
            html.unescape(p["value"]).replace("\N{FIGURE SPACE}", " ") for p in parts[::2]
        )
        return f"{left}|{'█' * done}{' ' * (10 - done)}|{right}"

    changed = False
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(WIDGET_VIEW)
            text = final_text(view["model_id"]) if view else None
            if text is not None:
                output["data"]["text/plain"] = [text]
                changed = True
    if changed:
        atomic_write(executed, (json.dumps(notebook, indent=1, ensure_ascii=False) + "\n").encode())


def _cut_short(executed: Path) -> str:
    """A note when the executed copy is not whole JSON (papermill stopped while saving it)."""
    try:
        json.loads(executed.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return " (cut short while saving: not valid JSON, read it as text)"
    return ""


def _advice(path: Path, prof: config.Profile, parameters: dict, ename: str) -> str:
    """What to do about notebook ``path`` failing with ``ename``, from what is missing: the data
    of the dataset ``-p dataset=NAME`` asks for (the loader's message names its folder), else,
    for a missing file, the earlier notebooks that have no executed copy under this profile;
    "" when neither is missing."""
    from .datasets import catalog
    from .datasets.base import DatasetError

    dataset = parameters.get("dataset")
    if isinstance(dataset, str) and dataset in catalog.NAMES:
        try:
            catalog.open_split(dataset, "test", root=prof.data_dir)
        except DatasetError as error:
            return f"; -p dataset={dataset}: {error}"
    if ename != "FileNotFoundError":
        return ""
    executed = prof.runs_dir / "notebooks"
    earlier = [p for p in notebooks(prof.root) if p.stem < path.stem]
    missing = [p.stem[:2] for p in earlier if not (executed / f"{p.stem}.ipynb").is_file()]
    if not missing:
        return ""
    return (
        f"; notebook{'s' * (len(missing) > 1)} {', '.join(missing)} never ran under "
        f"{prof.name} (no executed copy in {executed}), run them first: "
        f"hierstudy study --profile {prof.name} --only {' '.join(missing)}"
    )


def _describe_cell(executed: Path) -> str:
    """'code cell K (`first line`)' of the cell that raised, counted as in the source notebook."""
    import nbformat

    number = 0
    try:
        cells = nbformat.read(str(executed), as_version=4).cells
    except (OSError, ValueError):  # a copy cut short, e.g. by a full disk
        return "an unknown cell"
    for cell in cells:
        if cell.cell_type != "code" or "injected-parameters" in cell.metadata.get("tags", []):
            continue
        number += 1
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            first_line = (cell.source.strip().splitlines() or [""])[0]
            return f"code cell {number} (`{first_line[:60]}`)"
    return "an unknown cell"


def _injectable(parameters: dict) -> dict:
    """Tuples as lists: papermill writes a tuple into the parameters cell as a string."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in parameters.items()}


def run(
    profile: str = "small",
    only: list[str] | None = None,
    force: bool = False,
    log_output: bool = False,
    parameters: dict | None = None,
) -> list[Path]:
    """Execute the series in order, stopping at the first failing notebook (then nothing is
    published); after success, :func:`publish` the profile's figures folder. The profile, the
    selection and the parameters are checked before the first notebook runs."""
    from tqdm.auto import tqdm

    config.load(profile)
    paths = notebooks(only=only)
    check_parameters(paths, parameters or {})
    done, seconds = [], {}
    bar = tqdm(paths, desc=f"study [{profile}]", unit="notebook", dynamic_ncols=True)
    cells = {"leave": False, "position": 1, "dynamic_ncols": True}
    with _ticking(bar), _streaming(log_output, bar):
        for path in bar:
            bar.set_postfix_str(path.stem)
            start = time.perf_counter()
            done.append(
                run_notebook(
                    path,
                    profile,
                    force=force,
                    log_output=log_output,
                    parameters=parameters,
                    progress={**cells, "desc": path.stem[:2]},
                )
            )
            seconds[path.stem] = time.perf_counter() - start
            bar.write(f"{path.stem}: {seconds[path.stem]:.1f} s")
    publish(profile, seconds)
    return done


@contextlib.contextmanager
def _ticking(bar, every: float = 1.0):
    """Redraw ``bar`` every ``every`` seconds, so its elapsed time runs during a long notebook
    (tqdm redraws only when it advances)."""
    stop = threading.Event()

    def tick():
        while not stop.wait(every):
            bar.refresh()

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@contextlib.contextmanager
def _streaming(log_output: bool, bar):
    """With ``--log-output``: papermill's log (each cell's stdout, stderr and values, which it
    logs at INFO and WARNING), to the terminal above the progress bars."""
    if not log_output:
        yield
        return

    class Above(logging.Handler):
        def emit(self, record):  # the cells' output only: the bars show where papermill is
            if record.funcName == "log_output_message":
                bar.write(record.getMessage().rstrip("\n"), file=sys.stderr)

    logger, handler = logging.getLogger("papermill"), Above(logging.INFO)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


BARE_STRING = re.compile(r"[\w.+\-/:]+")  # -p dataset=sop: a string without quotes


def parse_parameters(items: list[str]) -> dict:
    """``["dataset=sop", "dims=(64, 512)"]`` → ``{"dataset": "sop", "dims": (64, 512)}``: a
    Python literal, else a bare word (letters, digits, ``_.+-/:``) as a string; anything else,
    e.g. ``seeds=(0,``, is refused."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.isidentifier():
            raise StudyError(f"a parameter is NAME=VALUE, got {item!r}")
        try:
            out[name] = ast.literal_eval(value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            if not BARE_STRING.fullmatch(value):
                raise StudyError(
                    f"-p {item}: {value!r} is neither a Python literal nor a bare word; "
                    f"quote a string: {name}='...'"
                ) from None
            out[name] = value
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hierstudy", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    study = commands.add_parser("study", help="execute the notebook series")
    study.add_argument(
        "--profile",
        default=None,
        help=f"{' | '.join(sorted(config.PROFILES))} (default: $HIERSTUDY_PROFILE or small)",
    )
    study.add_argument(
        "--only",
        nargs="+",
        help="two-digit notebook numbers or full names, e.g. 01 03_kfr_training",
    )
    study.add_argument("--force", action="store_true", help="retrain instead of reusing runs/")
    study.add_argument(
        "--reuse-stale",
        action="store_true",
        help="reuse finished runs that other code made (HIERSTUDY_REUSE_STALE=1), with a warning",
    )
    study.add_argument("--log-output", action="store_true", help="stream cell output")
    study.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a parameter of the selected notebooks' parameters cell, e.g. -p dataset=sop "
        "(a Python literal, else a bare word as a string); outputs keep their names, so they "
        "replace the last run's",
    )
    wordnet = commands.add_parser("wordnet", help="make WordNet 3.0 available offline")
    wordnet.add_argument(
        "--install",
        action="store_true",
        help="apt-get install Debian's WordNet packages if needed (as root)",
    )
    args = parser.parse_args(argv)

    if args.command == "wordnet":
        from .hierarchy import wordnet as wn

        try:
            if args.install and wn.debian_wordnet_dir() is None:
                try:
                    wn.load_wordnet(allow_download=False)
                except wn.WordNetError:
                    print("installing Debian's wordnet-base and wordnet-sense-index ...")
                    if not wn.install_debian_wordnet():
                        print(
                            "hierstudy: apt-get could not install them (it needs root, apt-get "
                            "and a network or a local package mirror)",
                            file=sys.stderr,
                        )
            reader = wn.load_wordnet()
        except wn.WordNetError as error:
            print(f"hierstudy: {error}", file=sys.stderr)
            return 1
        print(f"WordNet {reader.get_version()} ready at {reader.root}")
        return 0
    if args.reuse_stale:  # read by runs.train in the notebooks' kernels
        os.environ["HIERSTUDY_REUSE_STALE"] = "1"
    try:
        profile = config.load(args.profile).name
        run(profile, args.only, args.force, args.log_output, parse_parameters(args.param))
    except (StudyError, config.ProfileError, config.ProjectError) as error:
        print(f"hierstudy: {error}", file=sys.stderr)
        return 1
    print(config.load(profile).figures_dir / "index.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
