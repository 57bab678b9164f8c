"""Generator protocol, the shared encode/decode layer, fitted models and reference generators.

A generator is a frozen spec of hyper-parameters; ``fit(data, schema, seed=...)`` returns a new
:class:`FittedGenerator` that samples, saves and loads. Every generator sees the same *encoded*
table: numerical columns as float64 (datetimes as seconds since the epoch) and categorical
columns as text (booleans as ``"True"``/``"False"``), with missing values as NaN/None. Columns
with fewer than two distinct values (constant or all-missing) are not modelled at all: the codec
replays them with their missing-value rate. Decoding restores types, rounds integer columns and
clips to the schema's bounds, so every sample lies inside the schema's domain.

The two reference generators calibrate every audit:

- ``identity`` releases the training rows themselves: the privacy ceiling every attack must catch.
- ``independent`` samples each column's marginal alone, so records carry no joint signal.
"""

from __future__ import annotations

import io
import math
import pickle
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
import pandas as pd

from synth.errors import DataError, ParamError, SynthguardError
from synth.runtime import limited_threads, seeded
from synth.schema import Schema

if TYPE_CHECKING:
    from synth.dp.accounting import Budget

Progress = Callable[[int, int], None]
"""Called with (done, total) units of fitting work, e.g. epochs."""

_MODEL_FORMAT = "synthguard-model"
_MODEL_VERSION = 1


class Generator(Protocol):
    """A frozen spec of hyper-parameters; no data, no state."""

    name: ClassVar[str]
    description: ClassVar[str]
    releases_real_rows: ClassVar[bool]

    def fit(
        self,
        data: pd.DataFrame,
        schema: Schema,
        *,
        seed: int,
        threads: int = 1,
        progress: Progress | None = None,
    ) -> FittedGenerator: ...

    def params(self) -> dict[str, Any]: ...


# ---- encoding --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Codec:
    """What decoding needs to know about the training table besides the model itself.

    ``replayed`` maps each constant or all-missing column to (its value or None, missing share);
    ``labels`` maps each categorical column's text form back to its original value. Both hold
    per-column facts (a category list, a rate), never rows.
    """

    schema: Schema
    modelled: dict[str, str]
    replayed: dict[str, tuple[Any, float]]
    labels: dict[str, dict[str, Any]]

    @classmethod
    def fit(cls, frame: pd.DataFrame, schema: Schema) -> Codec:
        modelled: dict[str, str] = {}
        replayed: dict[str, tuple[Any, float]] = {}
        labels: dict[str, dict[str, Any]] = {}
        for column in schema.columns:
            values = frame[column.name]
            present = values.dropna()
            if present.nunique() < 2:
                constant = present.iloc[0] if len(present) else None
                replayed[column.name] = (_plain(constant), float(values.isna().mean()))
                continue
            if column.kind in ("numerical", "datetime"):
                modelled[column.name] = "numerical"
            else:
                modelled[column.name] = "categorical"
                labels[column.name] = {str(v): _plain(v) for v in present.unique()}
        return cls(schema, modelled, replayed, labels)

    @classmethod
    def from_schema(cls, schema: Schema) -> Codec:
        """A codec that reads nothing from the data: every column modelled, labels from the
        schema. DP generators use it, since any fact learned from the data must be paid for."""
        modelled: dict[str, str] = {}
        labels: dict[str, dict[str, Any]] = {}
        for column in schema.columns:
            if column.kind in ("numerical", "datetime"):
                modelled[column.name] = "numerical"
            else:
                modelled[column.name] = "categorical"
                values = (True, False) if column.kind == "boolean" else column.categories or ()
                labels[column.name] = {str(v): v for v in values}
        return cls(schema, modelled, {}, labels)

    def encode(self, frame: pd.DataFrame) -> pd.DataFrame:
        out = {}
        for name, kind in self.modelled.items():
            values = frame[name]
            if self.schema[name].kind == "datetime":
                out[name] = _datetime_to_seconds(values)
            elif kind == "numerical":
                out[name] = values.astype("float64")
            else:
                out[name] = values.astype(object).map(lambda v: None if _missing(v) else str(v))
        return pd.DataFrame(out).reset_index(drop=True)

    def decode(self, encoded: pd.DataFrame, n: int, *, seed: int) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        out = {}
        for column in self.schema.columns:
            name = column.name
            if name in self.replayed:
                value, missing_share = self.replayed[name]
                values = pd.Series([value] * n, dtype=object)
                if value is not None and missing_share > 0:
                    values[rng.random(n) < missing_share] = None
            else:
                values = encoded[name].reset_index(drop=True)
            out[name] = self._typed(column.name, values)
        return pd.DataFrame(out, index=pd.RangeIndex(n))

    def _typed(self, name: str, values: pd.Series) -> pd.Series:
        column = self.schema[name]
        if column.kind in ("numerical", "datetime"):
            numbers = pd.to_numeric(values, errors="coerce").astype("float64")
            lower, upper = column.bounds()
            numbers = numbers.clip(lower=lower, upper=upper)
            if column.values is not None:  # a declared discrete support: its values only
                numbers = pd.Series(snap(numbers.to_numpy(), column.values), index=numbers.index)
            if column.kind == "datetime":
                return _seconds_to_datetime(numbers)
            if column.dtype == "int":
                return numbers.round().astype("Int64")
            return numbers
        if column.kind == "boolean":
            typed = values.map(lambda v: pd.NA if _missing(v) else str(v) == "True")
            return typed.astype("boolean")
        labels = self.labels.get(name, {})
        return values.map(lambda v: None if _missing(v) else labels.get(str(v), v)).astype(object)


def snap(numbers: np.ndarray, support: tuple[float, ...]) -> np.ndarray:
    """Each number to the nearest value of ``support`` (sorted); NaN stays NaN."""
    points = np.asarray(support, dtype=float)
    at = np.clip(np.searchsorted(points, numbers), 1, len(points) - 1) if len(points) > 1 else None
    if at is None:
        return np.where(np.isnan(numbers), np.nan, points[0])
    left, right = points[at - 1], points[at]
    nearest = np.where(np.abs(numbers - left) <= np.abs(right - numbers), left, right)
    return np.where(np.isnan(numbers), np.nan, nearest)


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def _datetime_to_seconds(values: pd.Series) -> pd.Series:
    stamps = values.astype("datetime64[ns]")
    nanos = stamps.astype("int64").astype("float64")
    return (nanos / 1e9).where(stamps.notna())


def _seconds_to_datetime(seconds: pd.Series) -> pd.Series:
    nanos = (seconds * 1e9).round()
    out = pd.to_datetime(nanos.astype("Int64"), unit="ns")
    return out.astype("datetime64[ns]")


# ---- the generator base and the fitted model -----------------------------------------------


@dataclass(frozen=True, kw_only=True)
class BaseGenerator:
    """Shared fit/sample plumbing; subclasses implement ``_fit`` and ``_sample`` on encoded data."""

    name: ClassVar[str]
    description: ClassVar[str]
    releases_real_rows: ClassVar[bool] = False
    reference: ClassVar[bool] = False
    """A reference generator (identity, independent, leaky_mst): it calibrates audits and is
    never a candidate for release."""
    learns_domain_from_data: ClassVar[bool] = True
    """False for DP generators: the codec then comes from the schema alone."""
    requires: ClassVar[tuple[str, ...]] = ()
    """Distributions a logged model needs to load elsewhere, beyond numpy and pandas."""

    def params(self) -> dict[str, Any]:
        """The spec as flat name -> value pairs (tuples kept), for logging."""
        return asdict(self)

    def fit(
        self,
        data: pd.DataFrame,
        schema: Schema,
        *,
        seed: int,
        threads: int = 1,
        progress: Progress | None = None,
    ) -> FittedGenerator:
        """Fit on ``data`` (checked against ``schema``; never modified) and return a new model."""
        frame = schema.conform(data)
        if len(frame) == 0:
            raise DataError("cannot fit a generator on an empty table")
        codec = (
            Codec.fit(frame, schema) if self.learns_domain_from_data else Codec.from_schema(schema)
        )
        encoded = codec.encode(frame)
        started = time.perf_counter()
        state = None
        if codec.modelled:
            self._load_libraries()  # before seeding: seeded() reaches only loaded libraries
            with limited_threads(threads), seeded(seed):
                state = self._fit(encoded, codec, seed=seed, progress=progress)
            codec = self._released_codec(codec, state)
        return FittedGenerator(
            spec=self,
            codec=codec,
            state=state,
            fit_seconds=time.perf_counter() - started,
            n_train=len(frame) if self.learns_domain_from_data else None,
        )

    def _released_codec(self, codec: Codec, state: Any) -> Codec:
        """The codec the fitted model decodes with (DP generators: the public domain's)."""
        return codec

    def load_libraries(self) -> None:
        """Import what fitting needs now (torch, SDV: seconds): a job calls it before it opens
        its run, so a Ctrl-C during the imports leaves no run behind."""
        self._load_libraries()

    def _load_libraries(self) -> None:
        """Import the libraries ``_fit`` draws random numbers from (torch, sdv)."""

    @property
    def budget(self) -> Budget | None:
        """The privacy budget the generator claims (DP generators), or None: no formal claim."""
        return None

    def _fit(
        self,
        encoded: pd.DataFrame,
        codec: Codec,
        *,
        seed: int,
        progress: Progress | None,
    ) -> Any:
        raise NotImplementedError

    def _sample(self, state: Any, n: int, *, seed: int) -> pd.DataFrame:
        raise NotImplementedError


@dataclass
class FittedGenerator:
    """A fitted generator: samples tables, saves and loads.

    Saved models are pickles: load only files you trust (:meth:`load` requires ``trusted=True``).
    """

    spec: BaseGenerator
    codec: Codec
    state: Any
    fit_seconds: float
    n_train: int | None
    """Training rows; None for DP generators, whose models carry only a noisy estimate."""

    @property
    def schema(self) -> Schema:
        return self.codec.schema

    @property
    def default_rows(self) -> int:
        """Rows to sample when none are asked for: as many as the training set, or for a DP
        generator its noisy estimate of that (the exact count is not differentially private)."""
        if self.n_train is not None:
            return self.n_train
        return max(1, round(float(getattr(self.state, "total", 1.0))))

    @property
    def details(self) -> dict[str, Any]:
        """Generator-specific facts worth logging (a DP generator's privacy ledger, costs)."""
        return dict(getattr(self.state, "details", {}))

    def sample(self, n: int, *, seed: int, threads: int = 1) -> pd.DataFrame:
        """Draw ``n`` rows; the same seed gives the same table."""
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
            raise ParamError(f"number of rows ({n!r}) must be a whole number >= 0")
        n = int(n)
        if self.state is not None and n > 0:
            with limited_threads(threads), seeded(seed):
                encoded = self.spec._sample(self.state, n, seed=seed)
            if len(encoded) != n:
                raise SynthguardError(
                    f"generator {self.spec.name!r} returned {len(encoded)} rows, not {n}"
                )
        else:  # nothing modelled, or no rows asked for
            encoded = pd.DataFrame({c: [None] * n for c in self.codec.modelled}, dtype=object)
        return self.codec.decode(encoded, n, seed=seed)

    def dumps(self) -> bytes:
        import cloudpickle

        buffer = io.BytesIO()
        cloudpickle.dump(
            {"format": _MODEL_FORMAT, "version": _MODEL_VERSION, "model": self}, buffer
        )
        return buffer.getvalue()

    def save(self, path: str | Path) -> None:
        from synth.io import write_bytes_atomic

        write_bytes_atomic(Path(path), self.dumps())

    @staticmethod
    def load(path: str | Path, *, trusted: bool) -> FittedGenerator:
        """Load a saved model. This unpickles, which can run arbitrary code: trusted files only."""
        if not trusted:
            raise ParamError(
                "loading a model unpickles it, which can run code; pass trusted=True only for "
                "files you created or trust"
            )
        try:
            with open(path, "rb") as handle:
                payload = pickle.load(handle)
        except OSError as error:
            raise DataError(f"cannot read model file {str(path)!r}: {error.strerror}") from None
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as error:
            raise DataError(f"{str(path)!r} is not a synthguard model ({error})") from None
        if not isinstance(payload, dict) or payload.get("format") != _MODEL_FORMAT:
            raise DataError(f"{str(path)!r} is not a synthguard model")
        return payload["model"]


# ---- reference generators ------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Identity(BaseGenerator):
    """Releases the training rows themselves (shuffled; repeated only if more rows are asked).

    The privacy ceiling: every membership attack must catch it. Its model *is* the training data,
    so it is never logged or saved anywhere a release could pick it up.
    """

    name: ClassVar[str] = "identity"
    description: ClassVar[str] = (
        "reference: releases the training rows (every attack must catch it)"
    )
    releases_real_rows: ClassVar[bool] = True
    reference: ClassVar[bool] = True

    def _fit(self, encoded, codec, *, seed, progress):
        return encoded.copy()

    def _sample(self, state: pd.DataFrame, n: int, *, seed: int) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        rounds = math.ceil(n / len(state))
        order = np.concatenate([rng.permutation(len(state)) for _ in range(rounds)])[:n]
        return state.iloc[order].reset_index(drop=True)


@dataclass(frozen=True, kw_only=True)
class Independent(BaseGenerator):
    """Samples every column from its own marginal, independently of the others.

    Keeps each column's distribution and no joint structure, so records say little about any
    one person: attacks on random targets should score close to chance. It copies no rare
    value either (copying them let univariate singling out isolate the records that hold them):
    a value at least ``min_count`` records share is kept exactly (a category, a point mass such
    as 0, a common count); a number held by fewer is drawn uniformly inside its quantile bin
    (``bins`` bins between the 0.5% and 99.5% quantiles of those numbers), and a rarer category
    is not drawn at all. The model stores those values, shares and bin edges, never rows.
    """

    name: ClassVar[str] = "independent"
    description: ClassVar[str] = "reference: samples each column's marginal alone (no joint signal)"
    reference: ClassVar[bool] = True
    min_count: int = 10
    bins: int = 20

    def __post_init__(self) -> None:
        for key in ("min_count", "bins"):
            if getattr(self, key) < 1:
                raise ParamError(f"{key} ({getattr(self, key)}) must be >= 1")

    def _fit(self, encoded, codec, *, seed, progress):
        marginals = {}
        for name in encoded.columns:
            values = encoded[name]
            counts = values.value_counts(dropna=False, sort=False)
            common = counts[counts >= self.min_count]
            rare = values[values.isin(counts.index[counts < self.min_count]) & values.notna()]
            edges = np.array([])
            if codec.modelled[name] == "numerical" and len(rare) >= self.min_count:
                numbers = rare.to_numpy(dtype=float)
                bins = max(1, min(self.bins, len(numbers) // self.min_count))
                edges = np.unique(np.quantile(numbers, np.linspace(0.005, 0.995, bins + 1)))
            # exact values (missing included), then one entry per bin
            atoms = common.index.to_numpy(dtype=object)
            weights = common.to_numpy(dtype=float)
            if len(edges) > 1:
                inside = np.clip(np.searchsorted(edges, rare, side="right") - 1, 0, len(edges) - 2)
                weights = np.r_[weights, np.bincount(inside, minlength=len(edges) - 1)]
            if weights.sum() <= 0:  # every value rare and too few to bin: missing only
                atoms, weights = np.array([None], dtype=object), np.array([1.0])
            marginals[name] = (atoms, edges, weights / weights.sum())
        return marginals

    def _sample(self, state, n, *, seed):
        columns = {}
        for rng, (name, (atoms, edges, share)) in zip(
            (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(state))),
            state.items(),
            strict=True,
        ):
            picks = rng.choice(len(share), size=n, p=share)
            out = np.empty(n, dtype=object)
            exact = picks < len(atoms)
            out[exact] = atoms[picks[exact]]
            if (~exact).any():
                bin_index = picks[~exact] - len(atoms)
                low, high = edges[bin_index], edges[bin_index + 1]
                out[~exact] = low + rng.random(len(bin_index)) * (high - low)
            columns[name] = out
        return pd.DataFrame(columns)
