"""Utility: train on synthetic, test on real (TSTR) against train on real, test on real (TRTR).

Both sides are tested on the same real holdout, which no generator saw. The task follows the
target's kind: classification (ROC AUC, macro F1) for categorical and boolean targets, regression
(R2, MAE) otherwise. Two model families: a linear model (one-hot categories, scaled numbers) and
gradient boosting. Every preprocessing step is fitted on the training side only. The gap is
TRTR - TSTR averaged over the families; feature-importance agreement is the Spearman correlation
of permutation importances on the holdout between the boosting models trained on each side.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from audit.scores import Score
from synth.errors import ParamError
from synth.runtime import limited_threads
from synth.schema import Schema, as_number

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

_GOALS: dict[str, Literal["max", "min"]] = {
    "roc_auc": "max",
    "f1_macro": "max",
    "r2": "max",
    "mae": "min",
}


def _design(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """Numbers as floats, categories as text ('' for missing): what the pipelines expect."""
    out = {}
    for column in schema.columns:
        values = frame[column.name]
        if column.kind in ("numerical", "datetime"):
            out[column.name] = as_number(values).to_numpy()
        else:
            out[column.name] = values.astype(object).where(values.notna(), "").astype(str)
    return pd.DataFrame(out)


def _models(schema: Schema, classification: bool, seed: int) -> dict[str, Pipeline]:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    numbers = [c.name for c in schema.columns if c.kind in ("numerical", "datetime")]
    texts = [c.name for c in schema.columns if c.name not in numbers]
    scaled = make_pipeline(
        SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler()
    )
    linear_inputs = ColumnTransformer(
        [("numbers", scaled, numbers), ("texts", OneHotEncoder(handle_unknown="ignore"), texts)]
    )
    tree_inputs = ColumnTransformer(
        [
            ("numbers", "passthrough", numbers),
            (
                "texts",
                OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan),
                texts,
            ),
        ]
    )
    if classification:
        return {
            "linear": make_pipeline(linear_inputs, LogisticRegression(max_iter=2000)),
            "boosting": make_pipeline(
                tree_inputs, HistGradientBoostingClassifier(random_state=seed)
            ),
        }
    return {
        "linear": make_pipeline(linear_inputs, Ridge()),
        "boosting": make_pipeline(tree_inputs, HistGradientBoostingRegressor(random_state=seed)),
    }


def _evaluate(model, x: pd.DataFrame, y: np.ndarray, classification: bool) -> dict[str, float]:
    from sklearn.metrics import f1_score, mean_absolute_error, r2_score, roc_auc_score

    if not classification:
        predicted = model.predict(x)
        return {
            "r2": float(r2_score(y, predicted)),
            "mae": float(mean_absolute_error(y, predicted)),
        }
    classes = np.unique(y)
    proba = np.zeros((len(x), len(classes)))
    known = model.predict_proba(x)
    for j, label in enumerate(model.classes_):
        if label in classes:
            proba[:, np.searchsorted(classes, label)] = known[:, j]
    out = {"f1_macro": float(f1_score(y, model.predict(x), average="macro", labels=classes))}
    if len(classes) == 2:
        out["roc_auc"] = float(roc_auc_score(y == classes[1], proba[:, 1]))
    elif len(classes) > 2:
        proba = proba / np.clip(proba.sum(axis=1, keepdims=True), 1e-12, None)
        out["roc_auc"] = float(roc_auc_score(y, proba, multi_class="ovr", labels=classes))
    return out


def utility_scores(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    target: str,
    *,
    seed: int = 0,
    max_rows: int = 20_000,
    importance_rows: int = 5_000,
    threads: int = 1,
) -> list[Score]:
    """TSTR and TRTR scores per model family and metric, the gaps, and importance agreement.

    To bound the cost on large tables, each training side is a seeded sample of at most
    ``max_rows`` rows (both sides the same size), and importances are measured on at most
    ``importance_rows`` holdout rows; the metrics use the whole holdout.

    Runs on ``threads`` BLAS/OpenMP threads, whoever calls it: with OpenMP's default of one
    thread per core and another process on a core, gradient boosting's threads spin (one call
    took 208 s against 10.7 s on one thread, on a loaded 2-core box). The scores do not depend
    on the thread count."""
    import sklearn.ensemble  # noqa: F401 - loads OpenMP first: threadpoolctl caps loaded libraries

    with limited_threads(threads):
        return _utility_scores(
            train, holdout, synthetic, schema, target,
            seed=seed, max_rows=max_rows, importance_rows=importance_rows,
        )  # fmt: skip


def _utility_scores(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    target: str,
    *,
    seed: int,
    max_rows: int,
    importance_rows: int,
) -> list[Score]:
    from scipy.stats import spearmanr
    from sklearn.inspection import permutation_importance

    if target not in schema:
        raise ParamError(f"--target {target!r} is not a column; columns: {', '.join(schema.names)}")
    if len(holdout) == 0:
        raise ParamError("utility needs a holdout: use --holdout > 0")
    column = schema[target]
    classification = column.kind in ("categorical", "boolean")
    predictors = schema.select([n for n in schema.names if n != target])

    def xy(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        values = frame[target]
        keep = values.notna().to_numpy()
        y = values[keep].astype(str).to_numpy() if classification else as_number(values)[keep]
        return _design(frame[keep], predictors), np.asarray(y)

    x_test, y_test = xy(holdout)
    rng = np.random.default_rng(seed)
    few = np.sort(rng.choice(len(x_test), min(len(x_test), importance_rows), replace=False))
    x_few, y_few = x_test.iloc[few], y_test[few]
    results: dict[str, dict[str, dict[str, float]]] = {}
    importances: dict[str, np.ndarray] = {}
    for side, frame in (("trtr", train), ("tstr", synthetic)):
        if len(frame) > max_rows:
            frame = frame.iloc[np.sort(rng.choice(len(frame), max_rows, replace=False))]
        x, y = xy(frame)
        if classification and len(np.unique(y)) < 2:
            continue  # one class only: nothing to learn on this side
        results[side] = {}
        for family, model in _models(predictors, classification, seed).items():
            model.fit(x, y)
            results[side][family] = _evaluate(model, x_test, y_test, classification)
            if family == "boosting" and len(predictors.columns) > 1:
                # permute the encoded matrix (one column per predictor): the pipeline's own
                # predict on permuted frames is two orders of magnitude slower
                encoder, booster = model[:-1], model[-1]
                found = permutation_importance(
                    booster, encoder.transform(x_few), y_few, n_repeats=3, random_state=seed,
                    scoring="r2" if not classification else "f1_macro",
                )  # fmt: skip
                importances[side] = found.importances_mean

    scores = []
    for side, families in results.items():
        for family, metrics in families.items():
            for metric, value in metrics.items():
                scores.append(Score(f"utility.{side}.{family}.{metric}", value, _GOALS[metric]))
    if "trtr" in results and "tstr" in results:
        for metric in _GOALS:
            gaps = [
                results["trtr"][f][metric] - results["tstr"][f][metric]
                for f in results["trtr"]
                if metric in results["trtr"][f] and metric in results["tstr"].get(f, {})
            ]
            if gaps:
                signed = float(np.mean(gaps)) * (1 if _GOALS[metric] == "max" else -1)
                help_text = "TRTR - TSTR, signed so that > 0 means synthetic trains worse"
                scores.append(
                    Score(f"utility.gap.{metric}", signed, "min", baseline=0.0, help=help_text)
                )
        if "trtr" in importances and "tstr" in importances:
            rho = spearmanr(importances["trtr"], importances["tstr"]).statistic
            scores.append(Score("utility.importance_spearman", float(rho), "max", baseline=1.0,
                                help="rank agreement of feature importances"))  # fmt: skip
    return scores
