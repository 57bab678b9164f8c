"""The one-run audit of a DP-SGD generator: gradient canaries in one extra training run.

Steinke, Nasr & Jagielski, "Privacy Auditing with One (1) Training Run" (NeurIPS 2023): insert
m canaries, each independently with probability 1/2, into *one* training run; guess which were
in from the run's output; if the mechanism is (epsilon, delta)-DP, the number of correct guesses
is stochastically dominated by Binomial(r, e^eps / (1 + e^eps)) (plus the paper's delta term),
so many correct guesses bound epsilon from below at a stated confidence. An audit then costs
one fit, not the hundreds of shadow fits a per-target bound needs.

The canaries are white-box gradient canaries (the paper's Section 6 setting; "Dirac" canaries
as in Nasr et al., "Tight Auditing of Differentially Private Machine Learning", USENIX 2023):
canary i is an example whose clipped gradient is ``max_grad_norm`` on coordinate i of a block
of parameters the loss never touches (``synth.dp.sgd``), Poisson-sampled like a record. Its
score is the sum, over all steps, of the noisy gradient on its coordinate: a post-processing of
the noisy gradients DP-SGD releases (and which its accountant covers), not of the sampling. The
guesses follow the fixed rules of :func:`attacks.metrics.empirical_epsilon` (top and bottom
fractions of the scores, Bonferroni corrected over the rules: no rule is picked on the data it
certifies), at confidence 1 - ``alpha``.

What it bounds: the privacy of the DP-SGD training as implemented (clipping, noise, Poisson
sampling, the accounting of its steps), with add/remove neighbours. It does not see the
marginal measurements, which are exact discrete Gaussian counts audited elsewhere. A bound
above the claim is proof the claim is false (at the stated confidence); a bound below it proves
nothing but that this attack found no more, and m canaries can never certify more than
:func:`attacks.metrics.max_certifiable_epsilon` (about 5.2 for 1,000 canaries at 95%).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from attacks.metrics import RULES, empirical_epsilon, max_certifiable_epsilon
from synth.errors import ParamError
from synth.schema import Schema

DEFAULT_CANARIES = 1000
CONFIDENCE = 0.95


def audits(spec: Any) -> bool:
    """Whether ``spec`` is a DP-SGD generator the one-run audit applies to."""
    return bool(getattr(spec, "dp_sgd", False)) and spec.budget is not None


@dataclass(frozen=True)
class OneRunResult:
    """The bound, its ceiling with these canaries, and what it rests on."""

    epsilon_lb: float
    epsilon_max: float
    canaries: int
    included: int
    confidence: float
    seconds: float

    def note(self) -> str:
        return (
            f"one-run audit (Steinke, Nasr & Jagielski 2023) with {self.canaries} white-box "
            f"gradient canaries in one extra training run ({self.included} included by fair "
            f"coins), {len(RULES)} guessing rules fixed in advance and Bonferroni-corrected, "
            f"{self.confidence:.0%} confidence, add/remove neighbours; bounds the DP-SGD "
            f"training only; at most {self.epsilon_max:.2f} certifiable with these canaries"
        )


def one_run_audit(
    spec: Any,
    train: pd.DataFrame,
    schema: Schema,
    *,
    seed: int,
    canaries: int = DEFAULT_CANARIES,
    confidence: float = CONFIDENCE,
) -> OneRunResult:
    """Refit ``spec`` on ``train`` with ``canaries`` gradient canaries and bound its epsilon
    from below at ``confidence``. The fitted model is dropped: it never travels."""
    if not audits(spec):
        raise ParamError(f"generator {spec.name!r} is not trained with DP-SGD: no one-run audit")
    if canaries < 2:
        raise ParamError(f"canaries ({canaries}) must be >= 2")
    if not 0 < confidence < 1:
        raise ParamError(f"confidence ({confidence}) must be > 0 and < 1")
    started = time.perf_counter()
    model = replace(spec, audit_canaries=canaries).fit(train, schema, seed=seed)
    found = model.state.sampler.canaries
    scores, included = np.asarray(found["scores"]), np.asarray(found["included"], bool)
    alpha, delta = 1 - confidence, spec.budget.delta
    return OneRunResult(
        epsilon_lb=empirical_epsilon(scores, included, delta=delta, alpha=alpha),
        epsilon_max=max_certifiable_epsilon(canaries, alpha=alpha, delta=delta),
        canaries=canaries, included=int(included.sum()), confidence=confidence,
        seconds=time.perf_counter() - started,
    )  # fmt: skip
