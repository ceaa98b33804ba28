"""HTML: one self-contained page, every table with its notes and its plots embedded as `data:` URIs."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .table import Cell, Report, cells

if TYPE_CHECKING:
    from .plots import Plot

_HTML_STYLE = """
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { padding: 0.25em 0.6em; text-align: right; border-bottom: 1px solid #ddd; }
th { border-bottom: 2px solid #444; }
td:first-child, th:first-child { text-align: left; }
p.note { font-size: 0.85em; margin: 0.2em 0; color: #444; }
code { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; background: #f4f4f4; padding: 0 0.2em; }
img { max-width: 100%; margin: 0.5em 1em 0.5em 0; border: 1px solid #eee; }
"""


def _html_cell(cell: Cell) -> str:
    if cell.status and cell.text in ("failed", "skipped"):  # a runtime that was not measured: ✗n, the note says why
        return html.escape(cell.status)
    text = html.escape(cell.text) + (f" ± {html.escape(cell.std)}" if cell.std else "")
    if cell.best and text:
        text = f"<strong>{text}</strong>"
    status = f"{html.escape(cell.status)} " if cell.status else ""
    return status + text + (f"<sup>{html.escape(cell.marks)}</sup>" if cell.marks else "")


def note_html(text: str) -> str:
    """A note as HTML: escaped first, then each `code span` as <code> (so that no markup in it is ever live)."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def report_html(report: Report, plots: Sequence[Plot] = ()) -> str:
    """A self-contained page: every table with its notes, and its plots embedded as `data:image/png` URIs."""
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        '<head><meta charset="utf-8"><title>yoloab report</title>',
        f"<style>{_HTML_STYLE}</style></head>",
        "<body>",
        "<h1>yoloab report</h1>",
    ]
    for table in report.tables:
        header, body = cells(table)
        out.append(f"<h2>{html.escape(table.title)}</h2>")
        out.append("<table>")
        out.append("<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr></thead>")
        out.append("<tbody>")
        out += ["<tr>" + "".join(f"<td>{_html_cell(c)}</td>" for c in line) + "</tr>" for line in body]
        out.append("</tbody></table>")
        out += [f'<p class="note">{note_html(n)}</p>' for n in table.notes]
        if table.failures:
            out.append('<p class="note">Failed runs (not in the table, means or best marks):</p>')
            out.append("<ul>" + "".join(f"<li>{note_html(f)}</li>" for f in table.failures) + "</ul>")
        for p in (p for p in plots if p.table == table.name and p.format == "png"):
            data = base64.b64encode(p.data).decode("ascii")
            out.append(f'<img src="data:image/png;base64,{data}" alt="{html.escape(p.title)}">')
    out += ["</body>", "</html>", ""]
    return "\n".join(out)
