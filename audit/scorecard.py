"""The scorecard of one synthetic table: fidelity always, utility when a target is named."""

from __future__ import annotations

import pandas as pd

from audit.fidelity import fidelity_scores
from audit.scores import Scorecard
from audit.utility import utility_scores
from synth.runtime import limited_threads
from synth.schema import Schema


def build_scorecard(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    *,
    holdout: pd.DataFrame | None = None,
    target: str | None = None,
    seed: int = 0,
    threads: int = 1,
) -> Scorecard:
    """Fidelity of ``synthetic`` against ``real`` (the training rows); with ``target`` and a
    ``holdout``, utility too. All frames are conformed to ``schema`` first.

    Runs under the thread policy: scikit-learn's gradient boosting predicts through OpenMP, and
    with a core taken by another process its threads spin (0.36 s per predict on 200 rows here).
    """
    import sklearn.ensemble  # noqa: F401 - loads OpenMP first: threadpoolctl caps loaded libraries

    with limited_threads(threads):
        return _build(real, synthetic, schema, holdout, target, seed, threads)


def _build(real, synthetic, schema, holdout, target, seed, threads) -> Scorecard:
    real, synthetic = schema.conform(real), schema.conform(synthetic)
    card = Scorecard()
    scores, columns = fidelity_scores(real, synthetic, schema, seed=seed)
    card.extend(scores)
    card.columns = columns
    if target is not None:
        held = schema.conform(holdout) if holdout is not None else real.iloc[:0]
        card.extend(
            utility_scores(real, held, synthetic, schema, target, seed=seed, threads=threads)
        )
    return card
