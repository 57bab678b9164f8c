"""The comparison report of several generators on one dataset: one row per generator (failed
fits included, with their one-line error), a grouped bar chart of the key metrics and the
privacy-fidelity trade-off, as an offline HTML page and a Markdown table.

It shows logged metrics only, never data, so it has no real-data mode.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reports import plots
from reports.audit_report import (
    Markup,
    check_outputs,
    esc,
    figure,
    fmt,
    md_cell,
    md_table,
    page,
    section,
    table,
)
from synth.errors import ParamError
from synth.io import write_text_atomic

STATUSES = ("FINISHED", "FAILED")
FIDELITY_AXIS = "fidelity.quality"
PRIVACY_AXIS = "privacy.closest_distance.auc"
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


@dataclass(frozen=True, kw_only=True, eq=False)
class ComparisonReport:
    """One row per generator: ``{"generator", "status", "run_id", "metrics", "verdict",
    "error", "report"}``; ``columns`` are the key metrics shown, in order."""

    title: str
    meta: dict[str, str]
    rows: list[dict]
    columns: list[str]


def write_comparison_report(report: ComparisonReport, html_path: Path, markdown_path: Path) -> None:
    """Render ``report`` and write the HTML page and the Markdown table, each atomically."""
    check_outputs(html_path, markdown_path)
    _check_rows(report.rows)
    write_text_atomic(Path(html_path), _html(report))
    write_text_atomic(Path(markdown_path), _markdown(report))


def _check_rows(rows: list[dict]) -> None:
    problems = []
    for i, row in enumerate(rows):
        if not row.get("generator"):
            problems.append(f"row {i} names no generator")
        if row.get("status") not in STATUSES:
            problems.append(
                f"row {i} status ({row.get('status')!r}) must be one of {', '.join(STATUSES)}"
            )
    if problems:
        raise ParamError("comparison rows: " + "; ".join(problems))


def _one_line(text: Any, limit: int = 200) -> str:
    line = str(text or "").strip().splitlines()[0] if str(text or "").strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _verdict(row: dict) -> str:
    if row["status"] == "FAILED":
        return "n/a"
    return {True: "PASS", False: "FAIL"}.get(row.get("verdict"), "no policy")


def _value(row: dict, name: str) -> float | None:
    value = (row.get("metrics") or {}).get(name)
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _header(report: ComparisonReport) -> list[str]:
    header = ["generator", "status", "verdict", *report.columns, "run id"]
    if any(r["status"] == "FAILED" for r in report.rows):
        header.append("error")
    return header


def _cells(report: ComparisonReport, row: dict, *, link: bool) -> list[Any]:
    failed = row["status"] == "FAILED"
    cells: list[Any] = [row["generator"], row["status"], _verdict(row)]
    cells += ["" if failed else fmt(_value(row, name)) for name in report.columns]
    name = row.get("run_id") or ""
    target = row.get("report")
    if link and target and not _SCHEME.match(str(target)):
        cells.append(Markup(f'<a href="{esc(target)}">{esc(name or "report")}</a>'))
    else:
        cells.append(name)
    if any(r["status"] == "FAILED" for r in report.rows):
        cells.append(_one_line(row.get("error")) if failed else "")
    return cells


def _html(report: ComparisonReport) -> str:
    finished = [r for r in report.rows if r["status"] == "FINISHED"]
    body = [
        f"<h1>{esc(report.title)}</h1>",
        table(("", ""), report.meta.items()),
        section(
            "generators",
            "Generators",
            [table(_header(report), [_cells(report, r, link=True) for r in report.rows])],
        ),
    ]
    shown = [m for m in report.columns if any(_value(r, m) is not None for r in finished)]
    charts = []
    if shown and finished:
        panels = {}  # scores and costs apart: seconds would dwarf scores on one axis
        for title, names in (
            ("key scores", [m for m in shown if not m.startswith("cost.")]),
            ("cost", [m for m in shown if m.startswith("cost.")]),
        ):
            if names:
                series = {r["generator"]: [_value(r, m) for m in names] for r in finished}
                panels[title] = (names, series)
        charts.append(
            figure(
                plots.grouped_bars(panels),
                "key metrics",
                "Key scores and costs per generator (missing values left out; see each metric's "
                "direction in the audit reports).",
            )
        )
    points = [
        (r["generator"], _value(r, FIDELITY_AXIS), _value(r, PRIVACY_AXIS))
        for r in finished
        if _value(r, FIDELITY_AXIS) is not None and _value(r, PRIVACY_AXIS) is not None
    ]
    if points:
        charts.append(
            figure(
                plots.scatter(points, xlabel=FIDELITY_AXIS, ylabel=PRIVACY_AXIS, reference_y=0.5),
                "privacy-fidelity trade-off",
                "Privacy against fidelity: the best generators sit right (faithful) and low (the "
                "closest-distance attack at chance, 0.5).",
            )
        )
    body.append(section("charts", "Charts", charts or ["<p>no metrics to plot.</p>"]))
    return page(report.title, body)


def _markdown(report: ComparisonReport) -> str:
    lines = [f"# {md_cell(report.title)}", ""]
    lines += [f"- {md_cell(k)}: {md_cell(v)}" for k, v in report.meta.items()]
    rows = [_cells(report, r, link=False) for r in report.rows]
    lines += ["", md_table(_header(report), rows)]
    return "\n".join(lines) + "\n"
