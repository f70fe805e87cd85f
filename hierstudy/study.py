"""Run the notebook series with papermill, and the ``hierstudy`` command line.

``hierstudy study --profile smoke --only 01`` executes ``notebooks/01_*.py`` (jupytext percent
files, converted in memory) with ``profile`` injected into the cell tagged ``parameters``. The
executed copy goes to ``runs/<profile>/notebooks/`` (kept when a notebook fails, for inspection);
figures and tables go to ``figures/<profile>/`` through :mod:`hierstudy.report`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from . import config


class StudyError(RuntimeError):
    """A notebook of the series failed; the message names the notebook, the cell and the error."""


def notebooks(root: Path | None = None, only: list[str] | None = None) -> list[Path]:
    """The numbered notebooks in order, or those whose number or name is in ``only``."""
    folder = (root or config.project_root()) / "notebooks"
    found = sorted(folder.glob("[0-9][0-9]_*.py"))
    if not found:
        raise StudyError(f"no notebooks found in {folder}")
    if only:
        wanted = [p for p in found if any(p.stem.startswith(o) or p.stem == o for o in only)]
        missing = [o for o in only if not any(p.stem.startswith(o) for p in found)]
        if missing:
            raise StudyError(f"no notebook matches {missing}; have {[p.stem for p in found]}")
        found = wanted
    return found


def run_notebook(path: Path, profile: str, *, force: bool = False, log_output: bool = False) -> Path:
    """Execute one notebook under ``profile``; return the executed copy's path."""
    import jupytext
    import papermill
    from papermill.exceptions import PapermillExecutionError

    prof = config.load(profile)
    out = prof.runs_dir / "notebooks" / f"{path.stem}.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    notebook = jupytext.read(path)
    env = {"HIERSTUDY_ROOT": str(prof.root), "HIERSTUDY_PROFILE": profile, "MPLBACKEND": "Agg"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        papermill.execute_notebook(
            notebook,
            str(out),
            parameters={"profile": profile, "force": force},
            kernel_name="python3",
            language="python",
            cwd=str(prof.root),
            progress_bar=False,
            log_output=log_output,
        )
    except PapermillExecutionError as error:
        raise StudyError(
            f"notebook {path.name} failed in {_describe_cell(out)} "
            f"({error.ename}: {error.evalue}); executed copy kept at {out}"
        ) from None
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return out


def _describe_cell(executed: Path) -> str:
    """'code cell K (`first line`)' of the cell that raised, counted as in the source notebook."""
    import nbformat

    number = 0
    for cell in nbformat.read(str(executed), as_version=4).cells:
        if cell.cell_type != "code" or "injected-parameters" in cell.metadata.get("tags", []):
            continue
        number += 1
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            first_line = (cell.source.strip().splitlines() or [""])[0]
            return f"code cell {number} (`{first_line[:60]}`)"
    return "an unknown cell"


def run(profile: str = "small", only: list[str] | None = None, force: bool = False,
        log_output: bool = False) -> list[Path]:  # fmt: skip
    """Execute the series in order, stopping at the first failing notebook."""
    from tqdm.auto import tqdm

    paths = notebooks(only=only)
    done = []
    bar = tqdm(paths, desc=f"study [{profile}]", unit="notebook")
    for path in bar:
        bar.set_postfix_str(path.stem)
        start = time.perf_counter()
        done.append(run_notebook(path, profile, force=force, log_output=log_output))
        bar.write(f"{path.stem}: {time.perf_counter() - start:.1f} s")
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hierstudy", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    study = commands.add_parser("study", help="execute the notebook series")
    study.add_argument("--profile", default=None, choices=sorted(config.PROFILES),
                       help="smoke | small | paper (default: $HIERSTUDY_PROFILE or small)")  # fmt: skip
    study.add_argument("--only", nargs="+", help="notebook numbers or names, e.g. 01 03")
    study.add_argument("--force", action="store_true", help="retrain instead of reusing runs/")
    study.add_argument("--log-output", action="store_true", help="stream cell output")
    wordnet = commands.add_parser("wordnet", help="make WordNet 3.0 available offline")
    wordnet.add_argument("--install", action="store_true",
                         help="apt-get install Debian's WordNet packages if needed (as root)")  # fmt: skip
    args = parser.parse_args(argv)

    if args.command == "wordnet":
        from . import wordnet as wn

        if args.install and wn.debian_wordnet_dir() is None:
            try:
                wn.load_wordnet(allow_download=False)
            except wn.WordNetError:
                print("installing Debian's wordnet-base and wordnet-sense-index ...")
                wn.install_debian_wordnet()
        reader = wn.load_wordnet()
        print(f"WordNet {reader.get_version()} ready at {reader.root}")
        return 0
    profile = args.profile or config.load().name
    try:
        run(profile, args.only, args.force, args.log_output)
    except StudyError as error:
        print(f"hierstudy: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
