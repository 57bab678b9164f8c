"""Fidelity: how closely a synthetic table reproduces the real one's marginals.

Mean total-variation distance over k-way marginals, as in the NIST CRC and the MST/AIM papers,
with cells that see shape: a number column is cut at the real column's quantiles (deciles by
default; equal quantiles merged), so every cell holds real mass, and a value that alone holds at
least half a cell's share of the real rows (a point mass, such as debt = 0, or one of a few
discrete values) is a cell of its own, so smearing it over its neighbourhood shows. Missing
values are a cell of their own too. Each marginal's TVD is half the L1 distance between the real
and synthetic cell shares (0 = identical, 1 = disjoint). (Equal-width bins over the real range,
used before, put nearly all of a heavy-tailed column in one bin and could not see it.)
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

from audit.scores import Score
from synth.runtime import seeded
from synth.schema import Schema, as_number


def quantile_cells(real: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut points at the real values' quantiles (ties merged) and the point masses: values
    holding at least 1 / (2 bins) of the real values."""
    present = real[~np.isnan(real)]
    if present.size == 0:
        return np.array([]), np.array([])
    cuts = np.unique(np.quantile(present, np.arange(1, bins) / bins, method="lower"))
    values, counts = np.unique(present, return_counts=True)
    atoms = values[counts >= present.size / (2 * bins)]
    return cuts, atoms


def _numeric_codes(x: np.ndarray, cuts: np.ndarray, atoms: np.ndarray) -> np.ndarray:
    """Cell of each value: one per point mass, else the interval between cut points; missing
    values last."""
    codes = np.searchsorted(cuts, x, side="right")
    if atoms.size:
        at = np.searchsorted(atoms, x)
        hit = (at < atoms.size) & (atoms[np.minimum(at, atoms.size - 1)] == x)
        codes = np.where(hit, cuts.size + 1 + at, codes)
    return np.where(np.isnan(x), cuts.size + 1 + atoms.size, codes)


def _codes(real: pd.Series, synthetic: pd.Series, numerical: bool, bins: int):
    """Shared integer codes for one column of both tables (missing values: their own code)."""
    if numerical:
        a = as_number(real).to_numpy(dtype=float)
        b = as_number(synthetic).to_numpy(dtype=float)
        cuts, atoms = quantile_cells(a, bins)
        cells = cuts.size + 1 + atoms.size + 1
        return _numeric_codes(a, cuts, atoms), _numeric_codes(b, cuts, atoms), cells
    values = pd.concat([real, synthetic]).astype(object).where(lambda s: s.notna(), "\x00NA")
    codes, uniques = pd.factorize(values.astype(str))
    return codes[: len(real)], codes[len(real) :], len(uniques)


def marginal_tvd(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    *,
    way: int = 2,
    bins: int = 10,
    max_marginals: int | None = None,
    seed: int = 0,
) -> float:
    """Mean TVD over all ``way``-column marginals (a seeded sample of ``max_marginals`` of them)."""
    names = schema.names
    coded = {}
    for column in schema.columns:
        numerical = column.kind in ("numerical", "datetime")
        coded[column.name] = _codes(real[column.name], synthetic[column.name], numerical, bins)
    sets = list(itertools.combinations(names, way))
    if max_marginals is not None and len(sets) > max_marginals:
        chosen = np.random.default_rng(seed).choice(len(sets), max_marginals, replace=False)
        sets = [sets[i] for i in sorted(chosen)]
    distances = []
    for columns in sets:
        shape = tuple(coded[c][2] for c in columns)
        cells = math.prod(shape)
        shares = []
        for side in (0, 1):
            flat = np.ravel_multi_index(tuple(coded[c][side] for c in columns), shape)
            counts = np.bincount(flat, minlength=cells).astype(float)
            shares.append(counts / counts.sum())
        distances.append(0.5 * np.abs(shares[0] - shares[1]).sum())
    return float(np.mean(distances))


# ---- the fidelity scorecard ------------------------------------------------------------------

_SDTYPES = {
    "numerical": "numerical",
    "categorical": "categorical",
    "boolean": "boolean",
    "datetime": "datetime",
}


def _for_sdmetrics(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """Plain dtypes SDMetrics understands: nullable ints and booleans to float/object."""
    out = {}
    for column in schema.columns:
        values = frame[column.name]
        if column.kind == "numerical":
            out[column.name] = pd.to_numeric(values, errors="coerce").astype("float64")
        elif column.kind == "datetime":
            out[column.name] = pd.to_datetime(values)
        else:
            out[column.name] = values.astype(object).where(values.notna(), None)
    return pd.DataFrame(out)


def quality_report(real: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema, *, seed: int = 0):
    """SDMetrics' QualityReport (column shapes and pair trends), run as SDMetrics runs it.

    On large tables SDMetrics subsamples rows for pair trends from numpy's global generator;
    ``seeded`` makes that draw, and so the score, reproducible."""
    from sdmetrics.reports.single_table import QualityReport

    metadata = {"columns": {c.name: {"sdtype": _SDTYPES[c.kind]} for c in schema.columns}}
    report = QualityReport()
    with seeded(seed):
        report.generate(
            _for_sdmetrics(real, schema), _for_sdmetrics(synthetic, schema), metadata, verbose=False
        )
    return report


def features(frame: pd.DataFrame, schema: Schema, reference: pd.DataFrame | None = None):
    """A numeric matrix for a classifier: numbers as they are (datetimes in seconds),
    categories as codes over the values seen in ``reference`` (unseen and missing: NaN)."""
    reference = frame if reference is None else reference
    columns = []
    for column in schema.columns:
        values = frame[column.name]
        if column.kind in ("numerical", "datetime"):
            columns.append(as_number(values).to_numpy())
        else:
            known = pd.Index(pd.unique(reference[column.name].dropna().astype(str)))
            codes = known.get_indexer(values.astype(str)).astype(float)
            columns.append(np.where(values.isna() | (codes < 0), np.nan, codes))
    return np.column_stack(columns) if columns else np.empty((len(frame), 0))


def detection_auc(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    *,
    seed: int = 0,
    max_rows: int = 10_000,
    folds: int = 3,
) -> Score:
    """Classifier two-sample test: cross-validated ROC AUC of gradient boosting telling real
    rows from synthetic ones (0.5: indistinguishable; 1: trivially told apart). Each side is
    subsampled to ``max_rows`` rows (seeded) to bound the cost. The interval is the normal
    approximation over folds."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedGroupKFold

    rng = np.random.default_rng(seed)
    sides = []
    for frame in (real, synthetic):
        rows = rng.choice(len(frame), min(len(frame), max_rows), replace=False)
        sides.append(frame.iloc[np.sort(rows)])
    both = pd.concat(sides, ignore_index=True)
    x = features(both, schema)
    y = np.r_[np.zeros(len(sides[0])), np.ones(len(sides[1]))]
    # identical rows on both sides share a fold, so a copied record cannot be "recognised" from
    # its twin in the training fold (that would push the AUC of a copy below 0.5)
    groups = pd.util.hash_pandas_object(pd.DataFrame(x), index=False).to_numpy()
    aucs = []
    splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(x, y, groups):
        model = HistGradientBoostingClassifier(max_iter=100, random_state=seed)
        model.fit(x[train], y[train])
        aucs.append(roc_auc_score(y[test], model.predict_proba(x[test])[:, 1]))
    mean = float(np.mean(aucs))
    spread = 1.96 * float(np.std(aucs, ddof=1)) / math.sqrt(folds) if folds > 1 else 0.0
    return Score(
        "fidelity.detection_auc", mean, "min", ci=(mean - spread, mean + spread), baseline=0.5,
        help="real-vs-synthetic classifier AUC; 0.5 is ideal",
    )  # fmt: skip


def column_details(
    real: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema
) -> dict[str, dict[str, float]]:
    """Per column: missing-value rates, and coverage of the real categories or range."""
    out = {}
    for column in schema.columns:
        a, b = real[column.name], synthetic[column.name]
        detail = {
            "missing_real": float(a.isna().mean()),
            "missing_synthetic": float(b.isna().mean()),
        }
        if column.kind in ("numerical", "datetime"):
            x, z = as_number(a).dropna(), as_number(b).dropna()
            if len(x) and len(z) and x.max() > x.min():
                overlap = min(x.max(), z.max()) - max(x.min(), z.min())
                detail["range_coverage"] = float(np.clip(overlap / (x.max() - x.min()), 0, 1))
        else:
            seen = set(a.dropna().astype(str))
            if seen:
                detail["category_coverage"] = len(seen & set(b.dropna().astype(str))) / len(seen)
        out[column.name] = detail
    return out


def fidelity_scores(
    real: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema, *, seed: int = 0
) -> tuple[list[Score], dict[str, dict[str, float]]]:
    """Every fidelity score, and per-column details."""
    report = quality_report(real, synthetic, schema, seed=seed)
    properties = report.get_properties().set_index("Property")["Score"]
    scores = [
        Score("fidelity.quality", float(report.get_score()), "max", baseline=1.0,
              help="SDMetrics QualityReport: mean of shapes and pair trends"),
        Score("fidelity.column_shapes", float(properties["Column Shapes"]), "max", baseline=1.0,
              help="SDMetrics: KS / TV complement per column"),
        Score("fidelity.marginal_tvd_2way", marginal_tvd(real, synthetic, schema, way=2), "min",
              baseline=0.0, help="mean total variation distance over all 2-way marginals"),
    ]  # fmt: skip
    if len(schema.columns) > 1:
        trends = float(properties["Column Pair Trends"])
        if math.isfinite(trends):
            pairs = Score("fidelity.column_pair_trends", trends, "max", baseline=1.0,
                          help="SDMetrics: correlation / contingency similarity")  # fmt: skip
            scores.insert(2, pairs)
    if len(schema.columns) > 2:
        tvd3 = marginal_tvd(real, synthetic, schema, way=3, max_marginals=200, seed=seed)
        scores.append(Score("fidelity.marginal_tvd_3way", tvd3, "min", baseline=0.0,
                            help="mean TVD over (up to 200 sampled) 3-way marginals"))  # fmt: skip
    scores.append(detection_auc(real, synthetic, schema, seed=seed))
    details = column_details(real, synthetic, schema)
    shapes = report.get_details("Column Shapes")
    for _, row in shapes.iterrows():
        details[row["Column"]]["shape"] = float(row["Score"])
    return scores, details
