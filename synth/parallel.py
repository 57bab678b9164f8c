"""Where generator fits run: local processes (joblib) or a Ray cluster, with a content-keyed cache.

An audit's cost is its shadow fits, each a pure task: a generator spec, a schema, a training
table, a fit seed and a row count in; a synthetic table out (``fit_and_sample``). ``FitRunner``
runs a batch of them and returns the tables in task order, whatever order they finish in:

- ``backend="local"`` (the default, zero set-up): ``jobs`` joblib worker processes, each fit
  with one thread (``synth.runtime.limited_threads``).
- ``backend="ray"``: tasks of one CPU each on the Ray cluster at ``address`` (``ray start
  --head`` on a machine; ``RAY_ADDRESS`` works too). The tasks' training tables are pooled into
  one table of distinct rows, put into Ray's object store once, and each task is sent only its
  spec, schema, seed and the positions of its rows in that table. Tasks print nothing: their
  output is not forwarded (``log_to_driver=False``), and only this process reports progress.
  Every node needs the same synthguard (checked per task) and its dependencies installed.

``FitCache`` keeps every finished fit's synthetic table in a folder (mode 0700, files 0600),
under a key of what determines it: the synthguard version, the generator and its parameters,
the schema, the digest of the fit's own training table (the rows and their order, so the base
rows drawn and which targets were added: the inclusion mask), the seed and the row count. A fit
is written as soon as it returns, so an interrupted audit (Ctrl-C, a crash, a lost node) keeps
the fits already made, and running it again makes only the missing ones. Fits of a generator
whose output is its training rows (``releases_real_rows``: identity) are never cached.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd

from synth.errors import ParamError, SynthguardError
from synth.io import digest
from synth.schema import Schema

Backend = Literal["local", "ray"]
BACKENDS: tuple[Backend, ...] = ("local", "ray")
Progress = Callable[[int, int], None]


class FitTask(Protocol):
    """What a fit needs (``attacks.shadow.ShadowFit`` is one)."""

    @property
    def spec(self) -> Any: ...
    @property
    def schema(self) -> Schema: ...
    @property
    def data(self) -> pd.DataFrame: ...
    @property
    def rows(self) -> int: ...
    @property
    def seed(self) -> int: ...


def fit_and_sample(spec: Any, schema: Schema, data: pd.DataFrame, rows: int, seed: int):
    """One fit: ``spec`` fitted on ``data`` with ``seed``, then ``rows`` rows sampled with
    ``seed + 1`` (the recipe of ``attacks.shadow.ShadowFit``)."""
    with warnings.catch_warnings():  # a worker prints nothing: the driver reports
        warnings.simplefilter("ignore")
        return spec.fit(data, schema, seed=seed).sample(rows, seed=seed + 1)


def synthguard_version() -> str:
    try:
        return metadata.version("synthguard")
    except metadata.PackageNotFoundError:
        return "unknown"


# ---- the cache ------------------------------------------------------------------------------


def fit_key(task: FitTask) -> str:
    """The content key of a fit: everything its synthetic table is a function of."""
    described = {
        "synthguard": synthguard_version(),
        "generator": task.spec.name,
        "params": task.spec.params(),
        "schema": hashlib.sha256(task.schema.to_toml().encode()).hexdigest(),
        "data": digest(task.data),
        "seed": int(task.seed),
        "rows": int(task.rows),
    }
    text = json.dumps(described, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class FitCache:
    """Synthetic tables of finished fits, one Parquet file per key, in ``folder``."""

    folder: Path

    def __post_init__(self) -> None:
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.folder, 0o700)
        except OSError as error:
            raise SynthguardError(
                f"fit cache {self.folder}: cannot create it ({error.strerror})"
            ) from None

    def get(self, key: str) -> pd.DataFrame | None:
        path = self.folder / f"{key}.parquet"
        try:
            return pd.read_parquet(path)
        except (FileNotFoundError, OSError, ValueError):  # absent, or cut short: fit again
            return None

    def put(self, key: str, table: pd.DataFrame) -> None:
        """Write atomically (a temporary file renamed into place), readable by the owner only."""
        handle, name = tempfile.mkstemp(dir=self.folder, suffix=".part")
        os.close(handle)
        try:
            table.to_parquet(name, index=False)
            os.chmod(name, 0o600)
            os.replace(name, self.folder / f"{key}.parquet")
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise

    def __len__(self) -> int:
        return sum(1 for _ in self.folder.glob("*.parquet"))


def default_cache_folder(store_uri: str) -> Path | None:
    """Where an audit keeps its fits: ``SYNTHGUARD_FIT_CACHE`` if set; else beside a local
    MLflow store (``<store folder>/synthguard-fits``); else ``$SYNTHGUARD_HOME/fits`` (default
    ``~/.config/synthguard/fits``) for a tracking server; None for an in-memory store."""
    given = os.environ.get("SYNTHGUARD_FIT_CACHE")
    if given:
        return Path(given)
    if store_uri.startswith("sqlite:///"):
        return Path(store_uri.removeprefix("sqlite:///")).parent / "synthguard-fits"
    if store_uri.startswith("file:") or ("://" not in store_uri and store_uri != "memory:"):
        return Path(store_uri.removeprefix("file://").removeprefix("file:")).parent / (
            "synthguard-fits"
        )
    if store_uri == "memory:":
        return None
    home = os.environ.get("SYNTHGUARD_HOME") or Path.home() / ".config" / "synthguard"
    return Path(home) / "fits"


# ---- pooling the tables ---------------------------------------------------------------------


def pool_rows(tables: Sequence[pd.DataFrame]) -> tuple[pd.DataFrame, list[np.ndarray | None]]:
    """One table of the distinct rows of ``tables`` and, per table, the positions of its rows
    in it (in order), so that ``pooled.iloc[positions]`` equals the table; None for a table
    that cannot be rebuilt exactly (its dtypes differ from the pool's): it travels whole."""
    if not tables:
        return pd.DataFrame(), []
    stacked = pd.concat(tables, ignore_index=True)
    hashes = pd.util.hash_pandas_object(stacked, index=False).to_numpy()
    unique, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
    order = np.argsort(first)  # pooled rows in order of first appearance
    pooled = stacked.iloc[first[order]].reset_index(drop=True)
    rank = np.empty(len(unique), dtype=np.int64)
    rank[order] = np.arange(len(unique))
    positions: list[np.ndarray | None] = []
    start = 0
    for table in tables:
        mine = rank[inverse[start : start + len(table)]]
        start += len(table)
        rebuilt = pooled.iloc[mine].reset_index(drop=True)
        positions.append(mine if rebuilt.equals(table.reset_index(drop=True)) else None)
    return pooled, positions


# ---- the runner -----------------------------------------------------------------------------


def check_backend(backend: str, address: str | None) -> str | None:
    """Validate ``--backend``/``--address`` before any work; the Ray address to use (``address``
    or ``RAY_ADDRESS``), None for local processes."""
    if backend not in BACKENDS:
        raise ParamError(f"--backend ({backend}) must be one of: {', '.join(BACKENDS)}")
    if backend == "local":
        if address:
            raise ParamError("--address is for --backend ray")
        return None
    chosen = address or os.environ.get("RAY_ADDRESS")
    if not chosen:
        raise ParamError("--backend ray needs --address HOST:PORT (or RAY_ADDRESS)")
    try:
        import ray  # noqa: F401
    except ImportError:
        raise ParamError("--backend ray needs Ray: pip install 'synthguard[ray]'") from None
    return chosen


def check_reachable(address: str, *, timeout: float = 5.0) -> None:
    """Fail within seconds, before any fit, when nothing answers at a Ray ``HOST:PORT``."""
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise ParamError(f"--address {address!r}: write HOST:PORT, e.g. 10.0.0.5:6379")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as error:
        raise SynthguardError(
            f"Ray cluster at {address} does not answer ({error.strerror or error}); start one "
            "with `ray start --head --port PORT` or check --address"
        ) from None


class ClusterLost(SynthguardError):
    """The Ray cluster (or a node, or the connection to it) was lost while fits ran; the fits
    finished before are in the cache."""


def _ray_fit(table, spec, schema, positions, data, rows: int, seed: int):
    """A Ray task: rebuild the training rows from the pooled table, fit, sample."""
    train = data if positions is None else table.iloc[positions].reset_index(drop=True)
    return fit_and_sample(spec, schema, train, rows, seed), synthguard_version()


@dataclass
class FitRunner:
    """Runs batches of fits on ``backend``; counts fits made and fits read from ``cache``.

    Use as a context manager (or call ``close``): a Ray connection opened by the runner is
    closed there."""

    backend: Backend = "local"
    jobs: int = 1
    address: str | None = None
    cache: FitCache | None = None
    made: int = 0
    reused: int = 0
    _connected: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        if self.jobs < 1:
            raise ParamError(f"--jobs ({self.jobs}) must be >= 1")
        resolved = check_backend(self.backend, self.address)
        self.address = resolved

    def __enter__(self) -> FitRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Join the Ray cluster now (a no-op for local processes): a job calls it before any fit,
        so a cluster that does not answer fails in seconds."""
        if self.backend == "ray":
            self._connect()

    def close(self) -> None:
        if self._connected:
            import ray

            ray.shutdown()
            self._connected = False

    def run(self, tasks: Sequence[FitTask], progress: Progress | None = None) -> list[pd.DataFrame]:
        """The synthetic table of each task, in task order. Cached fits are read, the others
        made (and cached as each returns); ``progress(done, total)`` hears of each."""
        report = progress or (lambda done, total: None)
        total = len(tasks)
        results: list[pd.DataFrame | None] = [None] * total
        keys: list[str | None] = [None] * total
        if self.cache is not None:
            for i, task in enumerate(tasks):
                if not task.spec.releases_real_rows:
                    key = keys[i] = fit_key(task)
                    results[i] = self.cache.get(key)
        missing = [i for i in range(total) if results[i] is None]
        self.reused += total - len(missing)
        done = total - len(missing)
        report(done, total)
        run = self._on_ray if self.backend == "ray" else self._locally
        for i, table in run([tasks[i] for i in missing], missing):
            results[i] = table
            if self.cache is not None and keys[i] is not None:
                self.cache.put(str(keys[i]), table)
            self.made += 1
            done += 1
            report(done, total)
        return [table for table in results if table is not None]

    def _locally(
        self, tasks: Sequence[FitTask], order: Sequence[int]
    ) -> Iterator[tuple[int, pd.DataFrame]]:
        from joblib import Parallel, delayed

        def one(i: int, task: FitTask) -> tuple[int, pd.DataFrame]:
            return i, fit_and_sample(task.spec, task.schema, task.data, task.rows, task.seed)

        if not tasks:
            return
        if self.jobs == 1:  # in this process: Ctrl-C stops at once, nothing to start
            for i, task in zip(order, tasks, strict=True):
                yield one(i, task)
            return
        parallel = Parallel(n_jobs=self.jobs, return_as="generator_unordered")
        yield from parallel(delayed(one)(i, t) for i, t in zip(order, tasks, strict=True))

    def _connect(self) -> None:
        import logging

        import ray

        assert self.address is not None  # checked in __post_init__
        if ray.is_initialized():
            return
        check_reachable(self.address)
        try:
            ray.init(
                address=self.address, log_to_driver=False, logging_level=logging.ERROR,
                configure_logging=True,
            )  # fmt: skip
        except (ConnectionError, RuntimeError, ValueError) as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise SynthguardError(
                f"cannot join the Ray cluster at {self.address}: {reason}"
            ) from None
        self._connected = True

    def _check_alive(self) -> None:
        assert self.address is not None
        try:
            check_reachable(self.address, timeout=5.0)
        except SynthguardError:
            raise ConnectionError("the head node does not answer") from None

    def _on_ray(
        self, tasks: Sequence[FitTask], order: Sequence[int]
    ) -> Iterator[tuple[int, pd.DataFrame]]:
        if not tasks:
            return
        self._connect()
        import ray

        pooled, positions = pool_rows([task.data for task in tasks])
        table = ray.put(pooled)  # once, for every task
        remote = ray.remote(num_cpus=1, max_retries=3)(_ray_fit)
        shared = {id(task.spec): ray.put(task.spec) for task in tasks}
        schemas = {id(task.schema): ray.put(task.schema) for task in tasks}
        pending = {
            remote.remote(
                table, shared[id(task.spec)], schemas[id(task.schema)], where,
                task.data if where is None else None, task.rows, task.seed,
            ): i
            for i, task, where in zip(order, tasks, positions, strict=True)
        }  # fmt: skip
        mine = synthguard_version()
        try:
            while pending:
                try:
                    ready, _ = ray.wait(list(pending), num_returns=1, timeout=5.0)
                    if not ready:  # a lost head node stalls every task: ask it
                        self._check_alive()
                        continue
                    i = pending.pop(ready[0])
                    synthetic, theirs = ray.get(ready[0])
                except ray.exceptions.RayTaskError:
                    raise  # the fit's own error (also an instance of its type), as locally
                except (ray.exceptions.RayError, ConnectionError) as error:
                    first = str(error).splitlines()[0] if str(error) else ""
                    raise ClusterLost(
                        f"the Ray cluster at {self.address} was lost during the shadow fits "
                        f"({type(error).__name__}: {first[:200]})"
                    ) from None
                if theirs != mine:
                    raise SynthguardError(
                        f"a Ray worker runs synthguard {theirs}, this process {mine}: install "
                        "the same version on every node"
                    )
                yield i, synthetic
        finally:
            for ref in pending:  # interrupted or failed: stop what the cluster still runs
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            del table
