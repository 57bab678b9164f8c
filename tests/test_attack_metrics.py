"""Known answers for the attack metrics on hand-made score vectors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from attacks.metrics import (
    AttackResult,
    advantage,
    bootstrap_auc,
    epsilon_lower_bound,
    max_certifiable_epsilon,
    roc_auc,
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
    # a perfect attack with 100 + 100 trials reaches exactly the ceiling
    scores = np.r_[np.ones(100), np.zeros(100)]
    labels = np.r_[np.ones(100, bool), np.zeros(100, bool)]
    ceiling = max_certifiable_epsilon(100, 100)
    tpr_lo, fpr_hi = 0.025 ** (1 / 100), 1 - 0.025 ** (1 / 100)
    assert ceiling == pytest.approx(math.log(tpr_lo / fpr_hi))
    assert epsilon_lower_bound(scores, labels) == pytest.approx(ceiling)
    # a coin flip certifies nothing
    rng = np.random.default_rng(2)
    assert epsilon_lower_bound(rng.random(200), labels) == 0.0


def test_epsilon_bound_is_conservative_for_a_known_mechanism() -> None:
    """Randomised response with epsilon = 1: a test with P(say member | member) = e/(1+e).
    The bound from 2,000 trials must stay below the true epsilon in nearly every repetition."""
    true_epsilon = 1.0
    p = math.exp(true_epsilon) / (1 + math.exp(true_epsilon))
    rng = np.random.default_rng(3)
    exceeded = 0
    for _ in range(50):
        labels = np.r_[np.ones(1000, bool), np.zeros(1000, bool)]
        says_member = np.where(labels, rng.random(2000) < p, rng.random(2000) < 1 - p)
        exceeded += epsilon_lower_bound(says_member.astype(float), labels) > true_epsilon
    assert exceeded <= 3  # 95% confidence per run: a few exceedances at most


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
