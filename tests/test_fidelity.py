"""Known answers for the marginal TVD."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from audit.fidelity import marginal_tvd
from synth.schema import Schema


def test_known_answers() -> None:
    real = pd.DataFrame({"a": ["x", "x", "y", "y"], "b": [0.0, 1.0, 0.0, 1.0]})
    synthetic = pd.DataFrame({"a": ["x", "x", "x", "y"], "b": [0.0, 0.0, 0.0, 1.0]})
    schema = Schema.infer(real)
    # one-way: a differs by 0.25, b (two bins) by 0.25
    assert marginal_tvd(real, synthetic, schema, way=1, bins=2) == pytest.approx(0.25)
    # two-way: real has (x,0) (x,1) (y,0) (y,1) a quarter each; synthetic (x,0) three quarters
    # and (y,1) one: TVD = (0.5 + 0.25 + 0.25 + 0) / 2
    assert marginal_tvd(real, synthetic, schema, way=2, bins=2) == pytest.approx(0.5)
    assert marginal_tvd(real, real, schema, way=2) == 0.0


def test_missing_values_are_their_own_cell() -> None:
    real = pd.DataFrame({"a": [1.0, None, 2.0, None]})
    synthetic = pd.DataFrame({"a": [1.0, 1.0, 2.0, 2.0]})
    assert marginal_tvd(real, synthetic, Schema.infer(real), way=1, bins=2) == pytest.approx(0.5)


def test_shuffling_a_column_breaks_pairs(penguins) -> None:
    schema = Schema.infer(penguins)
    shuffled = penguins.assign(
        body_mass_g=penguins["body_mass_g"].sample(frac=1, random_state=0).to_numpy()
    )
    assert marginal_tvd(penguins, shuffled, schema, way=1) == pytest.approx(0.0)
    assert marginal_tvd(penguins, shuffled, schema, way=2) > 0.02


def _heavy(seed: int, n: int = 4000) -> np.ndarray:
    """A heavy-tailed amount, exactly 0 for 60% of rows, lognormal up to ~300,000 otherwise."""
    rng = np.random.default_rng(seed)
    return np.where(rng.random(n) < 0.6, 0.0, np.round(rng.lognormal(7, 2, n), 2))


def test_quantile_cells_see_a_smeared_point_mass_and_a_heavy_tail() -> None:
    """Equal-width bins over the real range put nearly all of this column in one bin, so a copy
    whose zeros are smeared over (0, 50) and whose tail is flattened looks perfect to them (TVD
    about 0.01). Cells at the real quantiles, with the point mass a cell of its own, see it."""
    real = pd.DataFrame({"amount": _heavy(0)})
    smeared = real["amount"].to_numpy().copy()
    zeros = smeared == 0
    smeared[zeros] = np.random.default_rng(1).uniform(0, 50, zeros.sum())
    smeared[~zeros] = np.random.default_rng(2).uniform(0, 5_000, (~zeros).sum())
    synthetic = pd.DataFrame({"amount": smeared})
    schema = Schema.infer(real)
    assert marginal_tvd(real, synthetic, schema, way=1) > 0.6
    # the blind metric, for the record: equal-width deciles of the real range
    edges = np.linspace(real["amount"].min(), real["amount"].max(), 11)[1:-1]
    blind = [np.bincount(np.searchsorted(edges, x), minlength=10) / len(x)
             for x in (real["amount"].to_numpy(), smeared)]  # fmt: skip
    assert 0.5 * np.abs(blind[0] - blind[1]).sum() < 0.02
    # and a fresh draw of the same distribution is close
    fresh = pd.DataFrame({"amount": _heavy(3)})
    assert marginal_tvd(real, fresh, schema, way=1) < 0.05


def test_a_discrete_support_filled_in_between_shows() -> None:
    """A term taking six values (12, 24, ..., 72): synthetic values in between are far off."""
    rng = np.random.default_rng(0)
    term = rng.choice([12, 24, 36, 48, 60, 72], 3000).astype(float)
    real = pd.DataFrame({"term": term})
    between = pd.DataFrame({"term": term + rng.uniform(-5, 5, 3000)})
    assert marginal_tvd(real, between, Schema.infer(real), way=1) > 0.9
    exact = pd.DataFrame({"term": rng.choice([12, 24, 36, 48, 60, 72], 3000).astype(float)})
    assert marginal_tvd(real, exact, Schema.infer(real), way=1) < 0.05
