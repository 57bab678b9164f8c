"""The audit report of one generator: a self-contained offline HTML page and a Markdown summary.

The page opens with the release verdict, then the summary, fidelity, utility, privacy, the most
exposed records and the cost, each under an ``<h2>`` with a stable id (:data:`SECTIONS`). Plots
are inline PNGs (:mod:`reports.plots`); the page loads nothing and links nowhere.

Privacy rule: by default (``show_real=False``) no real record and no real value appears. Real
data enters only as aggregates: marginals on a grid that does not come from the real values (the
declared schema's bounds, else the synthetic range), where any cell held by fewer than
:data:`MIN_CELL` training records is drawn as 0, indistinguishable from an empty cell; rare
categories are merged into ``other (rare)``; and pairwise associations (Cramér's V). Records are
named by row index only. ``show_real=True`` is for the data owner: no suppression, and the most
exposed records are listed with their values. The Markdown summary never holds a real value.
"""

from __future__ import annotations

import html
import itertools
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from reports import plots
from synth.errors import ParamError
from synth.io import check_output_folder, write_text_atomic
from synth.schema import Column, Schema, as_number

if TYPE_CHECKING:
    from audit.gate import Verdict
    from audit.scores import Score, Scorecard

SECTIONS = ("verdict", "summary", "fidelity", "utility", "privacy", "exposed", "cost")
MIN_CELL = 10
"""Fewest training records a real cell may hold to be drawn (without ``show_real``)."""
RARE = "other (rare)"
MISSING = "(missing)"
WORST_COLUMNS = 4
TOP_EXPOSED = 10
MAX_CATEGORIES = 12
MAX_HEATMAP_COLUMNS = 40
_KEY_FIDELITY = (
    "fidelity.quality",
    "fidelity.column_shapes",
    "fidelity.column_pair_trends",
    "fidelity.detection_auc",
    "utility.importance_spearman",
)


@dataclass(frozen=True, kw_only=True, eq=False)
class AuditReport:
    """Everything one audit report shows. ``train`` is used for aggregates only, unless
    ``show_real``; ``privacy`` holds the audit's per-record results (rows by index)."""

    title: str
    meta: dict[str, str]
    scorecard: Scorecard
    verdict: Verdict | None
    privacy: dict
    threat_models: dict[str, dict]
    train: pd.DataFrame
    synthetic: pd.DataFrame
    schema: Schema
    cost: dict[str, float]
    show_real: bool = False
    synthetic_is_real: bool = False  # the generator releases training rows (identity)


def write_audit_report(report: AuditReport, html_path: Path, markdown_path: Path) -> None:
    """Render ``report`` and write the HTML page and the Markdown summary, each atomically."""
    check_outputs(html_path, markdown_path)
    records = _records(report.privacy)
    page = _audit_html(report, records)
    summary = _audit_markdown(report, records)
    write_text_atomic(Path(html_path), page)
    write_text_atomic(Path(markdown_path), summary)


# ---- aggregates: what real data may contribute ----------------------------------------------


def marginal(
    real: pd.Series,
    synthetic: pd.Series,
    column: Column,
    *,
    show_real: bool = False,
    bins: int = 20,
    source: str = "declared",
) -> plots.Marginal:
    """Real and synthetic shares of one column on a shared grid.

    Without ``show_real``: the grid comes from the declared bounds (``source="declared"``) or
    the synthetic range, never from real values (real ones outside it fall in the end cells);
    a real cell with fewer than :data:`MIN_CELL` records is drawn as 0; categories held by fewer
    than :data:`MIN_CELL` training records are merged into ``other (rare)``, and that merged cell
    is suppressed in turn when it holds fewer than :data:`MIN_CELL` records."""
    if column.kind in ("numerical", "datetime"):
        return _numeric_marginal(real, synthetic, column, show_real, bins, source)
    return _categorical_marginal(real, synthetic, column, show_real)


def _grid(
    column: Column, real: np.ndarray, synthetic: np.ndarray, show_real: bool, bins: int, source: str
) -> np.ndarray:
    low, high = column.bounds() if source == "declared" else (None, None)
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        pool = np.r_[synthetic, real] if show_real else synthetic
        low, high = (float(pool.min()), float(pool.max())) if len(pool) else (0.0, 1.0)
    if column.dtype == "int" and high - low <= bins:
        return np.arange(math.floor(low) - 0.5, math.ceil(high) + 1.0, 1.0)
    if high <= low:
        low, high = low - 0.5, high + 0.5
    pool = np.r_[synthetic, real] if show_real else synthetic
    if column.kind == "numerical" and len(pool):
        # cells at the quantiles of the synthetic values (never the real ones unless shown):
        # equal-width bins put a skewed column (counts, amounts) in one or two bins
        inner = np.unique(np.quantile(pool, np.linspace(0, 1, bins + 1))[1:-1])
        inner = inner[(inner > low) & (inner < high)]
        if len(inner) >= 2:
            return np.r_[low, inner, high]
    return np.linspace(low, high, bins + 1)


def _numeric_marginal(real, synthetic, column, show_real, bins, source) -> plots.Marginal:
    r, s = as_number(real).dropna().to_numpy(), as_number(synthetic).dropna().to_numpy()
    edges = _grid(column, r, s, show_real, bins, source)
    quantiles = column.kind == "numerical" and not _evenly_spread(edges)

    def counts(values: np.ndarray) -> np.ndarray:
        return np.histogram(np.clip(values, edges[0], edges[-1]), edges)[0].astype(float)

    real_counts, synthetic_counts = counts(r), counts(s)
    suppressed = np.zeros(len(real_counts), bool)
    if not show_real:
        suppressed = (real_counts > 0) & (real_counts < MIN_CELL)
    real_share = np.where(suppressed, 0.0, real_counts) / max(len(real), 1)
    synthetic_share = synthetic_counts / max(len(synthetic), 1)
    if quantiles:  # cells of unequal width, drawn side by side and named by their range
        labels = tuple(f"{fmt(a)}-{fmt(b)}" for a, b in itertools.pairwise(edges))
        return plots.Marginal(
            column=column.name, note="cells at the synthetic quantiles", real=real_share,
            synthetic=synthetic_share, suppressed=suppressed, edges=edges, labels=labels,
        )  # fmt: skip
    note = "seconds since 1970" if column.kind == "datetime" else f"{len(edges) - 1} bins"
    return plots.Marginal(
        column=column.name,
        note=note,
        real=real_share,
        synthetic=synthetic_share,
        suppressed=suppressed,
        edges=edges,
    )


def _evenly_spread(edges: np.ndarray) -> bool:
    widths = np.diff(edges)
    return bool(len(widths) and np.allclose(widths, widths[0]))


def _labels(values: pd.Series) -> pd.Series:
    return pd.Series([MISSING if pd.isna(v) else str(v) for v in values.astype(object)])


def _categorical_marginal(real, synthetic, column, show_real) -> plots.Marginal:
    real_counts, synthetic_counts = _labels(real).value_counts(), _labels(synthetic).value_counts()
    if show_real:
        both = real_counts.add(synthetic_counts, fill_value=0).sort_values(ascending=False)
        shown = list(both.index)
    else:
        shown = [c for c, n in real_counts.items() if n >= MIN_CELL]
    shown = shown[:MAX_CATEGORIES]
    real_rest = float(real_counts.drop(shown, errors="ignore").sum())
    synthetic_rest = float(synthetic_counts.drop(shown, errors="ignore").sum())
    real_cells = [float(real_counts.get(c, 0)) for c in shown]
    synthetic_cells = [float(synthetic_counts.get(c, 0)) for c in shown]
    suppressed = [False] * len(shown)
    if real_rest or synthetic_rest:
        hide = not show_real and 0 < real_rest < MIN_CELL
        shown.append(RARE)
        real_cells.append(0.0 if hide else real_rest)
        synthetic_cells.append(synthetic_rest)
        suppressed.append(hide)
    return plots.Marginal(
        column=column.name,
        note=column.kind,
        real=np.array(real_cells) / max(len(real), 1),
        synthetic=np.array(synthetic_cells) / max(len(synthetic), 1),
        suppressed=np.array(suppressed, bool),
        labels=tuple(shown),
    )


def association_difference(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    *,
    bins: int = 10,
    show_real: bool = False,
) -> tuple[np.ndarray, list[str]]:
    """Cramér's V of every column pair, real minus synthetic (numbers binned on the same grid
    as the marginals, missing values a cell of their own); at most 40 columns."""
    columns = [c for c in schema.columns if c.name in real and c.name in synthetic]
    columns = columns[:MAX_HEATMAP_COLUMNS]
    coded = {}
    for column in columns:
        a, b = real[column.name], synthetic[column.name]
        if column.kind in ("numerical", "datetime"):
            x, z = as_number(a), as_number(b)
            edges = _grid(
                column, x.dropna().to_numpy(), z.dropna().to_numpy(), show_real, bins, schema.source
            )
            inner = edges[1:-1]
            code = lambda v, e=inner: np.where(v.isna(), len(e) + 1, np.searchsorted(e, v))  # noqa: E731
            coded[column.name] = (code(x), code(z))
        else:
            codes, _ = pd.factorize(pd.concat([_labels(a), _labels(b)], ignore_index=True))
            coded[column.name] = (codes[: len(a)], codes[len(a) :])
    size = len(columns)
    difference = np.zeros((size, size))
    for i in range(size):
        for j in range(i + 1, size):
            first, second = coded[columns[i].name], coded[columns[j].name]
            value = _cramers_v(first[0], second[0]) - _cramers_v(first[1], second[1])
            difference[i, j] = difference[j, i] = value
    return difference, [c.name for c in columns]


def _cramers_v(a: np.ndarray, b: np.ndarray) -> float:
    """Cramér's V of two code vectors (no bias correction; 0 when either is constant)."""
    if len(a) == 0:
        return 0.0
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    width = int(b.max()) + 1
    table = np.bincount(a * width + b, minlength=(int(a.max()) + 1) * width)
    table = table.reshape(-1, width).astype(float)
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    rows, cols = table.shape
    if min(rows, cols) < 2:
        return 0.0
    n = table.sum()
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / n
    chi2 = float(((table - expected) ** 2 / expected).sum())
    return math.sqrt(chi2 / (n * (min(rows, cols) - 1)))


def roc_curve(scores: Sequence[float], labels: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates at every threshold; scores are "higher = member", an
    undefined score counts as the least member-like."""
    values = np.asarray(scores, float)
    values = np.where(np.isnan(values), -np.inf, values)
    truth = np.asarray(labels, bool)
    order = np.argsort(-values, kind="mergesort")
    values, truth = values[order], truth[order]
    last = np.r_[np.flatnonzero(values[1:] != values[:-1]), len(values) - 1]
    positives, negatives = max(truth.sum(), 1), max((~truth).sum(), 1)
    tpr = np.r_[0.0, np.cumsum(truth)[last] / positives]
    fpr = np.r_[0.0, np.cumsum(~truth)[last] / negatives]
    return fpr, tpr


# ---- formatting ------------------------------------------------------------------------------


class Markup(str):
    """Text that is already HTML (escaped where needed)."""


_SCHEME = re.compile(r"(h)(ttp)", re.IGNORECASE)


def esc(value: Any) -> str:
    """HTML-escaped text. ``http`` is written with a character reference for its first letter:
    it reads the same, and the page never holds anything that looks like an address."""
    return _SCHEME.sub(lambda m: f"&#{ord(m[1])};{m[2]}", html.escape(str(value)))


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


def format_value(value: Any) -> str:
    """A real record's value as the ``show_real`` tables print it."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return MISSING
    if isinstance(value, float | np.floating):
        return f"{float(value):.6g}"
    return str(value)


def _interval(ci: tuple[float, float] | None) -> str:
    return "" if ci is None else f"[{fmt(ci[0])}, {fmt(ci[1])}]"


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], *, classes: str = "") -> str:
    """An HTML table; cells are escaped unless they are :class:`Markup`."""
    cell = lambda v: v if isinstance(v, Markup) else esc(v)  # noqa: E731
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f'<div class="wide"><table class="{classes}"><tr>{head}</tr>{body}</table></div>'


def pairs_table(items: Iterable[tuple[Any, Any]]) -> str:
    """A table of names and values, without a header row."""
    cell = lambda v: v if isinstance(v, Markup) else esc(v)  # noqa: E731
    body = "".join(f"<tr><th>{esc(k)}</th><td>{cell(v)}</td></tr>" for k, v in items)
    return f'<div class="wide"><table>{body}</table></div>'


def figure(uri: str, alt: str, caption: str) -> str:
    return (
        f'<figure><img src="{uri}" alt="{esc(alt)}">'
        f'<figcaption class="caption">{esc(caption)}</figcaption></figure>'
    )


_TAG = re.compile(r"<(?=[A-Za-z/!?])")


def md_cell(value: Any) -> str:
    """Text for a Markdown table cell: one line, pipes escaped, nothing read as an HTML tag."""
    return _TAG.sub("&lt;", str(value).replace("\n", " ").replace("|", "\\|"))


def md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
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
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def section(anchor: str, heading: str, parts: Sequence[str]) -> str:
    return f'<section><h2 id="{anchor}">{esc(heading)}</h2>\n' + "\n".join(parts) + "</section>"


def check_outputs(*paths: Path) -> None:
    """Fail before rendering when an output cannot be written."""
    if len({Path(p).resolve() for p in paths}) < len(paths):
        raise ParamError("the HTML and Markdown outputs must be different files")
    for path in paths:
        check_output_folder(path)


# ---- the audit report ------------------------------------------------------------------------


def _records(privacy: dict) -> dict[str, list]:
    records = dict(privacy.get("records") or {})
    sizes = {name: len(values) for name, values in records.items()}
    if len(set(sizes.values())) > 1:
        shown = ", ".join(f"{name} has {size}" for name, size in sizes.items())
        raise ParamError(f"privacy records have columns of different lengths: {shown}")
    return records


def _mode(report: AuditReport) -> tuple[str, str]:
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


def _score_rows(scores: Iterable[Score]) -> list[list[Any]]:
    return [
        [
            s.name,
            fmt(s.value),
            _interval(s.ci),
            fmt(s.baseline),
            "higher" if s.goal == "max" else "lower",
            s.help,
        ]
        for s in scores
    ]


_SCORE_HEADER = ("metric", "value", "interval", "baseline", "better", "about")


def _is_key(score: Score) -> bool:
    parts = score.name.split(".")
    if score.name in _KEY_FIDELITY or score.name.startswith("utility.gap."):
        return True
    return parts[0] == "privacy" and (
        parts[-1] == "risk" or (len(parts) == 3 and parts[2] in ("auc", "epsilon_lb"))
    )


def _verdict_status(verdict: Verdict | None) -> tuple[str, str]:
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
    key = [s for s in report.scorecard.scores if _is_key(s)]
    parts = [pairs_table(report.meta.items())]
    if report.meta.get("epsilon", "").replace(".", "", 1).isdigit():
        parts.append(
            '<p class="note">A DP generator draws its noise from the operating system: another '
            "fit with the same seed gives another table, and these scores move with it (on "
            "NMES1988 at epsilon 1, MST's 2-way TVD varies by about 0.002 between fits, utility "
            "gaps by several hundredths). Compare generators on the average of a few fits.</p>"
        )
    parts.append("<h3>Key scores</h3>")
    parts.append(table(_SCORE_HEADER, _score_rows(key)) if key else "<p>no scores.</p>")
    return section("summary", "Summary", parts)


def _fidelity_section(report: AuditReport) -> str:
    schema, train, synthetic = report.schema, report.train, report.synthetic
    card = report.scorecard
    columns = [c for c in schema.columns if c.name in train and c.name in synthetic]
    parts = []
    scores = [s for s in card.scores if s.name.startswith("fidelity.")]
    if scores:
        parts.append(table(_SCORE_HEADER, _score_rows(scores)))
    if columns and report.synthetic_is_real and not report.show_real:
        parts.append(
            "<p>This generator releases the training rows, so its synthetic table is real "
            "data: marginal plots and the association heatmap are left out in safe mode.</p>"
        )
    elif columns:
        found = {
            c.name: marginal(
                train[c.name],
                synthetic[c.name],
                c,
                show_real=report.show_real,
                source=schema.source,
            )
            for c in columns
        }
        shapes = {c.name: card.columns.get(c.name, {}).get("shape") for c in columns}
        if all(v is not None for v in shapes.values()):
            badness = {name: 1.0 - float(v) for name, v in shapes.items()}
            label = "SDMetrics shape score {:.3f}"
            notes = {name: label.format(float(v)) for name, v in shapes.items()}
        else:
            badness = {n: 0.5 * float(np.abs(m.real - m.synthetic).sum()) for n, m in found.items()}
            notes = {name: f"TVD {value:.3f}" for name, value in badness.items()}
        worst = sorted(columns, key=lambda c: -badness[c.name])[:WORST_COLUMNS]
        panels = [replace(found[c.name], note=notes[c.name]) for c in worst]
        rule = (
            "no suppression (show-real mode)"
            if report.show_real
            else f"real cells holding fewer than {MIN_CELL} training records are drawn as 0, like "
            f"empty ones, and rare categories are merged into '{RARE}'; the numeric grid comes "
            "from the declared schema or the synthetic range"
        )
        parts.append(
            figure(
                plots.marginals(panels),
                "marginals of the worst columns",
                f"The {len(worst)} columns the synthetic table reproduces worst: "
                f"shares of rows, real vs synthetic; {rule}.",
            )
        )
        if len(columns) > 1:
            matrix, names = association_difference(
                train, synthetic, schema, show_real=report.show_real
            )
            parts.append(
                figure(
                    plots.heatmap(matrix, names, label="Cramér's V: real - synthetic"),
                    "association difference",
                    _ASSOCIATION_CAPTION,
                )
            )
    if card.columns:
        keys = sorted({k for detail in card.columns.values() for k in detail})
        rows = [
            [name, *(_detail(k, detail.get(k), len(train), report.show_real) for k in keys)]
            for name, detail in card.columns.items()
        ]
        parts.append("<h3>Per column</h3>")
        parts.append(table(("column", *keys), rows))
    return section("fidelity", "Fidelity", parts or ["<p>no fidelity scores.</p>"])


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


def _detail(key: str, value: Any, rows: int, show_real: bool) -> str:
    """A per-column detail; a real missing-value share of fewer than :data:`MIN_CELL` records
    is not shown (it would tell that a few records lack the value)."""
    if (
        key == "missing_real"
        and not show_real
        and value is not None
        and 0 < value * rows < MIN_CELL
    ):
        return f"< {MIN_CELL} rows"
    return fmt(value)


def _utility_section(card: Scorecard) -> str:
    scores = [s for s in card.scores if s.name.startswith("utility.")]
    sides: dict[str, dict[tuple[str, str], float]] = {"trtr": {}, "tstr": {}}
    for score in scores:
        parts = score.name.split(".")
        if len(parts) == 4 and parts[1] in sides:
            sides[parts[1]][(parts[3], parts[2])] = score.value
    pairs = sorted(set(sides["trtr"]) | set(sides["tstr"]))
    if not scores:
        return section(
            "utility", "Utility", ["<p>no --target given: utility was not measured.</p>"]
        )
    parts = []
    if pairs:
        panels = {}
        for metric in sorted({m for m, _ in pairs}):
            families = [f for m, f in pairs if m == metric]
            panels[metric] = (
                families,
                {
                    label: [sides[side].get((metric, f)) for f in families]
                    for side, label in (
                        ("trtr", "TRTR (train real)"),
                        ("tstr", "TSTR (train synthetic)"),
                    )
                },
            )
        parts.append(
            figure(
                plots.grouped_bars(panels),
                "TSTR vs TRTR",
                _UTILITY_CAPTION,
            )
        )
    parts.append(table(_SCORE_HEADER, _score_rows(scores)))
    return section("utility", "Utility", parts)


def _privacy_section(report: AuditReport, records: dict[str, list]) -> str:
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
    curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    if records.get("member"):
        names = [k for k in records if k.endswith("_score")]
        curves["no-box: the released table"] = {
            k.removesuffix("_score"): roc_curve(records[k], records["member"]) for k in names
        }
    shadow = (report.privacy.get("shadow") or {}).get("scores") or {}
    if shadow.get("labels"):
        curves[f"black-box: {report.privacy['shadow'].get('fits', '?')} shadow fits"] = {
            k: roc_curve(v, shadow["labels"]) for k, v in shadow.items() if k != "labels"
        }
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
        parts.append(table(_SCORE_HEADER, _score_rows(scores)))
    else:
        parts.append("<p>no privacy attack was run.</p>")
    grouped = _group_points(report.scorecard)
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


def _group_points(card: Scorecard) -> dict[str, dict[str, tuple]]:
    names = {s.name: s for s in card.scores}
    out = {}
    for name in names:
        parts = name.split(".")
        if parts[0] == "privacy" and len(parts) == 4 and parts[2:] == ["outlier", "auc"]:
            other = f"privacy.{parts[1]}.random.auc"
            if other in names:
                out[parts[1]] = {
                    group: (s.value, *(s.ci or (None, None)))
                    for group, s in (("outlier", names[name]), ("random", names[other]))
                }
    return out


def _exposed(report: AuditReport, records: dict[str, list]) -> tuple[list[str], list[list], str]:
    """The most exposed targets, by row index: header, rows, and what ranks them."""
    shadow = report.privacy.get("shadow") or {}
    if shadow.get("targets"):
        ranked = [t for t in shadow["targets"] if math.isfinite(float(t["distance_auc"]))]
        ranked.sort(key=lambda t: -float(t["distance_auc"]))
        left_out = len(shadow["targets"]) - len(ranked)
        header = ["rank", "row", "group", "shadow distance AUC"]
        rows = [
            [i + 1, int(t["row"]), str(t["group"]), fmt(float(t["distance_auc"]))]
            for i, t in enumerate(ranked[:TOP_EXPOSED])
        ]
        how = (
            f"Ranked by each shadow target's own membership AUC over {shadow.get('fits', '?')} "
            "shadow fits (1: the attacker always tells whether it was in)."
        )
        if left_out:
            how += f" {left_out} targets had no AUC (in all or none of the shadow sets)."
        return header, rows, how
    if not records.get("member") or "closest_distance_score" not in records:
        return [], [], "no per-record results."
    names = [k for k in records if k.endswith("_score")]
    members = [i for i, m in enumerate(records["member"]) if m]
    score = np.asarray(records["closest_distance_score"], float)
    members.sort(key=lambda i: -score[i] if math.isfinite(score[i]) else math.inf)
    header = ["rank", "row", *names]
    rows = [
        [n + 1, int(records["row"][i]), *(fmt(float(records[k][i])) for k in names)]
        for n, i in enumerate(members[:TOP_EXPOSED])
    ]
    how = (
        "Training records among the targets whose closest synthetic record is nearest "
        "(closest-distance score, higher = more likely a member)."
    )
    return header, rows, how


def _exposed_section(report: AuditReport, records: dict[str, list]) -> str:
    header, rows, how = _exposed(report, records)
    if not rows:
        return section("exposed", "Most exposed records", [f"<p>{esc(how)}</p>"])
    parts = [f"<p>{esc(how)} Rows are indices into the input table.</p>"]
    if report.show_real:
        columns = [c.name for c in report.schema.columns if c.name in report.train]
        train = report.train
        for row in rows:
            index = row[1]
            if index in train.index:
                record = train.loc[[index], columns].iloc[0]
                row.extend(format_value(record[c]) for c in columns)
            else:
                row.extend(["not in train"] * len(columns))
        header = [*header, *columns]
        parts.append('<p class="note">show-real mode: the records\' real values follow.</p>')
    parts.append(table(header, rows))
    return section("exposed", "Most exposed records", parts)


def _cost_rows(report: AuditReport) -> list[list[str]]:
    rows = [[name, fmt(float(value))] for name, value in report.cost.items()]
    counted = {"cost.generator_fits"} if "generator fits" in report.cost else set()
    rows += [
        [s.name.removeprefix("cost.").replace("_", " "), fmt(s.value)]
        for s in report.scorecard.scores
        if s.name.startswith("cost.") and s.name not in counted
    ]
    return rows


def _audit_html(report: AuditReport, records: dict[str, list]) -> str:
    mode_css, mode_text = _mode(report)
    links = " ".join(f'<a href="#{s}">{s}</a>' for s in SECTIONS)
    cost = _cost_rows(report)
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


def _audit_markdown(report: AuditReport, records: dict[str, list]) -> str:
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
    key = [s for s in report.scorecard.scores if _is_key(s)]
    rows = [[s.name, fmt(s.value), _interval(s.ci), fmt(s.baseline)] for s in key]
    lines += ["", "## Key scores", "", md_table(("metric", "value", "interval", "baseline"), rows)]
    privacy = [s for s in report.scorecard.scores if s.name.startswith("privacy.")]
    rows = [[s.name, fmt(s.value), _interval(s.ci), fmt(s.baseline)] for s in privacy]
    lines += ["", "## Privacy scores", ""]
    lines.append(md_table(("metric", "value", "interval", "baseline"), rows) if rows else "none.")
    bounds = report.privacy.get("bounds") or {}
    if bounds:
        lines += ["", "## How each epsilon bound was computed", ""]
        lines.append(md_table(("attack", "analysis"), [[k, v] for k, v in bounds.items()]))
    header, rows, how = _exposed(report, records)
    lines += ["", "## Most exposed records (row index)", "", how]
    if rows:
        lines += ["", md_table(header, rows)]
    cost = _cost_rows(report)
    lines += ["", "## Cost", ""]
    lines.append(md_table(("cost", "value"), cost) if cost else "not recorded.")
    return "\n".join(lines) + "\n"


def report_writer(html_path: Path, *, show_real: bool = False):
    """The report step of an audit job (``audit.generate.GenerateJob.render``): writes the HTML
    report and its Markdown summary beside it, and returns both paths to be logged."""

    def render(outcome) -> list[Path]:
        """The files to log to the run: none for a show-real report (it holds real values,
        which never go to MLflow); it stays where the user asked for it."""
        markdown_path = Path(html_path).with_suffix(".md")
        report = AuditReport(
            title=f"synthguard audit: {outcome.meta['generator']} on {outcome.meta['dataset']}",
            meta=outcome.meta, scorecard=outcome.scorecard, verdict=outcome.verdict,
            privacy=outcome.privacy, threat_models=outcome.threat_models, train=outcome.train,
            synthetic=outcome.synthetic, schema=outcome.schema, cost=outcome.cost,
            show_real=show_real, synthetic_is_real=outcome.synthetic_is_real,
        )  # fmt: skip
        write_audit_report(report, Path(html_path), markdown_path)
        return [] if show_real else [Path(html_path), markdown_path]

    return render
