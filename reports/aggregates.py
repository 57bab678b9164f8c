"""What the audit page shows, computed from the audit's results: marginals, associations, ROC
curves, score and cost rows, the most exposed records. Pure functions, no HTML; the page
(:mod:`reports.audit_page`) lays them out and :mod:`reports.plots` draws them.

Privacy rule, kept here because this is where real data is reduced: by default
(``show_real=False``) no real record and no real value comes out. Real data enters only as
aggregates: marginals on a grid that does not come from the real values (the declared schema's
bounds, else the synthetic range), where any cell held by fewer than :data:`MIN_CELL` training
records is drawn as 0, indistinguishable from an empty cell; rare categories are merged into
``other (rare)``; and pairwise associations (Cramér's V). Records are named by row index only.
``show_real=True`` is for the data owner: no suppression.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from reports import plots
from reports.html import fmt, interval
from synth.errors import ParamError
from synth.schema import Column, Schema, as_number

if TYPE_CHECKING:
    from audit.scores import Score, Scorecard

MIN_CELL = 10
"""Fewest training records a real cell may hold to be drawn (without ``show_real``)."""
RARE = "other (rare)"
MISSING = "(missing)"
WORST_COLUMNS = 4
TOP_EXPOSED = 10
MAX_CATEGORIES = 12
MAX_HEATMAP_COLUMNS = 40
KEY_FIDELITY = (
    "fidelity.quality",
    "fidelity.column_shapes",
    "fidelity.column_pair_trends",
    "fidelity.detection_auc",
    "utility.importance_spearman",
)
SCORE_HEADER = ("metric", "value", "interval", "baseline", "better", "about")
"""The columns of :func:`score_rows`."""

Curves = dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]
"""ROC curves by panel title, then by attack: (false positive rates, true positive rates)."""
GroupPoint = tuple[float, float | None, float | None]
"""A score and its interval, ``(value, low, high)``."""
Rows = list[list[Any]]


# ---- marginals and associations: what real data may contribute ------------------------------


def shared_columns(schema: Schema, real: pd.DataFrame, synthetic: pd.DataFrame) -> list[Column]:
    """The schema's columns that both tables hold, in schema order."""
    return [c for c in schema.columns if c.name in real and c.name in synthetic]


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
    """Cell edges for a numeric column, from the declared bounds or the synthetic values (the
    real ones too only when they may be shown)."""
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
            return np.concatenate(([low], inner, [high]))
    return np.linspace(low, high, bins + 1)


def _numeric_marginal(
    real: pd.Series,
    synthetic: pd.Series,
    column: Column,
    show_real: bool,
    bins: int,
    source: str,
) -> plots.Marginal:
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
    """Values as category labels, a missing one labelled :data:`MISSING` (a cell of its own)."""
    return pd.Series([MISSING if pd.isna(v) else str(v) for v in values.astype(object)])


def _categorical_marginal(
    real: pd.Series, synthetic: pd.Series, column: Column, show_real: bool
) -> plots.Marginal:
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


def worst_marginals(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    card: Scorecard,
    *,
    show_real: bool = False,
) -> list[plots.Marginal]:
    """The marginals of the :data:`WORST_COLUMNS` columns the synthetic table reproduces worst,
    each noted with what ranks it: SDMetrics' shape score when every column has one, else the
    total variation distance of the drawn (suppressed) shares."""
    columns = shared_columns(schema, real, synthetic)
    found = {
        c.name: marginal(
            real[c.name], synthetic[c.name], c, show_real=show_real, source=schema.source
        )
        for c in columns
    }
    shapes = {c.name: card.columns.get(c.name, {}).get("shape") for c in columns}
    scored = {name: float(v) for name, v in shapes.items() if v is not None}
    if len(scored) == len(shapes):
        badness = {name: 1.0 - value for name, value in scored.items()}
        notes = {name: f"SDMetrics shape score {value:.3f}" for name, value in scored.items()}
    else:
        badness = {n: 0.5 * float(np.abs(m.real - m.synthetic).sum()) for n, m in found.items()}
        notes = {name: f"TVD {value:.3f}" for name, value in badness.items()}
    worst = sorted(columns, key=lambda c: -badness[c.name])[:WORST_COLUMNS]
    return [replace(found[c.name], note=notes[c.name]) for c in worst]


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
    columns = shared_columns(schema, real, synthetic)[:MAX_HEATMAP_COLUMNS]
    coded = {}
    for column in columns:
        a, b = real[column.name], synthetic[column.name]
        if column.kind in ("numerical", "datetime"):
            x, z = as_number(a), as_number(b)
            edges = _grid(
                column, x.dropna().to_numpy(), z.dropna().to_numpy(), show_real, bins, schema.source
            )
            coded[column.name] = (_bin_codes(x, edges[1:-1]), _bin_codes(z, edges[1:-1]))
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


def _bin_codes(values: pd.Series, inner: np.ndarray) -> np.ndarray:
    """The cell of each number between the ``inner`` edges; a missing one gets a cell past the
    last, so that missingness can carry an association too."""
    return np.where(values.isna(), len(inner) + 1, np.searchsorted(inner, values))


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


def column_detail(key: str, value: Any, rows: int, show_real: bool) -> str:
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


# ---- scores ----------------------------------------------------------------------------------


def is_key(score: Score) -> bool:
    """Whether ``score`` is one of the few the summary opens with."""
    parts = score.name.split(".")
    if score.name in KEY_FIDELITY or score.name.startswith("utility.gap."):
        return True
    return parts[0] == "privacy" and (
        parts[-1] == "risk" or (len(parts) == 3 and parts[2] in ("auc", "epsilon_lb"))
    )


def score_rows(scores: Iterable[Score]) -> Rows:
    """One row per score, under :data:`SCORE_HEADER`."""
    return [
        [
            s.name,
            fmt(s.value),
            interval(s.ci),
            fmt(s.baseline),
            "higher" if s.goal == "max" else "lower",
            s.help,
        ]
        for s in scores
    ]


def utility_panels(
    scores: Iterable[Score],
) -> dict[str, tuple[list[str], dict[str, list[float | None]]]]:
    """TRTR and TSTR side by side: one panel per metric, one group per model family, from the
    ``utility.<side>.<family>.<metric>`` scores (a missing side is None)."""
    sides: dict[str, dict[tuple[str, str], float]] = {"trtr": {}, "tstr": {}}
    for score in scores:
        parts = score.name.split(".")
        if len(parts) == 4 and parts[1] in sides:
            sides[parts[1]][(parts[3], parts[2])] = score.value
    pairs = sorted(set(sides["trtr"]) | set(sides["tstr"]))
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
    return panels


def cost_rows(cost: dict[str, float], card: Scorecard) -> Rows:
    """The job's costs, then the scorecard's ``cost.*`` scores not already among them."""
    rows: Rows = [[name, fmt(float(value))] for name, value in cost.items()]
    counted = {"cost.generator_fits"} if "generator fits" in cost else set()
    rows += [
        [s.name.removeprefix("cost.").replace("_", " "), fmt(s.value)]
        for s in card.scores
        if s.name.startswith("cost.") and s.name not in counted
    ]
    return rows


# ---- privacy: per-record results -------------------------------------------------------------


def privacy_records(privacy: dict[str, Any]) -> dict[str, list[Any]]:
    """The audit's per-record results (one list per column, rows by index), checked to be
    columns of one length: a ragged set would rank records against the wrong scores."""
    records = dict(privacy.get("records") or {})
    sizes = {name: len(values) for name, values in records.items()}
    if len(set(sizes.values())) > 1:
        shown = ", ".join(f"{name} has {size}" for name, size in sizes.items())
        raise ParamError(f"privacy records have columns of different lengths: {shown}")
    return records


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


def membership_curves(privacy: dict[str, Any], records: dict[str, list[Any]]) -> Curves:
    """ROC curves of the no-box attacks (on the targets' records) and of the shadow attack
    (on the shadow fits' member labels), one panel each when they were run."""
    curves: Curves = {}
    if records.get("member"):
        names = [k for k in records if k.endswith("_score")]
        curves["no-box: the released table"] = {
            k.removesuffix("_score"): roc_curve(records[k], records["member"]) for k in names
        }
    shadow = (privacy.get("shadow") or {}).get("scores") or {}
    if shadow.get("labels"):
        curves[f"black-box: {privacy['shadow'].get('fits', '?')} shadow fits"] = {
            k: roc_curve(v, shadow["labels"]) for k, v in shadow.items() if k != "labels"
        }
    return curves


def group_points(card: Scorecard) -> dict[str, dict[str, GroupPoint]]:
    """Per attack that scored both target groups: the outlier and the random targets' AUC with
    its interval (the low and high are None without one)."""
    names = {s.name: s for s in card.scores}
    out = {}
    for name in names:
        parts = name.split(".")
        if parts[0] == "privacy" and len(parts) == 4 and parts[2:] == ["outlier", "auc"]:
            other = f"privacy.{parts[1]}.random.auc"
            if other in names:
                out[parts[1]] = {
                    group: _point(score)
                    for group, score in (("outlier", names[name]), ("random", names[other]))
                }
    return out


def _point(score: Score) -> GroupPoint:
    low, high = score.ci if score.ci is not None else (None, None)
    return score.value, low, high


def exposed(privacy: dict[str, Any], records: dict[str, list[Any]]) -> tuple[list[str], Rows, str]:
    """The most exposed targets, by row index: header, rows, and what ranks them. The shadow
    attack ranks them when it was run (its per-target AUC), else the closest-distance score."""
    shadow = privacy.get("shadow") or {}
    if shadow.get("targets"):
        return _exposed_by_shadow(shadow)
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


def _exposed_by_shadow(shadow: dict[str, Any]) -> tuple[list[str], Rows, str]:
    key = "lira_auc" if shadow["targets"] and "lira_auc" in shadow["targets"][0] else "distance_auc"
    ranked = [t for t in shadow["targets"] if math.isfinite(float(t[key]))]
    ranked.sort(key=lambda t: -float(t[key]))
    left_out = len(shadow["targets"]) - len(ranked)
    if key == "lira_auc":
        header = ["rank", "row", "group", "shadow LiRA AUC", "release log ratio", "distance AUC"]
        rows: Rows = [
            [i + 1, int(t["row"]), str(t["group"]), fmt(float(t["lira_auc"])),
             fmt(float(t["lira_release"])), fmt(float(t["distance_auc"]))]
            for i, t in enumerate(ranked[:TOP_EXPOSED])
        ]  # fmt: skip
    else:
        header = ["rank", "row", "group", "shadow distance AUC"]
        rows = [
            [i + 1, int(t["row"]), str(t["group"]), fmt(float(t["distance_auc"]))]
            for i, t in enumerate(ranked[:TOP_EXPOSED])
        ]
    how = (
        f"Ranked by each shadow target's own membership AUC over {shadow.get('fits', '?')} "
        "shadow fits (1: the attacker always tells whether it was in)"
    )
    how += (
        "; LiRA: Gaussians of the closest distance over the fits with and without the target, "
        "fitted on one half of the fits, scoring the other (Carlini et al. 2022). The release log "
        "ratio scores the released table (> 0: it looks trained on the target)."
        if key == "lira_auc"
        else "."
    )
    if shadow.get("size_note"):
        how += f" Note: {shadow['size_note']}."
    if left_out:
        how += f" {left_out} targets had no AUC (in all or none of the shadow sets)."
    return header, rows, how
