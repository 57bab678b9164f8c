"""MLflow tracking: the only module in synthguard that imports mlflow.

Conventions:

- Store: ``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<absolute cwd>/mlflow.db`` (absolute, so
  notebooks and the CLI in the same folder share one store).
- Runs are addressed by explicit run id through ``MlflowClient``; no global active run, so workers
  and threads cannot log into the wrong run. A run that raises ends FAILED; one interrupted
  (Ctrl-C) ends KILLED; whatever was logged before stays. A run whose store stops answering
  mid-run (a tracking server stopped) cannot be ended there: the process fails with one line
  (:class:`StoreLost`) and leaves a note in ``SYNTHGUARD_HOME/pending/``; the next synthguard
  process that reaches the store marks the run FAILED (or KILLED) with the tag
  ``synthguard.ended``. A run whose process died unseen is marked KILLED the same way.
- Metric names are grouped: ``fidelity.*``, ``utility.*``, ``privacy.*``, ``cost.*``.
- Never real rows: datasets are logged by name, digest, row count and column kinds only; the
  ``identity`` model and its output are never logged; generator models are logged as
  ``mlflow.pyfunc`` models holding per-column summaries, not rows.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
from collections.abc import Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import mlflow
import pandas as pd
from mlflow.entities import (
    Dataset,
    DatasetInput,
    InputTag,
    LoggedModelOutput,
    Metric,
    Param,
    RunStatus,
)
from mlflow.models.signature import ModelSignature
from mlflow.pyfunc import PythonModel
from mlflow.tracking import MlflowClient
from mlflow.types.schema import ParamSchema, ParamSpec

from synth.errors import SynthguardError
from synth.generators import FittedGenerator

DEFAULT_EXPERIMENT = "synthguard"
_PARAM_LIMIT = 6000
_BATCH = 900  # MLflow accepts at most 1000 entries per log_batch call
_ROOT = Path(__file__).resolve().parents[1]


class StoreLost(SynthguardError):
    """The MLflow store stopped answering mid-run: the run could not be ended there."""

    def __init__(self, uri: str, run_ids: list[str], reason: str):
        self.uri, self.run_ids = uri, run_ids
        runs = ", ".join(run_ids)
        fate = (
            f"; run {runs} stays RUNNING there until the next synthguard command that reaches "
            "it marks it FAILED"
            if run_ids
            else ""
        )
        super().__init__(f"lost the MLflow store {uri} mid-run ({reason}){fate}")


def tracking_uri() -> str:
    """The store every synthguard command and notebook uses unless told otherwise."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd().resolve()}/mlflow.db"


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested mappings to dotted keys with text values (MLflow params are text)."""
    out: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, prefix=f"{name}."))
        elif isinstance(value, tuple | list):
            out[name] = ",".join(map(str, value))
        else:
            out[name] = str(value)
    return out


def check_store(uri: str | None = None, *, timeout: float = 5.0) -> None:
    """Fail within seconds, before any work, when the store cannot take a run: a SQLite file
    whose folder (or file) is not writable, a tracking server that does not answer. (MLflow
    itself retries for minutes before giving up.)"""
    import urllib.error
    import urllib.request

    uri = uri or tracking_uri()
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        folder = path.parent
        if not folder.is_dir():
            raise SynthguardError(f"MLflow store {uri}: folder {str(folder)!r} does not exist")
        writable = os.access(path, os.W_OK) if path.exists() else os.access(folder, os.W_OK)
        if not writable:
            raise SynthguardError(f"MLflow store {uri} is not writable")
    elif uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as answer:
                answer.read()
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            raise SynthguardError(
                f"MLflow tracking server {uri} does not answer ({reason}); check "
                "MLFLOW_TRACKING_URI"
            ) from None
    elif uri.startswith("file:") or "://" not in uri:
        folder = Path(uri.removeprefix("file://").removeprefix("file:"))
        parent = folder if folder.exists() else folder.parent
        if not os.access(parent, os.W_OK):
            raise SynthguardError(f"MLflow store {uri} is not writable")


def _pending_folder() -> Path:
    """Where a process notes the runs it could not end (see :class:`StoreLost`)."""
    home = os.environ.get("SYNTHGUARD_HOME") or Path.home() / ".config" / "synthguard"
    return Path(home) / "pending"


def _note_pending(uri: str, run_id: str, status: str, reason: str) -> None:
    folder = _pending_folder()
    folder.mkdir(parents=True, exist_ok=True)
    note = {"uri": uri, "run_id": run_id, "status": status, "reason": reason}
    path = folder / f"{run_id}.json"
    part = path.with_suffix(".part")
    part.write_text(json.dumps(note))
    part.replace(path)


def _store_answers(uri: str) -> str | None:
    """None when the store takes requests, else why not (a tracking server's /health; other
    stores are files or databases this process opens itself)."""
    import urllib.error
    import urllib.request

    if not uri.startswith(("http://", "https://")):
        return None
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=5) as answer:
            answer.read()
    except (urllib.error.URLError, OSError, ValueError) as error:
        return str(getattr(error, "reason", error))
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


_NOTE = "Latest synthguard comparison:"


def latest_comparison(uri: str, experiment: str = DEFAULT_EXPERIMENT) -> tuple[str, str] | None:
    """The title and UI link of the newest comparison saved in ``experiment`` (see
    :meth:`Tracker.share_comparison`), or None; never creates anything."""
    client = MlflowClient(tracking_uri=uri)
    try:
        found = client.get_experiment_by_name(experiment)
    except mlflow.exceptions.MlflowException:
        return None
    if found is None:
        return None
    views = []
    for name, value in found.tags.items():
        if name.startswith("mlflow.sharedViewState.synthguard-compare-"):
            view = json.loads(value)
            views.append((view.get("updatedAt", 0), view.get("name", ""), name.split(".", 2)[2]))
    if not views:
        return None
    _, title, key = max(views)
    return title, _view_link(found.experiment_id, key)


def _view_link(experiment_id: str, key: str) -> str:
    return (
        f"#/experiments/{experiment_id}/runs?workflowType=machine_learning"
        f"&viewStateShareKey={key}&compareRunsMode=CHART"
    )


class Tracker:
    """Opens runs in one experiment of one store."""

    def __init__(self, uri: str | None = None, experiment: str = DEFAULT_EXPERIMENT):
        self.uri = uri or tracking_uri()
        self.client = MlflowClient(tracking_uri=self.uri)
        try:
            self.experiment_id = self._experiment(experiment)
        except mlflow.exceptions.MlflowException as error:
            first = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise SynthguardError(f"cannot open MLflow store {self.uri!r}: {first}") from None
        self.settle_pending_runs()
        self.reap_stale_runs()

    def _experiment(self, name: str) -> str:
        """The id of experiment ``name``, created if missing; when several processes create
        it at once (a team's audits started together), one does and the others find it."""
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return str(found.experiment_id)
        try:
            return str(self.client.create_experiment(
                name,
                # open on "Model training" in the MLflow UI, not the GenAI overview
                tags={"mlflow.experimentKind": "custom_model_development"},
            ))  # fmt: skip
        except mlflow.exceptions.MlflowException:
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return str(found.experiment_id)

    def settle_pending_runs(self) -> list[str]:
        """End the runs of this store that a synthguard process on this machine could not end
        because the store had stopped answering (its notes in ``SYNTHGUARD_HOME/pending``):
        the status it meant to set, and the tag ``synthguard.ended``. Returns their ids."""
        settled = []
        folder = _pending_folder()
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            try:
                note = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if str(note.get("uri", "")).rstrip("/") != self.uri.rstrip("/"):
                continue
            run_id = str(note["run_id"])
            try:
                if self.client.get_run(run_id).info.status == "RUNNING":
                    self.client.set_terminated(run_id, status=str(note["status"]))
                    self.client.set_tag(
                        run_id, "synthguard.ended", f"store lost mid-run ({note['reason']})"
                    )
            except mlflow.exceptions.MlflowException as error:
                if error.error_code != "RESOURCE_DOES_NOT_EXIST":
                    continue  # the store failing again: the note stays for the next process
            path.unlink(missing_ok=True)
            settled.append(run_id)
        return settled

    def reap_stale_runs(self) -> list[str]:
        """Mark KILLED the RUNNING runs that a synthguard process on this machine started and
        that process is gone (it died before it could: a signal during the heavy imports, a
        crash, a killed terminal). Returns their ids."""
        host = socket.gethostname()
        found = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"attributes.status = 'RUNNING' and tags.`synthguard.host` = '{host}'",
            max_results=200,
        )
        reaped = []
        for run in found:
            pid = run.data.tags.get("synthguard.pid", "")
            if pid.isdigit() and not _alive(int(pid)):
                self.client.set_terminated(
                    run.info.run_id, status=RunStatus.to_string(RunStatus.KILLED)
                )
                self.client.set_tag(run.info.run_id, "synthguard.ended", "process gone")
                reaped.append(run.info.run_id)
        return reaped

    def resumable(self, run_id: str, command: str) -> dict[str, str]:
        """The params of run ``run_id`` if a ``command`` may resume it (``--resume``): a run of
        this experiment, started by ``command``, that did not finish and whose process is gone;
        else one clear error, and the run is left as it was."""
        try:
            found = self.client.get_run(run_id)
        except mlflow.exceptions.MlflowException:
            raise SynthguardError(f"--resume {run_id}: no such run in {self.uri}") from None
        info, tags = found.info, found.data.tags
        if info.experiment_id != self.experiment_id:
            raise SynthguardError(f"--resume {run_id}: that run is in another experiment")
        if tags.get("synthguard.command") != command:
            raise SynthguardError(
                f"--resume {run_id}: that run is not a synthguard {command} "
                f"(it is {tags.get('synthguard.command', 'not synthguard')!r})"
            )
        if info.status == "FINISHED":
            raise SynthguardError(
                f"--resume {run_id}: that run finished; run the command again without --resume "
                "(its shadow fits come from the fit cache)"
            )
        pid = tags.get("synthguard.pid", "")
        if (
            info.status == "RUNNING"
            and tags.get("synthguard.host") == socket.gethostname()
            and pid.isdigit()
            and _alive(int(pid))
        ):
            raise SynthguardError(f"--resume {run_id}: that run is still running (pid {pid})")
        return dict(found.data.params)

    @contextlib.contextmanager
    def run(
        self,
        name: str,
        *,
        tags: Mapping[str, str] | None = None,
        parent: str | None = None,
        resume: str | None = None,
    ) -> Iterator[Run]:
        """A run that ends FINISHED, FAILED (on error) or KILLED (on Ctrl-C); with ``parent``,
        a child run shown under that run in the MLflow UI; with ``resume``, that interrupted
        run (see :meth:`resumable`) reopened and logged into again."""
        tags = {k: str(v) for k, v in (tags or {}).items()}
        tags |= {"synthguard.host": socket.gethostname(), "synthguard.pid": str(os.getpid())}
        if parent is not None:
            tags["mlflow.parentRunId"] = parent
        if resume is not None:
            found = self.client.get_run(resume)
            count = int(found.data.tags.get("synthguard.resumed", "0")) + 1
            self.client.update_run(resume, status=RunStatus.to_string(RunStatus.RUNNING))
            run = Run(self, resume, logged=dict(found.data.params))
            run.set_tags(tags | {"synthguard.resumed": count})
        else:
            try:
                created = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
            except mlflow.exceptions.MlflowException:
                reason = _store_answers(self.uri)
                if reason is not None:
                    raise StoreLost(self.uri, [], reason) from None
                raise
            run = Run(self, created.info.run_id)
        try:
            yield run
        except BaseException as error:
            status = RunStatus.KILLED if isinstance(error, KeyboardInterrupt) else RunStatus.FAILED
            self._end(run.run_id, RunStatus.to_string(status), error)
            raise
        self._end(run.run_id, RunStatus.to_string(RunStatus.FINISHED), None)

    def _end(self, run_id: str, status: str, error: BaseException | None) -> None:
        """End a run; when the store does not answer, note it for the next process (see
        :meth:`settle_pending_runs`) and raise :class:`StoreLost` (a KeyboardInterrupt stays
        one)."""
        reason = _store_answers(self.uri)
        if reason is None:
            try:
                self.client.set_terminated(run_id, status=status)
                return
            except mlflow.exceptions.MlflowException:
                reason = _store_answers(self.uri)
                if reason is None:
                    raise
        ended = "FAILED" if status == "FINISHED" else status  # it did not end as it should
        _note_pending(self.uri, run_id, ended, reason)
        if isinstance(error, KeyboardInterrupt):
            return
        earlier = error.run_ids if isinstance(error, StoreLost) else []
        raise StoreLost(self.uri, [*earlier, run_id], reason) from None

    def child_run(self, parent_id: str, generator: str) -> str | None:
        """The id of the newest child run of ``parent_id`` for ``generator`` (its
        ``synthguard.generator`` tag), or None: a generator that failed may not have got as far
        as starting one."""
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{parent_id}' "
            f"and tags.`synthguard.generator` = '{generator}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        return runs[0].info.run_id if runs else None

    def share_comparison(self, parent_id: str, title: str, metrics: list[str]) -> str:
        """Make a comparison the first thing the MLflow UI shows, and return the link to it.

        MLflow 3.17's UI opens an experiment on a GenAI overview, shows a parent run with its
        children collapsed and no metric columns (checked in headless Chromium). So this writes a
        named saved view of the children (one group per generator, ``metrics`` as columns and
        charts), in the form the UI's "Views > Save as new view" writes, as the experiment tag
        ``mlflow.sharedViewState.<key>``, and links it from the experiment's description, which
        the UI shows at the top of every page of the experiment."""
        import re
        import time

        key = f"synthguard-compare-{parent_id[:12]}"
        # the UI's own default puts every metric in a 3-column grid named by its key: long keys
        # are cut and a bar chart's legend shows two groups of five. One bar chart per metric in
        # a 2-column section shows whole keys and every group (checked in headless Chromium).
        section = f"{key}-section"
        card = {"type": "BAR", "runsCountToCompare": 10, "metricSectionId": section}
        charts = [
            card | {"uuid": f"{key}-{i}", "deleted": False, "isGenerated": False}
            | {"metricKey": m}
            for i, m in enumerate(metrics)
        ]  # fmt: skip
        sections = [
            {"uuid": section, "name": title, "display": True, "isReordered": True}
            | {"deleted": False, "isGenerated": False, "columns": 2, "cardHeight": 360}
        ]
        state = {
            "searchFilter": f"tags.mlflow.parentRunId = '{parent_id}'",
            "orderByKey": f"metrics.`{metrics[0]}`" if metrics else "attributes.start_time",
            "orderByAsc": False,
            "selectedColumns": ["tags.`synthguard.verdict`"] + [f"metrics.`{m}`" for m in metrics],
            "groupBy": {
                "aggregateFunction": "average",
                "groupByKeys": [{"mode": "tag", "groupByData": "synthguard.generator"}],
            },
            "runsHiddenMode": "SHOW_ALL",
            "chartsSearchFilter": "^(" + "|".join(re.escape(m) for m in metrics) + ")$",
            "compareRunCharts": charts,
            "compareRunSections": sections,
            "isAccordionReordered": True,
            "hideEmptyCharts": True,
        }
        now = int(time.time() * 1000)
        view = {"name": title, "createdAt": now, "updatedAt": now, "state": json.dumps(state)}
        link = _view_link(self.experiment_id, key)
        self.client.set_experiment_tag(
            self.experiment_id, f"mlflow.sharedViewState.{key}", json.dumps(view)
        )
        note = self.client.get_experiment(self.experiment_id).tags.get("mlflow.note.content", "")
        if not note or note.startswith(_NOTE):  # never overwrite what a user wrote there
            self.client.set_experiment_tag(
                self.experiment_id,
                "mlflow.note.content",
                f"{_NOTE} [{title}]({link}), one group per generator; every comparison is also "
                "under Views.",
            )
        return link


class Run:
    """Logging into one run by explicit id."""

    def __init__(self, tracker: Tracker, run_id: str, *, logged: Mapping[str, str] | None = None):
        self.tracker, self.run_id = tracker, run_id
        self.client = tracker.client
        self._logged = dict(logged or {})  # a resumed run's params: MLflow keeps the first value

    def log_params(self, params: Mapping[str, Any]) -> None:
        flat = resumed_params(self, flatten(params))
        entries = [Param(k, v[:_PARAM_LIMIT]) for k, v in flat.items()]
        for start in range(0, len(entries), _BATCH):
            self.client.log_batch(self.run_id, params=entries[start : start + _BATCH])

    def log_metrics(self, metrics: Mapping[str, float], *, step: int = 0) -> None:
        import time

        now = int(time.time() * 1000)
        entries = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        for start in range(0, len(entries), _BATCH):
            self.client.log_batch(self.run_id, metrics=entries[start : start + _BATCH])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, str(value))

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)

    def log_json(self, value: Any, artifact_file: str) -> None:
        self.log_text(json.dumps(value, indent=2, sort_keys=True, default=str), artifact_file)

    def log_table(self, frame: pd.DataFrame, artifact_file: str) -> None:
        """Log a *synthetic* table as Parquet. Callers must never pass real rows."""
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / Path(artifact_file).name
            frame.to_parquet(path, index=False)
            parent = str(Path(artifact_file).parent)
            self.log_artifact(path, None if parent == "." else parent)

    def log_dataset(
        self, *, name: str, digest: str, kinds: Mapping[str, str], rows: int, context: str
    ) -> None:
        """Dataset lineage by name, digest, size and column kinds: no values."""
        schema = json.dumps({"mlflow_colspec": [{"name": k, "type": v} for k, v in kinds.items()]})
        dataset = Dataset(
            name=name,
            digest=digest[:36],
            source_type="local",
            source=json.dumps({"name": name}),
            schema=schema,
            profile=json.dumps({"num_rows": rows, "num_columns": len(kinds)}),
        )
        self.client.log_inputs(
            self.run_id,
            datasets=[DatasetInput(dataset, tags=[InputTag("mlflow.data.context", context)])],
        )

    def log_generator(self, model: FittedGenerator, name: str = "generator") -> str:
        """Log the fitted generator as an ``mlflow.pyfunc`` model; returns its model id.

        ``predict(None, params={"num_rows": n, "seed": s})`` samples. Refuses models that are
        the training data (``identity``).
        """
        if model.spec.releases_real_rows:
            raise SynthguardError(
                f"generator {model.spec.name!r} holds the training rows; it is never logged"
            )
        logged = self.client.create_logged_model(
            self.tracker.experiment_id,
            name=name,
            source_run_id=self.run_id,
            tags={"synthguard.generator": model.spec.name},
        )
        try:
            with tempfile.TemporaryDirectory() as folder:
                pickled = Path(folder) / "generator.pkl"
                pickled.write_bytes(model.dumps())
                target = Path(folder) / "model"
                with _quiet_mlflow():
                    mlflow.pyfunc.save_model(
                        str(target),
                        python_model=SamplingModel(),
                        artifacts={"generator": str(pickled)},
                        signature=ModelSignature(
                            params=ParamSchema(
                                [ParamSpec("num_rows", "long", 1000), ParamSpec("seed", "long", 0)]
                            )
                        ),
                        code_paths=[str(_ROOT / "synth"), str(_ROOT / "audit")],
                        pip_requirements=_requirements(model),
                    )
                self.client.log_model_artifacts(logged.model_id, str(target))
        except BaseException:
            self.client.finalize_logged_model(logged.model_id, "FAILED")
            raise
        self.client.finalize_logged_model(logged.model_id, "READY")
        self.client.log_outputs(self.run_id, [LoggedModelOutput(logged.model_id, step=0)])
        return logged.model_id


class SamplingModel(PythonModel):
    """pyfunc wrapper whose ``predict`` samples a synthetic table."""

    def load_context(self, context: Any) -> None:
        self._model = FittedGenerator.load(context.artifacts["generator"], trusted=True)

    def predict(self, context, model_input, params=None):  # untyped: MLflow reads hints as schema
        params = params or {}
        return self._model.sample(
            int(params.get("num_rows", 1000)), seed=int(params.get("seed", 0))
        )


def load_generator(model_uri: str) -> Any:
    """Load a logged generator (``models:/<id>`` or a registered ``models:/<name>/<version>``)."""
    return mlflow.pyfunc.load_model(model_uri)


def _requirements(model: FittedGenerator) -> list[str]:
    names = ["numpy", "pandas", "cloudpickle", "pyarrow", "tomli-w", *model.spec.requires]
    out = []
    for name in names:
        try:
            out.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            out.append(name)
    return out


@contextlib.contextmanager
def _quiet_mlflow() -> Iterator[None]:
    """Silence MLflow's advice about input examples and type hints while saving our pyfunc."""
    import logging
    import warnings

    logger = logging.getLogger("mlflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    bar = os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)
        if bar is None:
            os.environ.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", None)
        else:
            os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = bar


# ---- the contract a job logs through, and an in-memory store ---------------------------------


class RunLog(Protocol):
    """What a job logs into: the methods of :class:`Run`. :class:`MemoryRun` is the same in
    memory, for tests of what a job logs that need no MLflow store."""

    run_id: str

    def log_params(self, params: Mapping[str, Any]) -> None: ...
    def log_metrics(self, metrics: Mapping[str, float], *, step: int = 0) -> None: ...
    def set_tags(self, tags: Mapping[str, Any]) -> None: ...
    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None: ...
    def log_text(self, text: str, artifact_file: str) -> None: ...
    def log_json(self, value: Any, artifact_file: str) -> None: ...
    def log_table(self, frame: pd.DataFrame, artifact_file: str) -> None: ...
    def log_dataset(
        self, *, name: str, digest: str, kinds: Mapping[str, str], rows: int, context: str
    ) -> None: ...
    def log_generator(self, model: FittedGenerator, name: str = "generator") -> str: ...


class RunStore(Protocol):
    """Where runs are opened: :class:`Tracker` (MLflow) or :class:`MemoryStore`."""

    uri: str

    def run(
        self,
        name: str,
        *,
        tags: Mapping[str, str] | None = None,
        parent: str | None = None,
        resume: str | None = None,
    ) -> contextlib.AbstractContextManager[RunLog]: ...

    def resumable(self, run_id: str, command: str) -> dict[str, str]: ...


def resumed_params(run: Any, flat: dict[str, str]) -> dict[str, str]:
    """Of ``flat``, the params a run may still log: all of them in a new run; in a resumed
    one those not logged before (a param keeps its first value in MLflow). A value that
    differs from the first (a DP generator's noisy row count, refitted with fresh noise) is
    kept as a ``synthguard.resumed.<param>`` tag instead."""
    logged: dict[str, str] = run._logged
    if not logged:
        return flat
    changed = {
        f"synthguard.resumed.{k}": v[:_PARAM_LIMIT]
        for k, v in flat.items()
        if k in logged and logged[k] != v[:_PARAM_LIMIT]
    }
    if changed:
        run.set_tags(changed)
    fresh = {k: v for k, v in flat.items() if k not in logged}
    logged.update(fresh)
    return fresh


class MemoryRun:
    """A run held in memory: params flattened as MLflow stores them, metrics, tags, artifacts by
    path (text, or the bytes of a logged file or table), datasets, models; and its status."""

    def __init__(self, run_id: str, name: str, tags: Mapping[str, str]):
        self.run_id, self.name, self.status = run_id, name, "RUNNING"
        self.params: dict[str, str] = {}
        self._logged: dict[str, str] = {}
        self.metrics: dict[str, float] = {}
        self.tags: dict[str, str] = dict(tags)
        self.artifacts: dict[str, str | bytes] = {}
        self.datasets: list[dict[str, Any]] = []
        self.models: list[FittedGenerator] = []

    def log_params(self, params: Mapping[str, Any]) -> None:
        fresh = resumed_params(self, flatten(params))
        self.params |= {k: v[:_PARAM_LIMIT] for k, v in fresh.items()}

    def log_metrics(self, metrics: Mapping[str, float], *, step: int = 0) -> None:
        self.metrics |= {k: float(v) for k, v in metrics.items()}

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self.tags |= {k: str(v) for k, v in tags.items()}

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        name = Path(path).name
        self.artifacts[f"{artifact_path}/{name}" if artifact_path else name] = Path(
            path
        ).read_bytes()

    def log_text(self, text: str, artifact_file: str) -> None:
        self.artifacts[artifact_file] = text

    def log_json(self, value: Any, artifact_file: str) -> None:
        self.log_text(json.dumps(value, indent=2, sort_keys=True, default=str), artifact_file)

    def log_table(self, frame: pd.DataFrame, artifact_file: str) -> None:
        self.artifacts[artifact_file] = frame.to_parquet(index=False)

    def log_dataset(
        self, *, name: str, digest: str, kinds: Mapping[str, str], rows: int, context: str
    ) -> None:
        self.datasets.append(
            {"name": name, "digest": digest, "kinds": dict(kinds), "rows": rows,
             "context": context}
        )  # fmt: skip

    def log_generator(self, model: FittedGenerator, name: str = "generator") -> str:
        self.models.append(model)
        return f"m-{self.run_id}-{len(self.models)}"


class MemoryStore:
    """Runs in memory, ended FINISHED, FAILED or KILLED as :meth:`Tracker.run` ends them."""

    uri = "memory:"

    def __init__(self) -> None:
        self.runs: list[MemoryRun] = []

    def resumable(self, run_id: str, command: str) -> dict[str, str]:
        run = next((r for r in self.runs if r.run_id == run_id), None)
        if run is None:
            raise SynthguardError(f"--resume {run_id}: no such run in {self.uri}")
        if run.tags.get("synthguard.command") != command:
            raise SynthguardError(f"--resume {run_id}: that run is not a synthguard {command}")
        if run.status in ("FINISHED", "RUNNING"):
            raise SynthguardError(f"--resume {run_id}: that run is {run.status}")
        return dict(run.params)

    @contextlib.contextmanager
    def run(
        self,
        name: str,
        *,
        tags: Mapping[str, str] | None = None,
        parent: str | None = None,
        resume: str | None = None,
    ) -> Iterator[MemoryRun]:
        found = {k: str(v) for k, v in (tags or {}).items()}
        if parent is not None:
            found["mlflow.parentRunId"] = parent
        if resume is not None:
            run = next(r for r in self.runs if r.run_id == resume)
            run.status, run._logged = "RUNNING", dict(run.params)
            count = int(run.tags.get("synthguard.resumed", "0")) + 1
            run.set_tags(found | {"synthguard.resumed": count})
        else:
            run = MemoryRun(f"run{len(self.runs)}", name, found)
            self.runs.append(run)
        try:
            yield run
        except KeyboardInterrupt:
            run.status = "KILLED"
            raise
        except BaseException:
            run.status = "FAILED"
            raise
        run.status = "FINISHED"
