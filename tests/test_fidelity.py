"""Known answers for the marginal TVD."""

from __future__ import annotations

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
