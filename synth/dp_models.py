"""Differentially private marginal generators: MST, AIM and PrivBayes.

- MST: McKenna, Miklau & Sheldon, "Winning the NIST Contest: A scalable and general approach to
  differentially private synthetic data", Journal of Privacy and Confidentiality 11(3), 2021.
- AIM: McKenna, Mullins, Sheldon & Miklau, "AIM: An Adaptive and Iterative Mechanism for
  Differentially Private Synthetic Data", VLDB 2022.
- PrivBayes: Zhang, Cormode, Procopiuc, Srivastava & Xiao, "PrivBayes: Private Data Release via
  Bayesian Networks", ACM TODS 42(4), 2017.

All three estimate a graphical model from their noisy marginals with ``mbi`` (private-pgm 2.x,
JAX): MST and AIM as in their papers, PrivBayes from its network's marginals as in McKenna,
Sheldon & Miklau (ICML 2019), rather than by sampling its noisy conditionals one by one.

The domain is public: it comes from the declared schema, never from the data. Numerical and
datetime columns get many fine public cells, which the generator's own noisy one-way
measurements group into about ``bins`` coarse cells of equal mass and decode with the shape they
show (``synth.dp_bins``); a nullable column gets one more code for "missing". A column without
declared bounds or categories is refused.

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
from synth.dp_bins import Cells, Grouping, column_cells, compress_rare, group_by_mass
from synth.dp_domain import estimate_domain, needs_domain, public_part
from synth.dp_tree import TreeMeasurement, estimate_tree
from synth.errors import ParamError
from synth.generators import BaseGenerator, Codec, Progress
from synth.runtime import seeded
from synth.schema import Schema

# ---- public domain ---------------------------------------------------------------------------


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
    cells: list[Cells]
    groupings: list[Grouping]
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
    compress_categories: ClassVar[bool] = False
    """Merge categories whose noisy count is below 3 sigma (MST's compression)."""
    epsilon: float = 1.0
    delta: float = 1e-9
    bins: int = 16
    """Coarse cells per numerical column: its fine cells grouped by noisy mass."""
    fine_bins: int = 0
    """Fine public cells of a numerical column; 0: as many as the noisy record count supports
    (about n / (2 sigma) of the one-way measurement, 16 to 512)."""
    count_share: float = 0.01
    """Share of rho spent on a noisy count of the records, which sizes the fine cells."""
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
        if self.fine_bins < 0 or 0 < self.fine_bins < 4:
            raise ParamError(f"fine_bins ({self.fine_bins}) must be 0 (automatic) or >= 4")
        if not 0 < self.count_share < 0.5:
            raise ParamError(f"count_share ({self.count_share}) must be > 0 and < 0.5")
        if not 0 <= self.domain_share < 1:
            raise ParamError(f"domain_share ({self.domain_share}) must be >= 0 and < 1")

    def _fit(self, encoded: pd.DataFrame, codec: Codec, *, seed: int, progress: Progress | None):
        schema = codec.schema
        require_public_domain(self, declared=schema.source == "declared")
        if schema.source != "declared":  # only kinds and types of an inferred schema are public
            schema = public_part(schema)
        lacking = [c for c in schema.columns if needs_domain(c)]
        if lacking and not self.domain_share:
            column_cells(schema, 16)  # raises, naming every column without a domain
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
        # a noisy record count (the empty marginal) sizes the fine cells
        counter = private.with_codes(np.empty((len(encoded), 0), dtype=np.int64), ())
        rho_count = self.count_share * accountant.remaining
        count_sigma = gaussian_sigma(rho_count)
        fail = self.delta * self.count_delta_share
        count = float(counter.measure((), count_sigma, what="record count", delta=fail)[0])
        rho = accountant.remaining  # for the generator: after the domain and the count
        d = len(schema.columns)
        one_way_sigma = gaussian_sigma(self._one_way_share(d) * rho / d)
        cells = column_cells(schema, self._fine_cells(count, one_way_sigma))
        data = private.with_codes(
            np.column_stack([c.encode(encoded[c.name]) for c in cells]), [c.size for c in cells]
        )
        data, ones, groupings = self._one_way(data, cells, one_way_sigma)
        costs: dict[str, float] = {"fine_cells": float(sum(c.size for c in cells))}
        sampler = self._fit_private(
            data, ones, rho, np.random.default_rng(seed), costs, progress,
            count=(count, count_sigma),
        )  # fmt: skip
        details |= {
            "privacy": accountant.report() | {"noise": "seeded" if noise.seeded else "secret"},
            "data_reads": data.reads,
            "coarse_cells": {c.name: g.size for c, g in zip(cells, groupings, strict=True)},
            **costs,
        }
        return DPState(schema, cells, groupings, sampler, sampler.total, details)

    def _check_shares(self, *names: str, rest: str) -> None:
        """Each named share of rho in (0, 1), their sum below 1: ``rest`` gets what is left."""
        for key in names:
            if not 0 < getattr(self, key) < 1:
                raise ParamError(f"{key} ({getattr(self, key)}) must be > 0 and < 1")
        if sum(getattr(self, key) for key in names) >= 1:
            raise ParamError(f"{' + '.join(names)} must be < 1: the rest measures {rest}")

    def _one_way_share(self, columns: int) -> float:
        """Share of rho the generator spends on all one-way marginals of ``columns`` columns."""
        raise NotImplementedError

    def _fine_cells(self, count: float, sigma: float) -> int:
        """Fine cells per numerical column: as declared, or about count / (2 sigma), so that a
        cell holds on average twice the noise scale of its measurement (16 to 512)."""
        if self.fine_bins:
            return self.fine_bins
        return int(np.clip(count / (2 * sigma), 16, 512))

    def _one_way(
        self, data: PrivateData, cells: list[Cells], sigma: float
    ) -> tuple[PrivateData, list[Measurement], list[Grouping]]:
        """Measure every column's one-way marginal over its fine cells, group the cells by the
        noisy counts (post-processing) and recode the data to the groups. Returns the coarse
        data, the one-way measurements over the groups (merged cells weighted by their true
        noise) and the groupings."""
        ones, groupings = [], []
        for i, column in enumerate(cells):
            noisy = data.measure((i,), sigma, what=f"1-way c{i}")
            if column.numerical:
                grouping = group_by_mass(column, noisy, sigma, self.bins)
            elif self.compress_categories:
                grouping = compress_rare(noisy, 3 * sigma)
            else:
                grouping = Grouping.identity(len(noisy))
            merged = grouping.merged()
            ones.append(Measurement((i,), grouping.compress(noisy), sigma,
                                    merged if merged.max() > 1 else None))  # fmt: skip
            groupings.append(grouping)
            if grouping.size < len(noisy):
                data = data.remap(i, grouping.mapping)
        return data, ones, groupings

    def _released_codec(self, codec: Codec, state: DPState) -> Codec:
        """Decode and clip to the public domain only: the schema the fit was given may have
        been inferred from the data (its real extremes and categories)."""
        return Codec.from_schema(state.schema)

    def _sample(self, state: DPState, n: int, *, seed: int) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        codes = state.sampler.sample(n, rng)
        return pd.DataFrame(
            {
                c.name: c.decode(g.expand(codes[:, i], rng), rng)
                for i, (c, g) in enumerate(zip(state.cells, state.groupings, strict=True))
            }
        )

    def _fit_private(
        self,
        data: PrivateData,
        ones: list[Measurement],
        rho: float,
        rng: np.random.Generator,
        costs: dict[str, float],
        progress: Progress | None,
        *,
        count: tuple[float, float],
    ) -> Any:
        """Fit on the coarse data, given the one-way ``ones`` already measured; ``rho`` is the
        budget after any domain estimation and the record count (the ones spent their share of
        it); ``count`` is the noisy record count and its noise scale."""
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

    def for_tree(self) -> TreeMeasurement:
        """The same measurement for :func:`synth.dp_tree.estimate_tree`: per-entry variance."""
        cells = np.ones(self.y.size) if self.merged is None else self.merged.astype(float)
        return TreeMeasurement(self.clique, np.asarray(self.y, float), self.sigma**2 * cells)

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


@dataclass
class MarginalSampler:
    """Samples codes from an mbi model, then expands compressed columns."""

    model: Any
    n_columns: int

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
        return codes.astype(np.int64)[:n]


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

    Budget: after a 1% record count, ``one_way_share`` (half) to the one-way measurements,
    ``select_share`` (5%) to the tree selection (exponential mechanism, one call per edge) and
    the rest to the two-way measurements (the paper: a third each; see the fields).
    """

    name: ClassVar[str] = "mst"
    description: ClassVar[str] = (
        "DP: maximum spanning tree of 2-way marginals (McKenna et al. 2021)"
    )
    compress_categories: ClassVar[bool] = True
    iterations: int = 1000
    one_way_share: float = 0.5
    select_share: float = 0.05
    """Shares of rho for the one-way marginals and for choosing the tree; the rest measures the
    tree's two-way marginals. The paper spends a third on each; on real tables at epsilon 1,
    half on the one-way marginals and 5% on the tree gave lower 2-way TVD (credit_data: 0.099
    against 0.108; k401ksubs: 0.083 against 0.101; diamonds the same), since every fidelity
    score rests on the one-way marginals and the tree's choice needs little budget."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_shares("one_way_share", "select_share", rest="the two-way marginals")

    def _one_way_share(self, columns: int) -> float:
        return self.one_way_share if columns > 1 else 1.0

    def _fit_private(self, data, ones, rho, rng, costs, progress, *, count):
        d = data.n_columns
        steps = 3 if d > 1 else 1
        report = progress or (lambda done, total: None)
        report(1, steps + 1)
        measurements: list[Measurement] = list(ones)
        if d > 1:
            edges = self._select_tree(data, [m.y for m in ones], self.select_share * rho, rng)
            report(2, steps + 1)
            two_way = (1 - self.one_way_share - self.select_share) * rho
            sigma2 = gaussian_sigma(two_way / len(edges))
            for edge in edges:
                measurements.append(
                    Measurement(edge, data.measure(edge, sigma2, what=f"2-way {edge}"), sigma2)
                )
            report(3, steps + 1)

        started = time.perf_counter()
        tree = [m.clique for m in measurements if len(m.clique) == 2]
        model = estimate_tree(
            data.sizes, tree, [m.for_tree() for m in measurements], noisy_total(measurements),
            iterations=self.iterations,
        )  # fmt: skip
        costs["estimate_seconds"] = time.perf_counter() - started
        report(steps + 1, steps + 1)
        return model

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
    reference: ClassVar[bool] = True
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

    def _one_way_share(self, columns: int) -> float:
        return self.init_share

    def _fit_private(self, data, ones, rho, rng, costs, progress, *, count):
        _mbi()  # 64-bit JAX before any mbi module loads
        from mbi.junction_tree import hypothetical_model_size

        d = data.n_columns
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

        # one-way marginals first (``init_share`` of the budget, measured by the base), then
        # rounds that each spend 90% on a measurement and 10% on its selection, as in the paper
        measurements: list[Measurement] = list(ones)
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

    Budget: after a 1% record count, ``one_way_share`` (half) to every column's one-way marginal
    over its fine cells (which also sets its coarse cells, ``synth.dp_bins``, and is the table of
    a column without parents); ``structure_share`` (10%; the paper's beta is 0.3) to structure
    learning, split evenly over the columns - 1 selections; the rest to the (column, parents)
    marginals, measured with discrete Gaussian noise (the paper used Laplace noise; zCDP
    composes more tightly). Half on the one-way marginals and 10% on the structure measured
    lower 2-way TVD than 0.3 / 0.3 on real tables at epsilon 1 (credit_data 0.111 against 0.128,
    NMES1988 0.051 against 0.054, txhousing 0.199 against 0.204).

    The number of records is private (add/remove neighbours), so the selection scores n * I,
    whose sensitivity needs only an upper bound on n (:func:`count_information_sensitivity`),
    not n itself. The bound is the one-way marginals' combined noisy total plus a sub-Gaussian
    tail margin that fails with probability at most ``count_delta_share`` x delta, set aside
    from delta.
    """

    name: ClassVar[str] = "privbayes"
    description: ClassVar[str] = "DP: Bayesian network on noisy marginals (Zhang et al. 2017)"
    count_delta_share: ClassVar[float] = 0.1
    degree: int = 2
    structure_share: float = 0.1
    one_way_share: float = 0.5
    max_cells: int = 10_000
    iterations: int = 1000
    usefulness: float = 1.0
    """theta of the paper's theta-usefulness: a (column, parents) table is only considered when
    its cells average at least theta times its noise scale (estimated from the noisy count)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.degree < 1:
            raise ParamError(f"degree ({self.degree}) must be >= 1")
        self._check_shares("structure_share", "one_way_share", rest="the network's tables")

    def _one_way_share(self, columns: int) -> float:
        return self.one_way_share if columns > 1 else 1.0

    def _fit_private(self, data, ones, rho, rng, costs, progress, *, count):
        d = data.n_columns
        report = progress or (lambda done, total: None)
        first = int(rng.integers(d))  # public randomness: no data read
        network: list[tuple[int, tuple[int, ...]]] = [(first, ())]
        placed = [first]
        rho_structure = self.structure_share * rho if d > 1 else 0.0
        # an upper bound on the number of records: the noisy count plus a sub-Gaussian margin
        estimate, count_sigma = count
        fail = self.delta * self.count_delta_share
        bound = estimate + count_sigma * math.sqrt(2 * math.log(1 / fail))
        sensitivity = count_information_sensitivity(bound)
        rest = rho * (1 - self.structure_share - self.one_way_share) if d > 1 else 0.0
        # theta-usefulness (post-processing of the noisy count): the noise of a table must not
        # swamp its counts, so its cells are capped at n / (theta * sigma)
        worst_sigma = gaussian_sigma(rest / max(d - 1, 1)) if d > 1 else 1.0
        useful = max(1, int(estimate / (self.usefulness * worst_sigma)))
        for step in range(1, d):
            epsilon = math.sqrt(8 * rho_structure / (d - 1))
            candidates = self._candidates(data, placed, min(self.max_cells, useful))
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

        measurements = list(ones)  # a column without parents: its one-way marginal is its table
        with_parents = [(column, parents) for column, parents in network if parents]
        sigma = gaussian_sigma(rest / len(with_parents)) if with_parents else math.inf
        for column, parents in with_parents:
            clique = tuple(sorted((*parents, column)))  # the counts laid out in sorted order
            noisy = data.measure(clique, sigma, what=f"P(c{column} | {parents})")
            measurements.append(Measurement(clique, noisy, sigma))
        # one graphical model fitted to every measurement (McKenna, Sheldon & Miklau, "Graphical-
        # model based estimation and inference for differential privacy", ICML 2019) instead of
        # sampling the noisy conditionals one by one: consistent marginals, less noise
        model = _estimate(costs, data.sizes, measurements, self.iterations)
        report(d, d)
        return MarginalSampler(model, d)

    def _candidates(self, data: PrivateData, placed: list[int], max_cells: int):
        remaining = [c for c in range(data.n_columns) if c not in placed]
        for size in range(min(self.degree, len(placed)), -1, -1):
            found = [
                (column, parents)
                for column in remaining
                for parents in itertools.combinations(sorted(placed), size)
                if math.prod(data.shape((*parents, column))) <= max_cells
            ]
            if found:
                return found
        return [(column, ()) for column in remaining]
