"""The product of a run of the series: :func:`publish` turns ``figures/<profile>/`` into the
headline table (``headline.csv``/``.md``, also between the README's
``<!-- headline:<profile>:start/end -->`` markers when it has them), the claims ledger's findings
(between ``<!-- findings:<profile>:start/end -->``), ``manifest.json`` (the
environment and each notebook's wall time) and ``index.md`` (everything, grouped by notebook, each
notebook's findings first).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

import pandas as pd

from hierstudy import config
from hierstudy.files import atomic_write
from hierstudy.report.io import environment, provenance, save_table, stamp_text

HEADLINE_NOTE = (
    "Mean ± std over seeds (no ± from one seed; — where a metric does not apply or was not "
    "measured): accuracy and MaxBoxAccV2 (mean of δ = 30/50/70, at the Grad-CAM layer notebook 07 "
    "reports) from notebook 07, the rest from notebook 06; both read from the results stored "
    "beside the runs. [headline.csv](headline.csv)"
)
OWN_FILES = {"index.md", "headline.csv", "headline.md", "manifest.json"}  # written by publish()
INDEXED = {".md", ".json", ".png"}  # tables, metrics, figures (the .pdf beside a .png is ignored)
FINDINGS = "findings"  # NN_findings.md: what notebook NN found (report.findings), shown in full


def _profile(profile: str | config.Profile) -> config.Profile:
    return profile if isinstance(profile, config.Profile) else config.load(profile)


def headline_markdown(table: pd.DataFrame) -> str:
    """The headline as a markdown table (what index.md and the README show)."""
    return table.to_markdown(index=False, disable_numparse=True)


def update_readme(readme: Path, block: str, profile: str, marker: str = "headline") -> bool:
    """Replace the text between ``<!-- <marker>:<profile>:start -->`` and ``…:end -->`` in
    ``readme`` by ``block`` (atomically); everything else stays. True when the file changed."""
    start, end = f"<!-- {marker}:{profile}:start -->", f"<!-- {marker}:{profile}:end -->"
    text = readme.read_text()
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        raise ValueError(f"{readme} needs exactly one {start} followed by one {end}")
    head, rest = text.split(start)
    new = f"{head}{start}\n{block.strip()}\n{end}{rest.split(end)[1]}"
    if new == text:
        return False
    atomic_write(readme, new.encode())
    return True


def write_manifest(profile: str | config.Profile, seconds: dict[str, float]) -> Path:
    """``figures/<profile>/manifest.json``: provenance, environment, the profile's settings and
    each notebook's wall time in seconds with the commit it ran at (entries of notebooks not run
    this time are kept from the previous manifest; ``complete``: every notebook has one)."""
    cfg = _profile(profile)
    path = cfg.figures_dir / "manifest.json"
    try:
        previous = json.loads(path.read_text()).get("notebooks", {})
    except (OSError, ValueError, AttributeError):
        previous = {}
    stems = [p.stem for p in _notebook_paths(cfg.root)]
    stamp = provenance(cfg)
    ran = {stem: {"seconds": round(s, 1), "commit": stamp["commit"]} for stem, s in seconds.items()}
    entries = {s: ran.get(s, previous.get(s)) for s in stems if s in ran or s in previous}
    manifest = {
        **stamp,
        **environment(str(cfg.torch_device())),
        "config": json.loads(json.dumps(dataclasses.asdict(cfg), default=str)),
        "notebooks": entries,
        "complete": len(entries) == len(stems),
    }
    return atomic_write(path, (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode())


def _notebook_paths(root: Path) -> list[Path]:
    return sorted((root / "notebooks").glob("[0-9][0-9]_*.py"))


def _notebook_titles(root: Path) -> dict[str, tuple[str, str]]:
    """{"06": ("06_retrieval_evaluation", "06 · Retrieval evaluation: …")} from each notebook's
    first markdown heading."""
    titles = {}
    for path in _notebook_paths(root):
        heading = re.search(r"^# # (.+)$", path.read_text(), re.MULTILINE)
        titles[path.stem[:2]] = (path.name, heading.group(1) if heading else path.stem)
    return titles


def write_index(profile: str | config.Profile, table: pd.DataFrame | None = None) -> Path:
    """``figures/<profile>/index.md``: the headline, then per notebook number its findings
    (``NN_findings.md``, in full) and every table (.md, with its .csv), JSON file and figure
    (.png, shown) of the folder, then links to the
    subfolders of notebooks run on other datasets."""
    from hierstudy.report.headline import headline  # torch: only when the headline is built

    cfg = _profile(profile)
    folder = cfg.figures_dir
    table = headline(cfg) if table is None else table
    groups: dict[str, list[Path]] = {}  # notebook number ("" for other files) -> its files
    for path in sorted(folder.glob("*")):
        if path.name[0] != "." and path.name not in OWN_FILES and path.suffix in INDEXED:
            number = path.name[:2] if re.match(r"\d\d_", path.name) else ""
            groups.setdefault(number, []).append(path)
    manifest = (folder / "manifest.json").is_file()
    lines = [
        f"# hierstudy results: profile `{cfg.name}`",
        "",
        f"{cfg.description}. Written by `hierstudy study` from the files of this folder"
        + (" (environment and wall times: [manifest.json](manifest.json))." if manifest else "."),
        "",
        "## Headline",
        "",
    ]
    if len(table):
        lines += [headline_markdown(table), "", HEADLINE_NOTE, ""]
    else:
        lines += ["No headline yet: notebooks 06 and 07 have not stored their results.", ""]
    titles = _notebook_titles(cfg.root)
    for number in sorted(groups, key=lambda n: (n == "", n)):
        name, title = titles.get(number, (None, f"{number} (no notebook)" if number else "Other"))
        lines += [f"## {title}", ""]
        if name:
            executed = cfg.runs_dir / "notebooks" / f"{Path(name).stem}.ipynb"
            link = os.path.relpath(executed, folder)
            ran = f" · executed, with its outputs: [{executed.name}]({link}) (local, git-ignored)"
            lines += [
                f"Notebook: [{name}](../../notebooks/{name})" + (ran if executed.is_file() else ""),
                "",
            ]
        files = groups[number]
        found = [p for p in files if p.name == f"{number}_{FINDINGS}.md"]
        lines += [found[0].read_text().strip(), ""] if found else []
        for p in (p for p in files if p.suffix == ".md" and p not in found):
            csv = f" ([csv]({p.stem}.csv))" if p.with_suffix(".csv").is_file() else ""
            lines.append(f"- table [{p.stem}]({p.name}){csv}")
        lines += [f"- json [{p.name}]({p.name})" for p in files if p.suffix == ".json"]
        for p in (p for p in files if p.suffix == ".png"):  # pdfs are git-ignored: not linked
            lines += ["", f"**{p.stem}**", "", f"![{p.stem}]({p.name})"]
        lines.append("")
    others = [p for p in sorted(folder.iterdir()) if p.is_dir() and any(p.glob("*.json"))]
    if others:  # notebooks run with -p dataset=... (Profile.writing_for)
        lines += ["## Notebooks run on other datasets", ""]
        lines += [
            f"- [{p.name}/]({p.name}/): "
            + ", ".join(f"[{q.name}]({p.name}/{q.name})" for q in sorted(p.glob("*.json")))
            for p in others
        ]
        lines.append("")
    lines += [f"<sub>{stamp_text(provenance(cfg))}</sub>", ""]
    return atomic_write(folder / "index.md", "\n".join(lines).encode())


def publish(profile: str | config.Profile, seconds: dict[str, float]) -> Path:
    """After a run: the headline (table, README block), the claims ledger's findings (README
    block), the manifest and the index; returns the index's path. A README block is rewritten
    only where the README has this profile's markers."""
    from hierstudy.report.headline import headline  # torch: only when the headline is built

    cfg = _profile(profile)
    table = headline(cfg)
    if len(table):
        save_table(table, "headline", cfg)
    write_manifest(cfg, seconds)
    readme = cfg.root / "README.md"
    marked = readme.is_file() and f"<!-- headline:{cfg.name}:start -->" in readme.read_text()
    if len(table) and marked:
        update_readme(readme, headline_markdown(table), cfg.name)
    if readme.is_file() and f"<!-- findings:{cfg.name}:start -->" in readme.read_text():
        from hierstudy.report.claims import findings_markdown, ledger

        update_readme(readme, findings_markdown(ledger(cfg), cfg.name), cfg.name, "findings")
    return write_index(cfg, table)
