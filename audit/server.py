"""A team's MLflow tracking server: PostgreSQL for runs, one shared folder for artifacts.

``synthguard server --db postgresql://USER@HOST:PORT/DATABASE --artifacts DIR`` checks its
inputs (each failure one line: a URI that is not PostgreSQL's, a database that does not answer,
an artifact folder that cannot be written, a port already taken), then runs ``mlflow server`` in
the foreground:

- the backend store is the database (params, metrics, tags, the model registry); the URI reaches
  MLflow through ``MLFLOW_BACKEND_STORE_URI``, not the command line, so a password in it does
  not show in ``ps`` (better still: ``PGPASSWORD`` or ``~/.pgpass``, which libpq reads);
- artifacts (reports, synthetic tables, models) go to ``DIR`` through the server
  (``--serve-artifacts --artifacts-destination DIR``): clients upload and download over HTTP and
  never need the folder mounted;
- MLflow's job runner (GenAI scorers: a dozen ``huey`` processes) is off unless
  ``MLFLOW_SERVER_ENABLE_JOB_EXECUTION`` says otherwise: synthguard has no use for it.

The server and its uvicorn workers run in a process group of their own; Ctrl-C (or SIGTERM)
ends the whole group (SIGTERM, then SIGKILL after a grace period) and the command exits 0.
Clients point at it with ``MLFLOW_TRACKING_URI=http://HOST:PORT`` (``audit.tracking``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from synth.errors import ParamError, SynthguardError

# SQLAlchemy names of the PostgreSQL drivers: psycopg 3 is SQLAlchemy 2.1's default for
# ``postgresql://`` and the one the ``server`` extra installs
DRIVERS = ("postgresql", "postgresql+psycopg", "postgresql+psycopg2")
CONNECT_TIMEOUT = 5  # seconds: an unreachable database fails the command within seconds
GRACE = 20.0  # seconds the server gets to stop on SIGTERM before its group is killed


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    """What ``synthguard server`` runs; the cheap checks run when it is made, the ones that
    touch the network or the disk in :func:`check_server`."""

    db: str
    artifacts: Path
    host: str = "127.0.0.1"
    port: int = 5000
    workers: int = 4

    def __post_init__(self) -> None:
        object.__setattr__(self, "artifacts", Path(self.artifacts).expanduser().absolute())
        shown_db(self.db)  # a PostgreSQL URI, or one line saying what is wrong
        if not 1 <= self.port <= 65535:
            raise ParamError(f"--port ({self.port}) must be between 1 and 65535")
        if self.workers < 1:
            raise ParamError(f"--workers ({self.workers}) must be >= 1")

    @property
    def backend_uri(self) -> str:
        """``db`` with its driver named: psycopg 3 (the ``server`` extra's) for a bare
        ``postgresql://``, whichever SQLAlchemy's own default is."""
        if self.db.startswith("postgresql://"):
            return "postgresql+psycopg://" + self.db.removeprefix("postgresql://")
        return self.db

    @property
    def address(self) -> str:
        """The address clients use (the machine's name when the server listens everywhere)."""
        host = socket.getfqdn() if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    @property
    def local_address(self) -> str:
        """An address this machine reaches the server at (for the readiness check)."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"


def shown_db(uri: str) -> str:
    """``uri`` with any password masked, once it is known to be a PostgreSQL URI."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    usage = "postgresql://USER@HOST:PORT/DATABASE"
    try:
        url = make_url(uri)
    except (ArgumentError, ValueError):
        raise ParamError(f"--db: not a database URI; a team store is {usage}") from None
    shown = url.render_as_string(hide_password=True)
    if url.drivername not in DRIVERS:
        raise ParamError(
            f"--db {shown}: a team store is a PostgreSQL database ({usage}), not {url.drivername!r}"
        )
    if not url.database:
        raise ParamError(f"--db {shown}: name the database ({usage})")
    return shown


def check_server(config: ServerConfig) -> None:
    """Fail in seconds, each problem in one line, before anything starts: the port taken, the
    artifact folder not writable, the database not answering."""
    _check_port(config.host, config.port)
    _check_artifacts(config.artifacts)
    _check_database(config.backend_uri, shown_db(config.db))


def _check_port(host: str, port: int) -> None:
    try:
        found = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as error:
        raise ParamError(f"--host {host}: unknown host ({error.strerror})") from None
    family, kind, proto, _, address = found[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise ParamError(
                    f"--port {port}: already in use on {host} (another server?)"
                ) from None
            if error.errno == errno.EADDRNOTAVAIL:
                raise ParamError(f"--host {host}: not an address of this machine") from None
            raise ParamError(
                f"--host {host} --port {port}: cannot listen ({error.strerror})"
            ) from None


def _check_database(uri: str, shown: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.pool import NullPool

    try:
        engine = create_engine(
            uri, poolclass=NullPool, connect_args={"connect_timeout": CONNECT_TIMEOUT}
        )
    except ImportError as error:
        raise ParamError(
            f"--db {shown}: the PostgreSQL driver is not installed ({error.name}); "
            "pip install 'synthguard[server]'"
        ) from None
    try:
        with engine.connect() as connection:
            connection.execute(text("select 1"))
    except SQLAlchemyError as error:
        cause = getattr(error, "orig", None) or error
        lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
        reason = lines[0] if lines else type(cause).__name__
        raise ParamError(f"--db {shown}: cannot connect ({reason})") from None
    finally:
        engine.dispose()


def _check_artifacts(folder: Path) -> None:
    """The folder, or the nearest folder above it that exists (it is created at start), takes
    a file; a probe, as permission bits do not bind root and a file system may be read-only."""
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ParamError(f"--artifacts {folder}: {existing} is a file, not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".synthguard-probe-"):
            pass
    except OSError as error:
        raise ParamError(
            f"--artifacts {folder}: {existing} is not writable ({error.strerror})"
        ) from None


def server_command(config: ServerConfig) -> tuple[list[str], dict[str, str]]:
    """The ``mlflow server`` command line and its environment (the database URI is passed in
    the environment, where ``ps`` does not show it)."""
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--serve-artifacts", "--artifacts-destination", str(config.artifacts),
        "--host", config.host, "--port", str(config.port), "--workers", str(config.workers),
    ]  # fmt: skip
    env = dict(os.environ) | {"MLFLOW_BACKEND_STORE_URI": config.backend_uri}
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    # a quiet foreground log: MLflow 3.17 imports a module Starlette deprecates
    env.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning,ignore:starlette.middleware.wsgi")
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_LOGGING_LEVEL"):  # the client's, not the server's
        env.pop(name, None)
    return command, env


def serve(config: ServerConfig, *, notify: Callable[[str], None]) -> int:
    """Check ``config``, run the MLflow server in the foreground until Ctrl-C or SIGTERM, end
    its whole process group; returns 0. A server that stops on its own is an error."""
    check_server(config)
    try:
        config.artifacts.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ParamError(f"--artifacts {config.artifacts}: {error.strerror}") from None
    command, env = server_command(config)
    notify(
        f"MLflow tracking server: runs in {shown_db(config.db)}, artifacts in {config.artifacts}"
    )
    with _terminate_as_interrupt():
        process = subprocess.Popen(command, env=env, start_new_session=True)
        try:
            ready = False
            while process.poll() is None:
                if not ready and _answers(config.local_address):
                    ready = True
                    notify(
                        f"ready at {config.address}: clients set "
                        f"MLFLOW_TRACKING_URI={config.address} (Ctrl-C stops the server)"
                    )
                time.sleep(0.5)
        except KeyboardInterrupt:
            notify("stopping the MLflow server")
            return 0
        finally:
            end_group(process)
    raise SynthguardError(
        f"the MLflow server stopped on its own (exit code {process.returncode}); its log is above"
    )


def _answers(address: str) -> bool:
    try:
        with urllib.request.urlopen(f"{address}/health", timeout=2) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the server as Ctrl-C does (a service manager's stop)."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def end_group(process: subprocess.Popen[bytes], grace: float = GRACE) -> None:
    """End ``process`` and everything in its process group (it leads one): SIGTERM, then
    SIGKILL after ``grace`` seconds; a second Ctrl-C meanwhile does not cut this short."""
    held = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and _group_alive(process):
                time.sleep(0.2)
            if not _group_alive(process):
                break
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
    finally:
        for sig, handler in held.items():
            signal.signal(sig, handler)


def _group_alive(process: subprocess.Popen[bytes]) -> bool:
    process.poll()  # reap the leader, so a zombie does not count as alive
    try:
        os.killpg(process.pid, 0)
    except ProcessLookupError:
        return False
    return True
