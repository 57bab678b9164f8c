"""The release gate: rules, globs, the epsilon claim, missing metrics, the shipped policy."""

from __future__ import annotations

import pytest

from audit.gate import Policy, check_card, release_card, release_markdown
from audit.scores import Score, Scorecard
from synth.errors import ParamError

METRICS = {
    "fidelity.quality": 0.85,
    "privacy.closest_distance.auc": 0.52,
    "privacy.closest_distance.auc_hi": 0.58,
    "privacy.closest_distance.epsilon_lb": 0.4,
    "privacy.shadow_distance.epsilon_lb": 1.7,
}

POLICY = """
[rules]
"fidelity.quality" = ">= 0.8"
"privacy.closest_distance.auc_hi" = "<= 0.6"
"privacy.*.epsilon_lb" = "<= epsilon"
"""


def test_rules_globs_and_the_epsilon_claim() -> None:
    verdict = Policy.parse(POLICY, "test").judge(METRICS, epsilon=1.0)
    by_metric = {c.metric: c for c in verdict.checks}
    assert by_metric["fidelity.quality"].passed
    assert by_metric["privacy.closest_distance.auc_hi"].passed
    # the glob covers both epsilon bounds; the shadow one exceeds the claim
    assert by_metric["privacy.closest_distance.epsilon_lb"].passed
    assert by_metric["privacy.shadow_distance.epsilon_lb"].passed is False
    assert not verdict.passed
    assert [c.metric for c in verdict.failures] == ["privacy.shadow_distance.epsilon_lb"]
    assert Policy.parse(POLICY, "test").judge(METRICS, epsilon=2.0).passed


def test_a_dp_claim_is_checked_even_when_the_policy_forgets_it() -> None:
    lax = Policy.parse('[rules]\n"fidelity.quality" = ">= 0.5"\n', "lax")
    assert lax.judge(METRICS, epsilon=None).passed  # no claim, nothing to hold it to
    verdict = lax.judge(METRICS, epsilon=1.0)
    assert not verdict.passed
    assert verdict.failures[0].metric == "privacy.shadow_distance.epsilon_lb"


def test_epsilon_rules_are_skipped_without_a_claim_and_missing_metrics_fail() -> None:
    policy = Policy.parse(
        '[rules]\n"privacy.*.epsilon_lb" = "<= epsilon"\n"utility.gap.auc" = "<= 0.1"\n'
        '"privacy.inference.*.risk" = "<= 0.5"\n',
        "test",
    )
    checks = policy.judge(METRICS, epsilon=None).checks
    assert checks[0].passed is None and "claims no epsilon" in checks[0].message
    assert checks[1].passed is False and "utility.gap.auc is not a metric" in checks[1].message
    assert checks[2].passed is False and "matches no metric" in checks[2].message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[rules]\n"fidelity.quality" = "about 0.8"\n', "write an operator"),
        ('[rules]\n"fidelity.quality" = 0.8\n', "write an operator"),
        ("[other]\n", "has no [rules] table"),
        ("[rules\n", "not valid TOML"),
    ],
)
def test_bad_policies_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(ParamError, match=message.replace("[", r"\[")):
        Policy.parse(text, "bad.toml")


def test_the_shipped_policy_loads_and_judges() -> None:
    policy = Policy.load(None)
    assert policy.source == "default policy"
    patterns = {r.pattern for r in policy.rules}
    assert "privacy.*.epsilon_lb" in patterns and "fidelity.quality" in patterns
    # and the rules each registered attack adds (attacks.registry)
    assert {"privacy.closest_distance.auc_lo", "privacy.linkability.risk_lo"} <= patterns


def test_release_card_has_lineage_budget_guarantee_scores_and_verdict() -> None:
    card = Scorecard(
        [
            Score("fidelity.quality", 0.85, "max"),
            Score("privacy.closest_distance.auc", 0.52, "min", ci=(0.46, 0.58)),
        ]
    )
    verdict = Policy.parse(POLICY, "test").judge(card.metrics(), epsilon=1.0)
    release = release_card(
        run_id="abc", dataset="d", lineage={"hmac": "0123", "key_id": "k1"}, generator="mst",
        params={"epsilon": 1.0}, epsilon=1.0, delta=1e-9, rows=10,
        rows_source="noisy count (DP)", scorecard=card, verdict=verdict,
    )  # fmt: skip
    assert (release["dataset_hmac"], release["lineage_key_id"]) == ("0123", "k1")
    assert "dataset_digest" not in release and release["run_id"] == "abc"
    assert release["budget"] == {"epsilon": 1.0, "delta": 1e-9}
    assert release["guarantee"]["neighbours"] == "add/remove one record"
    assert "the number of synthetic rows (a noisy count)" in release["guarantee"]["covers"]
    assert any("not differentially private" in n for n in release["guarantee"]["not_covered"])
    assert release["scores"]["privacy.closest_distance.auc"]["ci"] == [0.46, 0.58]
    assert release["verdict"]["passed"] == verdict.passed
    text = release_markdown(release)
    assert text.splitlines()[2].startswith("**Verdict:")


def test_a_card_is_checked_against_a_table_only_under_its_key(tmp_path) -> None:
    """``synthguard lineage --card``: the card's keyed digest matches its table, not another
    one; a card signed with another key cannot be checked; a file that is no card is refused."""
    import json

    import pandas as pd

    from synth.io import lineage

    table, other = pd.DataFrame({"a": [1, 2, 3]}), pd.DataFrame({"a": [1, 2, 4]})
    keyed = lineage(table)
    card = tmp_path / "t.release.json"
    card.write_text(json.dumps({"dataset_hmac": keyed["hmac"], "lineage_key_id": keyed["key_id"]}))
    assert check_card(card, keyed).matches is True
    assert check_card(card, lineage(other)).matches is False
    stranger = check_card(card, {"hmac": keyed["hmac"], "key_id": "someone-else"})
    assert stranger.matches is None and stranger.key_id == keyed["key_id"]
    (tmp_path / "no.json").write_text("{}")
    with pytest.raises(ParamError, match="is not a synthguard release card"):
        check_card(tmp_path / "no.json", keyed)
    with pytest.raises(ParamError, match="cannot read card"):
        check_card(tmp_path / "missing.json", keyed)
