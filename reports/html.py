"""The kit every report page is built with: escaping, number formatting, tables, badges, figures,
the page shell and its CSS, for HTML and for Markdown.

Pages are self-contained and offline: the shell loads nothing, figures are inline data URIs
(:mod:`reports.plots`), and :func:`esc` keeps anything that reads as an address out of the text.
The kit knows nothing of audits or comparisons; what a page shows is decided by its own module.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synth.errors import ParamError
from synth.io import check_output_folder


class Markup(str):
    """Text that is already HTML (escaped where needed)."""


_HTTP = re.compile(r"(h)(ttp)", re.IGNORECASE)


def esc(value: Any) -> str:
    """HTML-escaped text. ``http`` is written with a character reference for its first letter:
    it reads the same, and the page never holds anything that looks like an address."""
    return _HTTP.sub(lambda m: f"&#{ord(m[1])};{m[2]}", html.escape(str(value)))


def fmt(value: Any) -> str:
    """A number for a table: 4 significant digits, ``n/a`` when missing."""
    if value is None:
        return "n/a"
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return "n/a" if not math.isfinite(value) else f"{value:.4g}"
    return str(value)


def interval(ci: tuple[float, float] | None) -> str:
    """A confidence interval as ``[low, high]``, empty when there is none."""
    return "" if ci is None else f"[{fmt(ci[0])}, {fmt(ci[1])}]"


def _cell(value: Any) -> str:
    """A table cell: escaped, unless it is :class:`Markup` already."""
    return value if isinstance(value, Markup) else esc(value)


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], *, classes: str = "") -> str:
    """An HTML table; cells are escaped unless they are :class:`Markup`."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f'<div class="wide"><table class="{classes}"><tr>{head}</tr>{body}</table></div>'


def pairs_table(items: Iterable[tuple[Any, Any]]) -> str:
    """A table of names and values, without a header row."""
    body = "".join(f"<tr><th>{esc(k)}</th><td>{_cell(v)}</td></tr>" for k, v in items)
    return f'<div class="wide"><table>{body}</table></div>'


def badge(text: str, css: str) -> Markup:
    """A coloured verdict in a table cell; ``css`` is one of the CSS's ``pass``, ``fail`` and
    ``none``, so a verdict reads the same colour on every page."""
    return Markup(f'<span class="badge {css}">{esc(text)}</span>')


def figure(uri: str, alt: str, caption: str) -> str:
    """An inline image (a data URI from :mod:`reports.plots`) with its caption."""
    return (
        f'<figure><img src="{uri}" alt="{esc(alt)}">'
        f'<figcaption class="caption">{esc(caption)}</figcaption></figure>'
    )


_TAG = re.compile(r"<(?=[A-Za-z/!?])")


def md_cell(value: Any) -> str:
    """Text for a Markdown table cell: one line, pipes escaped, nothing read as an HTML tag."""
    return _TAG.sub("&lt;", str(value).replace("\n", " ").replace("|", "\\|"))


def md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown table; every cell goes through :func:`md_cell`."""
    lines = ["| " + " | ".join(md_cell(h) for h in header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(md_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1150px;margin:1.5em auto;
padding:0 1em;color:#222;line-height:1.4}
h1{margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.88em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3}.wide{overflow-x:auto}
.banner{display:inline-block;font-size:1.7em;font-weight:bold;color:#fff;padding:.3em .9em;
border-radius:4px}.badge{color:#fff;font-weight:bold;padding:.05em .5em;border-radius:3px}
.pass{background:#2e7d32}.fail{background:#c62828}.none{background:#757575}
.mode{padding:.5em .8em;border-left:6px solid #2e7d32;background:#eef7ee}
.mode.real{border-color:#c62828;background:#fdecea;font-weight:bold}
.caption,.note{color:#555;font-size:.9em}img{max-width:100%}figure{margin:1em 0}
nav a{margin-right:.8em}
"""


def page(title: str, body: Sequence[str]) -> str:
    """The whole HTML document: the CSS inline, nothing loaded from elsewhere."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def section(anchor: str, heading: str, parts: Sequence[str]) -> str:
    """A section under an ``<h2>`` whose id is ``anchor``, for the page's navigation links."""
    return f'<section><h2 id="{anchor}">{esc(heading)}</h2>\n' + "\n".join(parts) + "</section>"


def check_outputs(*paths: Path) -> None:
    """Fail before rendering when an output cannot be written."""
    if len({Path(p).resolve() for p in paths}) < len(paths):
        raise ParamError("the HTML and Markdown outputs must be different files")
    for path in paths:
        check_output_folder(path)
