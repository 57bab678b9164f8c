"""MST: McKenna, Miklau & Sheldon, "Winning the NIST Contest: A scalable and general approach to
differentially private synthetic data", Journal of Privacy and Confidentiality 11(3), 2021.

Measures every one-way marginal, picks a maximum spanning tree of two-way marginals privately
(Kruskal with the exponential mechanism), measures the tree's two-way marginals and fits a tree
model to all of them (:func:`synth.dp.estimation.estimate_tree`). Budget, after a 1% record
count: half to the one-way marginals, 5% to the tree, the rest to its two-way marginals.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from synth.dp.base import DPGenerator, silent
from synth.dp.estimation import Edge, Measurement, TreeModel, estimate_tree, noisy_total
from synth.dp.private import PrivateData
from synth.generators import Progress


@dataclass(frozen=True, kw_only=True)
class MST(DPGenerator):
    """MST (McKenna, Miklau & Sheldon 2021): all one-way marginals, a maximum spanning tree of
    two-way marginals chosen privately, then a graphical model fitted to both.

    Budget: after a 1% record count, ``one_way_share`` (half) to the one-way measurements,
    ``select_share`` (5%) to the tree selection (exponential mechanism, one call per edge) and
    the rest to the two-way measurements (the paper: a third each; see the fields), each
    split over its marginals by their cells (``cell_power``; the paper splits evenly).
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
    ) -> TreeModel:
        d = data.n_columns
        steps = 3 if d > 1 else 1
        report = progress or silent
        report(1, steps + 1)
        measurements: list[Measurement] = list(ones)
        if d > 1:
            edges = self._select_tree(data, [m.y for m in ones], self.select_share * rho, rng)
            report(2, steps + 1)
            two_way = (1 - self.one_way_share - self.select_share) * rho
            sigmas = self._marginal_sigmas(data, two_way, edges)
            for edge, sigma2 in zip(edges, sigmas, strict=True):
                measurements.append(
                    Measurement(edge, data.measure(edge, sigma2, what=f"2-way {edge}"), sigma2)
                )
            report(3, steps + 1)

        started = time.perf_counter()
        tree = [(m.clique[0], m.clique[1]) for m in measurements if len(m.clique) == 2]
        model = estimate_tree(
            data.sizes, tree, [m.for_tree() for m in measurements], noisy_total(measurements),
            iterations=self.iterations,
        )  # fmt: skip
        costs["estimate_seconds"] = time.perf_counter() - started
        report(steps + 1, steps + 1)
        return model

    @staticmethod
    def _select_tree(
        data: PrivateData, ones: list[np.ndarray], rho: float, rng: np.random.Generator
    ) -> list[Edge]:
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

        def score(pair: Edge, counts: np.ndarray) -> float:
            a, b = pair
            return float(np.abs(counts - np.outer(shares[a], shares[b]).ravel() * total).sum())

        chosen: list[Edge] = []
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


def _one_way_estimates(ones: list[np.ndarray]) -> tuple[list[np.ndarray], float]:
    """Shares per column from noisy one-way counts, and a noisy total (median of the sums)."""
    total = float(max(1.0, np.median([np.clip(y, 0, None).sum() for y in ones])))
    shares = []
    for y in ones:
        clipped = np.clip(y, 0, None)
        shares.append(clipped / clipped.sum() if clipped.sum() > 0 else np.full(y.size, 1 / y.size))
    return shares, total
