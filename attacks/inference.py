"""Attribute inference on a released table (no-box), measured the anonymeter way.

The attacker knows a target's other columns and wants its secret one. It guesses the secret of the
closest synthetic record (mixed-type distance on the known columns), as in Giomi et al., "A
Unified Framework for Quantifying Privacy Risk in Synthetic Data" (PoPETs 2023). The same attack
is run on training records (members) and on holdout records the generator never saw (control):
what it gets right on the control is what the data's patterns give away to anyone; only the
excess on members is leakage. Risk = (main - control) / (1 - control), with Wilson intervals.

A numerical secret counts as guessed when within ``tolerance`` of the column's range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
from scipy.stats import norm

from attacks.base import Attack, AttackContext, AttackOutput, risk_finding
from attacks.distance import encode, nearest_indices
from attacks.threat import Goal
from synth.schema import Schema, as_number


def wilson(successes: int, trials: int, level: float = 0.95) -> tuple[float, float, float]:
    """Wilson score estimate and interval of a success rate."""
    if trials == 0:
        return math.nan, math.nan, math.nan
    z = float(norm.ppf(1 - (1 - level) / 2))
    rate = successes / trials
    centre = (rate + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(rate * (1 - rate) / trials + z * z / (4 * trials * trials))
    half /= 1 + z * z / trials
    return centre, max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Risk:
    """Anonymeter-style risk with its interval, and the two success rates it comes from."""

    value: float
    low: float
    high: float
    main_rate: float
    control_rate: float

    @classmethod
    def of(cls, main_hits: int, main_trials: int, control_hits: int, control_trials: int) -> Risk:
        main, main_lo, main_hi = wilson(main_hits, main_trials)
        control, control_lo, control_hi = wilson(control_hits, control_trials)

        def risk(m: float, c: float) -> float:
            return min(1.0, max(-1.0, (m - c) / (1 - c))) if c < 1 else 0.0

        # each end clamped to [-1, 1] on its own, then ordered with the value: a control rate
        # near 1 can send every raw figure far below -1, in any order
        value, low, high = risk(main, control), risk(main_lo, control_hi), risk(main_hi, control_lo)
        return cls(
            value=value,
            low=min(low, value),
            high=max(high, value),
            main_rate=main,
            control_rate=control,
        )


def _guessed(
    targets: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema, secret: str, tolerance: float
) -> np.ndarray:
    known = schema.select([n for n in schema.names if n != secret])
    nearest = nearest_indices(
        encode(targets, known, synthetic), encode(synthetic, known, synthetic)
    )
    guesses = synthetic[secret].iloc[nearest].to_numpy()
    truth = targets[secret].to_numpy()
    column = schema[secret]
    if column.kind in ("numerical", "datetime"):
        a = as_number(pd.Series(guesses)).to_numpy()
        b = as_number(pd.Series(truth)).to_numpy()
        reference = as_number(synthetic[secret])
        span = float(reference.max() - reference.min()) or 1.0
        return np.abs(a - b) <= tolerance * span
    return pd.Series(guesses).astype(str).to_numpy() == pd.Series(truth).astype(str).to_numpy()


def inference_risk(
    members: pd.DataFrame,
    controls: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    secret: str,
    *,
    tolerance: float = 0.05,
) -> Risk:
    """Risk that the release reveals ``secret`` of training records beyond what it reveals of
    records it never saw."""
    main = _guessed(members, synthetic, schema, secret, tolerance)
    control = _guessed(controls, synthetic, schema, secret, tolerance)
    return Risk.of(int(main.sum()), len(main), int(control.sum()), len(control))


class AttributeInference(Attack):
    """Each ``--secret`` column guessed from a target's other columns, members against
    non-members (the excess on members is the leak)."""

    name: ClassVar[str] = "inference"
    goal: ClassVar[Goal] = "attribute"
    summary: ClassVar[str] = "a secret column guessed from the closest synthetic record"

    def applies(self, context: AttackContext) -> bool:
        return bool(context.secrets)

    def run(self, context: AttackContext) -> AttackOutput:
        findings = []
        for secret in context.secrets:
            risk = inference_risk(
                context.members, context.others, context.synthetic, context.schema, secret
            )
            findings.append(
                risk_finding(
                    f"inference.{secret}.risk", risk, f"guessed {risk.main_rate:.0%} of members' "
                    f"{secret}, {risk.control_rate:.0%} of non-members'",
                )
            )  # fmt: skip
        return AttackOutput(findings=tuple(findings))
