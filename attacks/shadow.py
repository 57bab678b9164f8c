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

Three attacks score the same fits:

- ``shadow_distance``: minus the target's distance to the closest synthetic record (a function
  of each fit's output alone: every pair counts for the epsilon bound).
- ``shadow_groundhog``: per target, a classifier on naive statistics of the synthetic table
  (means, spreads, quantiles, category shares, correlations; Stadler et al., USENIX Security
  2022), cross-fitted: trained on the first half of the fits to score the second, and the other
  way round.
- ``shadow_lira``: per target, Gaussians of the distance statistic over the IN and over the
  OUT shadow fits, and the log likelihood ratio of a table under them (LiRA: Carlini et al.,
  "Membership Inference Attacks From First Principles", IEEE S&P 2022), so that every target is
  scored on its own scale. Cross-fitted like Groundhog for the pooled AUC; the released table
  is scored by Gaussians fitted on every shadow fit.

Held-out scores, and why they are built this way: a per-target statistic fitted on some fits
and applied to others must not let those fits' label share set the level of the scores. The
old Groundhog classifier's intercept carried its training half's member share, so the half
with more members was scored at the lower level (the other half's share): below-chance AUCs
with intervals excluding 0.5 (0.32 [0.19, 0.45] on ``identity``'s random targets). Now the
classifier weighs both classes equally and each (target, half) block of scores is centred on
its own median (no label used); the LiRA ratio holds no prior. Only the second half's scores,
from statistics that never saw their labels, enter the epsilon bound. The pooled and group
AUC intervals resample fits and targets (``attacks.metrics.grid_bootstrap_auc``): scores
sharing a fit or a target are not independent.

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
from attacks.metrics import AttackResult, roc_auc
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


def halves(fits: int) -> np.ndarray:
    """Each fit's half (0: the first ``fits // 2``, 1: the rest): a statistic fitted on one
    half scores the other."""
    return (np.arange(fits) >= fits // 2).astype(int)


@dataclass
class ShadowResult:
    """Per fit and target: membership labels and the three attacks' scores."""

    labels: np.ndarray  # (n_shadow, n_targets) bool
    distance: np.ndarray  # (n_shadow, n_targets): higher means "member"
    groundhog: np.ndarray  # (n_shadow, n_targets): cross-fitted, centred per (target, half)
    lira: np.ndarray  # (n_shadow, n_targets): cross-fitted log likelihood ratio
    gaussians: Gaussians  # per target, fitted on every fit: scores the released table
    fits: int

    @property
    def certified(self) -> dict[str, np.ndarray]:
        """Per attack, the fits whose scores may enter the epsilon bound: every fit for the
        distance attack; for Groundhog and LiRA the second half, scored by statistics fitted
        on the first half only."""
        second = halves(self.fits) == 1
        every = np.ones(self.fits, bool)
        return {"shadow_distance": every, "shadow_groundhog": second, "shadow_lira": second}


@dataclass(frozen=True)
class Gaussians:
    """Per target, a Gaussian of a statistic over the fits that included it (``inside``) and
    over those that did not (``outside``), one shared spread (LiRA's global-variance variant,
    suited to few shadow fits). NaN means: no fit on that side."""

    inside: np.ndarray
    outside: np.ndarray
    spread: np.ndarray

    @classmethod
    def fit(cls, statistic: np.ndarray, labels: np.ndarray) -> Gaussians:
        statistic, labels = np.asarray(statistic, float), np.asarray(labels, bool)
        ins, outs = labels.sum(axis=0), (~labels).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            inside = np.where(labels, statistic, 0).sum(axis=0) / ins
            outside = np.where(labels, 0, statistic).sum(axis=0) / outs
            residual = np.where(labels, statistic - inside, statistic - outside)
            spread = np.sqrt((residual**2).sum(axis=0) / np.maximum(len(labels) - 2, 1))
        return cls(inside, outside, spread)

    def log_ratio(self, values: np.ndarray) -> np.ndarray:
        """log N(value; inside, spread) - log N(value; outside, spread), per target (the last
        axis): linear in the value; 0 (no evidence) where a side had no fit, and where the
        statistic never varied. The spread is at least 1/20 of the gap between the means, so
        that sides split without overlap give a large, finite ratio."""
        gap = self.inside - self.outside
        floor = np.maximum(0.05 * np.abs(gap), 1e-9)  # a perfect split: a ratio of about 200
        spread = np.maximum(np.nan_to_num(self.spread), floor)
        with np.errstate(invalid="ignore"):
            ratio = gap * (np.asarray(values, float) - (self.inside + self.outside) / 2)
            ratio = ratio / spread**2
        return np.nan_to_num(ratio, nan=0.0, posinf=0.0, neginf=0.0)


def lira_scores(statistic: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Cross-fitted LiRA: each half's fits scored by the Gaussians of the other half."""
    fold = halves(len(labels))
    scores = np.zeros(np.shape(labels))
    for half in (0, 1):
        scored = fold == half
        gaussians = Gaussians.fit(statistic[~scored], labels[~scored])
        scores[scored] = gaussians.log_ratio(statistic[scored])
    return scores


def groundhog_scores(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per target, a logistic regression on ``features`` weighing members and non-members
    equally, trained on one half of the fits, scores the other half (both ways); each
    (target, half) block of log-odds is centred on its median, so that no block's level
    depends on a label share. 0 where the training half holds one side only."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    fold = halves(len(features))
    scores = np.zeros(labels.shape)
    for j in range(labels.shape[1]):
        for half in (0, 1):
            train, scored = fold != half, fold == half
            y = labels[train, j]
            if y.all() or not y.any():
                continue
            model = make_pipeline(
                StandardScaler(), LogisticRegression(max_iter=1000, class_weight="balanced")
            )
            model.fit(features[train], y)
            values = model.decision_function(features[scored])
            scores[scored, j] = values - np.median(values)
    return scores


def closest_statistic(targets: pd.DataFrame, table: pd.DataFrame, schema: Schema) -> np.ndarray:
    """Minus each target's distance to its closest record of ``table`` (scaled by ``table``)."""
    encoded = encode(table, schema, table)
    return -nearest_distances(encode(targets, schema, table), encoded, k=1)[:, 0]


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
    distance = np.vstack([closest_statistic(targets, table, schema) for table in synthetic])
    features = np.vstack([naive_features(table, schema, categories) for table in synthetic])
    return ShadowResult(
        labels=labels,
        distance=distance,
        groundhog=groundhog_scores(features, labels),
        lira=lira_scores(distance, labels),
        gaussians=Gaussians.fit(distance, labels),
        fits=n_shadow,
    )


def shadow_set_size(
    n_train: int, n_holdout: int, shadow_targets: int, *, requested: int | None = None
) -> int:
    """Rows of each shadow training set (on average): ``requested`` (``--train-size``), else
    the release's ``n_train``, or as close to it as the holdout (the attacker's auxiliary data,
    which supplies each set's base of ``size - targets // 2`` rows) allows. Refuses a size the
    holdout cannot supply or too small to hold the targets."""
    targets = min(2 * shadow_targets, n_train)
    least = targets + 10
    if requested is not None:
        if requested < least:
            raise ParamError(
                f"--train-size ({requested}) must be >= {least}: the shadow sets hold up to "
                f"{targets} targets and a base of at least 10 rows"
            )
        if requested - targets // 2 > n_holdout:
            raise ParamError(
                f"--train-size ({requested}) needs a base of {requested - targets // 2} rows "
                f"from the holdout, which has {n_holdout}: use a larger --holdout or a smaller "
                "--train-size"
            )
        return requested
    size = min(n_train, n_holdout + targets // 2)
    if size < least:
        raise ParamError(
            f"the shadow attack draws training sets of {least} rows or more from the holdout, "
            f"which has {n_holdout}: use a larger --holdout or fewer --shadow-targets"
        )
    return size


def size_note(shadow_size: int, release_size: int) -> str:
    """What the report says when the shadow sets and the release differ in size."""
    if shadow_size == release_size:
        return ""
    fewer = "fewer" if shadow_size < release_size else "more"
    return (
        f"shadow training sets of {shadow_size} rows (on average), the release's of "
        f"{release_size}: the attack studies fits on {fewer} rows than the released model's "
        "(--train-size sets it)"
    )


class Shadow(Attack):
    """The shared-fit shadow attack on the most vulnerable and on random training records; the
    attacker's data is the holdout, or with ``all_but_one`` knowledge the other training rows.
    Runs when the audit grants shadow fits and hands over the generator."""

    name: ClassVar[str] = "shadow"
    goal: ClassVar[Goal] = "membership"
    access: ClassVar[Access] = "black_box"
    families: ClassVar[tuple[str, ...]] = ("shadow_distance", "shadow_groundhog", "shadow_lira")
    key_metrics: ClassVar[Mapping[str, str]] = {"shadow_lira.auc": "shadow"}
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
            size = shadow_set_size(
                len(train), len(context.holdout), context.shadow_targets,
                requested=context.shadow_size,
            )  # fmt: skip
        targets = train.iloc[rows]
        result = shadow_attack(
            context.generator, context.schema, auxiliary, targets,
            n_shadow=context.n_shadow, shadow_size=size, seed=seed, jobs=context.jobs,
            knowledge=context.knowledge, progress=context.progress, runner=context.runner,
        )  # fmt: skip
        note = size_note(size, len(train))
        findings: list[Finding] = []
        bounds = {}
        for family, matrix in (
            ("shadow_lira", result.lira),
            ("shadow_distance", result.distance),
            ("shadow_groundhog", result.groundhog),
        ):
            certified = result.certified[family]
            pooled = AttackResult.of(
                matrix, result.labels, seed=seed, delta=context.delta,
                certify=np.broadcast_to(certified[:, None], matrix.shape),
            )  # fmt: skip
            findings += membership_findings(family, pooled)
            shared = f"{len(rows)} targets share each fit"
            if not certified.all():
                shared += "; only the half of the fits its statistics were not fitted on"
            bounds[family] = bound_note(
                int(certified.sum()) * len(rows), int(certified.sum()), pooled, shared
            ) + (f"; {note}" if note else "")
            for group in ("outlier", "random"):
                mask = groups == group
                part = AttackResult.of(matrix[:, mask], result.labels[:, mask], seed=seed)
                findings.append(Finding(f"{family}.{group}.auc", part.auc, ci=part.auc_ci,
                                        baseline=0.5, help=f"{group} targets"))  # fmt: skip
        released = result.gaussians.log_ratio(
            closest_statistic(targets, context.synthetic, context.schema)
        )
        per_target = [
            {"row": int(train.index[r]), "group": str(g),
             "lira_auc": roc_auc(result.lira[:, j], result.labels[:, j]),
             "lira_release": float(released[j]),
             "distance_auc": roc_auc(result.distance[:, j], result.labels[:, j]),
             "groundhog_auc": roc_auc(result.groundhog[:, j], result.labels[:, j])}
            for j, (r, g) in enumerate(zip(rows, groups, strict=True))
        ]  # fmt: skip
        pooled_scores = {
            "labels": result.labels.ravel().tolist(),
            "shadow_lira": result.lira.ravel().tolist(),
            "shadow_distance": result.distance.ravel().tolist(),
            "shadow_groundhog": result.groundhog.ravel().tolist(),
        }
        return AttackOutput(
            findings=tuple(findings),
            bounds=bounds,
            costs={"generator_fits": float(result.fits)},
            details={
                "fits": result.fits, "targets": per_target, "scores": pooled_scores,
                "train_size": size, "release_train_size": len(train), "size_note": note,
            },
        )  # fmt: skip
