"""Attack metrics with their uncertainty: ROC AUC (bootstrap interval), TPR at a fixed FPR,
membership advantage, and an empirical lower bound on epsilon.

Scores are "higher means member". The empirical epsilon (:func:`empirical_epsilon`) is the
one-run auditing bound of Steinke, Nasr & Jagielski, "Privacy Auditing with One (1) Training
Run" (NeurIPS 2023): targets are included in the training data independently with probability
1/2 (add/remove neighbours), the attacker guesses on the ones it is surest of, and the number of
correct guesses bounds epsilon with the stated confidence even though every target shares one
training run (or, for shadow attacks, a few). The guessing rules are fixed in advance and
Bonferroni corrected, so choosing the best of them does not overstate the bound (picking the
best threshold on the same trials, with no correction, did: about 10% of 95% bounds exceeded
the true epsilon in simulation). A bound rests on the number of targets:
:func:`max_certifiable_epsilon` says the largest value they could ever show, so a 0 reads as
"no evidence", not "private".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import beta, binom, rankdata


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Probability that a random member outscores a random non-member (ties count half)."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, bool)
    positives, negatives = labels.sum(), (~labels).sum()
    if positives == 0 or negatives == 0:
        return math.nan
    ranks = _average_ranks(scores)
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    return rankdata(values, method="average")


def bootstrap_auc(
    scores: np.ndarray,
    labels: np.ndarray,
    *,
    seed: int = 0,
    rounds: int = 1000,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the AUC, resampling members and non-members apart."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, bool)
    members, others = scores[labels], scores[~labels]
    if len(members) == 0 or len(others) == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    values = np.empty(rounds)
    both = np.r_[np.ones(len(members), bool), np.zeros(len(others), bool)]
    for i in range(rounds):
        resampled = np.r_[rng.choice(members, len(members)), rng.choice(others, len(others))]
        values[i] = roc_auc(resampled, both)
    tail = (1 - level) / 2
    return float(np.quantile(values, tail)), float(np.quantile(values, 1 - tail))


def grid_bootstrap_auc(
    scores: np.ndarray,
    labels: np.ndarray,
    *,
    seed: int = 0,
    rounds: int = 1000,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile interval of the AUC of a (fits x targets) grid of scores, resampling fits
    (rows) and targets (columns) independently: the pigeonhole bootstrap (Owen, "The pigeonhole
    bootstrap", Annals of Applied Statistics 2007). Shadow scores are not independent pairs: the
    targets of one fit share its synthetic table, and the fits of one target share the
    statistics fitted for it; resampling pairs alone ignored both (its 95% intervals held 0.5
    in 82-88% of null simulations, this one in at least 95%: tests/test_shadow.py)."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, bool)
    if scores.ndim != 2 or scores.shape != labels.shape:
        raise ValueError("grid_bootstrap_auc needs two matrices of one shape (fits x targets)")
    if labels.all() or not labels.any():
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    fits, targets = scores.shape
    values = np.full(rounds, np.nan)
    for i in range(rounds):
        rows, columns = rng.integers(0, fits, fits), rng.integers(0, targets, targets)
        picked = np.ix_(rows, columns)
        values[i] = roc_auc(scores[picked].ravel(), labels[picked].ravel())
    tail = (1 - level) / 2
    return float(np.nanquantile(values, tail)), float(np.nanquantile(values, 1 - tail))


def _rates(scores: np.ndarray, labels: np.ndarray):
    """True and false positive counts at every distinct threshold ("score >= t" is positive)."""
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    last = np.r_[s[1:] != s[:-1], True]  # the last row of each tie group
    tp, fp = np.cumsum(y)[last], np.cumsum(~y)[last]
    return np.r_[0, tp], np.r_[0, fp]


def tpr_at_fpr(scores: np.ndarray, labels: np.ndarray, fpr: float) -> float:
    """The highest TPR among thresholds whose FPR is at most ``fpr``."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, bool)
    tp, fp = _rates(scores, labels)
    allowed = fp / max(1, (~labels).sum()) <= fpr + 1e-12
    return float((tp[allowed] / max(1, labels.sum())).max())


def advantage(scores: np.ndarray, labels: np.ndarray) -> float:
    """Membership advantage: the largest TPR - FPR over thresholds (Yeom et al. 2018)."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, bool)
    tp, fp = _rates(scores, labels)
    return float((tp / max(1, labels.sum()) - fp / max(1, (~labels).sum())).max())


# ---- the empirical epsilon: one-run auditing -------------------------------------------------

GUESS_FRACTIONS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
"""The attacker's guessing rules, fixed before any score is seen: for each fraction f, guess
"member" for the top f of the targets by score (abstaining on the rest), and guess "member" for
the top f/2 and "non-member" for the bottom f/2."""
RULES = tuple((f, both) for f in GUESS_FRACTIONS for both in (False, True))


def _tail_at_least(v: int, r: int, q: float) -> float:
    """P[Binomial(r, q) >= v]."""
    return float(binom.sf(v - 1, r, q)) if v > 0 else 1.0


def snj_p_value(m: int, r: int, v: int, epsilon: float, delta: float = 0.0) -> float:
    """How likely ``v`` or more correct guesses out of ``r`` are (abstaining on the other m - r
    canaries) if the mechanism is (epsilon, delta)-DP with respect to each of ``m`` canaries,
    each included independently with probability 1/2 (Steinke, Nasr & Jagielski, "Privacy
    Auditing with One (1) Training Run", NeurIPS 2023, Theorems 3.1 and 5.2): the tail of
    Binomial(r, e^eps / (1 + e^eps)), plus for delta > 0 the term
    2 m delta max_i P[v - i <= Binomial(r, q) < v] / i."""
    q = 1 / (1 + math.exp(-epsilon))
    p = _tail_at_least(v, r, q)
    if delta > 0 and v > 0:
        below = binom.pmf(np.arange(v - 1, -1, -1), r, q)  # P[B = v-1], P[B = v-2], ...
        windows = np.cumsum(below) / np.arange(1, v + 1)  # P[v - i <= B < v] / i for i = 1..v
        p += 2 * m * delta * float(windows.max())
    return min(1.0, p)


def _snj_bound(m: int, r: int, v: int, alpha: float, delta: float) -> float:
    """Largest epsilon the observation rejects at level ``alpha`` (0 if none)."""
    if r == 0 or v == 0:
        return 0.0
    # pure DP: the one-sided Clopper-Pearson lower bound on the accuracy, as a log-odds
    q_low = float(beta.ppf(alpha, v, r - v + 1))
    if q_low <= 0.5:
        return 0.0
    high = math.log(q_low / (1 - q_low))
    if delta <= 0:
        return high
    if snj_p_value(m, r, v, 0.0, delta) >= alpha:
        return 0.0
    low = 0.0  # p(low) < alpha <= p(high): the delta term only adds
    for _ in range(60):
        middle = (low + high) / 2
        if snj_p_value(m, r, v, middle, delta) < alpha:
            low = middle
        else:
            high = middle
    return low


def empirical_epsilon(
    scores: np.ndarray, is_member: np.ndarray, *, delta: float = 0.0, alpha: float = 0.05
) -> float:
    """Lower bound on epsilon, at confidence 1 - ``alpha``, from an attack's scores on targets
    that were each included in the training data independently with probability 1/2 (higher
    score: "member").

    The guesses follow each rule of :data:`RULES` (fixed in advance, applied to the ranking of
    the scores; ties broken by a fixed permutation, never by the labels); each rule's count of
    correct guesses is tested with the one-run analysis of Steinke, Nasr & Jagielski (2023),
    which holds for many targets sharing one training run, and the rules are Bonferroni
    corrected (each at alpha / len(RULES)), so trying them all does not overstate the bound.
    The neighbour relation is add/remove: a target is in the training data or not.
    Returns 0 when no rule certifies anything; :func:`max_certifiable_epsilon` is the most
    these many targets could show."""
    scores = np.asarray(scores, dtype=float)
    is_member = np.asarray(is_member, dtype=bool)
    m = len(scores)
    if m == 0 or len(is_member) != m:
        return 0.0
    if not 0 < alpha < 1:
        raise ValueError(f"alpha ({alpha}) must be > 0 and < 1")
    tie_break = np.random.default_rng(0).permutation(m)  # fixed: independent of the labels
    order = np.lexsort((tie_break, -np.nan_to_num(scores, nan=-np.inf)))
    ranked = is_member[order]  # most member-like first
    level = alpha / len(RULES)
    best = 0.0
    for fraction, both in RULES:
        guesses = max(1, round(fraction * m))
        if both:
            half = min(max(1, guesses // 2), m // 2)
            r = 2 * half
            v = int(ranked[:half].sum() + (~ranked[m - half :]).sum())
        else:
            r, v = guesses, int(ranked[:guesses].sum())
        best = max(best, _snj_bound(m, r, v, level, delta))
    return best


def max_certifiable_epsilon(targets: int, *, alpha: float = 0.05, delta: float = 0.0) -> float:
    """The bound a perfect attack would reach on ``targets`` targets: the audit's ceiling."""
    if targets < 2:
        return 0.0
    half = targets // 2
    return _snj_bound(targets, 2 * half, 2 * half, alpha / len(RULES), delta)


@dataclass(frozen=True)
class AttackResult:
    """Every metric of one attack on one set of targets."""

    auc: float
    auc_ci: tuple[float, float]
    tpr_at_fpr_01: float
    tpr_at_fpr_001: float
    advantage: float
    epsilon_lb: float
    epsilon_max: float
    members: int
    non_members: int

    @classmethod
    def of(
        cls,
        scores: np.ndarray,
        labels: np.ndarray,
        *,
        seed: int = 0,
        delta: float = 0.0,
        certify: np.ndarray | None = None,
    ) -> AttackResult:
        """Every metric of ``scores``; the epsilon bound only from the entries ``certify``
        marks (default: all), e.g. the scores of fits a classifier was not trained on. Scores
        and labels given as (fits x targets) matrices get the AUC interval of
        :func:`grid_bootstrap_auc` (``certify`` then has the same shape)."""
        scores, labels = np.asarray(scores, float), np.asarray(labels, bool)
        if scores.ndim == 2:
            interval = grid_bootstrap_auc(scores, labels, seed=seed)
            scores, labels = scores.ravel(), labels.ravel()
            certify = None if certify is None else np.asarray(certify, bool).ravel()
        else:
            interval = bootstrap_auc(scores, labels, seed=seed)
        positives, negatives = int(labels.sum()), int((~labels).sum())
        keep = np.ones(len(labels), bool) if certify is None else np.asarray(certify, bool)
        return cls(
            auc=roc_auc(scores, labels),
            auc_ci=interval,
            tpr_at_fpr_01=tpr_at_fpr(scores, labels, 0.01),
            tpr_at_fpr_001=tpr_at_fpr(scores, labels, 0.001),
            advantage=advantage(scores, labels),
            epsilon_lb=empirical_epsilon(scores[keep], labels[keep], delta=delta),
            epsilon_max=max_certifiable_epsilon(int(keep.sum()), delta=delta),
            members=positives,
            non_members=negatives,
        )

    def metrics(self, prefix: str) -> dict[str, float]:
        """MLflow metrics under ``prefix`` (e.g. ``privacy.closest_distance``)."""
        return {
            f"{prefix}.auc": self.auc,
            f"{prefix}.auc_lo": self.auc_ci[0],
            f"{prefix}.auc_hi": self.auc_ci[1],
            f"{prefix}.tpr_at_fpr_0.01": self.tpr_at_fpr_01,
            f"{prefix}.tpr_at_fpr_0.001": self.tpr_at_fpr_001,
            f"{prefix}.advantage": self.advantage,
            f"{prefix}.epsilon_lb": self.epsilon_lb,
            f"{prefix}.epsilon_max": self.epsilon_max,
        }
