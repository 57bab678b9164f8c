"""Noise for DP mechanisms: the exact discrete Gaussian, its thresholds, and the exponential
mechanism.

Counts get *discrete* Gaussian noise drawn exactly with integer and rational arithmetic
(Canonne, Kamath & Steinke, "The Discrete Gaussian for Differential Privacy", NeurIPS 2020,
Algorithms 1-3), so no floating-point artefact can leak the true count (Mironov 2012).
The randomness comes from the operating system's CSPRNG (``secrets``) unless a generator is asked
for reproducible noise, which makes the noise a function of the seed: anyone who knows the seed
can subtract it, so that mode is for tests and experiments only and is recorded in the run.
OpenDP's sampler is equally exact but cannot be seeded, and it is a 265 MB dependency.

The exponential mechanism samples with floating-point probabilities, as the MST, AIM and PrivBayes
reference implementations do.

What each mechanism costs is in :mod:`synth.dp.accounting`; this module only draws.
"""

from __future__ import annotations

import math
import random
import secrets
from fractions import Fraction

import numpy as np

from synth.errors import ParamError

# ---- the discrete Gaussian's scale and tails -------------------------------------------------


def discrete_scale(sigma: float) -> Fraction:
    """The scale the discrete Gaussian sampler uses for ``sigma``: rounded up to 1e-6."""
    return Fraction(math.ceil(sigma * 1_000_000), 1_000_000)


def discrete_gaussian_tail(sigma: float, t: int) -> float:
    """P(Z >= t), t >= 0, for Z discrete Gaussian with the sampler's scale for ``sigma``, summed
    term by term: the continuous Gaussian tail understates it for small scales."""
    return float(_discrete_tails(sigma, t)[t])


def _discrete_tails(sigma: float, up_to: int) -> np.ndarray:
    """P(Z >= k) for k = 0 .. ``up_to`` (and beyond, to where the terms vanish)."""
    scale = float(discrete_scale(sigma))
    reach = up_to + math.ceil(40 * scale) + 2
    x = np.arange(reach + 1, dtype=float)
    weights = np.exp(-(x * x) / (2 * scale * scale))
    total = 2 * math.fsum(weights) - 1.0  # the weights of -reach .. reach (0 counted once)
    tails = np.cumsum(weights[::-1])[::-1]  # summed from the far end: no cancellation
    return tails / total


def threshold_offset(sigma: float, delta: float) -> int:
    """Smallest t >= 0 with P(Z >= t) <= ``delta`` for discrete Gaussian noise of scale
    ``sigma``: a value held by one record clears the threshold ``1 + t`` with probability at
    most delta."""
    if not 0 < delta < 1:
        raise ParamError(f"delta ({delta}) must be > 0 and < 1")
    guess = math.ceil(float(discrete_scale(sigma)) * math.sqrt(2 * math.log(1 / delta))) + 2
    tails = _discrete_tails(sigma, guess)  # the sub-Gaussian bound: the answer is <= guess
    return int(np.flatnonzero(tails <= delta)[0])


# ---- sampling --------------------------------------------------------------------------------


class Noise:
    """Randomness for DP mechanisms: the OS CSPRNG, or a seeded stream for reproducible tests."""

    def __init__(self, source: random.Random, *, seeded: bool) -> None:
        self._source, self.seeded = source, seeded

    @classmethod
    def secret(cls) -> Noise:
        return cls(secrets.SystemRandom(), seeded=False)

    @classmethod
    def from_seed(cls, seed: int) -> Noise:
        return cls(random.Random(seed), seeded=True)

    def _bernoulli(self, p: Fraction) -> bool:
        return self._source.randrange(p.denominator) < p.numerator

    def _bernoulli_exp(self, gamma: Fraction) -> bool:
        """Bernoulli(exp(-gamma)) for rational gamma >= 0, exactly (CKS 2020, Algorithm 1)."""
        while gamma > 1:
            if not self._bernoulli_exp(Fraction(1)):
                return False
            gamma -= 1
        k = 1
        while self._bernoulli(gamma / k):
            k += 1
        return k % 2 == 1

    def _discrete_laplace(self, t: int) -> int:
        """P(x) proportional to exp(-|x|/t), exactly (CKS 2020, Algorithm 2)."""
        while True:
            u = self._source.randrange(t)
            if not self._bernoulli_exp(Fraction(u, t)):
                continue
            v = 0
            while self._bernoulli_exp(Fraction(1)):
                v += 1
            value = u + t * v
            negative = self._source.randrange(2) == 1
            if negative and value == 0:
                continue
            return -value if negative else value

    def discrete_gaussian(self, sigma: float, size: int) -> np.ndarray:
        """``size`` draws of the discrete Gaussian with scale at least ``sigma`` (Algorithm 3).

        sigma is rounded *up* to a multiple of 1e-6, so the noise is never below what was paid for.
        """
        scale = discrete_scale(sigma)
        variance = scale * scale
        t = math.floor(scale) + 1
        out = np.empty(size, dtype=np.int64)
        for i in range(size):
            while True:
                y = self._discrete_laplace(t)
                gamma = (abs(y) - variance / t) ** 2 / (2 * variance)
                if self._bernoulli_exp(gamma):
                    out[i] = y
                    break
        return out

    def choice(self, weights: np.ndarray) -> int:
        """Index drawn with probability proportional to ``weights`` (>= 0)."""
        cumulative = np.cumsum(weights)
        return int(np.searchsorted(cumulative, self._source.random() * cumulative[-1], "right"))


def exponential_mechanism(
    scores: np.ndarray, epsilon: float, sensitivity: float, noise: Noise
) -> int:
    """Pick an index with probability proportional to exp(epsilon * score / (2 * sensitivity))."""
    logits = epsilon * (np.asarray(scores, dtype=float) - np.max(scores)) / (2 * sensitivity)
    return noise.choice(np.exp(logits))
