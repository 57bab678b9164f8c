"""Singling-out and linkability risks, measured the anonymeter way and written from the paper:
Giomi, Boenisch, Wehmeyer & Tasnádi, "A Unified Framework for Quantifying Privacy Risk in
Synthetic Data", PoPETs 2023. (The ``anonymeter`` package itself pins numpy < 1.27.)

Each attack runs twice with the same guesses: on training records (main) and on as many holdout
records (control, never seen by the generator). What succeeds on the control is what the data's
patterns give anyone; risk = (main - control) / (1 - control) measures what the release adds.

- Singling out (univariate): predicates read off the synthetic table, one per rare synthetic
  value ("column == v" for a value seen once, "column <= min" / ">= max" for numbers). A
  predicate succeeds when exactly one record of the attacked set satisfies it.
- Linkability: the attacker holds two halves of each target's columns from two sources and
  links them through the synthetic table: a target's halves are linked when their nearest
  synthetic records (by each half) coincide among the ``n_neighbours`` closest.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np
import pandas as pd

from attacks.base import Attack, AttackContext, AttackOutput, risk_finding
from attacks.distance import encode, neighbours
from attacks.inference import Risk
from attacks.threat import Goal
from synth.schema import Schema, as_number


def _predicates(synthetic: pd.DataFrame, schema: Schema, count: int, rng) -> list:
    found = []
    for column in schema.columns:
        values = synthetic[column.name].dropna()
        if values.empty:
            continue
        if column.kind in ("numerical", "datetime"):
            numbers = as_number(values)
            found.append((column.name, "<=", float(numbers.min())))
            found.append((column.name, ">=", float(numbers.max())))
        counts = values.astype(str).value_counts()
        found += [(column.name, "==", v) for v in counts.index[counts.to_numpy() == 1]]
    if len(found) > count:
        found = [found[i] for i in rng.choice(len(found), count, replace=False)]
    return found


def _singles_out(frame: pd.DataFrame, predicate) -> bool:
    name, op, value = predicate
    column = frame[name]
    if op == "==":
        matches = column.astype(str).to_numpy() == value
    else:
        numbers = as_number(column).to_numpy()
        matches = numbers <= value if op == "<=" else numbers >= value
    return int(np.sum(matches)) == 1


def singling_out_risk(
    members: pd.DataFrame,
    controls: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    *,
    attacks: int = 500,
    seed: int = 0,
) -> Risk:
    """Univariate singling-out risk: predicates are tried on the training records (main) and on
    population records the generator never saw (control), as many of each: a predicate singles
    out more easily in a smaller set, so sets of different sizes bias the risk (all of the
    training set against all of a smaller holdout gave a "risk" with no leak at all)."""
    predicate_seed, sample_seed = np.random.SeedSequence(seed).spawn(2)
    predicates = _predicates(synthetic, schema, attacks, np.random.default_rng(predicate_seed))
    rng = np.random.default_rng(sample_seed)
    size = min(len(members), len(controls))
    members = members.iloc[np.sort(rng.choice(len(members), size, replace=False))]
    controls = controls.iloc[np.sort(rng.choice(len(controls), size, replace=False))]
    main = sum(_singles_out(members, p) for p in predicates)
    control = sum(_singles_out(controls, p) for p in predicates)
    return Risk.of(main, len(predicates), control, len(predicates))


def linkability_risk(
    members: pd.DataFrame,
    controls: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    *,
    n_neighbours: int = 1,
    seed: int = 0,
) -> Risk:
    """Risk of linking two halves of a record's columns through the synthetic table. The column
    split is a seeded random halving (public: it depends on no data)."""
    names = list(schema.names)
    order = np.random.default_rng(seed).permutation(len(names))
    halves = [schema.select([names[i] for i in order[: len(names) // 2]]),
              schema.select([names[i] for i in order[len(names) // 2 :]])]  # fmt: skip

    def links(targets: pd.DataFrame) -> int:
        found = [
            neighbours(encode(targets, half, synthetic), encode(synthetic, half, synthetic),
                        n_neighbours)[1]
            for half in halves
        ]  # fmt: skip
        return sum(bool(set(a) & set(b)) for a, b in zip(found[0], found[1], strict=True))

    return Risk.of(links(members), len(members), links(controls), len(controls))


def _succeeded(risk: Risk) -> str:
    return f"succeeded on {risk.main_rate:.0%} of members, {risk.control_rate:.0%} of non-members"


class SinglingOut(Attack):
    """Predicates read off the synthetic table that isolate one training record."""

    name: ClassVar[str] = "singling_out"
    goal: ClassVar[Goal] = "singling_out"
    key_metrics: ClassVar[Mapping[str, str]] = {"singling_out.risk": "single"}
    summary: ClassVar[str] = "predicates from rare synthetic values that isolate one record"

    def run(self, context: AttackContext) -> AttackOutput:
        risk = singling_out_risk(
            context.train, context.reference, context.synthetic, context.schema, seed=context.seed
        )
        return AttackOutput(findings=(risk_finding("singling_out.risk", risk, _succeeded(risk)),))


class Linkability(Attack):
    """Two halves of a target's columns linked through the synthetic table."""

    name: ClassVar[str] = "linkability"
    goal: ClassVar[Goal] = "linkability"
    key_metrics: ClassVar[Mapping[str, str]] = {"linkability.risk": "link"}
    rules: ClassVar[Mapping[str, str]] = {"linkability.risk_lo": "<= 0.2"}
    summary: ClassVar[str] = "two halves of a record linked through the synthetic table"

    def run(self, context: AttackContext) -> AttackOutput:
        risk = linkability_risk(
            context.members, context.others, context.synthetic, context.schema, seed=context.seed
        )
        return AttackOutput(findings=(risk_finding("linkability.risk", risk, _succeeded(risk)),))
