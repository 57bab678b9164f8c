"""Differentially private marginal generators: MST, AIM and PrivBayes.

- MST: McKenna, Miklau & Sheldon, "Winning the NIST Contest: A scalable and general approach to
  differentially private synthetic data", Journal of Privacy and Confidentiality 11(3), 2021.
- AIM: McKenna, Mullins, Sheldon & Miklau, "AIM: An Adaptive and Iterative Mechanism for
  Differentially Private Synthetic Data", VLDB 2022.
- PrivBayes: Zhang, Cormode, Procopiuc, Srivastava & Xiao, "PrivBayes: Private Data Release via
  Bayesian Networks", ACM TODS 42(4), 2017.

MST and AIM estimate a graphical model from noisy marginals with ``mbi`` (private-pgm 2.x, JAX);
PrivBayes builds a Bayesian network and samples it ancestrally with numpy.

The domain is public: it comes from the declared schema, never from the data. Numerical and
datetime columns are cut into ``bins`` equal-width bins over their declared bounds (one bin per
value for small integer ranges) and decoded uniformly within the bin; a nullable column gets one
more code for "missing". A column without declared bounds or categories is refused.

The data is seen only through :class:`synth.dp.PrivateData`, whose every read is a noisy,
accounted measurement. The ledger of what was spent where is the fitted model's ``details``.

Compile once, fit many: mbi compiles its estimator for each clique structure. Attributes are named
by position (``c0``, ``c1``, ...) and measurements are kept in a canonical order, so fits of the
same structure on other data (shadow models, repeated releases) reuse the compiled code; the cost
of a fit's first estimation, compilation included, is reported apart as ``compile_seconds``.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from synth.dp import (
    Accountant,
    Budget,
    Noise,
    PrivateData,
    gaussian_sigma,
)
from synth.dp_domain import estimate_domain, needs_domain, public_part
from synth.errors import ParamError, SchemaError
from synth.generators import BaseGenerator, Codec, Progress
from synth.runtime import seeded
from synth.schema import Schema

# ---- public domain: bins and codes -----------------------------------------------------------


@dataclass(frozen=True)
class ColumnCoder:
    """Maps one encoded column to integer codes over its public domain, and back."""

    name: str
    numerical: bool
    size: int  # codes, the missing code included
    nullable: bool
    edges: np.ndarray | None = None  # numerical: bin edges
    integer_step: bool = False  # numerical: one bin per integer value
    labels: tuple[str, ...] = ()  # categorical: the text form of each category

    @property
    def missing_code(self) -> int | None:
        return self.size - 1 if self.nullable else None

    def encode(self, values: pd.Series) -> np.ndarray:
        missing = values.isna().to_numpy()
        if self.numerical:
            numbers = values.to_numpy(dtype=float, na_value=np.nan)
            bins = self.size - int(self.nullable)
            if self.integer_step:
                codes = np.rint(numbers - self.edges[0]).astype(float)
            else:
                codes = np.searchsorted(self.edges, numbers, side="right") - 1.0
            codes = np.clip(np.nan_to_num(codes), 0, bins - 1)
        else:
            lookup = {label: i for i, label in enumerate(self.labels)}
            unknown = self.missing_code if self.nullable else 0  # values a DP domain left out
            codes = np.array(
                [lookup.get(v, unknown) if v is not None else 0 for v in values], float
            )
        if self.nullable:
            codes[missing] = self.missing_code
        return codes.astype(np.int64)

    def decode(self, codes: np.ndarray, rng: np.random.Generator) -> pd.Series:
        missing = codes == self.missing_code if self.nullable else np.zeros(len(codes), bool)
        safe = np.where(missing, 0, codes)
        if self.numerical:
            if self.integer_step:
                values = self.edges[0] + safe.astype(float)
            else:
                low, high = self.edges[safe], self.edges[safe + 1]
                values = low + rng.random(len(codes)) * (high - low)
            return pd.Series(np.where(missing, np.nan, values))
        labels = np.array((*self.labels, None), dtype=object)  # None: a column of missing only
        return pd.Series(np.where(missing, None, labels[safe]), dtype=object)


def column_coders(schema: Schema, bins: int) -> list[ColumnCoder]:
    """Codes for every column from the schema alone; refuses columns without a public domain."""
    problems, coders = [], []
    for column in schema.columns:
        extra = int(column.nullable)
        if column.kind in ("numerical", "datetime"):
            lower, upper = column.bounds()
            if lower is None or upper is None:
                problems.append(f"column {column.name!r} needs declared lower and upper bounds")
                continue
            if column.dtype == "int" and upper - lower + 1 <= bins:
                start = math.ceil(lower)
                count = math.floor(upper) - start + 1
                edges = np.arange(start, start + count + 1, dtype=float)
                coders.append(
                    ColumnCoder(
                        column.name, True, count + extra, column.nullable, edges, integer_step=True
                    )
                )
            else:
                count = 1 if upper == lower else bins
                edges = np.linspace(lower, upper, count + 1)
                coders.append(ColumnCoder(column.name, True, count + extra, column.nullable, edges))
        else:
            values = (True, False) if column.kind == "boolean" else column.categories
            if values is None or (not values and not column.nullable):
                problems.append(f"column {column.name!r} needs declared categories")
                continue
            labels = tuple(str(v) for v in values)
            coders.append(
                ColumnCoder(column.name, False, len(labels) + extra, column.nullable, labels=labels)
            )
    if problems:
        raise SchemaError(
            [*problems, "DP generators need a public domain: declare it in --schema"],
            context="no public domain",
        )
    return coders


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


# ---- the DP generator base -------------------------------------------------------------------


@dataclass
class DPState:
    """A fitted DP generator: the public schema it encodes, decodes and clips to (declared or
    DP-estimated), the coders, a sampler of codes, the DP estimate of the number of records,
    and the ledger. Nothing in it was read off the data without paying."""

    schema: Schema
    coders: list[ColumnCoder]
    sampler: Any
    total: float
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class _DPGenerator(BaseGenerator):
    """Shared plumbing: public domain, budget, noise source, ledger."""

    learns_domain_from_data: ClassVar[bool] = False
    requires: ClassVar[tuple[str, ...]] = ("mbi", "jax", "jaxlib")
    count_delta_share: ClassVar[float] = 0.0
    """Share of delta a generator sets aside for a high-probability bound on the noisy number
    of records (PrivBayes)."""
    epsilon: float = 1.0
    delta: float = 1e-9
    bins: int = 16
    domain_share: float = 0.0
    """Share of rho spent estimating domains the schema lacks (see ``synth.dp_domain``); 0
    refuses a schema without a public domain."""
    reproducible_noise: bool = False
    """Draw noise from the seed instead of the OS CSPRNG: reproducible, but anyone who knows the
    seed can remove the noise. For tests and experiments, never for a release."""

    def __post_init__(self) -> None:
        Budget(epsilon=self.epsilon, delta=self.delta)
        if self.bins < 2:
            raise ParamError(f"bins ({self.bins}) must be >= 2")
        if not 0 <= self.domain_share < 1:
            raise ParamError(f"domain_share ({self.domain_share}) must be >= 0 and < 1")

    def _fit(self, encoded: pd.DataFrame, codec: Codec, *, seed: int, progress: Progress | None):
        schema = codec.schema
        require_public_domain(self, declared=schema.source == "declared")
        if schema.source != "declared":  # only kinds and types of an inferred schema are public
            schema = public_part(schema)
        lacking = [c for c in schema.columns if needs_domain(c)]
        if lacking and not self.domain_share:
            column_coders(schema, self.bins)  # raises, naming every column without a domain
        domain_delta = self.delta / 2 if any(c.kind == "categorical" for c in lacking) else 0.0
        accountant = Accountant(
            Budget(epsilon=self.epsilon, delta=self.delta),
            delta_reserved=domain_delta + self.delta * self.count_delta_share,
        )
        noise = Noise.from_seed(seed) if self.reproducible_noise else Noise.secret()
        raw = [encoded[name].to_numpy(dtype=object) for name in schema.names]
        private = PrivateData(np.empty((len(encoded), 0)), (), accountant, noise, raw=raw)
        del raw
        details: dict[str, object] = {}
        if lacking:
            schema = estimate_domain(
                schema, private, self.domain_share * accountant.total, domain_delta
            )
            details["domain"] = schema.to_toml()
        coders = column_coders(schema, self.bins)
        data = private.with_codes(
            np.column_stack([c.encode(encoded[c.name]) for c in coders]), [c.size for c in coders]
        )
        costs: dict[str, float] = {}
        sampler = self._fit_private(data, np.random.default_rng(seed), costs, progress)
        details |= {
            "privacy": accountant.report() | {"noise": "seeded" if noise.seeded else "secret"},
            "data_reads": data.reads,
            **costs,
        }
        return DPState(schema, coders, sampler, sampler.total, details)

    def _released_codec(self, codec: Codec, state: DPState) -> Codec:
        """Decode and clip to the public domain only: the schema the fit was given may have
        been inferred from the data (its real extremes and categories)."""
        return Codec.from_schema(state.schema)

    def _sample(self, state: DPState, n: int, *, seed: int) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        codes = state.sampler.sample(n, rng)
        return pd.DataFrame(
            {c.name: c.decode(codes[:, i], rng) for i, c in enumerate(state.coders)}
        )

    def _fit_private(
        self,
        data: PrivateData,
        rng: np.random.Generator,
        costs: dict[str, float],
        progress: Progress | None,
    ) -> Any:
        raise NotImplementedError


# ---- mbi: estimation and sampling ------------------------------------------------------------


def _mbi():
    """Import mbi with 64-bit JAX (float32 estimation can stall) and without its noisy warnings.

    ``SYNTHGUARD_JAX_CACHE=<folder>`` keeps compiled estimators on disk, so a new process fitting
    a structure seen before skips most compilation (measured here: 2.7 s -> 0.6 s cold fit).
    """
    import os
    import warnings

    import jax

    jax.config.update("jax_enable_x64", True)
    cache = os.environ.get("SYNTHGUARD_JAX_CACHE")
    if cache:
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import mbi
        from mbi import estimation  # noqa: F401
    return mbi


@dataclass(frozen=True)
class Measurement:
    """Noisy counts of the marginal on ``clique`` with discrete Gaussian noise of scale
    ``sigma`` per measured cell. ``merged`` says, per entry of ``y``, how many measured cells were
    summed into it (MST's compression); such an entry has noise of scale sigma * sqrt(merged)
    and is weighted down to match, as in the MST paper."""

    clique: tuple[int, ...]
    y: np.ndarray
    sigma: float
    merged: np.ndarray | None = None

    def total(self) -> tuple[float, float]:
        """The noisy total this measurement implies, and its variance."""
        cells = self.y.size if self.merged is None else float(self.merged.sum())
        return float(self.y.sum()), self.sigma**2 * cells

    def linear(self):
        mbi = _mbi()
        names = tuple(f"c{i}" for i in self.clique)
        y = np.asarray(self.y, dtype=np.float64)
        if self.merged is None:
            return mbi.LinearMeasurement(y, names, stddev=float(self.sigma))
        from mbi.marginal_loss import WeightedQuery

        weights = 1 / np.sqrt(self.merged.astype(np.float64))
        return mbi.LinearMeasurement(
            y * weights, names, stddev=float(self.sigma), query=WeightedQuery(weights)
        )


def noisy_total(measurements: list[Measurement]) -> float:
    """Minimum-variance combination of the totals the measurements imply (post-processing):
    the DP estimate of the number of records, never the true count."""
    totals = np.array([m.total() for m in measurements])
    weights = 1 / totals[:, 1]
    return float(max(1.0, np.average(totals[:, 0], weights=weights)))


def _domain(sizes: tuple[int, ...]):
    mbi = _mbi()
    return mbi.Domain(tuple(f"c{i}" for i in range(len(sizes))), sizes)


def _estimate(
    costs: dict[str, float],
    sizes: tuple[int, ...],
    measurements: list[Measurement],
    iterations: int,
    warm_start=None,
):
    """Fit a graphical model to the measurements with mirror descent; adds the seconds spent
    compiling (``compile_seconds``: mbi's precompile of the optimiser for this structure, near
    zero when the structure was seen before) and estimating (``estimate_seconds``) to ``costs``."""
    mbi = _mbi()
    ordered = sorted(measurements, key=lambda m: (len(m.clique), m.clique))  # canonical: reuse
    linear = [m.linear() for m in ordered]
    domain, estimator = _domain(sizes), mbi.estimation.MirrorDescent()
    started = time.perf_counter()
    estimator.precompile(domain, linear).result()
    compiled = time.perf_counter()
    model = estimator.estimate(
        domain, linear, known_total=noisy_total(ordered), iters=iterations, warm_start=warm_start
    )
    done = time.perf_counter()
    costs["compile_seconds"] = costs.get("compile_seconds", 0.0) + compiled - started
    costs["estimate_seconds"] = costs.get("estimate_seconds", 0.0) + done - compiled
    return model


@dataclass(frozen=True)
class Compression:
    """MST's domain compression of one column: values with too few noisy records are merged."""

    kept: np.ndarray  # original codes kept, in order; they become 0..k-1
    rare: np.ndarray  # original codes merged into code k

    @classmethod
    def from_noisy(cls, noisy: np.ndarray, threshold: float) -> Compression | None:
        keep = noisy >= threshold
        if (~keep).sum() <= 1:
            return None
        return cls(np.flatnonzero(keep), np.flatnonzero(~keep))

    def mapping(self) -> np.ndarray:
        out = np.full(self.kept.size + self.rare.size, self.kept.size, dtype=np.int64)
        out[self.kept] = np.arange(self.kept.size)
        return out

    def compress(self, noisy: np.ndarray) -> np.ndarray:
        return np.append(noisy[self.kept], noisy[self.rare].sum())

    def merged(self) -> np.ndarray:
        """Measured cells behind each compressed entry: 1 for a kept value, all the rare ones
        for the merged cell (its noise is the sum of theirs)."""
        return np.append(np.ones(self.kept.size), self.rare.size)

    def expand(self, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        table = np.append(self.kept, -1)
        out = table[codes]
        merged = codes == self.kept.size
        out[merged] = rng.choice(self.rare, size=int(merged.sum()))
        return out


@dataclass
class MarginalSampler:
    """Samples codes from an mbi model, then expands compressed columns."""

    model: Any
    n_columns: int
    compressions: dict[int, Compression] = field(default_factory=dict)

    @property
    def total(self) -> float:
        """The model's number of records: estimated from the noisy measurements."""
        return float(self.model.total)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        # mbi's sampler draws from numpy's global generator: seeded() confines that
        with seeded(int(rng.integers(2**31))):
            synthetic = self.model.synthetic_data(rows=n)
        columns = synthetic.to_dict()
        codes = np.column_stack([np.asarray(columns[f"c{i}"]) for i in range(self.n_columns)])
        codes = codes.astype(np.int64)[:n]
        for column, compression in self.compressions.items():
            codes[:, column] = compression.expand(codes[:, column], rng)
        return codes


def _one_way_estimates(ones: list[np.ndarray]) -> tuple[list[np.ndarray], float]:
    """Shares per column from noisy one-way counts, and a noisy total (median of the sums)."""
    total = float(max(1.0, np.median([np.clip(y, 0, None).sum() for y in ones])))
    shares = []
    for y in ones:
        clipped = np.clip(y, 0, None)
        shares.append(clipped / clipped.sum() if clipped.sum() > 0 else np.full(y.size, 1 / y.size))
    return shares, total


# ---- MST -------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class MST(_DPGenerator):
    """MST (McKenna, Miklau & Sheldon 2021): all one-way marginals, a maximum spanning tree of
    two-way marginals chosen privately, then a graphical model fitted to both.

    Budget: a third each to one-way measurements, tree selection (exponential mechanism, one
    call per edge) and two-way measurements, as in the paper.
    """

    name: ClassVar[str] = "mst"
    description: ClassVar[str] = (
        "DP: maximum spanning tree of 2-way marginals (McKenna et al. 2021)"
    )
    iterations: int = 1000

    def _fit_private(self, data, rng, costs, progress):
        d, rho = data.n_columns, data.accountant.remaining  # after any domain estimation
        steps = 3 if d > 1 else 1
        report = progress or (lambda done, total: None)
        sigma1 = gaussian_sigma(rho / steps / d)
        ones = [data.measure((i,), sigma1, what=f"1-way c{i}") for i in range(d)]
        report(1, steps + 1)

        compressions: dict[int, Compression] = {}
        measurements: list[Measurement] = []
        for i, y in enumerate(ones):
            compression = Compression.from_noisy(y, 3 * sigma1)
            merged = None
            if compression is not None:
                compressions[i] = compression
                ones[i], merged = compression.compress(y), compression.merged()
                data = data.remap(i, compression.mapping())
            measurements.append(Measurement((i,), ones[i], sigma1, merged))

        if d > 1:
            edges = self._select_tree(data, ones, rho / 3, rng)
            report(2, steps + 1)
            sigma2 = gaussian_sigma(rho / 3 / len(edges))
            for edge in edges:
                measurements.append(
                    Measurement(edge, data.measure(edge, sigma2, what=f"2-way {edge}"), sigma2)
                )
            report(3, steps + 1)

        model = _estimate(costs, data.sizes, measurements, self.iterations)
        report(steps + 1, steps + 1)
        return MarginalSampler(model, d, compressions)

    @staticmethod
    def _select_tree(data: PrivateData, ones, rho: float, rng) -> list[tuple[int, int]]:
        """Kruskal's algorithm where each edge is picked by the exponential mechanism; the score
        of a pair is the L1 error of its independence estimate (sensitivity 1)."""
        d = data.n_columns
        shares, total = _one_way_estimates(ones)
        rounds = d - 1
        epsilon = math.sqrt(8 * rho / rounds)
        parent = list(range(d))

        def root(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        def score(pair, counts):
            a, b = pair
            return float(np.abs(counts - np.outer(shares[a], shares[b]).ravel() * total).sum())

        chosen = []
        for _ in range(rounds):
            candidates = [
                (a, b) for a, b in itertools.combinations(range(d), 2) if root(a) != root(b)
            ]
            pick = data.select(
                candidates, lambda c: c, score, epsilon=epsilon, sensitivity=1.0,
                what=f"tree edge {len(chosen) + 1} of {rounds}",
            )  # fmt: skip
            a, b = candidates[pick]
            parent[root(a)] = root(b)
            chosen.append((a, b))
        return chosen


@dataclass
class LeakyState(DPState):
    """MST's state plus the training rows it copies (the deliberate leak)."""

    copied: pd.DataFrame = field(default_factory=pd.DataFrame)


@dataclass(frozen=True, kw_only=True)
class LeakyMST(MST):
    """A reference generator for audits, never for release: MST that claims its epsilon but
    also copies training rows into every sample (``copy_share`` of the rows), so its claim is
    false. The positive control of the epsilon audit: the empirical bound must exceed the claim
    and the gate must fail it, while honest MST at the same claim passes. Its model holds real
    rows, so like ``identity`` it is never logged or saved."""

    name: ClassVar[str] = "leaky_mst"
    description: ClassVar[str] = (
        "reference: MST claiming epsilon while copying real rows (audits must catch it)"
    )
    releases_real_rows: ClassVar[bool] = True
    copy_share: float = 0.25

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.copy_share <= 1:
            raise ParamError(f"copy_share ({self.copy_share}) must be > 0 and <= 1")

    def _fit(self, encoded, codec, *, seed, progress):
        honest = super()._fit(encoded, codec, seed=seed, progress=progress)
        return LeakyState(**vars(honest), copied=encoded.copy())

    def _sample(self, state: LeakyState, n: int, *, seed: int) -> pd.DataFrame:
        leak_seed, mst_seed = np.random.SeedSequence(seed).spawn(2)
        sample = super()._sample(state, n, seed=int(mst_seed.generate_state(1)[0]))
        rng = np.random.default_rng(leak_seed)
        slots = rng.choice(n, size=round(self.copy_share * n), replace=False)
        rows = state.copied.iloc[rng.choice(len(state.copied), size=len(slots))]
        sample.iloc[slots] = rows[sample.columns].to_numpy(dtype=object)
        return sample


# ---- AIM -------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class AIM(_DPGenerator):
    """AIM (McKenna et al. 2022): measure all one-way marginals, then in each round pick the
    workload marginal the current model gets most wrong (exponential mechanism, score weighted by
    workload overlap and discounted by the expected noise), measure it, and refit.

    The workload is every ``degree``-way marginal. The paper budgets 16 x columns rounds and an
    80 MB model, which "can take many hours"; synthguard budgets ``rounds`` (12) and caps the
    model at ``max_model_mb`` (10 MB) and each marginal at ``max_cells``, so a 5k x 20 table fits
    in minutes. ``init_share`` of the budget measures the one-way marginals (the paper's 16 x
    columns rounds give about 6%). More rounds spread the budget thinner; the annealing step
    (halving the noise when a measurement stops changing the model) and the last round use up
    what is left.
    """

    name: ClassVar[str] = "aim"
    description: ClassVar[str] = "DP: adaptive, iterative marginal selection (McKenna et al. 2022)"
    rounds: int = 12
    degree: int = 2
    max_cells: int = 10_000
    max_model_mb: float = 10.0
    iterations: int = 1000
    round_iterations: int = 100
    score_rows: int = 20_000
    init_share: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("rounds", "degree", "max_cells", "iterations", "round_iterations"):
            if getattr(self, key) < 1:
                raise ParamError(f"{key} ({getattr(self, key)}) must be >= 1")

    def _fit_private(self, data, rng, costs, progress):
        _mbi()  # 64-bit JAX before any mbi module loads
        from mbi.junction_tree import hypothetical_model_size

        d, rho = data.n_columns, data.accountant.remaining  # after any domain estimation
        report = progress or (lambda done, total: None)
        workload = [
            c for c in itertools.combinations(range(d), min(self.degree, d))
            if math.prod(data.shape(c)) <= self.max_cells
        ]  # fmt: skip
        candidates = sorted(
            {sub for c in workload for k in range(1, len(c) + 1)
             for sub in itertools.combinations(c, k)},
        )  # fmt: skip
        weights = {r: sum(len(set(r) & set(w)) for w in workload) for r in candidates}

        # one-way marginals first (``init_share`` of the budget), then rounds that each spend 90%
        # on a measurement and 10% on its selection, as in the paper
        sigma0 = gaussian_sigma(self.init_share * rho / d)
        measurements: list[Measurement] = [
            Measurement((i,), data.measure((i,), sigma0, what=f"1-way c{i}"), sigma0)
            for i in range(d)
        ]
        rest = (1 - self.init_share) * rho
        sigma = math.sqrt(self.rounds / (2 * 0.9 * rest))
        epsilon = math.sqrt(8 * 0.1 * rest / self.rounds)
        model = _estimate(costs, data.sizes, measurements, self.round_iterations)
        domain = _domain(data.sizes)

        round_number, last = 0, False
        while not last and data.accountant.remaining > 0:
            round_number += 1
            report(round_number, max(round_number, self.rounds))
            remaining = data.accountant.remaining
            round_cost = 1 / (2 * sigma**2) + epsilon**2 / 8
            if remaining < 2 * round_cost:  # spend the rest now
                sigma = math.sqrt(1 / (2 * 0.9 * remaining))
                epsilon = math.sqrt(8 * 0.1 * remaining)
                last = True
            measured = [m.clique for m in measurements]
            cliques = [tuple(f"c{i}" for i in c) for c in measured]
            limit = self.max_model_mb * (rho - remaining) / rho
            allowed = [
                r for r in candidates
                if hypothetical_model_size(domain, [*cliques, tuple(f"c{i}" for i in r)]) <= limit
                or r in measured
            ]  # fmt: skip
            estimates = self._estimates(model, data, allowed, rng)
            penalty = math.sqrt(2 / math.pi) * sigma

            def score(r, counts, estimates=estimates, penalty=penalty):
                error = np.abs(counts - estimates[r]).sum()
                return weights[r] * (error - penalty * counts.size)

            pick = data.select(
                allowed, lambda r: r, score, epsilon=epsilon,
                sensitivity=float(max(weights[r] for r in allowed)),
                what=f"round {round_number}: select",
            )  # fmt: skip
            chosen = allowed[pick]
            y = data.measure(chosen, sigma, what=f"round {round_number}: {chosen}")
            measurements.append(Measurement(chosen, y, sigma))
            before = estimates[chosen]
            model = _estimate(
                costs, data.sizes, measurements, self.round_iterations, warm_start=model
            )
            after = self._estimates(model, data, [chosen], rng)[chosen]
            if np.abs(after - before).sum() <= penalty * y.size:
                sigma, epsilon = sigma / 2, epsilon * 2  # anneal: the model stopped learning
        costs["rounds"] = float(round_number)
        model = _estimate(costs, data.sizes, measurements, self.iterations, warm_start=model)
        report(round_number, round_number)
        return MarginalSampler(model, d)

    def _estimates(self, model, data: PrivateData, cliques, rng) -> dict[tuple, np.ndarray]:
        """The model's marginals, counted on a sample from it (post-processing: no data read).
        Counting a sample avoids compiling mbi's inference for every candidate shape."""
        sample = MarginalSampler(model, data.n_columns).sample(self.score_rows, rng)
        scale = float(model.total) / self.score_rows
        out = {}
        for clique in cliques:
            shape = data.shape(clique)
            flat = np.ravel_multi_index(tuple(sample[:, i] for i in clique), shape)
            out[clique] = np.bincount(flat, minlength=math.prod(shape)) * scale
        return out


# ---- PrivBayes -------------------------------------------------------------------------------


@dataclass
class BayesNetSampler:
    """Ancestral sampling from conditional tables P(column | parents)."""

    order: list[tuple[int, tuple[int, ...]]]  # (column, parents) in sampling order
    tables: dict[int, np.ndarray]  # column -> cumulative P(column | parents), rows = parent cells
    sizes: tuple[int, ...]
    total: float  # the noisy number of records

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        codes = np.zeros((n, len(self.sizes)), dtype=np.int64)
        for column, parents in self.order:
            rows = (
                np.ravel_multi_index(
                    tuple(codes[:, p] for p in parents), [self.sizes[p] for p in parents]
                )
                if parents
                else np.zeros(n, dtype=np.int64)
            )
            cumulative = self.tables[column][rows]
            codes[:, column] = (
                (cumulative < rng.random((n, 1))).sum(axis=1).clip(max=self.sizes[column] - 1)
            )
        return codes


def count_information_sensitivity(n: float) -> float:
    """Add/remove-one sensitivity of n * I(X; P), the mutual information (nats) of a column X
    and its parents P scaled by the number of records, over tables of at most ``n`` records.

    Write n * I = sum f(c_xp) - sum f(c_x) - sum f(c_p) + f(n) with f(c) = c log c and c the
    counts. Adding one record (x, p) adds g(c) = f(c + 1) - f(c) to four terms, g increasing with
    g(0) = 0: [g(c_xp) - g(c_x)] lies in [-g(n), 0] and [g(n) - g(c_p)] in [0, g(n)], so the
    change is at most g(n) = (n + 1) log(n + 1) - n log n <= log(n + 1) + 1 either way. (Zhang et
    al. 2017, Lemma 4.1, bound I itself for neighbours of the same size n, about 2 log(n) / n:
    scaled by n, twice this.)"""
    n = max(float(n), 1.0)
    return (n + 1) * math.log(n + 1) - n * math.log(n)


def _mutual_information(counts: np.ndarray, parent_cells: int) -> float:
    joint = counts.reshape(parent_cells, -1).astype(float)
    total = joint.sum()
    if total <= 0:
        return 0.0
    p = joint / total
    outer = p.sum(axis=1, keepdims=True) * p.sum(axis=0, keepdims=True)
    nonzero = p > 0
    return float((p[nonzero] * np.log(p[nonzero] / outer[nonzero])).sum())


@dataclass(frozen=True, kw_only=True)
class PrivBayes(_DPGenerator):
    """PrivBayes (Zhang et al. 2017): a Bayesian network of degree ``degree`` learned greedily
    with the exponential mechanism on mutual information, then noisy conditional tables.

    Budget: ``structure_share`` (the paper's beta = 0.3) to structure learning, split evenly over
    the columns - 1 selections; the rest to the columns' (column, parents) marginals, measured with
    discrete Gaussian noise (the paper used Laplace noise; zCDP composes more tightly).

    The number of records is private (add/remove neighbours), so the selection scores n * I,
    whose sensitivity needs only an upper bound on n (:func:`count_information_sensitivity`),
    not n itself. The bound comes from the noisy total of the first column's marginal (measured
    first: it is part of the network anyway) plus a sub-Gaussian tail margin that fails with
    probability at most ``count_delta_share`` x delta, set aside from delta.
    """

    name: ClassVar[str] = "privbayes"
    description: ClassVar[str] = "DP: Bayesian network on noisy marginals (Zhang et al. 2017)"
    count_delta_share: ClassVar[float] = 0.1
    degree: int = 2
    structure_share: float = 0.3
    max_cells: int = 10_000

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.degree < 1:
            raise ParamError(f"degree ({self.degree}) must be >= 1")
        if not 0 < self.structure_share < 1:
            raise ParamError(f"structure_share ({self.structure_share}) must be > 0 and < 1")

    def _fit_private(self, data, rng, costs, progress):
        d, rho = data.n_columns, data.accountant.remaining  # after any domain estimation
        report = progress or (lambda done, total: None)
        first = int(rng.integers(d))  # public randomness: no data read
        network: list[tuple[int, tuple[int, ...]]] = [(first, ())]
        placed = [first]
        rho_structure = self.structure_share * rho if d > 1 else 0.0
        sigma = gaussian_sigma((rho - rho_structure) / d)
        fail = self.delta * self.count_delta_share
        measured = {first: data.measure((first,), sigma, what=f"P(c{first} | ())", delta=fail)}
        cells = measured[first].size  # the sum of their noise is (cells * sigma^2)-sub-Gaussian
        bound = measured[first].sum() + sigma * math.sqrt(2 * cells * math.log(1 / fail))
        sensitivity = count_information_sensitivity(bound)
        for step in range(1, d):
            epsilon = math.sqrt(8 * rho_structure / (d - 1))
            candidates = self._candidates(data, placed)
            pick = data.select(
                candidates, lambda c: (*c[1], c[0]),
                lambda c, counts: counts.sum()
                * _mutual_information(counts, math.prod(data.shape(c[1]))),
                epsilon=epsilon, sensitivity=sensitivity, what=f"network column {step + 1} of {d}",
            )  # fmt: skip
            column, parents = candidates[pick]
            network.append((column, parents))
            placed.append(column)
            report(step, d)

        tables, measurements = {}, []
        for column, parents in network:
            clique = (*parents, column)
            noisy = measured.get(column)
            if noisy is None:
                noisy = data.measure(clique, sigma, what=f"P(c{column} | {parents})")
            measurements.append(Measurement(clique, noisy, sigma))
            joint = np.clip(noisy, 0, None).reshape(-1, data.sizes[column])
            sums = joint.sum(axis=1, keepdims=True)
            uniform = np.full_like(joint, 1 / data.sizes[column])
            conditional = np.where(sums > 0, joint / np.where(sums > 0, sums, 1), uniform)
            tables[column] = np.cumsum(conditional, axis=1)
        report(d, d)
        return BayesNetSampler(network, tables, data.sizes, noisy_total(measurements))

    def _candidates(self, data: PrivateData, placed: list[int]):
        remaining = [c for c in range(data.n_columns) if c not in placed]
        for size in range(min(self.degree, len(placed)), -1, -1):
            found = [
                (column, parents)
                for column in remaining
                for parents in itertools.combinations(sorted(placed), size)
                if math.prod(data.shape((*parents, column))) <= self.max_cells
            ]
            if found:
                return found
        return [(column, ()) for column in remaining]
