"""The generate job: split, fit on train, sample, write the table, log one MLflow run.

Logged (never real rows): params (the generator spec flattened, seeds, sizes), metrics
``cost.fit_seconds`` and ``cost.sample_seconds``, tags (generator, dataset name and digest,
schema source), dataset lineage by digest and column kinds, the split by row positions, the schema
when it was declared (an inferred one holds real extremes and categories, so only its column
kinds are logged), the synthetic table as Parquet and the generator as a pyfunc model. For a
generator that releases training rows (``identity``) neither its table nor its model is logged.

The same job is the audit (``attacks``: privacy attacks, per-record results by row index, threat
models), the release gate (``policy``: ``verdict.json``, ``gate.passed``, a release card) and the
report (``render``, supplied by the composition root, since ``audit`` does not import
``reports``); ``compare`` runs it once per generator as child runs of one parent.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from attacks.one_run import audits
from audit.gate import Policy, Verdict, guarantee, release_card, release_markdown
from audit.privacy import AttackSettings, canary_count, fit_runner, privacy_scores
from audit.scorecard import build_scorecard
from audit.scores import Scorecard
from audit.split import Split, split_holdout
from audit.tracking import RunLog, RunStore, Tracker, flatten
from synth.errors import SynthguardError
from synth.generators import BaseGenerator, FittedGenerator
from synth.io import Outputs, digest, lineage
from synth.parallel import ClusterLost, FitRunner
from synth.runtime import child_seeds
from synth.schema import Schema

StageProgress = Callable[[str, int, int], None]
"""Called with (stage, done, total)."""


@dataclass(frozen=True, kw_only=True)
class GenerateJob:
    data: pd.DataFrame
    dataset: str
    schema: Schema
    spec: BaseGenerator
    rows: int | None = None
    seed: int = 0
    threads: int = 1
    holdout: float = 0.2
    stratify: str | None = None
    output: Path | None = None
    save_model: Path | None = None
    log_model: bool = True
    score: bool = True
    target: str | None = None
    json_out: Path | None = None
    attacks: AttackSettings | None = None
    policy: Policy | None = None  # the release gate, judged on the run's metrics
    card_stem: Path | None = None  # the release card: <stem>.release.json and .md
    outputs: Outputs | None = None
    """Where the files go: planned (checked) before the run and committed by the caller after
    it; without one, the job plans its own files and commits them when the run has ended."""
    render: Callable[[AuditOutcome], list[Path]] | None = None  # report files, logged as artifacts
    command: str = "generate"
    parent_run: str | None = None  # a child run of this run (compare)
    lineage: dict[str, str] | None = None  # keyed digest of the table as read (synth.io.lineage)
    runner: FitRunner | None = None
    """Where the shadow fits run, and their cache; without one, the job makes its own from
    ``attacks`` (cache beside the MLflow store) and closes it when the run has ended."""
    resume: str | None = None  # an interrupted run of the same job to log into again


@dataclass(frozen=True, kw_only=True)
class AuditOutcome:
    """What a report needs, handed to ``GenerateJob.render`` inside the run."""

    run_id: str
    train: pd.DataFrame
    synthetic: pd.DataFrame
    schema: Schema
    scorecard: Scorecard
    privacy: dict
    threat_models: dict
    verdict: Verdict | None
    meta: dict[str, str]
    cost: dict[str, float]
    synthetic_is_real: bool = False


@dataclass(frozen=True)
class GenerateResult:
    synthetic: pd.DataFrame
    output: Path | None
    rows: int
    fit_seconds: float
    sample_seconds: float
    run_id: str
    tracking_uri: str
    model_id: str | None
    scorecard: Scorecard | None = None
    verdict: Verdict | None = None
    release_card: Path | None = None
    reports: tuple[Path, ...] = ()


def _silent(stage: str, done: int, total: int) -> None:
    return None


@dataclass(frozen=True)
class _Seeds:
    split: int
    fit: int
    sample: int


def run_generate(
    job: GenerateJob,
    *,
    experiment: str = "synthguard",
    tracking_uri: str | None = None,
    progress: StageProgress | None = None,
    store: RunStore | None = None,
) -> GenerateResult:
    """Run ``job`` in one run of ``store`` (default: MLflow at ``tracking_uri``): split, then the
    fit, score, attack, gate, render and log steps, each logging what it made as it ends (so an
    interrupted run keeps what it finished). Files are committed when the run has ended."""
    report = progress or _silent
    frame = job.schema.conform(job.data)  # every schema problem at once, before any run starts
    seeds = _Seeds(*child_seeds(job.seed, 3))
    canaries = canary_count(job.attacks, len(frame)) if job.attacks is not None else 0
    split = split_holdout(
        frame, fraction=job.holdout, seed=seeds.split, stratify=job.stratify, canaries=canaries
    )
    spec = job.spec
    # what travels (card, report) names the data by a keyed digest only
    keyed = job.lineage or (lineage(job.data) if job.policy or job.render else None)
    outputs = job.outputs if job.outputs is not None else plan_outputs(job, Outputs())
    spec.load_libraries()  # the heavy imports before the run exists: Ctrl-C there leaves none
    runs = store if store is not None else Tracker(tracking_uri, experiment)
    if job.resume is not None:  # before anything is fitted: the same job, or one clear error
        _check_resume(runs.resumable(job.resume, job.command), job, split, seeds)
    with contextlib.ExitStack() as stack:
        runner = job.runner
        if runner is None and job.attacks is not None and job.attacks.n_shadow:
            runner = stack.enter_context(fit_runner(job.attacks, runs.uri))
        result = _run(job, runs, runner, frame, split, seeds, keyed, outputs, report)
    if job.outputs is None:  # the job planned its own files: commit them now the run has ended
        outputs.commit()
    return result


def _run(
    job: GenerateJob, runs: RunStore, runner: FitRunner | None, frame: pd.DataFrame,
    split: Split, seeds: _Seeds, keyed: dict[str, str] | None, outputs: Outputs,
    report: StageProgress,
) -> GenerateResult:  # fmt: skip
    spec = job.spec
    run_started = time.perf_counter()
    tags = {
        "synthguard.command": job.command,
        "synthguard.generator": spec.name,
        "synthguard.dataset": job.dataset,
        "synthguard.dataset_digest": digest(frame),
        "synthguard.schema_source": job.schema.source,
    }
    verdict: Verdict | None = None
    card_path: Path | None = None
    reports: tuple[Path, ...] = ()
    with runs.run(
        f"{spec.name} · {job.dataset}", tags=tags, parent=job.parent_run, resume=job.resume
    ) as run:
        _log_setup(run, job, split, seeds)
        model, rows, rows_source = _fit(run, job, split, seeds, report)
        report("sample", 0, rows)
        started = time.perf_counter()
        synthetic = model.sample(rows, seed=seeds.sample, threads=job.threads)
        sample_seconds = time.perf_counter() - started
        report("sample", rows, rows)
        run.log_metrics({"cost.sample_seconds": sample_seconds})
        if job.output is not None:
            outputs.write_table(job.output, synthetic)
        if job.save_model is not None:
            outputs.write_bytes(job.save_model, model.dumps())

        card = _score(run, job, split, synthetic, report)
        privacy: dict[str, Any] = {}
        if card is not None and job.attacks is not None:
            privacy = _attack(run, job, job.attacks, split, frame, synthetic, card, report, runner)
        threats = privacy.pop("threat_models", {})
        if card is not None and job.json_out is not None:
            outputs.write_text(job.json_out, card.to_json())
        if card is not None and job.policy is not None:
            assert keyed is not None  # drawn above whenever there is a policy
            verdict, card_path = _gate(
                run, job, job.policy, card, keyed, rows, rows_source, synthetic, outputs
            )
        if card is not None and job.render is not None:
            assert keyed is not None  # drawn above whenever there is a renderer
            report("report", 0, 1)
            outcome = AuditOutcome(
                run_id=run.run_id, train=split.train, synthetic=synthetic, schema=job.schema,
                scorecard=card, privacy=privacy, threat_models=threats, verdict=verdict,
                meta=_meta(job, run.run_id, keyed, len(split.train), len(split.holdout), rows),
                cost={
                    "fit seconds": model.fit_seconds, "sample seconds": sample_seconds,
                    "generator fits": 1 + (privacy.get("shadow", {}).get("fits", 0)),
                    "audit seconds": time.perf_counter() - run_started,
                },
                synthetic_is_real=spec.releases_real_rows,
            )  # fmt: skip
            reports = tuple(job.render(outcome))
            for path in reports:
                run.log_artifact(path, "report")
            report("report", 1, 1)
        model_id = _log_release(run, job, model, synthetic, report)

    return GenerateResult(
        synthetic=synthetic, output=job.output, rows=rows, fit_seconds=model.fit_seconds,
        sample_seconds=sample_seconds, run_id=run.run_id, tracking_uri=runs.uri,
        model_id=model_id, scorecard=card, verdict=verdict, release_card=card_path,
        reports=reports,
    )  # fmt: skip


def _setup_params(job: GenerateJob, split: Split, seeds: _Seeds) -> dict[str, Any]:
    """The spec, seeds, sizes and (in an audit) the attacks: what makes the run's numbers."""
    params: dict[str, Any] = {
        "generator": job.spec.name, "spec": job.spec.params(), "seed": job.seed,
        "seed.split": seeds.split, "seed.fit": seeds.fit, "seed.sample": seeds.sample,
        "n_train": len(split.train), "n_holdout": len(split.holdout),
        "holdout": job.holdout, "stratify": job.stratify or "", "threads": job.threads,
    }  # fmt: skip
    if job.attacks is not None:  # where the fits run (backend, jobs) changes no number
        settings = job.attacks
        params["attacks"] = {
            "n_targets": settings.n_targets, "secrets": settings.secrets,
            "n_shadow": settings.n_shadow, "shadow_targets": settings.shadow_targets,
            "knowledge": settings.knowledge,
            # the shadow sets' rows: as asked (--train-size), else the release's (or the most
            # the holdout allows; the report says when that is fewer)
            "train_size": settings.train_size or "release",
        }  # fmt: skip
        if audits(job.spec):  # the one-run audit's canaries: only a DP-SGD generator has one
            params["attacks"]["one_run_canaries"] = settings.one_run
    return params


def _check_resume(logged: dict[str, str], job: GenerateJob, split: Split, seeds: _Seeds) -> None:
    """Refuse to resume a run with a job that differs from the one that started it."""
    wanted = flatten(_setup_params(job, split, seeds))
    differ = [
        f"{k} ({logged[k]} there, {v} here)" for k, v in wanted.items()
        if k in logged and logged[k] != v
    ]  # fmt: skip
    if differ:
        raise SynthguardError(
            f"--resume {job.resume}: that run was started with other settings: "
            + "; ".join(differ[:5])
        )


def _log_setup(run: RunLog, job: GenerateJob, split: Split, seeds: _Seeds) -> None:
    """The spec, seeds and sizes; the split's lineage (digests and row positions, no values)."""
    run.log_params(_setup_params(job, split, seeds))
    for context, part in (("training", split.train), ("holdout", split.holdout)):
        if len(part):
            run.log_dataset(
                name=f"{job.dataset}:{context}", digest=digest(part), kinds=job.schema.kinds(),
                rows=len(part), context=context,
            )  # fmt: skip
    run.log_json(split.record(), "split.json")
    if job.schema.source == "declared":
        run.log_text(job.schema.to_toml(), "schema.toml")
    else:
        run.log_json(job.schema.kinds(), "schema_kinds.json")


def _fit(
    run: RunLog, job: GenerateJob, split: Split, seeds: _Seeds, report: StageProgress
) -> tuple[FittedGenerator, int, str]:
    """Fit on the training rows; the rows to sample and where that number comes from; for a
    DP generator its ledger and what its guarantee covers."""
    spec = job.spec
    stage, fit_total = f"fit {spec.name}", [1]

    def on_fit(done: int, total: int) -> None:
        fit_total[0] = total
        report(stage, done, total)

    on_fit(0, 1)
    model = spec.fit(split.train, job.schema, seed=seeds.fit, threads=job.threads, progress=on_fit)
    report(stage, fit_total[0], fit_total[0])
    run.log_metrics({"cost.fit_seconds": model.fit_seconds})
    _log_details(run, model.details)
    # by default as many rows as the training set; for a DP generator its noisy estimate
    rows = job.rows if job.rows is not None else model.default_rows
    rows_source = "asked" if job.rows is not None else _rows_source(model)
    run.log_params({"rows": rows, "rows_source": rows_source})
    budget = spec.budget
    if budget is not None:  # what the formal guarantee covers, in the run itself
        covered = guarantee(budget.epsilon, budget.delta, rows_source)
        run.set_tags({"synthguard.guarantee": covered["summary"]})
        run.log_json(covered, "guarantee.json")
    return model, rows, rows_source


def _score(
    run: RunLog, job: GenerateJob, split: Split, synthetic: pd.DataFrame, report: StageProgress
) -> Scorecard | None:
    """Fidelity and utility (an empty card for an audit asked not to score); None when the job
    neither scores nor attacks. Logged at once: kept if the attacks are interrupted."""
    if not job.score and job.attacks is None:
        return None
    report("score", 0, 1)
    card = (
        build_scorecard(
            split.train, synthetic, job.schema, holdout=split.holdout, target=job.target,
            seed=job.seed,
        )
        if job.score
        else Scorecard()
    )  # fmt: skip
    report("score", 1, 1)
    log_scorecard(run, card)
    return card


def _attack(
    run: RunLog, job: GenerateJob, settings: AttackSettings, split: Split, frame: pd.DataFrame,
    synthetic: pd.DataFrame, card: Scorecard, report: StageProgress, runner: FitRunner | None,
) -> dict[str, Any]:  # fmt: skip
    """Every registered attack that applies, on the split's canaries; their scores join
    ``card``; per-record results (row positions) and threat models logged as artifacts; the
    shadow fits made and read from the cache (``cost.shadow_fits_made``, ``_reused``)."""
    budget = job.spec.budget
    before = (runner.made, runner.reused) if runner is not None else (0, 0)
    try:
        scores, records = privacy_scores(
            split.train, split.holdout, synthetic, job.schema, settings,
            delta=budget.delta if budget is not None else 0.0, spec=job.spec,
            progress=lambda done, total: report("shadow fits", done, total),
            canaries=split.canaries(frame),
            stage=lambda done, total: report("privacy attacks", done, total), runner=runner,
        )  # fmt: skip
    except ClusterLost as error:
        if runner is None or runner.cache is None:
            raise
        again = f"--resume {run.run_id}" if job.command == "audit" else "the same command"
        raise ClusterLost(f"{error}; the fits made are cached: finish with {again}") from None
    if runner is not None and settings.n_shadow:
        run.log_metrics({"cost.shadow_fits_made": runner.made - before[0],
                         "cost.shadow_fits_reused": runner.reused - before[1]})  # fmt: skip
    logged = set(card.metrics())
    card.extend(scores)
    run.log_json(records["threat_models"], "threat_models.json")
    run.log_json({k: v for k, v in records.items() if k != "threat_models"}, "privacy_records.json")
    log_scorecard(run, card, logged=logged)
    return records


def _gate(
    run: RunLog, job: GenerateJob, policy: Policy, card: Scorecard, keyed: dict[str, str],
    rows: int, rows_source: str, synthetic: pd.DataFrame, outputs: Outputs,
) -> tuple[Verdict, Path | None]:  # fmt: skip
    """The release policy's verdict, and the release card that travels with the table."""
    budget = job.spec.budget
    epsilon = budget.epsilon if budget is not None else None
    verdict = policy.judge(card.metrics(), epsilon=epsilon)
    run.log_metrics({"gate.passed": float(verdict.passed)})
    run.set_tags({"synthguard.verdict": "pass" if verdict.passed else "fail"})
    run.log_json(verdict.to_dict(), "verdict.json")
    release = release_card(
        run_id=run.run_id, dataset=job.dataset, lineage=keyed, generator=job.spec.name,
        params=job.spec.params(), epsilon=epsilon,
        delta=budget.delta if budget is not None else None, rows=rows, rows_source=rows_source,
        scorecard=card, verdict=verdict, synthetic_digest=digest(synthetic),
    )  # fmt: skip
    run.log_json(release, "release_card.json")
    run.log_text(release_markdown(release), "release_card.md")
    if job.card_stem is None:
        return verdict, None
    card_path = card_paths(job.card_stem)[0]
    outputs.write_text(card_path, json.dumps(release, indent=2))
    outputs.write_text(card_path.with_suffix(".md"), release_markdown(release))
    return verdict, card_path


def _meta(
    job: GenerateJob, run_id: str, keyed: dict[str, str], train: int, holdout: int, rows: int
) -> dict[str, str]:
    """The report's header: what was audited, named by keyed digest only."""
    budget = job.spec.budget
    return {
        "generator": job.spec.name, "dataset": job.dataset,
        "dataset HMAC": f"{keyed['hmac'][:32]}… (key {keyed['key_id']})", "run id": run_id,
        "seed": str(job.seed), "training rows": str(train), "holdout rows": str(holdout),
        "synthetic rows": str(rows),
        "epsilon": str(budget.epsilon) if budget is not None else "none (not DP)",
    }  # fmt: skip


def _log_release(
    run: RunLog, job: GenerateJob, model: FittedGenerator, synthetic: pd.DataFrame,
    report: StageProgress,
) -> str | None:  # fmt: skip
    """The synthetic table and the model (its id), unless the generator releases real rows."""
    if job.spec.releases_real_rows:
        run.set_tags({"synthguard.releases_real_rows": "true"})
        return None
    report("log to MLflow", 0, 1)
    run.log_table(synthetic, f"synthetic/{job.spec.name}.parquet")
    model_id = run.log_generator(model) if job.log_model else None
    report("log to MLflow", 1, 1)
    return model_id


def card_paths(stem: Path) -> tuple[Path, Path]:
    """The release card's files: ``<stem>.release.json`` and ``.md``."""
    card = stem.with_name(f"{stem.name}.release.json")
    return card, card.with_suffix(".md")


def plan_outputs(job: GenerateJob, outputs: Outputs) -> Outputs:
    """Check every file ``job`` will write, before anything is fitted (see ``Outputs``)."""
    if job.output is not None:
        outputs.plan(job.output, what="--out", suffixes=(".csv", ".parquet", ".pq"))
    if job.save_model is not None:
        outputs.plan(job.save_model, what="--save-model")
    if job.json_out is not None:
        outputs.plan(job.json_out, what="--json")
    if job.policy is not None and job.card_stem is not None:
        for path in card_paths(job.card_stem):
            outputs.plan(path, what="the release card")
    return outputs


def _rows_source(model: FittedGenerator) -> str:
    return "training rows" if model.n_train is not None else "noisy count (DP)"


def _log_details(run: RunLog, details: dict[str, Any]) -> None:
    """A DP generator's ledger (params, metrics, JSON artifact) and its cost breakdown."""
    costs = {f"cost.{k}": v for k, v in details.items() if k.endswith("_seconds")}
    if costs:
        run.log_metrics(costs)
    privacy = details.get("privacy")
    if privacy is None:
        return
    run.log_params(
        {"epsilon": privacy["epsilon"], "delta": privacy["delta"], "rho": privacy["rho"]}
    )
    run.log_metrics(
        {
            "privacy.budget.rho_spent": privacy["rho_spent"],
            "privacy.budget.epsilon_spent": privacy["epsilon_spent"],
            "privacy.budget.measurements": len(privacy["steps"]),
        }
    )
    run.set_tags({"synthguard.dp": "true", "synthguard.dp_noise": privacy["noise"]})
    run.log_json(privacy, "privacy_accounting.json")
    if "domain" in details:  # a DP-estimated domain is a DP release: safe to log
        run.log_text(details["domain"], "dp_domain.toml")


def log_scorecard(run: RunLog, card: Scorecard, *, logged: Collection[str] = frozenset()) -> None:
    """Scores as metrics under their stable names (but those in ``logged``, already in the
    run); per-column details and every score as a JSON artifact."""
    run.log_metrics({k: v for k, v in card.metrics().items() if k not in logged})
    run.log_text(card.to_json(), "scorecard.json")
