"""The scorecard: agreement with SDMetrics, known answers, and the reference generators' order."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from audit.fidelity import detection_auc, fidelity_scores, quality_report
from audit.scorecard import build_scorecard
from audit.split import split_holdout
from audit.utility import utility_scores
from synth.errors import ParamError
from synth.registry import make_generator
from synth.schema import Schema


@pytest.fixture(scope="module")
def setting(nmes):
    schema = Schema.infer(nmes)
    real = schema.conform(nmes)
    split = split_holdout(real, fraction=0.25, seed=0)
    tables = {
        name: make_generator(name).fit(split.train, schema, seed=0).sample(len(split.train), seed=1)
        for name in ("identity", "independent", "gaussian_copula")
    }
    return schema, split, tables


def test_shapes_and_trends_agree_with_sdmetrics(setting) -> None:
    from sdmetrics.reports.single_table import QualityReport

    schema, split, tables = setting
    ours, _ = fidelity_scores(split.train, tables["gaussian_copula"], schema)
    ours = {s.name: s.value for s in ours}
    metadata = {"columns": {c.name: {"sdtype": c.kind} for c in schema.columns}}
    plain = lambda f: f.astype({c: "float64" for c in f if str(f[c].dtype) == "Int64"})  # noqa: E731
    report = QualityReport()
    report.generate(plain(split.train), plain(tables["gaussian_copula"]), metadata, verbose=False)
    properties = report.get_properties().set_index("Property")["Score"]
    assert ours["fidelity.quality"] == pytest.approx(report.get_score(), abs=1e-6)
    assert ours["fidelity.column_shapes"] == pytest.approx(properties["Column Shapes"], abs=1e-6)
    assert ours["fidelity.column_pair_trends"] == pytest.approx(
        properties["Column Pair Trends"], abs=1e-6
    )


def test_identity_is_perfect_and_independent_loses_pairs(setting) -> None:
    schema, split, tables = setting
    cards = {
        name: {s.name: s.value for s in fidelity_scores(split.train, table, schema)[0]}
        for name, table in tables.items()
    }
    identity, independent, copula = (
        cards["identity"],
        cards["independent"],
        cards["gaussian_copula"],
    )
    assert identity["fidelity.quality"] == pytest.approx(1.0)
    assert identity["fidelity.marginal_tvd_2way"] == pytest.approx(0.0)
    assert identity["fidelity.detection_auc"] == pytest.approx(0.5, abs=0.02)
    # independent keeps shapes but loses pairs
    assert independent["fidelity.column_shapes"] > 0.97
    assert independent["fidelity.column_pair_trends"] < identity["fidelity.column_pair_trends"]
    assert independent["fidelity.marginal_tvd_2way"] > 0.01
    assert independent["fidelity.detection_auc"] > 0.7
    assert copula["fidelity.quality"] < identity["fidelity.quality"]


def test_utility_identity_matches_trtr_and_independent_falls_behind(setting) -> None:
    schema, split, tables = setting
    gaps = {}
    for name in ("identity", "independent"):
        scores = {s.name: s.value for s in utility_scores(
            split.train, split.holdout, tables[name], schema, "insurance", seed=0
        )}  # fmt: skip
        gaps[name] = scores["utility.gap.roc_auc"]
        assert {"utility.tstr.linear.roc_auc", "utility.trtr.boosting.f1_macro"} <= set(scores)
    assert gaps["identity"] == pytest.approx(0.0, abs=1e-9)
    assert gaps["independent"] > 0.1


def test_regression_target_scores_r2_and_mae(setting) -> None:
    schema, split, tables = setting
    scores = {s.name: s for s in utility_scores(
        split.train, split.holdout, tables["identity"], schema, "income", seed=0
    )}  # fmt: skip
    assert scores["utility.tstr.boosting.mae"].goal == "min"
    assert scores["utility.gap.r2"].value == pytest.approx(0.0, abs=1e-9)


def test_utility_scores_own_their_threads_and_do_not_depend_on_them(setting) -> None:
    """Called directly (as from a notebook), utility scoring caps its own BLAS/OpenMP threads,
    restores the caller's afterwards, and gives the same numbers on one thread or two."""
    from threadpoolctl import threadpool_info

    schema, split, tables = setting
    before = [(p["internal_api"], p["num_threads"]) for p in threadpool_info()]
    runs = []
    for threads in (1, 2):
        scores = utility_scores(
            split.train, split.holdout, tables["independent"], schema, "income", seed=0,
            threads=threads,
        )  # fmt: skip
        runs.append([(s.name, s.value) for s in scores])
    assert runs[0] == runs[1]
    assert [(p["internal_api"], p["num_threads"]) for p in threadpool_info()] == before


def test_preprocessing_never_sees_the_holdout(setting) -> None:
    """A category that exists only in the holdout must not break or inform the models."""
    schema, split, tables = setting
    holdout = split.holdout.copy()
    holdout.loc[holdout.index[:5], "region"] = "atlantis"
    widened = Schema(
        tuple(
            c
            if c.name != "region"
            else type(c)(**{**c.__dict__, "categories": (*c.categories, "atlantis")})
            for c in schema.columns
        )
    )
    scores = utility_scores(split.train, holdout, tables["identity"], widened, "insurance", seed=0)
    assert all(np.isfinite(s.value) for s in scores)


def test_detection_known_answer_on_disjoint_tables() -> None:
    real = pd.DataFrame({"x": np.arange(200, dtype=float)})
    fake = pd.DataFrame({"x": np.arange(1000, 1200, dtype=float)})
    score = detection_auc(real, fake, Schema.infer(real), seed=0)
    assert score.value > 0.99  # separable: told apart every time
    assert score.baseline == 0.5


def test_shuffled_columns_score_worse_than_the_real_table(penguins) -> None:
    schema = Schema.infer(penguins)
    rng = np.random.default_rng(1)
    shuffled = penguins.apply(lambda col: col.to_numpy()[rng.permutation(len(col))])
    same = quality_report(penguins, penguins, schema).get_score()
    worse = quality_report(penguins, shuffled, schema).get_score()
    assert same == pytest.approx(1.0) and worse < same


def test_scorecard_json_and_metrics(setting) -> None:
    schema, split, tables = setting
    card = build_scorecard(split.train, tables["independent"], schema, holdout=split.holdout,
                           target="insurance")  # fmt: skip
    metrics = card.metrics()
    assert {"fidelity.detection_auc_lo", "fidelity.detection_auc_hi"} <= set(metrics)
    document = json.loads(card.to_json())
    assert {s["name"] for s in document["scores"]} == {s.name for s in card}
    assert set(document["columns"]["income"]) >= {"missing_real", "range_coverage", "shape"}
    with pytest.raises(ParamError, match="not a column"):
        build_scorecard(split.train, tables["independent"], schema, holdout=split.holdout,
                        target="nope")  # fmt: skip
