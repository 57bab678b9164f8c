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

from audit.scores import key_metrics
from reports import plots
from reports.html import (
    Markup,
    badge,
    check_outputs,
    esc,
    figure,
    fmt,
    md_cell,
    md_table,
    page,
    pairs_table,
    section,
    table,
)
from synth.errors import ParamError
from synth.io import write_text_atomic

STATUSES = ("FINISHED", "FAILED")
FIDELITY_AXIS = "fidelity.quality"
PRIVACY_AXIS = "privacy.closest_distance.auc"
_HIGHER = ("quality", "column_shapes", "column_pair_trends", "importance_spearman")


def better(metric: str) -> str:
    """Which way is better for ``metric``: "higher" or "lower"."""
    return "higher" if metric.rsplit(".", 1)[-1] in _HIGHER or metric.endswith(_HIGHER) else "lower"


def heading(metric: str) -> str:
    """A metric's short table heading with an arrow for which way is better."""
    return f"{key_metrics().get(metric, metric)} {'↑' if better(metric) == 'higher' else '↓'}"


_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
Row = dict[str, Any]
"""One generator's row; :class:`ComparisonReport` lists its keys."""


@dataclass(frozen=True, kw_only=True, eq=False)
class ComparisonReport:
    """One row per generator: ``{"generator", "status", "run_id", "metrics", "verdict",
    "error", "report"}`` and optionally ``"reference"`` (a reference generator, left out of the
    summary's picks); ``columns`` are the key metrics shown, in order."""

    title: str
    meta: dict[str, str]
    rows: list[Row]
    columns: list[str]


def write_comparison_report(report: ComparisonReport, html_path: Path, markdown_path: Path) -> None:
    """Render ``report`` and write the HTML page and the Markdown table, each atomically."""
    check_outputs(html_path, markdown_path)
    _check_rows(report.rows)
    write_text_atomic(Path(html_path), _html(report))
    write_text_atomic(Path(markdown_path), _markdown(report))


def _check_rows(rows: list[Row]) -> None:
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


def _verdict(row: Row) -> str:
    if row["status"] == "FAILED":
        return "n/a"
    verdict = row.get("verdict")
    if verdict is True:
        return "PASS"
    return "FAIL" if verdict is False else "no policy"


def _value(row: Row, name: str) -> float | None:
    """A row's metric as a finite number; None when it was not logged, is not a number, or is
    not finite (a NaN would sort and plot as if it were a score)."""
    value = (row.get("metrics") or {}).get(name)
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _header(report: ComparisonReport) -> list[str]:
    header = ["generator", "verdict", *(heading(c) for c in report.columns), "report", "run"]
    if any(r["status"] == "FAILED" for r in report.rows):
        header.append("error")
    return header


def _cells(report: ComparisonReport, row: Row, *, link: bool) -> list[Any]:
    failed = row["status"] == "FAILED"
    verdict = "FAILED" if failed else _verdict(row)
    css = {"PASS": "pass", "FAIL": "fail"}.get(verdict, "none")
    cells: list[Any] = [
        row["generator"],
        badge(verdict, css) if link else verdict,
    ]
    cells += ["" if failed else fmt(_value(row, name)) for name in report.columns]
    target = row.get("report")
    if link and target and not _SCHEME.match(str(target)):
        cells.append(Markup(f'<a href="{esc(target)}">audit report</a>'))
    else:
        cells.append(target or "")
    cells.append((row.get("run_id") or "")[:8])  # the full id is in comparison.json and MLflow
    if any(r["status"] == "FAILED" for r in report.rows):
        cells.append(_one_line(row.get("error"), 80) if failed else "")
    return cells


def _summary(report: ComparisonReport) -> str:
    """One paragraph a privacy officer can read first."""
    finished = [r for r in report.rows if r["status"] == "FINISHED"]
    passed = [r for r in finished if r.get("verdict") is True]
    failed = [r for r in finished if r.get("verdict") is False]
    broken = [r for r in report.rows if r["status"] == "FAILED"]
    parts = [f"{len(report.rows)} generators on the same split, seed and attacks."]
    if any(r.get("verdict") is not None for r in finished):
        parts.append(f"Passed the release policy: {_names(passed)}. Failed it: {_names(failed)} "
                     "(the failing checks are at the top of each one's audit report).")  # fmt: skip
    if broken:
        parts.append(f"Could not run: {_names(broken)} (the error is in the table).")
    candidates = [r for r in finished if not r.get("reference")]
    references = [r for r in report.rows if r.get("reference")]
    if references:
        parts.append(f"References (they calibrate the audit, never for release): "
                     f"{_names(references)}.")  # fmt: skip
    for metric, word, pick in (
        (FIDELITY_AXIS, "Most faithful", max),
        (PRIVACY_AXIS, "Closest to chance for the closest-distance attack", None),
        ("cost.fit_seconds", "Fastest fit", min),
    ):
        scored = [(r, v) for r in candidates if (v := _value(r, metric)) is not None]
        if not scored:
            continue
        if pick is None:
            row, value = min(scored, key=lambda item: abs(item[1] - 0.5))
        else:
            row, value = pick(scored, key=lambda item: item[1])
        parts.append(f"{word} ({key_metrics().get(metric, metric)}): {row['generator']}, "
                     f"{fmt(value)}.")  # fmt: skip
    text = "<p>" + esc(" ".join(parts)) + "</p>"
    if any(r.get("epsilon") is not None for r in finished):
        text += (
            '<p class="note">The DP generators draw their noise from the operating system: '
            "another run with the same seed gives other tables and scores that move with them "
            "(MST at epsilon 1 on NMES1988: 2-way TVD within about 0.002 between fits, utility "
            "gaps within several hundredths; the same MST scored a gap of 0.22 in one run and "
            "0.05 in another). Read close differences as ties, or average a few runs.</p>"
        )
    return text


def _names(rows: list[Row]) -> str:
    return ", ".join(r["generator"] for r in rows) or "none"


def _trade_off(rows: list[Row]) -> list[tuple[str, float, float]]:
    """(generator, fidelity, privacy) of the rows that have both axes, for the scatter plot."""
    points = []
    for row in rows:
        x, y = _value(row, FIDELITY_AXIS), _value(row, PRIVACY_AXIS)
        if x is not None and y is not None:
            points.append((str(row["generator"]), x, y))
    return points


def _legend(report: ComparisonReport) -> str:
    items = "; ".join(f"{heading(c)} = {c} ({better(c)} is better)" for c in report.columns)
    return f'<p class="note">{esc(items)}.</p>'


def _html(report: ComparisonReport) -> str:
    finished = [r for r in report.rows if r["status"] == "FINISHED"]
    body = [
        f"<h1>{esc(report.title)}</h1>",
        _summary(report),
        section(
            "generators",
            "Generators",
            [
                table(_header(report), [_cells(report, r, link=True) for r in report.rows]),
                _legend(report),
            ],
        ),
    ]
    shown = [m for m in report.columns if any(_value(r, m) is not None for r in finished)]
    charts = []
    if shown and finished:
        panels = {}  # by direction, and costs apart: seconds would dwarf scores on one axis
        for title, names in (
            ("higher is better", [m for m in shown if better(m) == "higher"]),
            ("lower is better", [m for m in shown
                                 if better(m) == "lower" and not m.startswith("cost.")]),
            ("cost, seconds (lower is better)", [m for m in shown if m.startswith("cost.")]),
        ):  # fmt: skip
            if names:
                series = {r["generator"]: [_value(r, m) for m in names] for r in finished}
                panels[title] = ([key_metrics().get(m, m) for m in names], series)
        charts.append(
            figure(
                plots.grouped_bars(panels),
                "key metrics",
                "Key scores and costs per generator, one panel per direction (each bar carries "
                "its value; a missing one was not measured).",
            )
        )
    points = _trade_off(finished)
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
    body.append(section("about", "About this comparison", [pairs_table(report.meta.items())]))
    return page(report.title, body)


def _markdown(report: ComparisonReport) -> str:
    lines = [f"# {md_cell(report.title)}", ""]
    lines += [f"- {md_cell(k)}: {md_cell(v)}" for k, v in report.meta.items()]
    rows = [_cells(report, r, link=False) for r in report.rows]
    lines += ["", md_table(_header(report), rows)]
    return "\n".join(lines) + "\n"


def write_comparison(
    html_path: Path, *, title: str, meta: dict[str, str], rows: list[dict], columns: list[str]
) -> list[Path]:
    """The comparison page of ``audit.jobs.run_compare`` (its ``render_comparison``): the HTML
    page and its Markdown beside it; returns both, to be logged to the parent run."""
    html_path = Path(html_path)
    report = ComparisonReport(title=title, meta=meta, rows=rows, columns=columns)
    write_comparison_report(report, html_path, html_path.with_suffix(".md"))
    return [html_path, html_path.with_suffix(".md")]
