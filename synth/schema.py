"""Table schema: column kinds, missing values, categories and bounds.

A schema is the public description of a table's domain. Generators read it to know what to
produce; differentially private generators need it to be *public* (declared by a human, not read
off the private data), because a domain inferred from the data reveals real minima, maxima and the
full list of categories, rare ones included.

``Schema.infer`` therefore marks its result ``source="inferred"``: use it to draft a schema file
(``synthguard schema DATA --out schema.toml``), review and generalise it (round the bounds, drop
rare categories), and pass the reviewed file with ``--schema``.

The TOML form, one table per column in column order::

    [columns.age]
    kind = "numerical"
    dtype = "float"
    lower = 0.0
    upper = 110.0

    [columns.region]
    kind = "categorical"
    categories = ["midwest", "northeast", "other", "west"]
    nullable = true

A numerical column may also say how its values are spread, which DP generators use to cut it
into public cells: ``values`` (a discrete support, e.g. loan terms ``[12, 24, 36]``: every
generator returns only these), ``scale = "log"`` (heavy right tail: cells spaced
logarithmically from the lower bound) or ``scale = "linear"``, or explicit cell ``edges``.
"""

from __future__ import annotations

import itertools
import math
import tomllib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import tomli_w

from synth.errors import DataError, SchemaError

Kind = Literal["numerical", "categorical", "boolean", "datetime"]
KINDS: tuple[str, ...] = ("numerical", "categorical", "boolean", "datetime")
_TRUE = frozenset({True, "True", "true", "TRUE"})
_FALSE = frozenset({False, "False", "false", "FALSE"})

# A text column with more distinct values than this share of its rows is probably an identifier.
_IDENTIFIER_SHARE = 0.5
# A numerical column with at most this many distinct values is drafted with its discrete support.
DISCRETE_VALUES = 64


@dataclass(frozen=True, kw_only=True)
class Column:
    """One column's public domain.

    ``lower``/``upper`` bound numerical columns (numbers) and datetime columns (ISO strings);
    ``categories`` lists a categorical column's values; ``nullable`` allows missing values.
    """

    name: str
    kind: Kind
    dtype: Literal["int", "float"] | None = None
    nullable: bool = False
    categories: tuple[Any, ...] | None = None
    lower: float | str | None = None
    upper: float | str | None = None
    values: tuple[float, ...] | None = None
    """Numerical only: the discrete support (sorted, inside the bounds)."""
    scale: Literal["linear", "log"] | None = None
    """Numerical only: how values spread between the bounds (None: not declared)."""
    edges: tuple[float, ...] | None = None
    """Numerical only: explicit cell edges (increasing) for DP discretisation."""

    def problems(self) -> list[str]:
        """What is wrong with this declaration itself (not with any data)."""
        found = []
        where = f"column {self.name!r}"
        if self.kind not in KINDS:
            found.append(f"{where}: kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.kind == "numerical" and self.dtype not in ("int", "float"):
            found.append(f"{where}: numerical columns need dtype 'int' or 'float'")
        if self.kind != "numerical" and self.dtype is not None:
            found.append(f"{where}: dtype applies to numerical columns only")
        if self.kind == "categorical" and self.categories is not None:
            if len(set(self.categories)) != len(self.categories):
                found.append(f"{where}: categories repeat a value")
        elif self.categories is not None:
            found.append(f"{where}: categories apply to categorical columns only")
        if self.kind in ("categorical", "boolean") and (
            self.lower is not None or self.upper is not None
        ):
            found.append(f"{where}: bounds apply to numerical and datetime columns only")
        if self.kind == "datetime":
            for label, bound in (("lower", self.lower), ("upper", self.upper)):
                if bound is not None and _parse_datetime(bound) is None:
                    found.append(f"{where}: {label} bound {bound!r} is not an ISO date")
        lo, hi = self.bounds()
        if lo is not None and hi is not None and lo > hi:
            found.append(f"{where}: lower bound {self.lower!r} exceeds upper {self.upper!r}")
        found += self._spread_problems(where, lo, hi)
        return found

    def _spread_problems(self, where: str, lo: Any, hi: Any) -> list[str]:
        declared = [k for k in ("values", "scale", "edges") if getattr(self, k) is not None]
        if not declared:
            return []
        if self.kind != "numerical":
            return [f"{where}: {', '.join(declared)} apply to numerical columns only"]
        found = []
        if len(declared) > 1:
            found.append(
                f"{where}: declare one of values, scale, edges (not {', '.join(declared)})"
            )
        if self.scale is not None and self.scale not in ("linear", "log"):
            found.append(f"{where}: scale {self.scale!r} must be 'linear' or 'log'")
        for key in ("values", "edges"):
            points = getattr(self, key)
            if points is None:
                continue
            if not points or any(not isinstance(p, int | float) or p != p for p in points):
                found.append(f"{where}: {key} must be a non-empty list of numbers")
            elif any(b <= a for a, b in itertools.pairwise(points)):
                found.append(f"{where}: {key} must be strictly increasing")
            elif (lo is not None and points[0] < lo) or (hi is not None and points[-1] > hi):
                found.append(f"{where}: {key} must lie within the bounds [{lo}, {hi}]")
        if self.edges is not None and len(self.edges) < 2:
            found.append(f"{where}: edges need at least two numbers")
        return found

    def bounds(self) -> tuple[float | None, float | None]:
        """Bounds as numbers (datetimes as seconds since the epoch)."""
        if self.kind == "datetime":
            return _epoch_seconds(self.lower), _epoch_seconds(self.upper)
        if self.kind == "numerical":
            return self.lower, self.upper  # type: ignore[return-value]
        return None, None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        if self.dtype is not None:
            out["dtype"] = self.dtype
        if self.nullable:
            out["nullable"] = True
        if self.categories is not None:
            out["categories"] = list(self.categories)
        if self.lower is not None:
            out["lower"] = self.lower
        if self.upper is not None:
            out["upper"] = self.upper
        if self.values is not None:
            out["values"] = [_number(v) for v in self.values]
        if self.scale is not None:
            out["scale"] = self.scale
        if self.edges is not None:
            out["edges"] = [_number(v) for v in self.edges]
        return out


@dataclass(frozen=True)
class Schema:
    """An ordered set of columns, and where the description came from."""

    columns: tuple[Column, ...]
    source: Literal["declared", "inferred"] = "declared"
    _by_name: dict[str, Column] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        problems = [p for column in self.columns for p in column.problems()]
        names = [c.name for c in self.columns]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            problems.append(f"columns declared twice: {', '.join(repeated)}")
        if not self.columns:
            problems.append("no columns declared")
        if problems:
            raise SchemaError(problems, context="invalid schema")
        object.__setattr__(self, "_by_name", {c.name: c for c in self.columns})

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def __getitem__(self, name: str) -> Column:
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def select(self, names: Sequence[str]) -> Schema:
        return Schema(tuple(self[n] for n in names), source=self.source)

    # ---- inference -------------------------------------------------------------------------

    @classmethod
    def infer(cls, data: pd.DataFrame) -> Schema:
        """Draft a schema from the data itself.

        This reads the private data: the bounds are its real extremes and the categories all its
        values. Fine for non-private generators; DP generators need a declared (public) domain.
        Warns about columns that look like identifiers (mostly distinct text).
        """
        if data.shape[1] == 0:
            raise DataError("the table has no columns")
        columns = []
        for name in data.columns:
            column = _infer_column(str(name), data[name])
            columns.append(column)
            distinct = data[name].nunique(dropna=True)
            if (
                column.kind == "categorical"
                and len(data) >= 20
                and distinct > _IDENTIFIER_SHARE * len(data)
            ):
                warnings.warn(
                    f"column {name!r} has {distinct} distinct values in {len(data)} rows; it looks "
                    "like an identifier: drop it before release",
                    stacklevel=2,
                )
        return cls(tuple(columns), source="inferred")

    # ---- TOML ------------------------------------------------------------------------------

    def to_toml(self) -> str:
        header = (
            "# synthguard schema. Inferred from the data: its bounds, categories and values are\n"
            '# the real ones, and scale = "log" marks a heavy tail it saw. Review before use\n'
            "# with a DP generator or before it travels: generalise bounds, drop rare values.\n"
            if self.source == "inferred"
            else "# synthguard schema\n"
        )
        body = tomli_w.dumps({"columns": {c.name: c.to_dict() for c in self.columns}})
        return header + body

    @classmethod
    def from_toml(cls, text: str, *, origin: str = "schema") -> Schema:
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise SchemaError(
                [f"{origin} is not valid TOML ({error})"], context="invalid schema"
            ) from None
        table = doc.get("columns")
        if not isinstance(table, dict) or not table:
            raise SchemaError(
                [f"{origin} has no [columns.<name>] tables"], context="invalid schema"
            )
        known = {
            "kind", "dtype", "nullable", "categories", "lower", "upper", "values", "scale", "edges"
        }  # fmt: skip
        problems, columns = [], []
        for name, spec in table.items():
            if not isinstance(spec, dict):
                problems.append(f"column {name!r}: expected a table of settings")
                continue
            unknown = sorted(set(spec) - known)
            if unknown:
                problems.append(f"column {name!r}: unknown keys {', '.join(unknown)}")
                continue
            if "kind" not in spec:
                problems.append(f"column {name!r}: missing 'kind'")
                continue
            categories = spec.get("categories")
            columns.append(
                Column(
                    name=name,
                    kind=spec["kind"],
                    dtype=spec.get("dtype"),
                    nullable=bool(spec.get("nullable", False)),
                    categories=tuple(categories) if categories is not None else None,
                    lower=_toml_bound(spec.get("lower")),
                    upper=_toml_bound(spec.get("upper")),
                    values=_toml_points(spec.get("values")),
                    scale=spec.get("scale"),
                    edges=_toml_points(spec.get("edges")),
                )
            )
        problems += [p for c in columns for p in c.problems()]
        if problems:
            raise SchemaError(problems, context="invalid schema")
        return cls(tuple(columns), source="declared")

    @classmethod
    def load(cls, path: str | Path) -> Schema:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise DataError(f"cannot read schema file {str(path)!r}: {error.strerror}") from None
        return cls.from_toml(text, origin=str(path))

    # ---- data against schema ---------------------------------------------------------------

    def conform(self, data: pd.DataFrame) -> pd.DataFrame:
        """Check ``data`` against the schema and return a typed copy in schema column order.

        Every problem is collected and raised at once as a :class:`SchemaError`. Numericals become
        ``Int64``/``float64``, booleans ``boolean``, datetimes ``datetime64[ns]``; categorical
        values keep their type (text values compare as text).
        """
        problems = []
        missing = [n for n in self.names if n not in data.columns]
        extra = [str(n) for n in data.columns if n not in self]
        if missing:
            problems.append(f"columns missing from the data: {', '.join(missing)}")
        if extra:
            problems.append(f"columns not in the schema: {', '.join(extra)}")
        out = {}
        for column in self.columns:
            if column.name not in data.columns:
                continue
            values, found = _conform_column(column, data[column.name])
            problems += found
            out[column.name] = values
        if problems:
            raise SchemaError(problems)
        return pd.DataFrame(out, index=data.index)

    def kinds(self) -> dict[str, str]:
        """Column name to kind: the non-sensitive part of a schema, safe to log anywhere."""
        return {c.name: c.kind for c in self.columns}


# ---- helpers -------------------------------------------------------------------------------


def _toml_points(value: Any) -> tuple[Any, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        return (value,)  # refused by Column.problems with the column's name
    return tuple(float(v) if isinstance(v, int | float) and not isinstance(v, bool) else v
                 for v in value)  # fmt: skip


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else float(value)


def _toml_bound(value: Any) -> float | str | None:
    if value is None or isinstance(value, str):
        return value
    if hasattr(value, "isoformat"):  # TOML dates and datetimes
        return value.isoformat()
    return float(value)


def _parse_datetime(value: Any) -> pd.Timestamp | None:
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError):
        return None
    return None if pd.isna(stamp) else stamp


def _epoch_seconds(value: Any) -> float | None:
    stamp = None if value is None else _parse_datetime(value)
    return None if stamp is None else stamp.value / 1e9


def _is_boolean(values: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(values):
        return True
    present = values.dropna()
    if present.empty or pd.api.types.is_numeric_dtype(values):
        return False
    distinct = set(present.unique())
    return distinct <= (_TRUE | _FALSE)


def _as_datetime(values: pd.Series) -> pd.Series | None:
    """Parse text as ISO dates, or None when any present value is not one."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):  # times with a zone: as UTC
        return values.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[ns]")
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.astype("datetime64[ns]")
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return None
    present = values.dropna()
    if present.empty or not all(isinstance(v, str) and "-" in v for v in present.iloc[:50]):
        return None
    try:  # offsets (even mixed ones) become UTC; times without one are read as they are
        parsed = pd.to_datetime(values, format="ISO8601", utc=True)
    except (ValueError, TypeError, OverflowError):
        return None
    return parsed.dt.tz_localize(None).astype("datetime64[ns]")


def _infer_column(name: str, values: pd.Series) -> Column:
    nullable = bool(values.isna().any())
    if _is_boolean(values):
        return Column(name=name, kind="boolean", nullable=nullable)
    if pd.api.types.is_numeric_dtype(values):
        present = values.dropna().astype(float)
        present = present[np.isfinite(present)]  # infinities: refused by conform, by name
        integral = bool(np.all(np.mod(present, 1) == 0)) if len(present) else False
        lower = float(present.min()) if len(present) else None
        upper = float(present.max()) if len(present) else None
        distinct = np.unique(present.to_numpy())
        return Column(
            name=name,
            kind="numerical",
            dtype="int" if integral else "float",
            nullable=nullable,
            lower=lower,
            upper=upper,
            values=tuple(distinct.tolist()) if 1 < len(distinct) <= DISCRETE_VALUES else None,
            scale="log" if len(distinct) > DISCRETE_VALUES and _heavy_tailed(present) else None,
        )
    parsed = _as_datetime(values)
    if parsed is not None:
        present = parsed.dropna()
        return Column(
            name=name,
            kind="datetime",
            nullable=nullable,
            lower=present.min().isoformat() if len(present) else None,
            upper=present.max().isoformat() if len(present) else None,
        )
    categories = sorted({_plain(v) for v in values.dropna().unique()}, key=_category_order)
    return Column(name=name, kind="categorical", nullable=nullable, categories=tuple(categories))


def _heavy_tailed(present: pd.Series) -> bool:
    """Non-negative with a right tail much longer than its bulk: (q99 - q1) at least ten times
    (q50 - q1). A point mass at the bottom (most values 0) counts too."""
    if present.min() < 0:
        return False
    q1, q50, q99 = np.quantile(present, [0.01, 0.5, 0.99])
    return bool(q99 - q1 >= 10 * (q50 - q1)) and q99 > q1


def _plain(value: Any) -> Any:
    """numpy scalars to Python ones, so categories serialise."""
    return value.item() if isinstance(value, np.generic) else value


def _category_order(value: Any) -> tuple[str, str]:
    return (type(value).__name__, str(value))


def _conform_column(column: Column, values: pd.Series) -> tuple[pd.Series, list[str]]:
    where = f"column {column.name!r}"
    problems = []
    nulls = values.isna()
    if nulls.any() and not column.nullable:
        problems.append(f"{where} has {int(nulls.sum())} missing values but is not nullable")

    if column.kind == "numerical":
        numbers = pd.to_numeric(values, errors="coerce")
        bad = numbers.isna() & ~nulls
        if bad.any():
            problems.append(f"{where} has {int(bad.sum())} non-numeric values")
        numbers = numbers.astype("float64")
        infinite = np.isinf(numbers)
        if infinite.any():
            problems.append(f"{where} has {int(infinite.sum())} infinite values (inf, -inf): "
                            "replace them or make them missing")  # fmt: skip
            numbers = numbers.where(~infinite)
        if column.dtype == "int":
            present = numbers.dropna()
            if not np.all(np.mod(present, 1) == 0):
                problems.append(f"{where} is declared int but has fractional values")
                typed = numbers
            else:
                typed = numbers.astype("Int64")
        else:
            typed = numbers
        problems += _bound_problems(where, numbers, *column.bounds())
        if column.values is not None:
            outside = ~numbers.isin(column.values) & numbers.notna()
            if outside.any():
                problems.append(f"{where} has {int(outside.sum())} values outside its declared "
                                "values")  # fmt: skip
        return typed, problems

    if column.kind == "boolean":
        present = values[~nulls]
        known = present.map(lambda v: v in _TRUE or v in _FALSE)
        if not known.all():
            problems.append(f"{where} has {int((~known).sum())} values that are not true/false")
            return values, problems
        typed = pd.Series(pd.NA, index=values.index, dtype="boolean")
        typed[~nulls] = present.map(lambda v: v in _TRUE).astype(bool)
        return typed, problems

    if column.kind == "datetime":
        parsed = _as_datetime(values) if not nulls.all() else values.astype("datetime64[ns]")
        if parsed is None:
            problems.append(f"{where} has values that are not ISO dates")
            return values, problems
        seconds = parsed.astype("int64").where(~nulls).astype("float64") / 1e9
        problems += _bound_problems(
            where,
            seconds,
            _epoch_seconds(column.lower),
            _epoch_seconds(column.upper),
            shown=(column.lower, column.upper),
        )
        return parsed, problems

    # categorical
    typed = values.astype(object).where(~nulls, None)
    if column.categories is not None:
        allowed = set(column.categories)
        if all(isinstance(c, str) for c in column.categories):
            typed = typed.map(lambda v: v if v is None else str(v))
        present = typed[~nulls]
        unknown = sorted({str(v) for v in present if v not in allowed})
        if unknown:
            shown = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
            problems.append(f"{where} has {len(unknown)} values outside its categories ({shown})")
    return typed, problems


def _bound_problems(
    where: str,
    numbers: pd.Series,
    lower: float | None,
    upper: float | None,
    *,
    shown: tuple[Any, Any] | None = None,
) -> list[str]:
    found = []
    shown_lower, shown_upper = shown if shown is not None else (lower, upper)
    if lower is not None and not math.isnan(lower):
        below = int((numbers < lower).sum())
        if below:
            found.append(f"{where} has {below} values below its lower bound {shown_lower}")
    if upper is not None and not math.isnan(upper):
        above = int((numbers > upper).sum())
        if above:
            found.append(f"{where} has {above} values above its upper bound {shown_upper}")
    return found


def as_number(values: pd.Series) -> pd.Series:
    """Numbers as floats, datetimes as seconds since the epoch; missing values NaN."""
    if pd.api.types.is_datetime64_any_dtype(values):
        stamps = pd.to_datetime(values)
        return (stamps.astype("int64") / 1e9).where(stamps.notna())
    return pd.to_numeric(values, errors="coerce").astype(float)
