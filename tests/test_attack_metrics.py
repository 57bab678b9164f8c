"""Known answers for the attack metrics on hand-made score vectors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from attacks.metrics import (
    RULES,
    AttackResult,
    advantage,
    bootstrap_auc,
    empirical_epsilon,
    max_certifiable_epsilon,
    roc_auc,
    snj_p_value,
    tpr_at_fpr,
)


def test_auc_known_answers() -> None:
    labels = np.array([1, 1, 0, 0], bool)
    assert roc_auc(np.array([4, 3, 2, 1]), labels) == 1.0
    assert roc_auc(np.array([1, 2, 3, 4]), labels) == 0.0
    assert roc_auc(np.array([1, 1, 1, 1]), labels) == 0.5  # ties count half
    assert roc_auc(np.array([4, 2, 3, 1]), labels) == 0.75


def test_auc_agrees_with_sklearn_with_ties() -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, 300).astype(float)
    labels = rng.random(300) < 0.4
    assert roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))


def test_tpr_at_fpr_and_advantage_known_answers() -> None:
    # members score 10..19, non-members 0..9 except one non-member at 15
    scores = np.r_[np.arange(10, 20), np.arange(0, 9), 15.0]
    labels = np.r_[np.ones(10, bool), np.zeros(10, bool)]
    assert tpr_at_fpr(scores, labels, 0.0) == pytest.approx(0.4)  # 16..19 beat the stray 15
    assert tpr_at_fpr(scores, labels, 0.1) == pytest.approx(1.0)
    assert advantage(scores, labels) == pytest.approx(0.9)


def test_bootstrap_interval_contains_the_estimate_and_narrows_with_data() -> None:
    rng = np.random.default_rng(1)
    small = rng.normal(size=100) + np.r_[np.ones(50), np.zeros(50)]
    labels = np.r_[np.ones(50, bool), np.zeros(50, bool)]
    low, high = bootstrap_auc(small, labels, seed=0)
    assert low <= roc_auc(small, labels) <= high
    large = rng.normal(size=2000) + np.r_[np.ones(1000), np.zeros(1000)]
    big_labels = np.r_[np.ones(1000, bool), np.zeros(1000, bool)]
    low2, high2 = bootstrap_auc(large, big_labels, seed=0)
    assert high2 - low2 < (high - low) / 2


def test_epsilon_bound_known_answer_and_ceiling() -> None:
    """A perfect attack on 100 + 100 targets reaches the ceiling, which is the one-run bound
    for 200 correct guesses of 200 at level alpha / rules: logit(that level ** (1 / 200))."""
    scores = np.r_[np.ones(100), np.zeros(100)]
    labels = np.r_[np.ones(100, bool), np.zeros(100, bool)]
    ceiling = max_certifiable_epsilon(200)
    q = (0.05 / len(RULES)) ** (1 / 200)  # P[Binomial(200, q) >= 200] = q^200 = the level
    assert ceiling == pytest.approx(math.log(q / (1 - q)), rel=1e-6)
    assert empirical_epsilon(scores, labels) == pytest.approx(ceiling)
    rng = np.random.default_rng(2)
    assert empirical_epsilon(rng.random(200), labels) == 0.0  # a coin flip certifies nothing


def test_snj_p_value_matches_the_binomial_and_grows_with_delta() -> None:
    """Steinke, Nasr & Jagielski (2023): for pure DP the p-value is a binomial tail; delta adds
    2 m delta max_i P[v - i <= B < v] / i."""
    from scipy.stats import binom

    q = 1 / (1 + math.exp(-1.0))
    assert snj_p_value(500, 100, 70, 1.0) == pytest.approx(binom.sf(69, 100, q))
    extra = (
        2
        * 500
        * 1e-4
        * max((binom.cdf(69, 100, q) - binom.cdf(69 - i, 100, q)) / i for i in range(1, 71))
    )
    assert snj_p_value(500, 100, 70, 1.0, 1e-4) == pytest.approx(binom.sf(69, 100, q) + extra)


def _bound_exceeds(mechanism, epsilon: float, runs: int, targets: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    exceeded = 0
    for _ in range(runs):
        member = rng.random(targets) < 0.5  # each target in with probability 1/2
        exceeded += empirical_epsilon(mechanism(member, rng), member) > epsilon
    return exceeded / runs


@pytest.mark.parametrize("targets", [2000, 5000])
def test_epsilon_bound_holds_at_its_confidence_for_an_exactly_dp_mechanism(targets) -> None:
    """Simulation of the review's case: an exactly 1-DP Laplace mechanism (score = membership +
    Laplace(1)), randomised response at epsilon 1 (the worst case for guessing), and no signal
    at all. The 95% bound may exceed the truth in at most 5% of runs (plus 2.5 standard errors;
    choosing the best threshold without correction exceeded it in 9-12%)."""
    runs = 1000  # enough to tell 5% from the 8-11% of the uncorrected bound
    slack = 0.05 + 2.5 * math.sqrt(0.05 * 0.95 / runs)
    p = math.e / (1 + math.e)
    mechanisms = {
        "laplace": (1.0, lambda m, rng: m + rng.laplace(0.0, 1.0, len(m))),
        "randomised response": (1.0, lambda m, rng: np.where(rng.random(len(m)) < p, m, ~m) * 1.0),
        "no signal": (0.0, lambda m, rng: rng.random(len(m))),
    }
    for seed, (name, (epsilon, mechanism)) in enumerate(mechanisms.items()):
        rate = _bound_exceeds(mechanism, epsilon, runs, targets, seed)
        assert rate <= slack, f"{name}: {rate:.3f} of runs above epsilon {epsilon}"


def test_epsilon_bound_has_power_and_sees_a_leak() -> None:
    """The positive control: at epsilon 4 (Laplace) the bound certifies well above 1, and an
    attack that is right on 10% of targets (copied records) and guesses the rest is caught."""
    rng = np.random.default_rng(7)
    member = rng.random(2000) < 0.5
    assert empirical_epsilon(member + rng.laplace(0.0, 0.25, 2000), member) > 2.0
    copied = member & (rng.random(2000) < 0.2)
    assert empirical_epsilon(np.where(copied, 1.0, rng.random(2000) * 0.5), member) > 1.0


def test_attack_result_metric_names() -> None:
    scores = np.r_[np.ones(20), np.zeros(20)]
    labels = np.r_[np.ones(20, bool), np.zeros(20, bool)]
    metrics = AttackResult.of(scores, labels).metrics("privacy.closest_distance")
    assert set(metrics) == {
        "privacy.closest_distance.auc", "privacy.closest_distance.auc_lo",
        "privacy.closest_distance.auc_hi", "privacy.closest_distance.tpr_at_fpr_0.01",
        "privacy.closest_distance.tpr_at_fpr_0.001", "privacy.closest_distance.advantage",
        "privacy.closest_distance.epsilon_lb", "privacy.closest_distance.epsilon_max",
    }  # fmt: skip
    assert metrics["privacy.closest_distance.auc"] == 1.0
