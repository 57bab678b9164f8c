"""Black-box shadow-model membership attack, with shadow fits shared by every target.

Threat model: the attacker holds an auxiliary sample of the population and can fit the generator
on data of its choice. For each of ``n_shadow`` fits it draws a base training set from the
auxiliary data and *adds* each candidate target independently with probability 1/2 (the LiRA
design of Carlini et al., S&P 2022), so one set of N fits gives in/out labels for every target
at once, instead of N fits per target as in TAPAS (Houssiau et al. 2022). Adding (not swapping
a base row for the target) makes neighbouring shadow sets differ by one record, the add/remove
relation of the DP claims they test; with independent coins every (fit, target) pair is a
canary of the one-run epsilon bound (``attacks.metrics.empirical_epsilon``). Each fit is a pure
task (spec, data, seed in; synthetic table out) run by ``synth.parallel.FitRunner`` (local
processes or a Ray cluster, one thread per fit, finished fits cached); logging stays with the
caller.

Two attacks score the same fits:

- ``shadow_distance``: minus the target's distance to the closest synthetic record (a function
  of each fit's output alone: every pair counts for the epsilon bound).
- ``shadow_groundhog``: per target, a classifier on naive statistics of the synthetic table
  (means, spreads, quantiles, category shares, correlations; Stadler et al., USENIX Security
  2022), cross-fitted: trained on the first half of the fits to score the second, and the other
  way round. Only the second half's scores, from a classifier that never saw their labels,
  enter the epsilon bound.

Targets are chosen by vulnerability (mean distance to the k nearest training records, as in
Meeus et al., "Achilles' Heels", 2023): the top outliers, and as many random records as a
control, reported apart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from attacks.base import (
    Attack,
    AttackContext,
    AttackOutput,
    Finding,
    bound_note,
    membership_findings,
)
from attacks.distance import encode, nearest_distances
from attacks.metrics import AttackResult
from attacks.threat import Access, Goal, Knowledge
from synth.errors import ParamError
from synth.generators import BaseGenerator
from synth.parallel import FitRunner
from synth.schema import Schema, as_number


def vulnerability(records: pd.DataFrame, schema: Schema, *, k: int = 5) -> np.ndarray:
    """Mean distance of each record to its ``k`` nearest other records (higher: more exposed)."""
    encoded = encode(records, schema, records)
    distances = nearest_distances(encoded, encoded, k=k + 1)
    return distances[:, 1:].mean(axis=1)


def choose_targets(
    records: pd.DataFrame, schema: Schema, count: int, *, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the ``count`` most vulnerable records, and of ``count`` random others."""
    scores = vulnerability(records, schema)
    outliers = np.argsort(-scores, kind="mergesort")[:count]
    rest = np.setdiff1d(np.arange(len(records)), outliers)
    randoms = np.random.default_rng(seed).choice(rest, min(count, len(rest)), replace=False)
    return np.sort(outliers), np.sort(randoms)


@dataclass(frozen=True)
class ShadowFit:
    """One pure task: fit ``spec`` on ``data`` and sample ``rows`` rows."""

    spec: BaseGenerator
    schema: Schema
    data: pd.DataFrame
    rows: int
    seed: int

    def __call__(self) -> pd.DataFrame:
        model = self.spec.fit(self.data, self.schema, seed=self.seed)
        return model.sample(self.rows, seed=self.seed + 1)


def naive_features(synthetic: pd.DataFrame, schema: Schema, categories: dict) -> np.ndarray:
    """Groundhog's naive feature set of one synthetic table."""
    parts, numbers = [], []
    for column in schema.columns:
        values = synthetic[column.name]
        if column.kind in ("numerical", "datetime"):
            x = as_number(values).to_numpy()
            x = x[~np.isnan(x)] if np.isnan(x).any() else x
            stats = np.quantile(x, [0.0, 0.25, 0.5, 0.75, 1.0]) if len(x) else np.zeros(5)
            parts.append(np.r_[x.mean() if len(x) else 0, x.std() if len(x) else 0, stats])
            numbers.append(as_number(values).fillna(0).to_numpy())
        else:
            text = values.astype(str)
            parts.append(np.array([(text == c).mean() for c in categories[column.name]]))
    if len(numbers) > 1:
        correlation = np.nan_to_num(np.corrcoef(np.vstack(numbers)))
        parts.append(correlation[np.triu_indices(len(numbers), 1)])
    return np.concatenate(parts)


@dataclass
class ShadowResult:
    """Per fit and target: membership labels and the two attacks' scores."""

    labels: np.ndarray  # (n_shadow, n_targets) bool
    distance: np.ndarray  # (n_shadow, n_targets): higher means "member"
    groundhog: np.ndarray  # (n_shadow, n_targets): cross-fitted member probability
    fits: int

    @property
    def certified(self) -> dict[str, np.ndarray]:
        """Per attack, the fits whose scores may enter the epsilon bound: every fit for the
        distance attack; for Groundhog the second half, scored by a classifier trained only on
        the first."""
        second = np.arange(self.fits) >= self.fits // 2
        return {"shadow_distance": np.ones(self.fits, bool), "shadow_groundhog": second}


def shadow_tasks(
    spec,
    schema: Schema,
    auxiliary: pd.DataFrame,
    targets: pd.DataFrame,
    *,
    n_shadow: int,
    shadow_size: int,
    seed: int,
    knowledge: Knowledge = "auxiliary",
) -> tuple[np.ndarray, list[ShadowFit]]:
    """The membership labels (fit x target, each a fair coin) and one pure fit task per shadow
    set: a base (``auxiliary`` whole for ``all_but_one``, else ``shadow_size - len(targets) //
    2`` of its rows) with the targets of that fit added on top."""
    rng = np.random.default_rng(seed)
    labels = rng.random((n_shadow, len(targets))) < 0.5
    base_size = shadow_size - len(targets) // 2
    tasks = []
    for i in range(n_shadow):
        chosen = targets[labels[i]]
        if knowledge == "all_but_one":  # the training set without the targets, plus those in
            base = auxiliary
        else:  # a base of fixed size, the targets added on top of it (never swapped in)
            base = auxiliary.iloc[rng.choice(len(auxiliary), base_size, replace=False)]
        data = pd.concat([base, chosen], ignore_index=True)
        tasks.append(ShadowFit(spec, schema, data, shadow_size, int(rng.integers(2**31))))
    return labels, tasks


def shadow_attack(
    spec,
    schema: Schema,
    auxiliary: pd.DataFrame,
    targets: pd.DataFrame,
    *,
    n_shadow: int,
    shadow_size: int,
    seed: int,
    jobs: int = 1,
    knowledge: Knowledge = "auxiliary",
    progress: Callable[[int, int], None] | None = None,
    runner: FitRunner | None = None,
) -> ShadowResult:
    """Run the shared-fit shadow attack on ``targets`` with ``n_shadow`` generator fits.

    ``knowledge`` is the attacker's (see ``attacks.threat``): with ``"auxiliary"`` each shadow
    set is ``shadow_size - len(targets) // 2`` rows drawn from ``auxiliary`` (so ``shadow_size``
    rows on average) plus the targets drawn in; with ``"all_but_one"``, ``auxiliary`` is the
    training set without the targets, used whole, so the shadow sets differ only in the targets
    (the neighbouring datasets of the DP game). ``runner`` runs the fits (default: ``jobs``
    local processes, no cache)."""
    labels, tasks = shadow_tasks(
        spec, schema, auxiliary, targets, n_shadow=n_shadow, shadow_size=shadow_size, seed=seed,
        knowledge=knowledge,
    )  # fmt: skip
    # local processes, or a Ray cluster; cached fits are read, not made (synth.parallel)
    synthetic = (runner or FitRunner(jobs=jobs)).run(tasks, progress)

    categories = {
        c.name: sorted(set(auxiliary[c.name].dropna().astype(str)))
        for c in schema.columns if c.kind not in ("numerical", "datetime")
    }  # fmt: skip
    encoded_targets = [encode(targets, schema, table) for table in synthetic]
    distance = np.vstack([
        -nearest_distances(t, encode(table, schema, table), k=1)[:, 0]
        for t, table in zip(encoded_targets, synthetic, strict=True)
    ])  # fmt: skip
    features = np.vstack([naive_features(table, schema, categories) for table in synthetic])
    groundhog = _cross_fitted(features, labels)
    return ShadowResult(labels, distance, groundhog, n_shadow)


def _cross_fitted(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per target, a classifier trained on one half of the fits scores the other half, both
    ways; 0.5 where a half has no fit on one side of the target's membership."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    fits = len(features)
    halves = [np.arange(fits) < fits // 2, np.arange(fits) >= fits // 2]
    scores = np.full(labels.shape, 0.5)
    for j in range(labels.shape[1]):
        for train, scored in (halves, halves[::-1]):
            y = labels[train, j]
            if y.all() or not y.any():
                continue
            model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
            model.fit(features[train], y)
            scores[scored, j] = model.predict_proba(features[scored])[:, 1]
    return scores


def shadow_set_size(n_train: int, n_holdout: int, shadow_targets: int) -> int:
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


class Shadow(Attack):
    """The shared-fit shadow attack on the most vulnerable and on random training records; the
    attacker's data is the holdout, or with ``all_but_one`` knowledge the other training rows.
    Runs when the audit grants shadow fits and hands over the generator."""

    name: ClassVar[str] = "shadow"
    goal: ClassVar[Goal] = "membership"
    access: ClassVar[Access] = "black_box"
    families: ClassVar[tuple[str, ...]] = ("shadow_distance", "shadow_groundhog")
    key_metrics: ClassVar[Mapping[str, str]] = {"shadow_groundhog.auc": "shadow"}
    summary: ClassVar[str] = "shadow fits with and without each target (black box)"

    def applies(self, context: AttackContext) -> bool:
        return context.n_shadow > 0 and context.generator is not None

    def run(self, context: AttackContext) -> AttackOutput:
        train, seed = context.train, context.seed
        outliers, randoms = choose_targets(train, context.schema, context.shadow_targets, seed=seed)
        rows = np.r_[outliers, randoms]
        groups = np.r_[np.full(len(outliers), "outlier"), np.full(len(randoms), "random")]
        if context.knowledge == "all_but_one":  # the attacker knows every other training record
            auxiliary = train.iloc[np.setdiff1d(np.arange(len(train)), rows)]
            size = len(auxiliary) + len(rows) // 2
        else:  # the attacker's auxiliary data: the holdout
            auxiliary = context.holdout
            size = shadow_set_size(len(train), len(context.holdout), context.shadow_targets)
        result = shadow_attack(
            context.generator, context.schema, auxiliary, train.iloc[rows],
            n_shadow=context.n_shadow, shadow_size=size, seed=seed, jobs=context.jobs,
            knowledge=context.knowledge, progress=context.progress, runner=context.runner,
        )  # fmt: skip
        findings: list[Finding] = []
        bounds = {}
        for family, matrix in (
            ("shadow_distance", result.distance),
            ("shadow_groundhog", result.groundhog),
        ):
            certified = result.certified[family]
            pooled = AttackResult.of(
                matrix.ravel(), result.labels.ravel(), seed=seed, delta=context.delta,
                certify=np.repeat(certified, matrix.shape[1]),
            )  # fmt: skip
            findings += membership_findings(family, pooled)
            shared = f"{len(rows)} targets share each fit"
            if not certified.all():
                shared += "; only the fits the classifier was not trained on"
            bounds[family] = bound_note(
                int(certified.sum()) * len(rows), int(certified.sum()), pooled, shared
            )
            for group in ("outlier", "random"):
                mask = groups == group
                part = AttackResult.of(
                    matrix[:, mask].ravel(), result.labels[:, mask].ravel(), seed=seed
                )
                findings.append(Finding(f"{family}.{group}.auc", part.auc, ci=part.auc_ci,
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
        return AttackOutput(
            findings=tuple(findings),
            bounds=bounds,
            costs={"generator_fits": float(result.fits)},
            details={"fits": result.fits, "targets": per_target, "scores": pooled_scores},
        )
