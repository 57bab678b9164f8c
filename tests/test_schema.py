"""Schema inference, the TOML round trip, and checking data against a schema."""

from __future__ import annotations

import string

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synth.errors import SchemaError
from synth.schema import Column, Schema


def test_infer_kinds_and_missing_values(penguins: pd.DataFrame) -> None:
    schema = Schema.infer(penguins)
    assert schema.source == "inferred"
    assert schema["species"].kind == "categorical"
    assert schema["species"].categories == ("Adelie", "Chinstrap", "Gentoo")
    assert schema["sex"].nullable and not schema["species"].nullable
    assert (schema["bill_length_mm"].kind, schema["bill_length_mm"].dtype) == ("numerical", "float")
    assert (schema["year"].dtype, schema["year"].lower, schema["year"].upper) == (
        "int",
        2007.0,
        2009.0,
    )
    assert schema["body_mass_g"].dtype == "int"  # stored as float because of NaN, integral


def test_infer_dates_and_booleans(economics: pd.DataFrame) -> None:
    frame = economics.assign(recession=economics["unemploy"] > 8000)
    schema = Schema.infer(frame)
    assert schema["date"].kind == "datetime"
    assert schema["date"].lower.startswith("1967-07-01")
    assert schema["recession"].kind == "boolean"
    typed = schema.conform(frame)
    assert str(typed["date"].dtype) == "datetime64[ns]"
    assert str(typed["recession"].dtype) == "boolean"


def test_identifier_like_columns_warn() -> None:
    frame = pd.DataFrame({"name": [f"person {i}" for i in range(40)], "x": range(40)})
    with pytest.warns(UserWarning, match="'name'.*identifier"):
        Schema.infer(frame)


def test_toml_round_trip_of_a_real_inferred_schema(nmes: pd.DataFrame) -> None:
    schema = Schema.infer(nmes)
    text = schema.to_toml()
    assert text.startswith("# synthguard schema. Inferred")
    again = Schema.from_toml(text)
    assert again.columns == schema.columns
    assert again.source == "declared"


column_names = st.text(alphabet=string.ascii_letters + "_ .-é", min_size=1, max_size=12)
bounds = st.floats(allow_nan=False, allow_infinity=False, width=64)


@st.composite
def columns(draw, name: str) -> Column:
    kind = draw(st.sampled_from(["numerical", "categorical", "boolean", "datetime"]))
    nullable = draw(st.booleans())
    if kind == "numerical":
        lo, hi = sorted(draw(st.lists(bounds, min_size=2, max_size=2)))
        spread = draw(st.sampled_from(["none", "values", "edges", "log", "linear"]))
        inside = st.lists(st.floats(lo, hi), min_size=2, max_size=5, unique=True).map(sorted)
        return Column(
            name=name, kind=kind, dtype=draw(st.sampled_from(["int", "float"])), nullable=nullable,
            lower=draw(st.sampled_from([lo, None])), upper=draw(st.sampled_from([hi, None])),
            values=tuple(draw(inside)) if spread == "values" else None,
            edges=tuple(draw(inside)) if spread == "edges" else None,
            scale=spread if spread in ("log", "linear") else None,
        )  # fmt: skip
    if kind == "categorical":
        values = draw(
            st.lists(
                st.one_of(st.text(max_size=8), st.integers(-(2**40), 2**40)),
                min_size=1, max_size=6, unique_by=lambda v: (type(v), v),
            )
        )  # fmt: skip
        return Column(name=name, kind=kind, nullable=nullable, categories=tuple(values))
    if kind == "datetime":
        return Column(
            name=name, kind=kind, nullable=nullable, lower="2001-02-03T04:05:06",
            upper="2021-02-03T00:00:00",
        )  # fmt: skip
    return Column(name=name, kind=kind, nullable=nullable)


@st.composite
def schemas(draw) -> Schema:
    names = draw(st.lists(column_names, min_size=1, max_size=6, unique=True))
    return Schema(tuple(draw(columns(name)) for name in names))


@settings(max_examples=150, deadline=None)
@given(schemas())
def test_toml_round_trip_property(schema: Schema) -> None:
    assert Schema.from_toml(schema.to_toml()).columns == schema.columns


def test_conform_reports_every_problem_at_once(penguins: pd.DataFrame) -> None:
    schema = Schema.from_toml(
        """
[columns.species]
kind = "categorical"
categories = ["Adelie", "Gentoo"]

[columns.bill_length_mm]
kind = "numerical"
dtype = "float"
lower = 0.0
upper = 50.0
nullable = true

[columns.island]
kind = "numerical"
dtype = "int"

[columns.not_there]
kind = "boolean"
"""
    )
    with pytest.raises(SchemaError) as caught:
        schema.conform(penguins)
    message = str(caught.value)
    assert "\n" not in message
    problems = caught.value.problems
    assert any("not_there" in p and "missing from the data" in p for p in problems)
    assert any("not in the schema" in p and "body_mass_g" in p for p in problems)
    assert any("'species'" in p and "outside its categories (Chinstrap)" in p for p in problems)
    assert any("'bill_length_mm'" in p and "above its upper bound 50.0" in p for p in problems)
    assert any("'island'" in p and "non-numeric" in p for p in problems)
    assert len(problems) == 5


def test_malformed_schema_files_are_rejected_with_all_problems() -> None:
    with pytest.raises(SchemaError, match="not valid TOML"):
        Schema.from_toml("[columns.a\nkind=")
    with pytest.raises(SchemaError) as caught:
        Schema.from_toml(
            """
[columns.a]
kind = "numerical"
[columns.b]
kind = "colour"
[columns.c]
kind = "categorical"
lower = 1
[columns.d]
kind = "numerical"
dtype = "float"
lower = 5.0
upper = 1.0
[columns.e]
kinds = "boolean"
"""
        )
    problems = caught.value.problems
    assert len(problems) == 5
    assert any("'a'" in p and "dtype" in p for p in problems)
    assert any("'b'" in p and "colour" in p for p in problems)
    assert any("'c'" in p and "bounds apply" in p for p in problems)
    assert any("'d'" in p and "exceeds" in p for p in problems)
    assert any("'e'" in p and "unknown keys kinds" in p for p in problems)


def test_categorical_text_categories_match_numeric_looking_data() -> None:
    schema = Schema.from_toml('[columns.zip]\nkind = "categorical"\ncategories = ["1010", "2020"]')
    typed = schema.conform(pd.DataFrame({"zip": [1010, 2020, 1010]}))
    assert typed["zip"].tolist() == ["1010", "2020", "1010"]


def test_conform_does_not_touch_the_input(penguins: pd.DataFrame) -> None:
    before = penguins.copy(deep=True)
    Schema.infer(penguins).conform(penguins)
    pd.testing.assert_frame_equal(before, penguins)


def test_the_draft_declares_discrete_supports_and_heavy_tails() -> None:
    """``synthguard schema`` drafts a discrete support for a column with few values and a log
    scale for a heavy right tail (a point mass at 0 included); a normal column gets neither."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "term": rng.choice([12, 24, 36, 60], 500),
        "debt": np.where(rng.random(500) < 0.7, 0.0, rng.lognormal(7, 1, 500)),
        "height": rng.normal(170, 10, 500),
    })  # fmt: skip
    schema = Schema.infer(frame)
    assert schema["term"].values == (12, 24, 36, 60)
    assert schema["debt"].scale == "log" and schema["debt"].values is None
    assert schema["height"].scale is None and schema["height"].values is None
    assert Schema.from_toml(schema.to_toml())["term"].values == (12, 24, 36, 60)


def test_spread_declarations_are_validated() -> None:
    text = """
[columns.a]
kind = "numerical"
dtype = "int"
lower = 0
upper = 10
values = [3, 1]

[columns.b]
kind = "numerical"
dtype = "float"
lower = 0
upper = 1
scale = "cubic"

[columns.c]
kind = "categorical"
categories = ["x"]
edges = [0, 1]

[columns.d]
kind = "numerical"
dtype = "float"
lower = 0
upper = 1
edges = [0.5, 2.0]
"""
    with pytest.raises(SchemaError) as caught:
        Schema.from_toml(text)
    message = str(caught.value)
    for expected in (
        "'a': values must be strictly increasing",
        "'b': scale 'cubic'",
        "'c': edges apply to numerical columns only",
        "'d': edges must lie within",
    ):
        assert expected in message  # fmt: skip


def test_a_declared_support_is_honoured_by_every_generator(penguins: pd.DataFrame) -> None:
    """Declared values come back exactly, even from a generator that knows nothing of them
    (the Gaussian copula's continuous output is snapped to the nearest declared value)."""
    from synth.registry import make_generator

    frame = penguins.dropna(subset=["body_mass_g"])
    schema = Schema.from_toml(Schema.infer(frame).to_toml())
    support = tuple(float(v) for v in range(2500, 6501, 250))
    columns = tuple(
        c
        if c.name != "body_mass_g"
        else Column(
            name=c.name,
            kind="numerical",
            dtype="int",
            nullable=c.nullable,
            lower=2500.0,
            upper=6500.0,
            values=support,
        )
        for c in schema.columns
    )
    snapped = frame.assign(body_mass_g=(frame["body_mass_g"] / 250).round() * 250)
    declared = Schema(columns)
    model = make_generator("gaussian_copula").fit(snapped, declared, seed=0)
    sample = model.sample(300, seed=1)
    assert set(sample["body_mass_g"].dropna()) <= set(support)
    with pytest.raises(SchemaError, match="outside its declared values"):
        declared.conform(frame)  # the raw masses are not on the support


def test_outputs_are_checked_first_and_committed_last(tmp_path) -> None:
    """The output transaction: aliasing is refused before any work; nothing moves into place
    until commit; a failure inside the block leaves every earlier file as it was; committed
    files get the permissions of an ordinary new file."""
    import os
    import stat

    from synth.errors import OutputError
    from synth.io import Outputs

    (tmp_path / "data.csv").write_text("a\n1\n")
    (tmp_path / "old.csv").write_text("earlier\n")
    outputs = Outputs(inputs=[tmp_path / "data.csv"])
    with pytest.raises(OutputError, match="is also an input"):
        outputs.plan(tmp_path / "data.csv", what="--out")
    outputs.plan(tmp_path / "old.csv", what="--out")
    with pytest.raises(OutputError, match="is also --out"):
        outputs.plan(tmp_path / "old.csv", what="--json")
    with pytest.raises(RuntimeError), outputs:
        outputs.write_text(tmp_path / "old.csv", "new\n")
        raise RuntimeError("the run failed")
    assert (tmp_path / "old.csv").read_text() == "earlier\n"
    assert not list(tmp_path.glob(".*.tmp"))
    outputs.write_text(tmp_path / "old.csv", "new\n")
    assert (tmp_path / "old.csv").read_text() == "earlier\n"  # not before commit
    outputs.commit()
    assert (tmp_path / "old.csv").read_text() == "new\n"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / "old.csv").stat().st_mode) == 0o666 & ~mask


def test_numbers_never_print_as_minus_zero() -> None:
    from reports.terminal import fixed as _fixed

    assert _fixed(-0.0001, 2) == "0.00" and _fixed(-0.004, 2) == "0.00"
    assert _fixed(-0.01, 2) == "-0.01" and _fixed(1.23456, 4) == "1.2346"
