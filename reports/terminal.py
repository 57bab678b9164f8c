"""What the ``synthguard`` command shows on a terminal: rich tables of scores, the release gate,
a run and a comparison on stdout; progress bars, warnings and errors on stderr, one line each."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from synth.runtime import check_interrupt

if TYPE_CHECKING:
    from audit.gate import Verdict
    from audit.generate import GenerateResult
    from audit.jobs import CompareResult, CompareRow
    from audit.scores import Scorecard

out = Console()
err = Console(stderr=True, soft_wrap=True)  # soft wrap: an error stays one line

TERMINAL_COLUMNS = 8  # a comparison's first present ones; the report and MLflow hold them all


def fixed(value: float, digits: int) -> str:
    """A number with ``digits`` decimals, never "-0.00"."""
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def warn(message: str) -> None:
    """One ``warning:`` line on stderr (the ``notify`` of ``audit.jobs``)."""
    err.print(f"warning: {message}", highlight=False, markup=False)


def error(message: str) -> None:
    """One ``error:`` line on stderr."""
    err.print(f"error: {message}", highlight=False, markup=False)


def progress_bars() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )


class StageBars:
    """A ``StageProgress`` (stage, done, total) drawn as rich bars on stderr, one per stage,
    from the first report on. A comparison's stages (``<generator> · <stage>``, see
    ``audit.jobs.STAGE_GROUP``) get a bold heading and bars of their own per generator. Use it
    as a context manager: the bars end with the block."""

    def __init__(self) -> None:
        from audit.jobs import STAGE_GROUP

        self._separator = STAGE_GROUP
        self._bars: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        self._group: str | None = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        check_interrupt()  # a progress report is the checkpoint where a lost Ctrl-C resurfaces
        group, separator, name = stage.partition(self._separator)
        if not separator:
            group, name = "", stage
        if group != self._group:
            self.close()
            self._group = group
            if group:
                out.print(f"[bold]{group}[/bold]")
        if self._bars is None:
            self._bars, self._tasks = progress_bars(), {}
            self._bars.start()
        if name not in self._tasks:
            self._tasks[name] = self._bars.add_task(name, total=total)
        self._bars.update(self._tasks[name], completed=done, total=total)

    def close(self) -> None:
        """End the bars drawn so far (a later report starts new ones)."""
        if self._bars is not None:
            self._bars.stop()
            self._bars = None

    def warn(self, message: str) -> None:
        """A warning below the bars so far (the ``notify`` of a job shown with bars)."""
        self.close()
        warn(message)

    def error(self, message: str) -> None:
        self.close()
        error(message)

    def __enter__(self) -> StageBars:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def print_scorecard(card: Scorecard) -> None:
    table = Table(title="scorecard")
    table.add_column("score", overflow="fold")
    for heading in ("value", "goal", "interval", "baseline"):
        table.add_column(heading, no_wrap=True)
    for item in card:
        interval = f"{item.ci[0]:.3f} – {item.ci[1]:.3f}" if item.ci else ""
        baseline = f"{item.baseline:g}" if item.baseline is not None else ""
        goal = "higher" if item.goal == "max" else "lower"
        table.add_row(item.name, fixed(item.value, 4), goal, interval, baseline)
    out.print(table)


def print_run(result: GenerateResult) -> None:
    """A generate job's (or an audit's) scorecard, files and MLflow run."""
    if result.scorecard is not None:
        print_scorecard(result.scorecard)
    summary = Table(show_header=False, box=None)
    if result.output is not None:
        summary.add_row("synthetic table", f"{result.output}  ({result.rows} rows)")
    summary.add_row("fit / sample", f"{result.fit_seconds:.1f} s / {result.sample_seconds:.2f} s")
    summary.add_row("MLflow run", f"{result.run_id}  (store {result.tracking_uri})")
    if result.model_id:
        summary.add_row("logged model", f"models:/{result.model_id}")
    out.print(summary)
    out.print(f"Open the MLflow UI {_ui(result.tracking_uri)}", markup=False)


def _ui(store: str) -> str:
    """Where the MLflow UI of ``store`` is: a tracking server serves its own."""
    if store.startswith(("http://", "https://")):
        return f"at {store.rstrip('/')}"
    return "with: synthguard ui"


def print_audit(result: GenerateResult, report: Path | None) -> None:
    """An audit's release gate, then where its report and release card are."""
    print_verdict(result.verdict)
    out.print(f"report: {report}" if report is not None else "report: logged to the run")
    if result.release_card is not None:
        out.print(f"release card: {result.release_card}")


def print_verdict(verdict: Verdict | None) -> None:
    """The release gate, one line per rule; each failure's reason on stderr."""
    if verdict is None:
        return
    table = Table(title=f"release gate ({verdict.policy}): {'PASS' if verdict.passed else 'FAIL'}")
    for heading in ("metric", "value", "needs", "result"):
        table.add_column(heading, overflow="fold")
    for check in verdict.checks:
        value = "-" if check.value is None else fixed(check.value, 4)
        result = {True: "pass", False: "FAIL", None: "skipped"}[check.passed]
        table.add_row(check.metric, value, check.rule.split(" ", 1)[1], result)
    out.print(table)
    for check in verdict.failures:
        err.print(f"policy: {check.message}", highlight=False, markup=False)


def print_comparison(rows: Sequence[CompareRow], shown: Iterable[str]) -> None:
    """A comparison's table (the first ``TERMINAL_COLUMNS`` key metrics, the cost kept), then
    each failure's reason."""
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
        if row.failed:
            table.add_row(row.generator, *["-"] * len(columns), "FAILED")
            continue
        cells = [
            fixed(row.metrics[c], 1 if c.startswith("cost.") else 2) if c in row.metrics else "-"
            for c in columns
        ]
        verdict = {True: "pass", False: "fail", None: "-"}[row.verdict]
        table.add_row(row.generator, *cells, verdict)
    out.print(table)
    for row in rows:
        if row.failed:
            out.print(f"{row.generator} FAILED: {row.error}", markup=False)


def print_compare(result: CompareResult) -> None:
    """A comparison's table, its parent run and report, and where the MLflow UI shows it."""
    print_comparison(result.rows, result.columns)
    out.print(f"MLflow parent run {result.parent_run_id}  (store {result.tracking_uri})")
    if result.report is not None:
        out.print(f"comparison report: {result.report}")
    server = result.tracking_uri.startswith(("http://", "https://"))
    address = result.tracking_uri.rstrip("/") if server else "http://127.0.0.1:5000"
    out.print(
        f"In the MLflow UI ({address if server else 'synthguard ui'}), the comparison is "
        f"linked at the top of the experiment, or open {address}/{result.link}",
        markup=False,
        soft_wrap=True,
    )


def print_generators() -> None:
    """The registered generators, their descriptions and parameters."""
    from synth.registry import GENERATORS

    listing = Table("name", "description", "parameters")
    for name, cls in GENERATORS.items():
        fields = ", ".join(cls.__dataclass_fields__) or "-"
        listing.add_row(name, cls.description, fields)
    out.print(listing)


def print_attacks() -> None:
    """The registered attacks: what each does, its attacker (TAPAS's axes), the metrics every
    summary shows first, and the rules it adds to the default release policy. A list, not a
    table: metric names are long and must print whole, to be copied into a policy."""
    from attacks.registry import ATTACKS

    for name, attack in ATTACKS.items():
        threat = attack.threat()
        lines = [f"{name} ({threat.access}, {threat.goal}): {attack.summary}"]
        keys = ", ".join(f"privacy.{m}" for m in attack.key_metrics)
        lines += [f"    key metrics: {keys}"] if keys else []
        lines += [f'    default rule: "privacy.{m}" = "{r}"' for m, r in attack.rules.items()]
        out.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)
