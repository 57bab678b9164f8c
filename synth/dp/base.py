"""The base of the DP generators: public domain, budget, noise source, ledger, fine cells.

The domain is public: it comes from the declared schema, never from the data, unless the
generator is asked to spend ``domain_share`` of its budget estimating it
(:mod:`synth.dp.domain`). Numerical and datetime columns get many fine public cells, which the
generator's own noisy one-way measurements group into about ``bins`` coarse cells of equal mass
and decode with the shape they show (:mod:`synth.dp.bins`); a nullable column gets one more code
for "missing". A column without declared bounds or categories is refused.

The data is seen only through :class:`synth.dp.private.PrivateData`, whose every read is a
noisy, accounted measurement. The ledger of what was spent where is the fitted model's
``details``.

Every mechanism spends, in this order: the domain estimate (if any), ``count_share`` (1%) of
what is left on a noisy record count that sizes the fine cells, then its own share of the rest
on every column's one-way marginal (measured here), and the remainder in its own
``_fit_private``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from synth.dp.accounting import Accountant, Budget, gaussian_sigma, split_sigmas
from synth.dp.bins import Cells, Grouping, column_cells, compress_rare, group_by_mass
from synth.dp.domain import estimate_domain, needs_domain, public_part, require_public_domain
from synth.dp.estimation import Measurement, Sampler
from synth.dp.noise import Noise
from synth.dp.private import PrivateData
from synth.errors import ParamError
from synth.generators import BaseGenerator, Codec, Progress
from synth.schema import Column, Schema


@dataclass
class DPState:
    """A fitted DP generator: the public schema it encodes, decodes and clips to (declared or
    DP-estimated), the coders, a sampler of codes, the DP estimate of the number of records,
    and the ledger. Nothing in it was read off the data without paying."""

    schema: Schema
    cells: list[Cells]
    groupings: list[Grouping]
    sampler: Sampler
    total: float
    details: dict[str, Any] = field(default_factory=dict)


def silent(done: int, total: int) -> None:
    """The progress callback of a fit nobody watches."""


@dataclass(frozen=True, kw_only=True)
class DPGenerator(BaseGenerator):
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
    fine_share: float = 0.5
    """Share of a numerical column's one-way budget spent on its fine cells; the rest measures
    the coarse cells they are grouped into (see ``_one_way``)."""
    cell_power: float = 2 / 3
    """How each share of the budget is split over the marginals it measures: in proportion to
    their cells to this power (:func:`synth.dp.accounting.split_sigmas`). 2/3 minimises the
    expected total L1 error; 0 splits evenly, as the papers do. Measured at epsilon 1 (MST, 2-way
    TVD, mean of 4 fits): credit_data 0.101 -> 0.097, NMES1988 0.047 -> 0.044, txhousing 0.201
    -> 0.196, DoctorVisits 0.041 -> 0.039."""
    count_share: float = 0.01
    """Share of rho spent on a noisy count of the records, which sizes the fine cells."""
    domain_share: float = 0.0
    """Share of rho spent estimating domains the schema lacks (see ``synth.dp.domain``); 0
    refuses a schema without a public domain."""
    reproducible_noise: bool = False
    """Draw noise from the seed instead of the OS CSPRNG: reproducible, but anyone who knows the
    seed can remove the noise. For tests and experiments, never for a release."""

    @property
    def budget(self) -> Budget:
        return Budget(epsilon=self.epsilon, delta=self.delta)

    def __post_init__(self) -> None:
        Budget(epsilon=self.epsilon, delta=self.delta)
        if self.bins < 2:
            raise ParamError(f"bins ({self.bins}) must be >= 2")
        if self.fine_bins < 0 or 0 < self.fine_bins < 4:
            raise ParamError(f"fine_bins ({self.fine_bins}) must be 0 (automatic) or >= 4")
        if not 0 < self.fine_share < 1:
            raise ParamError(f"fine_share ({self.fine_share}) must be > 0 and < 1")
        if not 0 <= self.cell_power <= 2:
            raise ParamError(f"cell_power ({self.cell_power}) must be >= 0 and <= 2")
        if not 0 < self.count_share < 0.5:
            raise ParamError(f"count_share ({self.count_share}) must be > 0 and < 0.5")
        if not 0 <= self.domain_share < 1:
            raise ParamError(f"domain_share ({self.domain_share}) must be >= 0 and < 1")

    def _fit(
        self, encoded: pd.DataFrame, codec: Codec, *, seed: int, progress: Progress | None
    ) -> DPState:
        schema, lacking = self._public_schema(codec.schema)
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
        count, count_sigma = self._count_records(private, len(encoded))
        rho = accountant.remaining  # for the generator: after the domain and the count
        d = len(schema.columns)
        sigmas = split_sigmas(
            self._one_way_share(d) * rho,
            [self._planned_cells(c) for c in schema.columns],
            self.cell_power,
        )
        cells = column_cells(schema, [self._fine_cells(count, s) for s in sigmas])
        data = private.with_codes(
            np.column_stack([c.encode(encoded[c.name]) for c in cells]), [c.size for c in cells]
        )
        data, ones, groupings = self._one_way(data, cells, sigmas)
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

    def _public_schema(self, schema: Schema) -> tuple[Schema, list[Column]]:
        """The schema the fit may use, and its columns without a public domain: a declared
        schema as it is, of an inferred one only the kinds and types (the rest was read off the
        data). Refuses missing domains unless ``domain_share`` pays for estimating them."""
        require_public_domain(self, declared=schema.source == "declared")
        if schema.source != "declared":  # only kinds and types of an inferred schema are public
            schema = public_part(schema)
        lacking = [c for c in schema.columns if needs_domain(c)]
        if lacking and not self.domain_share:
            column_cells(schema, 16)  # raises, naming every column without a domain
        return schema, lacking

    def _count_records(self, private: PrivateData, rows: int) -> tuple[float, float]:
        """A noisy record count (the empty marginal), which sizes the fine cells, and its noise
        scale; ``count_share`` of the budget left. Its failure probability (PrivBayes's bound on
        the count) comes from the reserve."""
        counter = private.with_codes(np.empty((rows, 0), dtype=np.int64), ())
        count_sigma = gaussian_sigma(self.count_share * private.accountant.remaining)
        fail = self.delta * self.count_delta_share
        count = float(counter.measure((), count_sigma, what="record count", delta=fail)[0])
        return count, count_sigma

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

    def _marginal_sigmas(
        self, data: PrivateData, rho: float, cliques: Sequence[tuple[int, ...]]
    ) -> list[float]:
        """Noise scales for measuring the marginals on ``cliques`` that together cost ``rho``,
        split by their cells (``cell_power``)."""
        if not cliques:
            return []
        cells = [math.prod(data.shape(clique)) for clique in cliques]
        return split_sigmas(rho, cells, self.cell_power)

    def _planned_cells(self, column: Column) -> int:
        """The cells a column's one-way marginal will have once its fine cells are grouped (a
        public count: from the schema and ``bins`` alone)."""
        if column.kind in ("numerical", "datetime"):
            present = self.bins if column.values is None else min(self.bins, len(column.values))
        elif column.kind == "boolean":
            present = 2
        else:
            present = len(column.categories or ())
        return max(present, 1) + int(column.nullable)

    def _fine_cells(self, count: float, sigma: float) -> int:
        """Fine cells per numerical column: as declared, or about count / (2 sigma), so that a
        cell holds on average twice the noise scale of its measurement (16 to 512)."""
        if self.fine_bins:
            return self.fine_bins
        return int(np.clip(count / (2 * sigma), 16, 512))

    def _one_way(
        self, data: PrivateData, cells: list[Cells], sigmas: list[float]
    ) -> tuple[PrivateData, list[Measurement], list[Grouping]]:
        """Measure every column's one-way marginal, column i at noise scale ``sigmas[i]`` in all.

        A numerical column is measured twice: ``fine_share`` of its budget on the fine cells,
        whose noisy counts group the cells into coarse ones (post-processing), the rest on the
        coarse cells themselves. The two combine by inverse variance: a single-cell group ends
        as precise as one measurement at ``sigma``, and a group of k fine cells far more (its
        fine sum alone has k times the variance; a tail group of many empty cells made most of
        the one-way error). Other columns are measured once. Returns the coarse data, the
        one-way measurements over the groups (entries weighted by their true noise) and the
        groupings."""
        ones: list[Measurement] = []
        groupings: list[Grouping] = []
        for i, (column, sigma) in enumerate(zip(cells, sigmas, strict=True)):
            fine_sigma = sigma / np.sqrt(self.fine_share)
            coarse_sigma = sigma / np.sqrt(1 - self.fine_share)
            if not column.numerical:
                noisy = data.measure((i,), sigma, what=f"1-way c{i}")
                if self.compress_categories:
                    grouping = compress_rare(noisy, 3 * sigma)
                else:
                    grouping = Grouping.identity(len(noisy))
                merged = grouping.merged()
                ones.append(Measurement((i,), grouping.compress(noisy), sigma,
                                        merged if merged.max() > 1 else None))  # fmt: skip
                groupings.append(grouping)
                if grouping.size < len(noisy):
                    data = data.remap(i, grouping.mapping)
                continue
            noisy = data.measure((i,), fine_sigma, what=f"1-way c{i} (fine cells)")
            grouping = group_by_mass(column, noisy, fine_sigma, self.bins)
            groupings.append(grouping)
            data = data.remap(i, grouping.mapping)
            coarse = data.measure((i,), coarse_sigma, what=f"1-way c{i} (coarse cells)")
            fine_variance = grouping.merged() * fine_sigma**2
            variance = 1 / (1 / fine_variance + 1 / coarse_sigma**2)
            y = variance * (grouping.compress(noisy) / fine_variance + coarse / coarse_sigma**2)
            ones.append(Measurement((i,), y, coarse_sigma, variance / coarse_sigma**2))
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
    ) -> Sampler:
        """Fit on the coarse data, given the one-way ``ones`` already measured; ``rho`` is the
        budget after any domain estimation and the record count (the ones spent their share of
        it); ``count`` is the noisy record count and its noise scale."""
        raise NotImplementedError
