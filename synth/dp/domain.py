"""The public domain of DP generators: refusing a private one, and estimating a missing one.

DP generators need every column's domain to be public: it comes from the declared schema, never
from the data (:func:`require_public_domain` refuses a schema inferred from it, and
:func:`public_part` keeps only what of one is public). When a user cannot declare one, a DP
generator may (opt-in: ``domain_share`` > 0) spend ``domain_share`` of its rho on estimating it,
split evenly over the columns that lack one:

- numerical columns: a noisy histogram over a fixed, public, signed log-scale grid (four bins per
  decade from 1e-3 to 1e12, and mirrored); the bounds are the outer edges of the lowest and the
  highest bin whose noisy count clears a threshold that an empty bin clears with probability at
  most 5% / bins (so with 95% confidence no empty bin widens the range). If none clears it, the
  bin with the largest noisy count gives the bounds. Datetimes use a monthly grid from 1900 to
  2100. (Quantiles of the whole noisy histogram are useless here: the noise of the many empty
  bins outweighs the data and pushes them to the ends of the grid.)
- categorical columns: each value's count gets discrete Gaussian noise and the value is released
  when the noisy count clears a threshold set so a value held by one record escapes with
  probability at most delta_c (Gaussian thresholding; approximate zCDP). Half of delta is set
  aside for these; values left out are coded as missing.

Column kinds and integer/float types are treated as public metadata. Every estimated column is
treated as nullable, since whether a column has missing values is itself a fact about the data.
Bounds from a coarse public grid are wide; a declared schema is always better.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from synth.dp.accounting import gaussian_sigma
from synth.dp.noise import threshold_offset
from synth.dp.private import PrivateData
from synth.errors import ParamError
from synth.schema import Column, Schema

if TYPE_CHECKING:
    from synth.generators import BaseGenerator

_FALSE_BIN = 0.05  # chance that any empty grid bin clears the threshold
_POSITIVE = 10.0 ** (np.arange(-12, 49) / 4)  # 1e-3 .. 1e12, four per decade
NUMERIC_GRID = np.concatenate([-_POSITIVE[::-1], [0.0], _POSITIVE])
DATE_GRID = (
    pd.date_range("1900-01-01", "2100-01-01", freq="MS").to_numpy().astype("int64") / 1e9
).astype(float)


def require_public_domain(spec: BaseGenerator, *, declared: bool) -> None:
    """DP generators refuse a schema inferred from the data: its bounds and categories are
    private facts that nobody paid for."""
    if not spec.learns_domain_from_data and not declared and not getattr(spec, "domain_share", 0):
        raise ParamError(
            f"{spec.name} needs a public domain: pass a declared --schema (draft one with "
            "`synthguard schema DATA`, then review it), or spend part of the budget estimating "
            "it with --param domain_share=0.1; a schema inferred from the data would leak its "
            "real bounds and categories"
        )


def needs_domain(column: Column) -> bool:
    """Whether a column lacks a public domain: bounds for numbers and datetimes, categories for
    a categorical column (booleans always have theirs)."""
    if column.kind in ("numerical", "datetime"):
        return column.lower is None or column.upper is None
    return column.kind == "categorical" and column.categories is None


def public_part(schema: Schema) -> Schema:
    """What may be treated as public in an inferred schema: names, kinds and types only."""
    unknown: dict[str, Any] = {"categories": None, "lower": None, "upper": None, "values": None,
                               "scale": None, "edges": None}  # fmt: skip
    return Schema(
        tuple(
            replace(c, nullable=True, **(unknown if c.kind != "boolean" else {}))
            for c in schema.columns
        ),
        source="declared",
    )


def estimate_domain(schema: Schema, data: PrivateData, rho: float, delta: float) -> Schema:
    """Fill in every missing domain in ``schema`` from noisy answers; spends ``rho`` and, over the
    categorical columns, ``delta``."""
    missing = [i for i, c in enumerate(schema.columns) if needs_domain(c)]
    if not missing:
        return schema
    sigma = gaussian_sigma(rho / len(missing))
    categorical = [i for i in missing if schema.columns[i].kind == "categorical"]
    columns = list(schema.columns)
    for i in missing:
        column = columns[i]
        what = f"domain of {column.name!r}"
        if column.kind == "categorical":
            values = data.column_values(i, sigma, delta / len(categorical), what=what)
            columns[i] = replace(column, categories=tuple(sorted(values)), nullable=True)
            continue
        grid = DATE_GRID if column.kind == "datetime" else NUMERIC_GRID
        lower, upper = _bounds(data.histogram(i, grid, sigma, what=what), grid, sigma)
        if column.kind == "datetime":
            lower = pd.Timestamp(lower, unit="s").isoformat()
            upper = pd.Timestamp(upper, unit="s").isoformat()
        elif column.dtype == "int":
            lower, upper = float(np.floor(lower)), float(np.ceil(upper))
        columns[i] = replace(column, lower=lower, upper=upper, nullable=True)
    return Schema(tuple(columns), source="declared")


def _bounds(noisy: np.ndarray, grid: np.ndarray, sigma: float) -> tuple[float, float]:
    """Edges around the bins whose noisy count clears the threshold (post-processing only)."""
    cleared = np.flatnonzero(noisy >= threshold_offset(sigma, _FALSE_BIN / len(noisy)))
    if cleared.size == 0:  # too little data for the noise: the fullest noisy bin
        cleared = np.array([int(np.argmax(noisy))])
    return float(grid[cleared[0]]), float(grid[cleared[-1] + 1])
