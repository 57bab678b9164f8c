"""The train/holdout split: disjoint, seeded, stratifiable."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from audit.split import split_holdout
from synth.errors import ParamError


def test_split_is_disjoint_complete_and_seeded(nmes: pd.DataFrame) -> None:
    split = split_holdout(nmes, fraction=0.25, seed=7)
    assert len(split.holdout) == 200
    assert len(split.train) + len(split.holdout) == len(nmes)
    assert set(split.train.index).isdisjoint(split.holdout.index)
    again = split_holdout(nmes, fraction=0.25, seed=7)
    pd.testing.assert_frame_equal(split.holdout, again.holdout)
    other = split_holdout(nmes, fraction=0.25, seed=8)
    assert not split.holdout.index.equals(other.holdout.index)
    # the record names rows by position only, and rebuilds the holdout
    record = split.record()
    assert set(record) == {
        "fraction", "seed", "stratify", "n_train", "n_holdout", "holdout_rows", "canary_rows"
    }  # fmt: skip
    pd.testing.assert_frame_equal(nmes.iloc[record["holdout_rows"]], split.holdout)


def test_stratified_split_keeps_class_shares(nmes: pd.DataFrame) -> None:
    split = split_holdout(nmes, fraction=0.2, seed=1, stratify="health")
    real = nmes["health"].value_counts(normalize=True)
    held = split.holdout["health"].value_counts(normalize=True)
    assert (real - held).abs().max() < 0.02
    # every class with at least two rows appears on both sides
    for value, count in nmes["health"].value_counts().items():
        if count >= 2:
            assert (split.holdout["health"] == value).any()
            assert (split.train["health"] == value).any()


def test_zero_fraction_trains_on_everything(nmes: pd.DataFrame) -> None:
    split = split_holdout(nmes, fraction=0.0, seed=0)
    assert len(split.train) == len(nmes) and len(split.holdout) == 0


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5])
def test_bad_fraction_is_refused(nmes: pd.DataFrame, fraction: float) -> None:
    with pytest.raises(ParamError, match="holdout fraction"):
        split_holdout(nmes, fraction=fraction, seed=0)


def test_unknown_stratify_column_is_refused(nmes: pd.DataFrame) -> None:
    with pytest.raises(ParamError, match="no such column"):
        split_holdout(nmes, fraction=0.2, seed=0, stratify="nope")


def test_stratify_with_missing_values(penguins: pd.DataFrame) -> None:
    split = split_holdout(penguins, fraction=0.3, seed=2, stratify="sex")
    assert split.holdout["sex"].isna().any() and split.train["sex"].isna().any()
    assert np.isclose(len(split.holdout) / len(penguins), 0.3, atol=0.02)


def test_canaries_go_to_either_side_on_a_fair_coin_each(nmes: pd.DataFrame) -> None:
    """The one-run epsilon bound needs each membership target included independently with
    probability 1/2: canaries land on exactly one side, about half in training, and the rest of
    the table is split by the fraction as usual."""
    in_share = []
    for seed in range(40):
        split = split_holdout(nmes, fraction=0.3, seed=seed, canaries=100)
        targets, member = split.canaries(nmes)
        assert len(targets) == 100 and len(set(split.canary_rows)) == 100
        assert set(targets.index[member]) <= set(split.train.index)
        assert set(targets.index[~member]) <= set(split.holdout.index)
        assert len(split.train) + len(split.holdout) == len(nmes)
        rest_holdout = len(split.holdout) - int((~member).sum())
        assert rest_holdout == round(0.3 * (len(nmes) - 100))
        in_share.append(member.mean())
    assert abs(np.mean(in_share) - 0.5) < 0.03  # 4,000 coins
    again = split_holdout(nmes, fraction=0.3, seed=39, canaries=100)
    assert np.array_equal(again.canary_member, split.canary_member)
    stratified = split_holdout(nmes, fraction=0.3, seed=0, stratify="health", canaries=50)
    assert len(stratified.canary_rows) == 50
