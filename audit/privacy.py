"""The no-box privacy audit of one released table: membership by closest distance, and attribute
inference on chosen secret columns. Every number carries an interval, and membership attacks an
empirical epsilon with its ceiling (see ``attacks.metrics``).

Targets: ``n_targets`` random training records (members) and as many random holdout records
(non-members, never seen by the generator), drawn with the audit's seed. Per-record results name
rows by their position in the input table, never by their values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from attacks.anonymeter import linkability_risk, singling_out_risk
from attacks.distance import closest_distance_scores
from attacks.inference import inference_risk
from attacks.metrics import AttackResult
from audit.scores import Score
from synth.errors import ParamError
from synth.schema import Schema


@dataclass(frozen=True, kw_only=True)
class AttackSettings:
    n_targets: int = 200
    secrets: tuple[str, ...] = ()
    seed: int = 0

    def check(self, columns) -> None:
        if self.n_targets < 2:
            raise ParamError(f"--n-targets ({self.n_targets}) must be >= 2")
        unknown = [s for s in self.secrets if s not in set(columns)]
        if unknown:
            raise ParamError(f"--secret names no column: {', '.join(unknown)}")


def _membership_scores(name: str, result: AttackResult) -> list[Score]:
    prefix = f"privacy.{name}"
    return [
        Score(f"{prefix}.auc", result.auc, "min", ci=result.auc_ci, baseline=0.5,
              help="membership AUC (0.5: the release says nothing about who was in)"),
        Score(f"{prefix}.tpr_at_fpr_0.01", result.tpr_at_fpr_01, "min", baseline=0.01),
        Score(f"{prefix}.tpr_at_fpr_0.001", result.tpr_at_fpr_001, "min", baseline=0.001),
        Score(f"{prefix}.advantage", result.advantage, "min", baseline=0.0),
        Score(f"{prefix}.epsilon_lb", result.epsilon_lb, "min", baseline=0.0,
              help=f"empirical epsilon lower bound; {result.members}+{result.non_members} "
                   f"targets can certify at most {result.epsilon_max:.2f}"),
    ]  # fmt: skip


def privacy_scores(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    settings: AttackSettings,
    *,
    delta: float = 0.0,
) -> tuple[list[Score], dict[str, Any]]:
    """Scores of every no-box attack, and per-record results (row positions only)."""
    if len(holdout) < 2:
        raise ParamError("privacy attacks need non-member records: use --holdout > 0")
    rng = np.random.default_rng(settings.seed)
    k = min(settings.n_targets, len(train), len(holdout))
    member_rows = np.sort(rng.choice(len(train), k, replace=False))
    other_rows = np.sort(rng.choice(len(holdout), k, replace=False))
    members, others = train.iloc[member_rows], holdout.iloc[other_rows]
    targets = pd.concat([members, others])
    labels = np.r_[np.ones(k, bool), np.zeros(k, bool)]

    scores: list[Score] = []
    membership = closest_distance_scores(targets, synthetic, schema)
    for name, values in membership.items():
        result = AttackResult.of(values, labels, seed=settings.seed, delta=delta)
        scores += _membership_scores(name, result)
    for secret in settings.secrets:
        risk = inference_risk(members, others, synthetic, schema, secret)
        scores.append(
            Score(f"privacy.inference.{secret}.risk", risk.value, "min", ci=(risk.low, risk.high),
                  baseline=0.0, help=f"guessed {risk.main_rate:.0%} of members' {secret}, "
                  f"{risk.control_rate:.0%} of non-members'")
        )  # fmt: skip
    for name, risk in (
        ("singling_out", singling_out_risk(train, holdout, synthetic, schema, seed=settings.seed)),
        ("linkability", linkability_risk(members, others, synthetic, schema, seed=settings.seed)),
    ):
        scores.append(
            Score(f"privacy.{name}.risk", risk.value, "min", ci=(risk.low, risk.high),
                  baseline=0.0, help=f"succeeded on {risk.main_rate:.0%} of members, "
                  f"{risk.control_rate:.0%} of non-members")
        )  # fmt: skip
    records = {
        "row": [int(i) for i in targets.index],
        "member": labels.tolist(),
        **{name: (-values).tolist() for name, values in membership.items()},
    }
    return scores, {"targets": k, "records": records}
