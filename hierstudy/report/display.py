"""How a notebook shows what it found: the "what we found" sentence as Markdown bullets in
Jupyter (its plain text for papermill's log and outside IPython), wide tables in parts that fit
the window (:func:`readable`), and floats in displayed tables to three significant digits
(:func:`table_format`, applied by :func:`hierstudy.report.use_style`).
"""

from __future__ import annotations

import re
import sys

from hierstudy.files import atomic_write
from hierstudy.report.tables import MISSING

MARKDOWN_SPECIAL = re.compile(r"([\\*_`$])")  # emphasis, code, and $ (math in Jupyter)


def _split(text: str, separator: str, limit: int | None = None) -> list[str]:
    """``text`` split at ``separator`` outside parentheses and brackets (at most ``limit`` times)."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(text):
        if text[i] in "([":
            depth += 1
        elif text[i] in ")]":
            depth -= 1
        elif depth == 0 and text.startswith(separator, i) and len(parts) != limit:
            parts.append(text[start:i])
            i = start = i + len(separator)
            continue
        i += 1
    return [*parts, text[start:]]


def findings_markdown(found: str | list[str]) -> tuple[str, str]:
    """(Markdown, plain text) of a notebook's findings. A sentence "Heading: a; b; c." becomes the
    bold heading and one bullet per clause (split outside parentheses); a list is the heading,
    then its bullets."""
    if isinstance(found, str):
        head = _split(found, ": ", limit=1)
        heading, rest = head if len(head) == 2 else (found, "")
        items = [s.strip().rstrip(".") for s in _split(rest, "; ") if s.strip()]
        plain = found
    else:
        heading, items = found[0], list(found[1:])
        plain = " ".join(found)

    def escape(text: str) -> str:
        return MARKDOWN_SPECIAL.sub(r"\\\1", text)

    lines = [f"**{escape(heading.strip().rstrip(':.'))}**", ""]
    lines += [f"- {escape(item)}" for item in items]
    return "\n".join(lines), plain


def findings(found: str | list[str], name: str | None = None, profile=None) -> None:
    """Show a notebook's findings (:func:`findings_markdown`) as Markdown in Jupyter, as plain
    text elsewhere. With ``name`` and ``profile`` the Markdown is also saved as
    ``figures/<profile>/<name>.md``, which the results' ``index.md`` shows under its notebook;
    under ``smoke`` a last bullet says the numbers only show that the notebook runs."""
    if name is not None and profile is None:
        raise ValueError(f"findings {name!r}: saving them needs the profile (its figures folder)")
    if getattr(profile, "name", None) == "smoke":
        note = f"under the smoke profile ({profile.description}) these numbers only show that the notebook runs"
        found = [*found, note] if isinstance(found, list) else f"{found.rstrip('.')}; {note}."
    markdown, plain = findings_markdown(found)
    if name is not None:
        atomic_write(profile.figures_dir / f"{name}.md", f"{markdown}\n".encode())
    shell = sys.modules["IPython"].get_ipython() if "IPython" in sys.modules else None
    if shell is None:
        print(plain)
        return
    from IPython.display import display

    display({"text/markdown": markdown, "text/plain": plain}, raw=True)


def readable(table, keys: list[str], per_part: int = 5) -> tuple[dict[str, object], list]:
    """A wide table as it reads in a notebook: ({column: value} of the columns with one value on
    every row, said once; the rest as parts of ``keys`` + at most ``per_part`` other columns)."""
    same = {c: table[c].iloc[0] for c in table if c not in keys and table[c].nunique() <= 1}
    rest = [c for c in table if c not in keys and c not in same]
    parts = [rest[i : i + per_part] for i in range(0, len(rest), per_part)] or [[]]
    return same, [table[keys + part] for part in parts]


def significant(x: float) -> str:
    """A float to three significant digits (whole numbers from 1,000 to 999,999)."""
    return f"{x:,.0f}" if 1e3 <= abs(x) < 1e6 else f"{x:.3g}"


def table_format() -> None:
    """Displayed DataFrames show floats to three significant digits and missing values as "—"
    (in Jupyter; saved tables keep their own format)."""
    import pandas as pd

    pd.set_option("display.float_format", significant)
    shell = sys.modules["IPython"].get_ipython() if "IPython" in sys.modules else None
    if shell is None:
        return
    formatters = shell.display_formatter.formatters
    formatters["text/html"].for_type(
        pd.DataFrame, lambda t: t.to_html(na_rep=MISSING, float_format=significant, notebook=True)
    )
    formatters["text/plain"].for_type(
        pd.DataFrame, lambda t, p, cycle: p.text(t.to_string(na_rep=MISSING))
    )
