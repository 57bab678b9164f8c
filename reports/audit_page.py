"""The audit report of one generator: a self-contained offline HTML page and a Markdown summary.

The page opens with the release verdict, then the summary, fidelity, utility, privacy, the most
exposed records and the cost, each under an ``<h2>`` with a stable id (:data:`SECTIONS`). Plots
are inline PNGs (:mod:`reports.plots`); the page loads nothing and links nowhere.

Privacy rule: by default (``show_real=False``) no real record and no real value appears; what real
data may contribute is computed in :mod:`reports.aggregates`, which says how. ``show_real=True``
is for the data owner: no suppression, and the most exposed records are listed with their values.
The Markdown summary never holds a real value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from reports import plots
from reports.aggregates import (
    MIN_CELL,
    MISSING,
    RARE,
    SCORE_HEADER,
    association_difference,
    column_detail,
    cost_rows,
    exposed,
    group_points,
    is_key,
    membership_curves,
    privacy_records,
    score_rows,
    shared_columns,
    utility_panels,
    worst_marginals,
)
from reports.html import (
    check_outputs,
    esc,
    figure,
    fmt,
    interval,
    md_cell,
    md_table,
    page,
    pairs_table,
    section,
    table,
)
from synth.io import write_text_atomic
from synth.schema import Schema

if TYPE_CHECKING:
    from audit.gate import Verdict
    from audit.generate import AuditOutcome
    from audit.scores import Score, Scorecard

SECTIONS = ("verdict", "summary", "fidelity", "utility", "privacy", "exposed", "cost")


@dataclass(frozen=True, kw_only=True, eq=False)
class AuditReport:
    """Everything one audit report shows. ``train`` is used for aggregates only, unless
    ``show_real``; ``privacy`` holds the audit's per-record results (rows by index)."""

    title: str
    meta: dict[str, str]
    scorecard: Scorecard
    verdict: Verdict | None
    privacy: dict[str, Any]
    threat_models: dict[str, dict[str, Any]]
    train: pd.DataFrame
    synthetic: pd.DataFrame
    schema: Schema
    cost: dict[str, float]
    show_real: bool = False
    synthetic_is_real: bool = False  # the generator releases training rows (identity)


def write_audit_report(report: AuditReport, html_path: Path, markdown_path: Path) -> None:
    """Render ``report`` and write the HTML page and the Markdown summary, each atomically."""
    check_outputs(html_path, markdown_path)
    records = privacy_records(report.privacy)
    page = _audit_html(report, records)
    summary = _audit_markdown(report, records)
    write_text_atomic(Path(html_path), page)
    write_text_atomic(Path(markdown_path), summary)


def report_writer(
    html_path: Path, *, show_real: bool = False
) -> Callable[[AuditOutcome], list[Path]]:
    """The report step of an audit job (``audit.generate.GenerateJob.render``): writes the HTML
    report and its Markdown summary beside it, and returns both paths to be logged."""

    def render(outcome: AuditOutcome) -> list[Path]:
        """The files to log to the run: none for a show-real report (it holds real values,
        which never go to MLflow); it stays where the user asked for it."""
        markdown_path = Path(html_path).with_suffix(".md")
        report = from_outcome(outcome, show_real=show_real)
        write_audit_report(report, Path(html_path), markdown_path)
        return [] if show_real else [Path(html_path), markdown_path]

    return render


def from_outcome(outcome: AuditOutcome, *, show_real: bool = False) -> AuditReport:
    """The report of an audit job's outcome: the same results, titled by generator and dataset
    (``audit`` does not import ``reports``, so the page adapts to the job, not the reverse)."""
    return AuditReport(
        title=f"synthguard audit: {outcome.meta['generator']} on {outcome.meta['dataset']}",
        meta=outcome.meta, scorecard=outcome.scorecard, verdict=outcome.verdict,
        privacy=outcome.privacy, threat_models=outcome.threat_models, train=outcome.train,
        synthetic=outcome.synthetic, schema=outcome.schema, cost=outcome.cost,
        show_real=show_real, synthetic_is_real=outcome.synthetic_is_real,
    )  # fmt: skip


def format_value(value: Any) -> str:
    """A real record's value as the ``show_real`` tables print it."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return MISSING
    if isinstance(value, float | np.floating):
        return f"{float(value):.6g}"
    return str(value)


# ---- the page ---------------------------------------------------------------------------------


def _audit_html(report: AuditReport, records: dict[str, list[Any]]) -> str:
    mode_css, mode_text = _mode(report)
    links = " ".join(f'<a href="#{s}">{s}</a>' for s in SECTIONS)
    cost = cost_rows(report.cost, report.scorecard)
    body = [
        f"<h1>{esc(report.title)}</h1>",
        f'<p class="mode {mode_css}">{esc(mode_text)}</p>',
        f"<nav>{links}</nav>",
        _verdict_section(report.verdict),
        _summary_section(report),
        _fidelity_section(report),
        _utility_section(report.scorecard),
        _privacy_section(report, records),
        _exposed_section(report, records),
        section(
            "cost", "Cost", [table(("cost", "value"), cost) if cost else "<p>not recorded.</p>"]
        ),
    ]
    return page(report.title, body)


def _mode(report: AuditReport) -> tuple[str, str]:
    """The CSS class and the sentence that say, above everything, whether real values appear."""
    if report.show_real:
        return "real", (
            "show-real mode: this report contains real training records and unsuppressed real "
            "marginals. Do not share it beyond the data owner."
        )
    return "safe", (
        "Safe mode: no real record or real value appears. Real marginals are aggregates whose "
        f"cells holding fewer than {MIN_CELL} training records are suppressed; records are named "
        "by row index only."
    )


def _verdict_status(verdict: Verdict | None) -> tuple[str, str]:
    """The CSS class and the word of a verdict, the same in the page's banner and the summary."""
    if verdict is None:
        return "none", "NO POLICY"
    return ("pass", "PASS") if verdict.passed else ("fail", "FAIL")


def _verdict_section(verdict: Verdict | None) -> str:
    css, word = _verdict_status(verdict)
    parts = [f'<p><span class="banner {css}">{word}</span></p>']
    if verdict is None:
        parts.append(
            "<p>no policy applied: this audit was not judged against a release policy.</p>"
        )
        return section("verdict", "Verdict", parts)
    failed = len(verdict.failures)
    skipped = sum(c.passed is None for c in verdict.checks)
    parts.append(
        f"<p>Policy: {esc(verdict.policy)}. {len(verdict.checks)} checks, {failed} "
        f"failed, {skipped} skipped.</p>"
    )
    result = {True: "pass", False: "FAIL", None: "skipped"}
    rows = [[c.rule, c.metric, fmt(c.value), result[c.passed], c.message] for c in verdict.checks]
    parts.append(table(("rule", "metric", "value", "result", "message"), rows))
    return section("verdict", "Verdict", parts)


def _summary_section(report: AuditReport) -> str:
    key = [s for s in report.scorecard.scores if is_key(s)]
    parts = [pairs_table(report.meta.items())]
    if report.meta.get("epsilon", "").replace(".", "", 1).isdigit():
        parts.append(
            '<p class="note">A DP generator draws its noise from the operating system: another '
            "fit with the same seed gives another table, and these scores move with it (on "
            "NMES1988 at epsilon 1, MST's 2-way TVD varies by about 0.002 between fits, utility "
            "gaps by several hundredths). Compare generators on the average of a few fits.</p>"
        )
    parts.append("<h3>Key scores</h3>")
    parts.append(table(SCORE_HEADER, score_rows(key)) if key else "<p>no scores.</p>")
    return section("summary", "Summary", parts)


_ASSOCIATION_CAPTION = (
    "Pairwise association, real minus synthetic: Cramér's V on every column pair (numbers binned "
    "on a grid of about 10 cells, missing values a cell of their own). Red: the synthetic table "
    "weakens a real association; blue: it invents one."
)
_UTILITY_CAPTION = (
    "Models trained on real (TRTR) or synthetic (TSTR) rows, both tested on the real holdout the "
    "generator never saw; one panel per metric, one group per model family."
)
_ROC_CAPTION = (
    "Membership attacks: true positive rate against false positive rate (log scale) over "
    "{targets} targets, {members} of them trained on (no-box), and over the shadow fits' "
    "member/non-member labels (black-box). The dashed diagonal is guessing; what matters for "
    "privacy is the TPR at low FPR."
)
_GROUP_CAPTION = (
    "Shadow-attack AUC on the most vulnerable training records (outliers: mean distance to their "
    "5 nearest neighbours, after Meeus et al. 2023) and on random ones, with bootstrap intervals."
)


def _fidelity_section(report: AuditReport) -> str:
    card = report.scorecard
    columns = shared_columns(report.schema, report.train, report.synthetic)
    parts = []
    scores = [s for s in card.scores if s.name.startswith("fidelity.")]
    if scores:
        parts.append(table(SCORE_HEADER, score_rows(scores)))
    if columns and report.synthetic_is_real and not report.show_real:
        parts.append(
            "<p>This generator releases the training rows, so its synthetic table is real "
            "data: marginal plots and the association heatmap are left out in safe mode.</p>"
        )
    elif columns:
        parts += _fidelity_figures(report, several=len(columns) > 1)
    if card.columns:
        keys = sorted({k for detail in card.columns.values() for k in detail})
        size = len(report.train)
        rows = [
            [name, *(column_detail(k, detail.get(k), size, report.show_real) for k in keys)]
            for name, detail in card.columns.items()
        ]
        parts.append("<h3>Per column</h3>")
        parts.append(table(("column", *keys), rows))
    return section("fidelity", "Fidelity", parts or ["<p>no fidelity scores.</p>"])


def _fidelity_figures(report: AuditReport, *, several: bool) -> list[str]:
    """The worst columns' marginals and, for ``several`` columns, the association heatmap."""
    panels = worst_marginals(
        report.train, report.synthetic, report.schema, report.scorecard, show_real=report.show_real
    )
    rule = (
        "no suppression (show-real mode)"
        if report.show_real
        else f"real cells holding fewer than {MIN_CELL} training records are drawn as 0, like "
        f"empty ones, and rare categories are merged into '{RARE}'; the numeric grid comes "
        "from the declared schema or the synthetic range"
    )
    parts = [
        figure(
            plots.marginals(panels),
            "marginals of the worst columns",
            f"The {len(panels)} columns the synthetic table reproduces worst: "
            f"shares of rows, real vs synthetic; {rule}.",
        )
    ]
    if several:
        matrix, names = association_difference(
            report.train, report.synthetic, report.schema, show_real=report.show_real
        )
        parts.append(
            figure(
                plots.heatmap(matrix, names, label="Cramér's V: real - synthetic"),
                "association difference",
                _ASSOCIATION_CAPTION,
            )
        )
    return parts


def _utility_section(card: Scorecard) -> str:
    scores = [s for s in card.scores if s.name.startswith("utility.")]
    if not scores:
        return section(
            "utility", "Utility", ["<p>no --target given: utility was not measured.</p>"]
        )
    parts = []
    panels = utility_panels(scores)
    if panels:
        parts.append(figure(plots.grouped_bars(panels), "TSTR vs TRTR", _UTILITY_CAPTION))
    parts.append(table(SCORE_HEADER, score_rows(scores)))
    return section("utility", "Utility", parts)


def _privacy_section(report: AuditReport, records: dict[str, list[Any]]) -> str:
    parts = _threat_model_tables(report)
    curves = membership_curves(report.privacy, records)
    if curves:
        targets = report.privacy.get("targets", "?")
        parts.append(
            figure(
                plots.roc_curves(curves),
                "membership ROC curves",
                _ROC_CAPTION.format(targets=targets, members=report.privacy.get("members", "?")),
            )
        )
    scores = [s for s in report.scorecard.scores if s.name.startswith("privacy.")]
    if scores:
        parts.append("<h3>Privacy scores</h3>")
        parts.append(table(SCORE_HEADER, score_rows(scores)))
    else:
        parts.append("<p>no privacy attack was run.</p>")
    grouped = group_points(report.scorecard)
    if grouped:
        attacks = list(grouped)
        series = {g: [grouped[a][g] for a in attacks] for g in ("outlier", "random")}
        parts.append(
            figure(
                plots.intervals(attacks, series, ylabel="membership AUC", reference=0.5),
                "risk by target group",
                _GROUP_CAPTION,
            )
        )
    return section("privacy", "Privacy", parts)


def _threat_model_tables(report: AuditReport) -> list[str]:
    """What each attacker knows and how each epsilon bound was computed, before any score."""
    parts = []
    if report.threat_models:
        rows = [
            [
                name,
                t.get("knowledge", ""),
                t.get("access", ""),
                t.get("goal", ""),
                t.get("description", ""),
            ]
            for name, t in report.threat_models.items()
        ]
        parts.append("<h3>Threat models</h3>")
        parts.append(table(("attack", "knowledge", "access", "goal", "description"), rows))
    bounds = report.privacy.get("bounds") or {}
    if bounds:
        parts.append("<h3>How each epsilon bound was computed</h3>")
        parts.append(table(("attack", "analysis"), [[k, v] for k, v in bounds.items()]))
    return parts


def _exposed_section(report: AuditReport, records: dict[str, list[Any]]) -> str:
    header, rows, how = exposed(report.privacy, records)
    if not rows:
        return section("exposed", "Most exposed records", [f"<p>{esc(how)}</p>"])
    parts = [f"<p>{esc(how)} Rows are indices into the input table.</p>"]
    if report.show_real:
        header = [*header, *_with_real_values(report, rows)]
        parts.append('<p class="note">show-real mode: the records\' real values follow.</p>')
    parts.append(table(header, rows))
    return section("exposed", "Most exposed records", parts)


def _with_real_values(report: AuditReport, rows: list[list[Any]]) -> list[str]:
    """Extend each exposed row (its row index second) with the record's real values, for the
    data owner only; returns the columns added."""
    columns = [c.name for c in report.schema.columns if c.name in report.train]
    train = report.train
    for row in rows:
        index = row[1]
        if index in train.index:
            record = train.loc[[index], columns].iloc[0]
            row.extend(format_value(record[c]) for c in columns)
        else:
            row.extend(["not in train"] * len(columns))
    return columns


# ---- the Markdown summary ---------------------------------------------------------------------


def _audit_markdown(report: AuditReport, records: dict[str, list[Any]]) -> str:
    lines = _markdown_verdict(report)
    key = [s for s in report.scorecard.scores if is_key(s)]
    lines += ["", "## Key scores", "", _markdown_scores(key)]
    privacy = [s for s in report.scorecard.scores if s.name.startswith("privacy.")]
    lines += ["", "## Privacy scores", ""]
    lines.append(_markdown_scores(privacy) if privacy else "none.")
    bounds = report.privacy.get("bounds") or {}
    if bounds:
        lines += ["", "## How each epsilon bound was computed", ""]
        lines.append(md_table(("attack", "analysis"), [[k, v] for k, v in bounds.items()]))
    header, rows, how = exposed(report.privacy, records)
    lines += ["", "## Most exposed records (row index)", "", how]
    if rows:
        lines += ["", md_table(header, rows)]
    cost = cost_rows(report.cost, report.scorecard)
    lines += ["", "## Cost", ""]
    lines.append(md_table(("cost", "value"), cost) if cost else "not recorded.")
    return "\n".join(lines) + "\n"


def _markdown_verdict(report: AuditReport) -> list[str]:
    """The summary's opening: the verdict, each failed check, and the report's mode."""
    verdict = report.verdict
    _, word = _verdict_status(verdict)
    lines = [f"# Verdict: {word} — {md_cell(report.title)}", ""]
    if verdict is None:
        lines.append("No policy applied.")
    else:
        lines.append(
            f"Policy: {md_cell(verdict.policy)}; {len(verdict.failures)} of "
            f"{len(verdict.checks)} checks failed."
        )
        lines += [""] + [f"- FAIL `{c.rule}`: {md_cell(c.message)}" for c in verdict.failures]
    lines += [
        "",
        f"_{_mode(report)[1]}_"
        if not report.show_real
        else "_Report in show-real mode; this summary still holds no real value._",
    ]
    return lines


def _markdown_scores(scores: list[Score]) -> str:
    rows = [[s.name, fmt(s.value), interval(s.ci), fmt(s.baseline)] for s in scores]
    return md_table(("metric", "value", "interval", "baseline"), rows)
