"""Fidelity: how closely a synthetic table reproduces the real one's marginals.

Mean total-variation distance over k-way marginals, as in the NIST CRC and the MST/AIM papers:
numericals and datetimes are binned into equal-width bins over the real column's range, missing
values are a category of their own, and each marginal's TVD is half the L1 distance between the
real and synthetic cell shares (0 = identical, 1 = disjoint).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

from synth.schema import Schema


def _codes(real: pd.Series, synthetic: pd.Series, numerical: bool, bins: int):
    """Shared integer codes for one column of both tables (missing values: their own code)."""
    if numerical:
        as_number = lambda s: pd.to_numeric(  # noqa: E731
            s.astype("int64") if pd.api.types.is_datetime64_any_dtype(s) else s, errors="coerce"
        ).astype(float)
        a, b = as_number(real), as_number(synthetic)
        low, high = (
            np.nanmin(a) if a.notna().any() else 0.0,
            np.nanmax(a) if a.notna().any() else 0.0,
        )
        edges = np.linspace(low, high, bins + 1)[1:-1] if high > low else np.array([])
        code = lambda x: np.where(x.isna(), bins, np.searchsorted(edges, x, side="right"))  # noqa: E731
        return code(a), code(b), bins + 1
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
