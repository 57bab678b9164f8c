"""attacks: privacy attacks on synthetic data (membership, attribute inference, linkability)."""
