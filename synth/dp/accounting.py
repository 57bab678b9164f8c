"""Privacy accounting: budgets, zCDP conversions, mechanism costs and the ledger.

Accounting is in zero-concentrated DP (zCDP; Bun & Steinke, TCC 2016): mechanisms compose by
adding their rho. A budget given as (epsilon, delta) is turned into the largest rho whose tight
conversion back to (epsilon, delta)-DP fits (Canonne, Kamath & Steinke, "The Discrete Gaussian for
Differential Privacy", NeurIPS 2020, Corollary 13):

    delta(rho, epsilon) = min over alpha > 1 of
        exp((alpha - 1) * (alpha * rho - epsilon)) / alpha * (1 - 1/alpha) ** (alpha - 1)

Mechanisms and their cost for a query of sensitivity 1 (add/remove one record):

- Gaussian (and discrete Gaussian) noise of scale sigma on a vector of counts: rho = 1 / (2 sigma^2)
  (Bun & Steinke, Prop. 1.6; CKS 2020, Thm. 4 for the discrete one).
- Exponential mechanism with parameter epsilon: rho = epsilon^2 / 8 (bounded-range analysis,
  Cesar & Rogers 2021), as MST and AIM account for it.
- DP-SGD (the subsampled Gaussian, iterated): not zCDP with its amplification by subsampling,
  so it enters as a Renyi DP curve over :data:`ORDERS` (Mironov 2017; Mironov, Talwar & Zhang
  2019, computed by Opacus). A rho-zCDP step is exactly (alpha, rho * alpha)-RDP at every order,
  so once a curve is in the ledger all steps add up as RDP curves and the total converts to
  (epsilon, delta) with the same tight conversion as above, at the best order of the grid
  (:func:`rdp_epsilon`; a grid can only make it larger: conservative).

The :class:`Accountant` is the ledger: every paid read of the private table
(:class:`synth.dp.private.PrivateData`) is a :class:`Step` in it, and it refuses to overspend.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from synth.errors import ParamError, SynthguardError


class BudgetError(SynthguardError):
    """A mechanism would spend more privacy budget than is left."""


# ---- budgets and conversions -----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Budget:
    """A privacy budget as (epsilon, delta)-DP; validated on construction."""

    epsilon: float
    delta: float = 1e-9

    def __post_init__(self) -> None:
        if not (isinstance(self.epsilon, int | float) and math.isfinite(self.epsilon)):
            raise ParamError(f"epsilon ({self.epsilon}) must be a finite number")
        if self.epsilon <= 0:
            raise ParamError(f"epsilon ({self.epsilon}) must be > 0")
        if not 0 < self.delta < 1:
            raise ParamError(f"delta ({self.delta}) must be > 0 and < 1")

    @property
    def rho(self) -> float:
        return rho_for(self.epsilon, self.delta)


def _boundary(turns_true: Callable[[float], bool], low: float, high: float) -> tuple[float, float]:
    """Bisect [low, high] down to the point where ``turns_true`` goes from False to True."""
    for _ in range(100):
        middle = (low + high) / 2
        if turns_true(middle):
            high = middle
        else:
            low = middle
    return low, high


def delta_for(rho: float, epsilon: float) -> float:
    """Smallest delta such that rho-zCDP implies (epsilon, delta)-DP (CKS 2020, Cor. 13)."""
    if rho <= 0:
        return 0.0
    if epsilon < 0:
        raise ParamError(f"epsilon ({epsilon}) must be >= 0")
    # The exponent is convex in alpha: its minimum is where the derivative turns positive.
    low, high = _boundary(
        lambda a: (2 * a - 1) * rho - epsilon + math.log1p(-1.0 / a) >= 0,
        1.0 + 1e-12,
        max(2.0, (epsilon + 1.0) / (2.0 * rho) + 2.0),
    )
    alpha = (low + high) / 2
    log_delta = (alpha - 1) * (alpha * rho - epsilon) + (alpha - 1) * math.log1p(-1 / alpha)
    return min(1.0, math.exp(log_delta - math.log(alpha)))


def epsilon_for(rho: float, delta: float) -> float:
    """Smallest epsilon such that rho-zCDP implies (epsilon, delta)-DP."""
    if rho <= 0:
        return 0.0
    bun_steinke = rho + 2 * math.sqrt(rho * math.log(1 / delta))  # always enough
    return _boundary(lambda e: delta_for(rho, e) <= delta, 0.0, bun_steinke + 1.0)[1]


@functools.lru_cache(maxsize=256)  # audits fit the same budget hundreds of times
def rho_for(epsilon: float, delta: float) -> float:
    """Largest rho such that rho-zCDP implies (epsilon, delta)-DP."""
    return _boundary(lambda r: epsilon_for(r, delta) > epsilon, 0.0, epsilon + 1.0)[0]


def gaussian_rho(sigma: float, sensitivity: float = 1.0) -> float:
    """zCDP cost of Gaussian noise of scale ``sigma`` on an L2-sensitivity ``sensitivity`` query."""
    return sensitivity**2 / (2 * sigma**2)


def gaussian_sigma(rho: float, sensitivity: float = 1.0) -> float:
    """Noise scale that costs exactly ``rho``."""
    return sensitivity / math.sqrt(2 * rho)


def split_sigmas(rho: float, cells: Sequence[int], power: float) -> list[float]:
    """Noise scales for measuring marginals of ``cells`` cells each that together cost exactly
    ``rho``: marginal i gets rho * c_i^power / sum c^power.

    The expected L1 error of a marginal of c cells at noise sigma is about 0.8 c sigma, and
    sigma = (2 rho_i)^-1/2; minimising the sum over the marginals under sum rho_i = rho gives
    rho_i proportional to c_i^(2/3) (power 2/3). Power 0 splits evenly, as the MST, AIM and
    PrivBayes papers do: a two-category column then gets the budget of a column of 16 bins."""
    weights = np.asarray(cells, dtype=float) ** power
    return [gaussian_sigma(rho * w) for w in weights / weights.sum()]


def exponential_rho(epsilon: float) -> float:
    """zCDP cost of the exponential mechanism with parameter ``epsilon`` (bounded range)."""
    return epsilon**2 / 8


ORDERS: tuple[float, ...] = (
    *(1 + x / 10 for x in range(1, 100)),
    *range(12, 64),
    *(64, 80, 96, 128, 160, 192, 256, 320, 384, 512, 768, 1024),
)
"""Renyi orders the RDP ledger is kept at: Opacus's default grid (1.1 to 63) and larger ones,
which small budgets need (rho-zCDP at epsilon 0.1 converts best near order 300)."""


def rdp_epsilon(
    curve: Sequence[float] | np.ndarray, delta: float, orders: Sequence[float] = ORDERS
) -> float:
    """Smallest epsilon such that an (alpha, curve[alpha])-RDP mechanism at every order of
    ``orders`` is (epsilon, delta)-DP: min over the orders of
    curve - (log delta + log alpha) / (alpha - 1) + log(1 - 1/alpha) (Balle et al. 2020,
    Thm. 21; for curve = rho * alpha it is CKS 2020, Cor. 13, the zCDP conversion above; Opacus
    converts the same way)."""
    a = np.asarray(orders, dtype=float)
    values = np.asarray(curve, dtype=float)
    with np.errstate(invalid="ignore"):
        eps = values - (math.log(delta) + np.log(a)) / (a - 1) + np.log1p(-1 / a)
    eps = np.where(np.isnan(eps), np.inf, eps)
    return max(0.0, float(eps.min()))


# ---- the ledger ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One paid measurement: which mechanism, on what, its rho, and what else it recorded
    (noise scale, clique, delta taken from the reserve). A step accounted in RDP (DP-SGD) has
    rho 0 and its curve over :data:`ORDERS` in ``rdp``."""

    mechanism: str
    what: str
    rho: float
    detail: dict[str, Any] = field(default_factory=dict)
    rdp: tuple[float, ...] = ()


class Accountant:
    """Adds up zCDP spends and refuses any that would exceed the budget.

    ``delta_reserved`` sets part of delta aside for mechanisms that fail with a small
    probability (thresholded release of unknown categories): rho then comes from
    (epsilon, delta - delta_reserved), and the total delta is the conversion's plus what was
    spent from the reserve (approximate zCDP: Bun & Steinke 2016, Def. 1.2).
    """

    _SLACK = 1e-9  # relative: float rounding in budget splits must not refuse the last step

    def __init__(self, budget: Budget, *, delta_reserved: float = 0.0) -> None:
        if not 0 <= delta_reserved < budget.delta:
            raise ParamError(f"delta_reserved ({delta_reserved}) must be in [0, delta)")
        self.budget = budget
        self.delta_reserved = delta_reserved
        self.total = rho_for(budget.epsilon, budget.delta - delta_reserved)
        self.steps: list[Step] = []

    @property
    def spent(self) -> float:
        return math.fsum(step.rho for step in self.steps)

    @property
    def delta_spent(self) -> float:
        return math.fsum(step.detail.get("delta", 0.0) for step in self.steps)

    @property
    def remaining(self) -> float:
        """rho left by the zCDP steps (what budget shares are cut from)."""
        return max(0.0, self.total - self.spent)

    @property
    def has_rdp(self) -> bool:
        return any(step.rdp for step in self.steps)

    def curve(self, extra: Sequence[float] | np.ndarray = ()) -> np.ndarray:
        """Every step so far (and ``extra``) as one RDP curve over :data:`ORDERS`."""
        total = self.spent * np.asarray(ORDERS, dtype=float)
        for step in self.steps:
            if step.rdp:
                total = total + np.asarray(step.rdp)
        return total + np.asarray(extra) if len(extra) else total

    @property
    def epsilon_spent(self) -> float:
        delta = self.budget.delta - self.delta_reserved
        if self.has_rdp:
            return rdp_epsilon(self.curve(), delta)
        return epsilon_for(self.spent, delta)

    def spend(self, rho: float, *, mechanism: str, what: str, **detail: Any) -> None:
        if not rho > 0:
            raise BudgetError(f"a measurement must cost rho > 0, got {rho}")
        delta = detail.get("delta", 0.0)
        if self.delta_spent + delta > self.delta_reserved * (1 + self._SLACK):
            raise BudgetError(f"{mechanism} on {what} needs delta {delta:.3g} beyond the reserve")
        if self.spent + rho > self.total * (1 + self._SLACK):
            raise BudgetError(
                f"{mechanism} on {what} needs rho {rho:.4g}, only {self.remaining:.4g} of "
                f"{self.total:.4g} is left"
            )
        if self.has_rdp:
            self._check_epsilon(rho * np.asarray(ORDERS, dtype=float), mechanism, what)
        self.steps.append(Step(mechanism, what, rho, detail))

    def spend_rdp(
        self, curve: Sequence[float] | np.ndarray, *, mechanism: str, what: str, **detail: Any
    ) -> None:
        """Spend a step given as an RDP curve over :data:`ORDERS` (DP-SGD): refused when the
        whole ledger with it would convert to more than the budget's epsilon."""
        values = np.asarray(curve, dtype=float)
        if values.shape != (len(ORDERS),) or not (values >= 0).all() or not values.any():
            raise BudgetError(f"{mechanism} on {what}: an RDP curve needs {len(ORDERS)} values > 0")
        self._check_epsilon(values, mechanism, what)
        self.steps.append(Step(mechanism, what, 0.0, detail, tuple(values.tolist())))

    def _check_epsilon(self, extra: np.ndarray, mechanism: str, what: str) -> None:
        after = rdp_epsilon(self.curve(extra), self.budget.delta - self.delta_reserved)
        if after > self.budget.epsilon * (1 + self._SLACK):
            raise BudgetError(
                f"{mechanism} on {what} would bring epsilon to {after:.4g}, over the budget's "
                f"{self.budget.epsilon:.4g}"
            )

    def report(self) -> dict[str, Any]:
        spent = self.spent
        found: dict[str, Any] = {
            "epsilon": self.budget.epsilon,
            "delta": self.budget.delta,
            "rho": self.total,
            "rho_spent": spent,
            "delta_thresholds": self.delta_spent,
            "epsilon_spent": self.epsilon_spent,
            "steps": [_step_entry(s, self.budget.delta - self.delta_reserved) for s in self.steps],
        }
        if self.has_rdp:
            found["composition"] = (
                "RDP: zCDP steps as rho * alpha, DP-SGD by its subsampled-Gaussian curve, "
                "summed over the orders and converted at the best one"
            )
            found["rdp_orders"] = list(ORDERS)
        return found


def _step_entry(step: Step, delta: float) -> dict[str, Any]:
    if not step.rdp:
        return {"mechanism": step.mechanism, "what": step.what, "rho": step.rho, **step.detail}
    return {
        "mechanism": step.mechanism, "what": step.what, **step.detail,
        "epsilon_alone": rdp_epsilon(step.rdp, delta), "rdp": list(step.rdp),
    }  # fmt: skip
