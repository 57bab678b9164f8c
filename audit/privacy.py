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

from dataclasses import dataclass, replace
from typing import Any, cast

import numpy as np
import pandas as pd

from attacks.base import Attack, AttackContext, AttackOutput
from attacks.one_run import CONFIDENCE, DEFAULT_CANARIES, audits, one_run_audit
from attacks.registry import ATTACKS
from attacks.shadow import shadow_set_size
from attacks.threat import KNOWLEDGE, Knowledge
from audit.scores import Score
from audit.split import holdout_size
from synth.errors import ParamError
from synth.parallel import FitCache, FitRunner, check_backend, default_cache_folder
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
    train_size: int | None = None  # rows of each shadow training set; None: the release's
    backend: str = "local"  # where shadow fits run: local processes or a Ray cluster
    address: str | None = None  # the Ray cluster's HOST:PORT (else RAY_ADDRESS)
    fit_cache: bool = True  # keep each shadow fit's table (resumable audits; synth.parallel)
    one_run: int = DEFAULT_CANARIES
    """Gradient canaries of the one-run audit of a DP-SGD generator (``attacks.one_run``): one
    extra fit; 0: off. Other generators ignore it."""

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
        if self.one_run < 0 or 0 < self.one_run < 100:
            raise ParamError(f"--one-run-canaries ({self.one_run}) must be 0 or >= 100")
        check_backend(self.backend, self.address)
        if self.knowledge not in KNOWLEDGE:
            raise ParamError(
                f"--knowledge ({self.knowledge}) must be one of: {', '.join(KNOWLEDGE)}"
            )
        if self.train_size is not None and self.knowledge != "auxiliary":
            raise ParamError(
                "--train-size applies to --knowledge auxiliary: an all_but_one attacker's "
                "shadow sets are the training set without the targets"
            )
        if self.train_size is not None and self.train_size < 1:
            raise ParamError(f"--train-size ({self.train_size}) must be >= 1")
        if (
            self.n_shadow
            and rows is not None
            and holdout is not None
            and self.knowledge == "auxiliary"
        ):
            rest = rows - canary_count(self, rows)  # canaries out of the holdout only add to it
            held = holdout_size(rest, holdout)
            shadow_set_size(rows - held, held, self.shadow_targets, requested=self.train_size)
        unknown = [s for s in self.secrets if s not in set(columns)]
        if unknown:
            raise ParamError(f"--secret names no column: {', '.join(unknown)}")


def fit_runner(settings: AttackSettings, store_uri: str) -> FitRunner:
    """Where ``settings``' shadow fits run, with the fit cache beside the MLflow store at
    ``store_uri`` (``synth.parallel.default_cache_folder``) unless ``fit_cache`` is off."""
    folder = default_cache_folder(store_uri) if settings.fit_cache else None
    return FitRunner(
        backend="ray" if settings.backend == "ray" else "local", jobs=settings.jobs,
        address=settings.address, cache=FitCache(folder) if folder is not None else None,
    )  # fmt: skip


def canary_count(settings: AttackSettings, rows: int) -> int:
    """Canaries an audit of a ``rows``-row table draws: twice ``n_targets``, at most a third
    of the table (the rest trains the generator and is the attacker's population sample)."""
    return max(2, min(2 * settings.n_targets, rows // 3))


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
    runner: FitRunner | None = None,
) -> tuple[list[Score], dict[str, Any]]:
    """Scores of every registered attack that applies (``attacks.registry``), and per-record
    results (row positions only). ``canaries`` are the split's membership targets and whether
    each was trained on; without them, random training and holdout records are drawn. The
    black-box attacks run when ``settings.n_shadow`` > 0 and ``spec`` (the generator) is given.
    ``progress`` hears of the shadow fits, ``stage`` of the attacks done (done, total);
    ``runner`` runs the shadow fits (default: ``settings``' backend, no cache)."""
    if len(holdout) < 2:
        raise ParamError("privacy attacks need non-member records: use --holdout > 0")
    if canaries is not None:
        targets, labels = canaries
        labels = np.asarray(labels, dtype=bool)
    else:  # at most half the holdout: the rest is the population sample (density ratio)
        rng = np.random.default_rng(settings.seed)
        k = min(settings.n_targets, len(train), len(holdout) // 2)
        member_rows = np.sort(rng.choice(len(train), k, replace=False))
        other_rows = np.sort(rng.choice(len(holdout), k, replace=False))
        targets = pd.concat([train.iloc[member_rows], holdout.iloc[other_rows]])
        labels = np.r_[np.ones(k, bool), np.zeros(k, bool)]
    context = AttackContext(
        train=train, holdout=holdout, synthetic=synthetic, schema=schema, targets=targets,
        labels=labels, reference=holdout[~holdout.index.isin(targets.index)], seed=settings.seed,
        delta=delta, coin=canaries is not None, secrets=settings.secrets,
        knowledge=cast(Knowledge, settings.knowledge), generator=spec, n_shadow=settings.n_shadow,
        shadow_targets=settings.shadow_targets, shadow_size=settings.train_size, jobs=settings.jobs,
        progress=progress,
        runner=runner or fit_runner(replace(settings, fit_cache=False), "memory:"),
    )  # fmt: skip
    chosen = [attack for attack in ATTACKS.values() if attack.applies(context)]
    step = stage or (lambda done, total: None)
    step(0, len(chosen))
    scores: list[Score] = []
    records: dict[str, Any] = {"row": [int(i) for i in targets.index], "member": labels.tolist()}
    details: dict[str, Any] = {
        "targets": len(labels), "members": int(labels.sum()), "records": records, "bounds": {},
        "threat_models": {},
    }  # fmt: skip
    for done, attack in enumerate(chosen, start=1):
        found = attack.run(context)
        scores += [Score(f"cost.{k}", v, "min") for k, v in found.costs.items()]
        scores += [
            Score(f"privacy.{f.metric}", f.value, f.goal, ci=f.ci, baseline=f.baseline,
                  help=f.help)
            for f in found.findings
        ]  # fmt: skip
        for family, values in found.target_scores.items():
            records[f"{family}_score"] = np.asarray(values, float).tolist()
        details["bounds"].update(found.bounds)
        if found.details:
            details[attack.name] = dict(found.details)
        threat = attack.threat(cast(Knowledge, settings.knowledge)).as_dict()
        details["threat_models"].update({family: threat for family in _reported(attack, found)})
        step(done, len(chosen))
    if settings.one_run and audits(spec):
        scores += _one_run(train, schema, settings, spec, details)
    return scores, details


def _one_run(
    train: pd.DataFrame, schema: Schema, settings: AttackSettings, spec: Any,
    details: dict[str, Any],
) -> list[Score]:  # fmt: skip
    """The one-run audit of a DP-SGD generator: one extra fit with gradient canaries; its bound
    goes beside the attacks' (``privacy.one_run.*``), so the release policy's
    ``privacy.*.epsilon_lb <= epsilon`` holds it to the claim too."""
    found = one_run_audit(spec, train, schema, seed=settings.seed, canaries=settings.one_run,
                          confidence=CONFIDENCE)  # fmt: skip
    details["bounds"]["one_run"] = found.note()
    details["one_run"] = {
        "canaries": found.canaries, "included": found.included,
        "confidence": found.confidence, "epsilon_lb": found.epsilon_lb,
        "epsilon_max": found.epsilon_max,
    }  # fmt: skip
    details["threat_models"]["one_run"] = {
        "knowledge": "white-box: every noisy gradient of the training run",
        "access": "white_box", "goal": "membership (gradient canaries)",
        "description": "inserts gradient canaries into one training run, each by a fair coin, "
        "sees every noisy gradient, and tells which canaries were in",
    }  # fmt: skip
    help_text = (
        f"epsilon lower bound of the DP-SGD training from {found.canaries} gradient canaries "
        f"in one extra fit ({found.confidence:.0%}); at most {found.epsilon_max:.2f} certifiable"
    )
    return [
        Score("privacy.one_run.epsilon_lb", found.epsilon_lb, "min", baseline=0.0,
              help=help_text),
        Score("privacy.one_run.epsilon_max", found.epsilon_max, "max"),
        Score("privacy.one_run.canaries", float(found.canaries), "max"),
        Score("privacy.one_run.confidence", found.confidence, "max"),
        Score("cost.one_run_seconds", found.seconds, "min"),
    ]  # fmt: skip


def _reported(attack: Attack, found: AttackOutput) -> list[str]:
    """The families ``attack`` reported scores under (e.g. ``inference`` only with secrets)."""
    prefixes = {f.metric.split(".", 1)[0] for f in found.findings}
    return [family for family in attack.reports() if family in prefixes]
