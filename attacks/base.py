"""The attack contract: what an attack is handed, what it declares, and what it returns.

An attack is a stateless object with a ``name``, the threat model it plays under (TAPAS's three
axes, ``attacks.threat``), the metrics a summary shows first (``key_metrics``), the rules it
adds to the default release policy (``rules``), and ``run(context) -> AttackOutput``. The audit
runs every attack of ``attacks.registry.ATTACKS`` that ``applies`` to the context and logs,
gates and reports what it returns without knowing which attack it was: adding an attack is one
module and one registry line.

Metric names are relative to ``privacy.``: an attack named ``closest_distance`` reports
``closest_distance.auc``, logged as ``privacy.closest_distance.auc``. One attack may report
several families (the shadow attack's three scores share its fits): ``families``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

from attacks.metrics import RULES, AttackResult
from attacks.threat import Access, Goal, Knowledge, ThreatModel
from synth.parallel import FitRunner
from synth.schema import Schema


@dataclass(frozen=True, kw_only=True, eq=False)
class AttackContext:
    """One release and the audit's targets: what every attack is handed.

    ``targets`` are records whose membership ``labels`` tell (True: trained on); ``reference``
    is the attacker's sample of the population, disjoint from the targets. ``coin`` says whether
    each target's membership was decided by its own fair coin (an audit's canaries), which the
    one-run epsilon bound needs. ``generator`` (a spec) is given to black-box attacks only."""

    train: pd.DataFrame
    holdout: pd.DataFrame
    synthetic: pd.DataFrame
    schema: Schema
    targets: pd.DataFrame
    labels: np.ndarray
    reference: pd.DataFrame
    seed: int = 0
    delta: float = 0.0
    coin: bool = True
    secrets: tuple[str, ...] = ()
    knowledge: Knowledge = "auxiliary"
    generator: Any = None
    n_shadow: int = 0
    shadow_targets: int = 20
    shadow_size: int | None = None
    """Rows of each shadow training set (``--train-size``); None: the release's."""
    jobs: int = 1
    progress: Callable[[int, int], None] | None = None
    runner: FitRunner | None = None  # where shadow fits run (None: ``jobs`` local processes)

    @property
    def members(self) -> pd.DataFrame:
        return self.targets[self.labels]

    @property
    def others(self) -> pd.DataFrame:
        return self.targets[~self.labels]


@dataclass(frozen=True)
class Finding:
    """One number an attack reports: ``metric`` relative to ``privacy.``, its direction,
    interval and the value of a release that leaks nothing (``baseline``)."""

    metric: str
    value: float
    goal: Literal["max", "min"] = "min"
    ci: tuple[float, float] | None = None
    baseline: float | None = None
    help: str = ""


@dataclass(frozen=True)
class AttackOutput:
    """What one attack found. ``target_scores``: per family, one membership score per target
    (in the context's target order; logged by row position, never by value); ``bounds``: per
    family, how its epsilon bound was computed; ``costs``: ``cost.*`` metrics (e.g. generator
    fits); ``details``: per-record results a report may draw (row positions only)."""

    findings: tuple[Finding, ...]
    target_scores: Mapping[str, np.ndarray] = field(default_factory=dict)
    bounds: Mapping[str, str] = field(default_factory=dict)
    costs: Mapping[str, float] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)


class Attack(ABC):
    """One attack; subclasses declare the class variables and implement ``run``."""

    name: ClassVar[str]
    goal: ClassVar[Goal]
    access: ClassVar[Access] = "no_box"
    families: ClassVar[tuple[str, ...]] = ()
    """Metric families it reports (default: its name)."""
    key_metrics: ClassVar[Mapping[str, str]] = {}
    """Metric (relative to ``privacy.``): a short heading, shown first in every summary."""
    rules: ClassVar[Mapping[str, str]] = {}
    """Rules it adds to the default release policy: metric (relative to ``privacy.``): rule."""
    summary: ClassVar[str] = ""

    def reports(self) -> tuple[str, ...]:
        return self.families or (self.name,)

    def threat(self, knowledge: Knowledge = "auxiliary") -> ThreatModel:
        """Its attacker: a no-box attacker holds a population sample; a black-box one what
        the audit's ``--knowledge`` grants."""
        held = knowledge if self.access == "black_box" else "auxiliary"
        return ThreatModel(knowledge=held, access=self.access, goal=self.goal)

    def applies(self, context: AttackContext) -> bool:
        """Whether the context has what the attack needs (default: always)."""
        return True

    @abstractmethod
    def run(self, context: AttackContext) -> AttackOutput: ...


def bound_note(targets: int, fits: int, result: AttackResult, shared: str) -> str:
    """How a membership attack's epsilon bound was computed, in a sentence for the report."""
    return (
        f"one-run audit (Steinke, Nasr & Jagielski 2023): {targets} targets over {fits} "
        f"generator fit{'s' if fits != 1 else ''} ({shared}), each in the training data with "
        f"probability 1/2 (add/remove neighbours); {len(RULES)} guessing rules fixed in "
        f"advance, Bonferroni-corrected, 95% confidence; at most {result.epsilon_max:.2f} "
        "certifiable with these targets"
    )


def membership_findings(family: str, result: AttackResult) -> tuple[Finding, ...]:
    """The five numbers of a membership attack: AUC (with interval), TPR at two low FPRs,
    advantage, and the one-run epsilon lower bound."""
    return (
        Finding(f"{family}.auc", result.auc, ci=result.auc_ci, baseline=0.5,
                help="membership AUC (0.5: the release says nothing about who was in)"),
        Finding(f"{family}.tpr_at_fpr_0.01", result.tpr_at_fpr_01, baseline=0.01),
        Finding(f"{family}.tpr_at_fpr_0.001", result.tpr_at_fpr_001, baseline=0.001),
        Finding(f"{family}.advantage", result.advantage, baseline=0.0),
        Finding(f"{family}.epsilon_lb", result.epsilon_lb, baseline=0.0,
                help=f"empirical epsilon lower bound (one-run audit, add/remove); "
                     f"{result.members}+{result.non_members} targets can certify at most "
                     f"{result.epsilon_max:.2f}"),
    )  # fmt: skip


class MembershipAttack(Attack):
    """A no-box membership attack: one score per target from the released table alone, for
    each of its families (one search may score several ways: DCR and NNDR share theirs)."""

    goal: ClassVar[Goal] = "membership"

    @abstractmethod
    def scores(self, context: AttackContext) -> Mapping[str, np.ndarray]:
        """Per family, one membership score per target (higher: more likely a member)."""

    def run(self, context: AttackContext) -> AttackOutput:
        shared = "one release" if context.coin else "one release; no coin: see the note"
        findings: list[Finding] = []
        target_scores, bounds = {}, {}
        for family, found in self.scores(context).items():
            values = np.asarray(found, float)
            result = AttackResult.of(values, context.labels, seed=context.seed, delta=context.delta)
            findings += membership_findings(family, result)
            target_scores[family] = values
            bounds[family] = bound_note(len(context.labels), 1, result, shared)
        return AttackOutput(findings=tuple(findings), target_scores=target_scores, bounds=bounds)


def risk_finding(metric: str, risk: Any, help: str) -> Finding:
    """An anonymeter-style risk (``attacks.inference.Risk``) with its interval, as a finding."""
    return Finding(metric, risk.value, ci=(risk.low, risk.high), baseline=0.0, help=help)
