"""Attack metrics with their uncertainty: ROC AUC (bootstrap interval), TPR at a fixed FPR,
membership advantage, and an empirical lower bound on epsilon.

Scores are "higher means member". The empirical epsilon follows Jagielski, Ullman & Oprea,
"Auditing Differentially Private Machine Learning: How Private is Private SGD?" (NeurIPS 2020):
at each threshold, a Clopper-Pearson lower bound on the true-positive rate and upper bound on the
false-positive rate give a bound epsilon >= log((TPR_lo - delta) / FPR_hi) (and the same for the
complementary test) that holds with the stated confidence. A bound rests on the number of trials:
:func:`max_certifiable_epsilon` says the largest value that many trials could ever show, so a 0
reads as "no evidence", not "private".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import beta


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Probability that a random member outscores a random non-member (ties count half)."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, bool)
    positives, negatives = labels.sum(), (~labels).sum()
    if positives == 0 or negatives == 0:
        return math.nan
    ranks = _average_ranks(scores)
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), float)
    sorted_values = values[order]
    start = 0
    for end in range(1, len(values) + 1):
        if end == len(values) or sorted_values[end] != sorted_values[start]:
            ranks[order[start:end]] = (start + end + 1) / 2  # 1-based average rank
            start = end
    return ranks


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


def _clopper_pearson(successes: np.ndarray, trials: int, alpha: float):
    """Two-sided (1 - alpha) Clopper-Pearson interval for each count of successes."""
    successes = np.asarray(successes, float)
    lower = np.where(successes > 0, beta.ppf(alpha / 2, successes, trials - successes + 1), 0.0)
    upper = np.where(
        successes < trials, beta.ppf(1 - alpha / 2, successes + 1, trials - successes), 1.0
    )
    return lower, upper


def epsilon_lower_bound(
    scores: np.ndarray, labels: np.ndarray, *, delta: float = 0.0, alpha: float = 0.05
) -> float:
    """Largest epsilon the attack certifies with confidence 1 - alpha (0 if none)."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        return 0.0
    tp, fp = _rates(scores, labels)
    tpr_lo, _ = _clopper_pearson(tp, positives, alpha)
    _, fpr_hi = _clopper_pearson(fp, negatives, alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        forward = np.log((tpr_lo - delta) / fpr_hi)
        backward = np.log((1 - fpr_hi - delta) / (1 - tpr_lo))
    candidates = np.concatenate([forward, backward])
    candidates = candidates[np.isfinite(candidates)]
    return float(max(0.0, candidates.max())) if candidates.size else 0.0


def max_certifiable_epsilon(positives: int, negatives: int, *, alpha: float = 0.05) -> float:
    """The bound a perfect attack would reach with this many trials: the ceiling of the audit."""
    tpr_lo = (alpha / 2) ** (1 / positives)
    fpr_hi = 1 - (alpha / 2) ** (1 / negatives)
    return float(math.log(tpr_lo / fpr_hi))


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
        cls, scores: np.ndarray, labels: np.ndarray, *, seed: int = 0, delta: float = 0.0
    ) -> AttackResult:
        labels = np.asarray(labels, bool)
        positives, negatives = int(labels.sum()), int((~labels).sum())
        return cls(
            auc=roc_auc(scores, labels),
            auc_ci=bootstrap_auc(scores, labels, seed=seed),
            tpr_at_fpr_01=tpr_at_fpr(scores, labels, 0.01),
            tpr_at_fpr_001=tpr_at_fpr(scores, labels, 0.001),
            advantage=advantage(scores, labels),
            epsilon_lb=epsilon_lower_bound(scores, labels, delta=delta),
            epsilon_max=max_certifiable_epsilon(max(positives, 1), max(negatives, 1)),
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
