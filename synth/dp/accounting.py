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

The :class:`Accountant` is the ledger: every paid read of the private table
(:class:`synth.dp.private.PrivateData`) is a :class:`Step` in it, and it refuses to overspend.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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


def exponential_rho(epsilon: float) -> float:
    """zCDP cost of the exponential mechanism with parameter ``epsilon`` (bounded range)."""
    return epsilon**2 / 8


# ---- the ledger ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One paid measurement: which mechanism, on what, its rho, and what else it recorded
    (noise scale, clique, delta taken from the reserve)."""

    mechanism: str
    what: str
    rho: float
    detail: dict[str, Any] = field(default_factory=dict)


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
        return max(0.0, self.total - self.spent)

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
        self.steps.append(Step(mechanism, what, rho, detail))

    def report(self) -> dict[str, Any]:
        spent = self.spent
        return {
            "epsilon": self.budget.epsilon,
            "delta": self.budget.delta,
            "rho": self.total,
            "rho_spent": spent,
            "delta_thresholds": self.delta_spent,
            "epsilon_spent": epsilon_for(spent, self.budget.delta - self.delta_reserved),
            "steps": [
                {"mechanism": s.mechanism, "what": s.what, "rho": s.rho, **s.detail}
                for s in self.steps
            ],
        }
