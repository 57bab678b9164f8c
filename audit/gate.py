"""The release gate: a policy of thresholds on logged scores, and the verdict a privacy officer
signs.

A policy is TOML::

    [rules]
    "fidelity.quality" = ">= 0.8"
    "privacy.closest_distance.auc_hi" = "<= 0.6"
    "privacy.*.epsilon_lb" = "<= epsilon"   # a glob covers every matching metric

A rule is an operator (``>=``, ``<=``, ``>``, ``<``) and a number or ``epsilon`` (the DP
generator's claimed budget). A rule naming a metric the run lacks, or a glob that matches none,
fails and says so. For a generator that claims no epsilon, ``epsilon`` rules are skipped (there
is no claim to hold it to). A DP generator whose empirical epsilon lower bound exceeds its claim
always fails, whatever the policy says.
"""

from __future__ import annotations

import fnmatch
import math
import operator
import re
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from audit.scores import key_metrics
from synth.errors import ParamError

OPERATORS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}
_RULE = re.compile(r"^\s*(>=|<=|>|<)\s*(epsilon|[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)\s*$")
DP_RULE = ("privacy.*.epsilon_lb", "<= epsilon")


@dataclass(frozen=True)
class Rule:
    pattern: str
    op: str
    bound: float | None  # None: the claimed epsilon
    text: str

    @classmethod
    def parse(cls, pattern: str, text: Any) -> Rule:
        found = _RULE.match(str(text)) if isinstance(text, str) else None
        if found is None:
            raise ParamError(
                f"policy rule {pattern!r} = {text!r}: write an operator (>=, <=, >, <) and a "
                "number or 'epsilon', e.g. \"<= 0.6\""
            )
        bound = None if found[2] == "epsilon" else float(found[2])
        return cls(pattern, found[1], bound, f"{found[1]} {found[2]}")


@dataclass(frozen=True)
class Check:
    """One metric against one rule. ``passed`` is None when the rule does not apply."""

    rule: str
    metric: str
    value: float | None
    threshold: float | None
    passed: bool | None
    message: str


@dataclass(frozen=True)
class Verdict:
    checks: tuple[Check, ...]
    policy: str  # where the policy came from

    @property
    def passed(self) -> bool:
        return all(c.passed is not False for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.passed is False]

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "policy": self.policy,
            "checks": [asdict(c) for c in self.checks],
        }


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...]
    source: str

    @classmethod
    def parse(cls, text: str, source: str) -> Policy:
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise ParamError(f"policy {source} is not valid TOML: {error}") from None
        rules = document.get("rules")
        if not isinstance(rules, dict) or not rules:
            raise ParamError(f"policy {source} has no [rules] table")
        nested = [k for k, v in rules.items() if isinstance(v, dict)]
        if nested:
            raise ParamError(
                f'policy {source}: quote each metric name, e.g. "{nested[0]}.…" = ">= 0.8" '
                f"(an unquoted dotted name is a TOML table)"
            )
        return cls(tuple(Rule.parse(k, v) for k, v in rules.items()), source)

    @classmethod
    def load(cls, path: Path | None) -> Policy:
        """The policy at ``path``, or the default one: the file shipped with synthguard, then
        the rule each registered attack adds (``attacks.registry``)."""
        if path is None:
            from attacks.registry import privacy_rules

            text = resources.files("audit").joinpath("default_policy.toml").read_text()
            shipped = cls.parse(text, "default policy")
            declared = {r.pattern for r in shipped.rules}
            added = [Rule.parse(k, v) for k, v in privacy_rules().items() if k not in declared]
            return cls(shipped.rules + tuple(added), shipped.source)
        try:
            text = Path(path).read_text()
        except OSError as error:
            raise ParamError(f"cannot read policy {path}: {error.strerror}") from None
        return cls.parse(text, str(path))

    def judge(self, metrics: Mapping[str, float], *, epsilon: float | None) -> Verdict:
        """Every rule against the run's metrics; ``epsilon`` is the generator's claim."""
        rules = list(self.rules)
        if epsilon is not None and not any(
            r.pattern == DP_RULE[0] and r.bound is None and r.op == "<=" for r in rules
        ):
            rules.append(Rule.parse(*DP_RULE))  # a DP claim is always held to account
        checks: list[Check] = []
        for rule in rules:
            names = sorted(n for n in metrics if fnmatch.fnmatchcase(n, rule.pattern))
            label = f"{rule.pattern} {rule.text}"
            if rule.bound is None and epsilon is None:
                checks.append(Check(label, rule.pattern, None, None, None,
                                    "skipped: the generator claims no epsilon"))  # fmt: skip
                continue
            threshold = epsilon if rule.bound is None else rule.bound
            if not names:
                what = "matches no metric" if _is_glob(rule.pattern) else "is not a metric"
                checks.append(Check(label, rule.pattern, None, threshold, False,
                                    f"{rule.pattern} {what} of this run"))  # fmt: skip
                continue
            assert threshold is not None  # an epsilon rule without a claim was skipped above
            for name in names:
                value = float(metrics[name])
                ok = math.isfinite(value) and OPERATORS[rule.op](value, threshold)
                message = f"{name} = {value:.4g}, needs {rule.op} {threshold:.4g}"
                checks.append(Check(label, name, value, threshold, bool(ok), message))
        return Verdict(tuple(checks), self.source)


def _is_glob(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


def release_card(
    *, run_id: str, dataset: str, lineage: dict[str, str], generator: str, params: dict, epsilon,
    delta, rows: int, rows_source: str, scorecard, verdict: Verdict,
    synthetic_digest: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The card that travels with a released synthetic table: what it came from (a keyed
    digest only the data owner can check: ``lineage`` holds ``hmac`` and ``key_id``), how it was
    made, what the guarantee covers, what the audit found, and the verdict."""
    import datetime
    from importlib.metadata import version

    scores = {
        s.name: {"value": s.value, "ci": list(s.ci) if s.ci else None}
        for s in scorecard.scores if not s.name.startswith("cost.")
    }  # fmt: skip
    return {
        "synthguard": version("synthguard"),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "run_id": run_id,
        "dataset": dataset,
        "dataset_hmac": lineage["hmac"],
        "lineage_key_id": lineage["key_id"],
        "generator": generator,
        "params": params,
        "budget": {"epsilon": epsilon, "delta": delta} if epsilon is not None else None,
        "guarantee": guarantee(epsilon, delta, rows_source),
        "synthetic_rows": rows,
        "synthetic_rows_source": rows_source,
        "synthetic_digest": synthetic_digest,
        "verdict": verdict.to_dict(),
        "scores": scores,
    }


def guarantee(epsilon: float | None, delta: float | None, rows_source: str) -> dict[str, Any]:
    """What a release's formal guarantee covers, in words a privacy officer can sign."""
    if epsilon is None:
        return {
            "summary": "none: the generator makes no formal privacy claim; only the audit's "
            "empirical findings below speak for it",
            "covers": [],
            "not_covered": ["the synthetic table", "the model", "the audit scores"],
        }
    covers = ["the synthetic table", "the logged model"]
    if rows_source == "noisy count (DP)":
        covers.append("the number of synthetic rows (a noisy count)")
    not_covered = [
        "the declared schema (bounds and categories are public by assumption)",
        "the audit scores on this card (computed on the real data, not differentially private)",
    ]
    return {
        "summary": f"({epsilon}, {delta})-differential privacy for add/remove-one-record "
        "neighbours, covering " + ", ".join(covers),
        "neighbours": "add/remove one record",
        "covers": covers,
        "not_covered": not_covered,
    }


def release_markdown(card: dict[str, Any]) -> str:
    """The release card as Markdown: verdict first."""
    verdict = card["verdict"]
    budget = card["budget"]
    lines = [
        f"# Release card: {card['generator']} on {card['dataset']}",
        "",
        f"**Verdict: {'PASS' if verdict['passed'] else 'FAIL'}** ({verdict['policy']})",
        "",
        "| rule | metric | value | result |",
        "| --- | --- | --- | --- |",
    ]
    for check in verdict["checks"]:
        value = "-" if check["value"] is None else f"{check['value']:.4g}"
        result = {True: "pass", False: "FAIL", None: "skipped"}[check["passed"]]
        lines.append(f"| `{check['rule']}` | `{check['metric']}` | {value} | {result} |")
    lines += [
        "",
        f"- run id: `{card['run_id']}`",
        f"- data: HMAC-SHA256 `{card['dataset_hmac']}` under lineage key "
        f"`{card['lineage_key_id']}` (the data owner checks it with `synthguard lineage DATA "
        "--card CARD`; without the key it tells nothing about the data)",
        f"- generator: `{card['generator']}`",
        "- budget: "
        + (f"epsilon {budget['epsilon']}, delta {budget['delta']}" if budget else "none (not DP)"),
        f"- guarantee: {card['guarantee']['summary']}",
        f"- synthetic rows: {card['synthetic_rows']} ({card['synthetic_rows_source']}; digest "
        f"`{card.get('synthetic_digest')}`)",
        f"- created: {card['created']} by synthguard {card['synthguard']}",
        "",
        "| score | value | interval |",
        "| --- | --- | --- |",
    ]
    for name in key_metrics():
        if name in card["scores"]:
            score = card["scores"][name]
            ci = score["ci"]
            interval = f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
            lines.append(f"| `{name}` | {score['value']:.3f} | {interval} |")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class CardCheck:
    """A release card checked against a table (``synthguard lineage --card``)."""

    key_id: str  # the lineage key the card was signed with
    matches: bool | None  # None: signed with another key than the table's, so not checkable


def check_card(card: Path, lineage: Mapping[str, str]) -> CardCheck:
    """Whether the release card at ``card`` was made from the table whose keyed digest is
    ``lineage`` (``synth.io.lineage``: ``hmac`` and ``key_id``)."""
    import hmac
    import json

    try:
        found = json.loads(Path(card).read_text())
        claimed, claimed_key = found["dataset_hmac"], found["lineage_key_id"]
    except OSError as error:
        raise ParamError(f"cannot read card {card}: {error.strerror}") from None
    except (ValueError, KeyError, TypeError):
        raise ParamError(f"{card} is not a synthguard release card (.release.json)") from None
    if claimed_key != lineage["key_id"]:
        return CardCheck(claimed_key, None)
    return CardCheck(claimed_key, hmac.compare_digest(claimed, lineage["hmac"]))
