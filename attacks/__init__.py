"""attacks: privacy attacks on synthetic data (membership, attribute inference, linkability).

``empirical_epsilon(scores, is_member, *, delta=0.0, alpha=0.05)`` is the stable entry point for
the epsilon lower bound the audit reports as ``privacy.<attack>.epsilon_lb``.
"""

from attacks.metrics import empirical_epsilon, max_certifiable_epsilon

__all__ = ["empirical_epsilon", "max_certifiable_epsilon"]
