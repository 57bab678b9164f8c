"""The one door to the private table: every read is a noisy measurement, paid for first.

Every access to the private table goes through :class:`PrivateData`: each method that reads the
data spends budget in the :class:`synth.dp.accounting.Accountant` before it returns anything,
and the accountant refuses to overspend. The noise comes from :mod:`synth.dp.noise`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from synth.dp.accounting import Accountant, exponential_rho, gaussian_rho
from synth.dp.noise import Noise, exponential_mechanism, threshold_offset

T = TypeVar("T")

Clique = tuple[int, ...]
"""Column positions of a marginal, in the order its counts are laid out."""


class PrivateData:
    """Integer-coded private table; every read is a noisy, accounted measurement.

    ``sizes`` (the public domain size of each column) and ``n_columns`` are public. The number of
    records is not: there is no way to ask for it but a paid measurement.

    Paying and reading are counted apart: :meth:`_pay` writes the ledger, :meth:`_read` (the
    only way to the records) counts a read, so a method that reads without paying shows up as
    more reads than ledger entries.
    """

    def __init__(
        self,
        codes: np.ndarray,
        sizes: Sequence[int],
        accountant: Accountant,
        noise: Noise,
        _reads: list[int] | None = None,
        *,
        raw: Sequence[np.ndarray] | None = None,
    ) -> None:
        self.__codes = np.asarray(codes, dtype=np.int64)
        self.__raw = list(raw) if raw is not None else []  # encoded values, for domain estimation
        self.sizes = tuple(int(s) for s in sizes)
        self.accountant, self.noise = accountant, noise
        self._reads = _reads if _reads is not None else [0]  # shared with remapped twins

    def _pay(self, rho: float, **ledger: Any) -> None:
        """Spend (the accountant may refuse, and then nothing is read)."""
        self.accountant.spend(rho, **ledger)

    def _read(self) -> np.ndarray:
        """The records' codes; every call counts as one read."""
        self._reads[0] += 1
        return self.__codes

    def _read_raw(self, column: int) -> np.ndarray:
        """One column's encoded values (domain estimation); counts as one read."""
        self._reads[0] += 1
        return self.__raw[column]

    @property
    def reads(self) -> int:
        """How many calls read the records; each paid method reads once, after paying."""
        return self._reads[0]

    @property
    def n_columns(self) -> int:
        return len(self.sizes)

    def shape(self, clique: Clique) -> tuple[int, ...]:
        return tuple(self.sizes[i] for i in clique)

    def _counts(self, codes: np.ndarray, clique: Clique) -> np.ndarray:
        if not clique:  # the empty marginal: the number of records
            return np.array([len(codes)], dtype=np.int64)
        shape = self.shape(clique)
        flat = np.ravel_multi_index(tuple(codes[:, i] for i in clique), shape)
        return np.bincount(flat, minlength=math.prod(shape)).astype(np.int64)

    def column_values(self, column: int, sigma: float, delta: float, *, what: str) -> list[Any]:
        """Values of a column with an unknown domain, released by a noisy threshold.

        Each value's count gets discrete Gaussian noise of scale ``sigma`` (every record counts
        once: L2 sensitivity 1); a value is released when its noisy count reaches ``1 + t``,
        with t the smallest integer whose exact discrete Gaussian tail P(Z >= t) is at most
        ``delta`` (:func:`synth.dp.noise.threshold_offset`), so a value held by one record
        escapes with probability at most ``delta``: (1 / (2 sigma^2), delta)-approximate zCDP.
        """
        self._pay(
            gaussian_rho(sigma), mechanism="gaussian threshold", what=what, sigma=sigma,
            delta=delta,
        )  # fmt: skip
        present = [v for v in self._read_raw(column) if v is not None and v == v]  # no None, NaN
        values, counts = np.unique(np.asarray(present, dtype=object), return_counts=True)
        noisy = counts + self.noise.discrete_gaussian(sigma, counts.size)
        threshold = 1 + threshold_offset(sigma, delta)
        return [v for v, c in zip(values.tolist(), noisy, strict=True) if c >= threshold]

    def histogram(self, column: int, edges: np.ndarray, sigma: float, *, what: str) -> np.ndarray:
        """Noisy counts of a numerical column in the public bins ``edges`` (values below the
        first edge count in the first bin, above the last in the last; missing ones nowhere)."""
        self._pay(
            gaussian_rho(sigma), mechanism="gaussian", what=what, sigma=sigma, bins=len(edges) - 1
        )
        values = np.asarray(self._read_raw(column), dtype=float)
        values = values[~np.isnan(values)]
        cells = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
        counts = np.bincount(cells, minlength=len(edges) - 1)
        return (counts + self.noise.discrete_gaussian(sigma, counts.size)).astype(np.float64)

    def with_codes(self, codes: np.ndarray, sizes: Sequence[int]) -> PrivateData:
        """The same records coded over a (now public) domain; raw values are left behind."""
        return PrivateData(codes, sizes, self.accountant, self.noise, self._reads)

    def measure(
        self, clique: Clique, sigma: float, *, what: str = "", delta: float = 0.0
    ) -> np.ndarray:
        """Counts of the marginal on ``clique`` (flat, C order) plus discrete Gaussian noise.
        ``delta`` records a failure probability the caller's use of the answer adds (taken from
        the accountant's reserve)."""
        ledger: dict[str, Any] = {"sigma": sigma, "clique": list(clique)}
        if delta:
            ledger["delta"] = delta
        self._pay(
            gaussian_rho(sigma), mechanism="gaussian", what=what or f"marginal {clique}", **ledger
        )
        counts = self._counts(self._read(), clique)
        return (counts + self.noise.discrete_gaussian(sigma, counts.size)).astype(np.float64)

    def select(
        self,
        candidates: Sequence[Any],
        clique_of: Callable[[Any], Clique],
        score: Callable[[Any, np.ndarray], float],
        *,
        epsilon: float,
        sensitivity: float,
        what: str,
    ) -> int:
        """Exponential mechanism over ``candidates``; ``score`` sees each one's true counts."""
        self._pay(
            exponential_rho(epsilon),
            mechanism="exponential",
            what=what,
            epsilon=epsilon,
            sensitivity=sensitivity,
            candidates=len(candidates),
        )
        codes = self._read()
        scores = np.array([score(c, self._counts(codes, clique_of(c))) for c in candidates])
        return exponential_mechanism(scores, epsilon, sensitivity, self.noise)

    def train(
        self,
        curve: np.ndarray,
        fit: Callable[[np.ndarray], T],
        *,
        mechanism: str,
        what: str,
        **detail: Any,
    ) -> T:
        """DP-SGD on the records: pays ``curve`` (the RDP curve of the whole training run over
        :data:`synth.dp.accounting.ORDERS`) first, then hands the codes to ``fit``, which may
        touch them only through the clipped, noised, Poisson-subsampled gradient steps the
        curve accounts for (:mod:`synth.dp.sgd`). One read, one ledger entry."""
        self.accountant.spend_rdp(curve, mechanism=mechanism, what=what, **detail)
        return fit(self._read())

    def remap(self, column: int, mapping: np.ndarray) -> PrivateData:
        """The same data with one column's codes mapped (a public, data-independent function)."""
        codes = self.__codes.copy()  # a public relabelling: nothing leaves, so not a read
        codes[:, column] = mapping[codes[:, column]]
        sizes = list(self.sizes)
        sizes[column] = int(mapping.max()) + 1
        return PrivateData(codes, sizes, self.accountant, self.noise, self._reads)
