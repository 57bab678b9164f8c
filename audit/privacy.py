"""The no-box privacy audit of one released table: membership by closest distance, and attribute
inference on chosen secret columns. Every number carries an interval, and membership attacks an
empirical epsilon with its ceiling (see ``attacks.metrics``).

Targets: in an audit, the canaries of the split (``audit.split``): about ``2 * n_targets``
random records, each sent to training or to the holdout by its own fair coin, which is what the
one-run epsilon bound needs. For tables made elsewhere (``synthguard score``) there is no such
coin: ``n_targets`` random training records and as many holdout records are the targets, and
the bound assumes the holdout was a random sample of the same table. Per-record results name
rows by their position in the input table, never by their values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from attacks.anonymeter import linkability_risk, singling_out_risk
from attacks.distance import closest_distance_scores, density_ratio_scores
from attacks.inference import inference_risk
from attacks.metrics import RULES, AttackResult
from attacks.shadow import choose_targets, shadow_attack
from attacks.threat import KNOWLEDGE, attack_threats
from audit.scores import Score
from audit.split import holdout_size
from synth.errors import ParamError
from synth.schema import Schema


@dataclass(frozen=True, kw_only=True)
class AttackSettings:
    n_targets: int = 200
    secrets: tuple[str, ...] = ()
    seed: int = 0
    n_shadow: int = 0
    shadow_targets: int = 20
    jobs: int = 1
    knowledge: str = "auxiliary"  # the shadow attacker's (attacks.threat)

    def check(self, columns, *, rows: int | None = None, holdout: float | None = None) -> None:
        """Validate the settings; with the table's size and holdout share, also that the shadow
        attack will have enough auxiliary rows (before anything is fitted)."""
        if self.n_targets < 2:
            raise ParamError(f"--n-targets ({self.n_targets}) must be >= 2")
        if self.n_shadow < 0 or 0 < self.n_shadow < 4:
            raise ParamError(f"--n-shadow ({self.n_shadow}) must be 0 or >= 4")
        if self.shadow_targets < 1:
            raise ParamError(f"--shadow-targets ({self.shadow_targets}) must be >= 1")
        if self.jobs < 1:
            raise ParamError(f"--jobs ({self.jobs}) must be >= 1")
        if self.knowledge not in KNOWLEDGE:
            raise ParamError(
                f"--knowledge ({self.knowledge}) must be one of: {', '.join(KNOWLEDGE)}"
            )
        if (
            self.n_shadow
            and rows is not None
            and holdout is not None
            and self.knowledge == "auxiliary"
        ):
            rest = rows - canary_count(self, rows)  # canaries out of the holdout only add to it
            held = holdout_size(rest, holdout)
            shadow_size(rows - held, held, self.shadow_targets)
        unknown = [s for s in self.secrets if s not in set(columns)]
        if unknown:
            raise ParamError(f"--secret names no column: {', '.join(unknown)}")


def canary_count(settings: AttackSettings, rows: int) -> int:
    """Canaries an audit of a ``rows``-row table draws: twice ``n_targets``, at most a third
    of the table (the rest trains the generator and is the attacker's population sample)."""
    return max(2, min(2 * settings.n_targets, rows // 3))


def _bound_note(targets: int, fits: int, result: AttackResult, shared: str) -> str:
    return (
        f"one-run audit (Steinke, Nasr & Jagielski 2023): {targets} targets over {fits} "
        f"generator fit{'s' if fits != 1 else ''} ({shared}), each in the training data with "
        f"probability 1/2 (add/remove neighbours); {len(RULES)} guessing rules fixed in "
        f"advance, Bonferroni-corrected, 95% confidence; at most {result.epsilon_max:.2f} "
        "certifiable with these targets"
    )


def _membership_scores(name: str, result: AttackResult) -> list[Score]:
    prefix = f"privacy.{name}"
    return [
        Score(f"{prefix}.auc", result.auc, "min", ci=result.auc_ci, baseline=0.5,
              help="membership AUC (0.5: the release says nothing about who was in)"),
        Score(f"{prefix}.tpr_at_fpr_0.01", result.tpr_at_fpr_01, "min", baseline=0.01),
        Score(f"{prefix}.tpr_at_fpr_0.001", result.tpr_at_fpr_001, "min", baseline=0.001),
        Score(f"{prefix}.advantage", result.advantage, "min", baseline=0.0),
        Score(f"{prefix}.epsilon_lb", result.epsilon_lb, "min", baseline=0.0,
              help=f"empirical epsilon lower bound (one-run audit, add/remove); "
                   f"{result.members}+{result.non_members} targets can certify at most "
                   f"{result.epsilon_max:.2f}"),
    ]  # fmt: skip


def privacy_scores(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    settings: AttackSettings,
    *,
    delta: float = 0.0,
    spec: Any = None,
    progress: Any = None,
    canaries: tuple[pd.DataFrame, np.ndarray] | None = None,
    stage: Any = None,
) -> tuple[list[Score], dict[str, Any]]:
    """Scores of every attack, and per-record results (row positions only). ``canaries`` are
    the split's membership targets and whether each was trained on; without them, random
    training and holdout records are drawn. The shadow-model attack runs when
    ``settings.n_shadow`` > 0 and ``spec`` (the generator) is given. ``progress`` hears of the
    shadow fits, ``stage`` of the attack families done (done, total)."""
    shadow = bool(settings.n_shadow and spec is not None)
    steps = 3 + int(shadow)
    step = stage or (lambda done, total: None)
    step(0, steps)
    if len(holdout) < 2:
        raise ParamError("privacy attacks need non-member records: use --holdout > 0")
    rng = np.random.default_rng(settings.seed)
    if canaries is not None:
        targets, labels = canaries
        labels = np.asarray(labels, dtype=bool)
    else:  # at most half the holdout: the rest is the population sample (density ratio)
        k = min(settings.n_targets, len(train), len(holdout) // 2)
        member_rows = np.sort(rng.choice(len(train), k, replace=False))
        other_rows = np.sort(rng.choice(len(holdout), k, replace=False))
        targets = pd.concat([train.iloc[member_rows], holdout.iloc[other_rows]])
        labels = np.r_[np.ones(k, bool), np.zeros(k, bool)]
    members, others = targets[labels], targets[~labels]

    scores: list[Score] = []
    bounds: dict[str, str] = {}
    membership = closest_distance_scores(targets, synthetic, schema)
    reference = holdout[~holdout.index.isin(targets.index)]  # the attacker's population sample
    if len(reference):
        membership["density_ratio"] = density_ratio_scores(targets, synthetic, reference, schema)
    shared = "one release" if canaries is not None else "one release; no coin: see the note"
    for name, values in membership.items():
        result = AttackResult.of(values, labels, seed=settings.seed, delta=delta)
        scores += _membership_scores(name, result)
        bounds[name] = _bound_note(len(labels), 1, result, shared)
    step(1, steps)
    for secret in settings.secrets:
        risk = inference_risk(members, others, synthetic, schema, secret)
        scores.append(
            Score(f"privacy.inference.{secret}.risk", risk.value, "min", ci=(risk.low, risk.high),
                  baseline=0.0, help=f"guessed {risk.main_rate:.0%} of members' {secret}, "
                  f"{risk.control_rate:.0%} of non-members'")
        )  # fmt: skip
    step(2, steps)
    for name, risk in (
        (
            "singling_out",
            singling_out_risk(train, reference, synthetic, schema, seed=settings.seed),
        ),
        ("linkability", linkability_risk(members, others, synthetic, schema, seed=settings.seed)),
    ):
        scores.append(
            Score(f"privacy.{name}.risk", risk.value, "min", ci=(risk.low, risk.high),
                  baseline=0.0, help=f"succeeded on {risk.main_rate:.0%} of members, "
                  f"{risk.control_rate:.0%} of non-members")
        )  # fmt: skip
    step(3, steps)
    records = {
        "row": [int(i) for i in targets.index],
        "member": labels.tolist(),
        **{f"{name}_score": values.tolist() for name, values in membership.items()},
    }
    details: dict[str, Any] = {
        "targets": len(labels), "members": int(labels.sum()), "records": records,
        "bounds": bounds,
    }  # fmt: skip
    if shadow:
        shadow_scores, details["shadow"] = _shadow(
            train, holdout, schema, settings, spec, delta, progress
        )
        scores += shadow_scores
        bounds.update(details["shadow"].pop("bounds"))
        step(4, steps)
    ran = {s.name.split(".")[1] for s in scores}
    details["threat_models"] = {
        name: threat.as_dict()
        for name, threat in attack_threats(knowledge=settings.knowledge).items()
        if name in ran
    }
    return scores, details


def shadow_size(n_train: int, n_holdout: int, shadow_targets: int) -> int:
    """Rows of each shadow training set: half the holdout (the attacker's auxiliary data), and
    room for every target; refuses a holdout too small for that."""
    targets = min(2 * shadow_targets, n_train)
    size = max(targets + 10, n_holdout // 2)
    if size > n_holdout:
        raise ParamError(
            f"the shadow attack draws training sets of {size} rows from the holdout, which has "
            f"{n_holdout}: use a larger --holdout or fewer --shadow-targets"
        )
    return size


def _shadow(train, holdout, schema, settings, spec, delta, progress):
    """The shared-fit shadow attack on the most vulnerable and on random training records; the
    attacker's data is the holdout, or with ``all_but_one`` knowledge the other training rows."""
    outliers, randoms = choose_targets(train, schema, settings.shadow_targets, seed=settings.seed)
    rows = np.r_[outliers, randoms]
    groups = np.r_[np.full(len(outliers), "outlier"), np.full(len(randoms), "random")]
    targets = train.iloc[rows]
    if settings.knowledge == "all_but_one":  # the attacker knows every other training record
        auxiliary = train.iloc[np.setdiff1d(np.arange(len(train)), rows)]
        size = len(auxiliary) + len(rows) // 2
    else:  # the attacker's auxiliary data: the holdout
        auxiliary = holdout
        size = shadow_size(len(train), len(holdout), settings.shadow_targets)
    result = shadow_attack(
        spec, schema, auxiliary, targets, n_shadow=settings.n_shadow, shadow_size=size,
        seed=settings.seed, jobs=settings.jobs, knowledge=settings.knowledge, progress=progress,
    )  # fmt: skip
    scores = [Score("cost.generator_fits", float(result.fits), "min")]
    bounds = {}
    for name, matrix in (
        ("shadow_distance", result.distance),
        ("shadow_groundhog", result.groundhog),
    ):
        certified = result.certified[name]
        pooled = AttackResult.of(
            matrix.ravel(), result.labels.ravel(), seed=settings.seed, delta=delta,
            certify=np.repeat(certified, matrix.shape[1]),
        )  # fmt: skip
        scores += _membership_scores(name, pooled)
        shared = f"{len(rows)} targets share each fit"
        if not certified.all():
            shared += "; only the fits the classifier was not trained on"
        bounds[name] = _bound_note(
            int(certified.sum()) * len(rows), int(certified.sum()), pooled, shared
        )
        for group in ("outlier", "random"):
            mask = groups == group
            part = AttackResult.of(
                matrix[:, mask].ravel(), result.labels[:, mask].ravel(), seed=settings.seed
            )
            scores.append(Score(f"privacy.{name}.{group}.auc", part.auc, "min", ci=part.auc_ci,
                                baseline=0.5, help=f"{group} targets"))  # fmt: skip
    per_target = [
        {"row": int(train.index[r]), "group": g,
         "distance_auc": AttackResult.of(result.distance[:, j], result.labels[:, j]).auc}
        for j, (r, g) in enumerate(zip(rows, groups, strict=True))
    ]  # fmt: skip
    pooled_scores = {
        "labels": result.labels.ravel().tolist(),
        "shadow_distance": result.distance.ravel().tolist(),
        "shadow_groundhog": result.groundhog.ravel().tolist(),
    }
    return scores, {
        "fits": result.fits, "targets": per_target, "scores": pooled_scores, "bounds": bounds
    }  # fmt: skip
