"""Threat models as data, after TAPAS (Houssiau et al., "TAPAS: a Toolbox for Adversarial
Privacy Auditing of Synthetic Data", 2022): what the attacker knows of the data, what access it
has to the generator, and what it wants. Every attack declares the threat model it plays under,
and the audit logs them next to the scores, so a number is never read without its attacker.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from synth.errors import ParamError

Knowledge = Literal["auxiliary", "all_but_one"]
Access = Literal["no_box", "black_box"]
Goal = Literal["membership", "attribute", "singling_out", "linkability"]

KNOWLEDGE: dict[str, str] = {
    "auxiliary": "a sample of the same population, disjoint from the training data",
    "all_but_one": "the exact training set except the target records (the worst case DP bounds)",
}
ACCESS: dict[str, str] = {
    "no_box": "one released synthetic table",
    "black_box": "the generator itself, to fit on data of its choice and sample",
}
GOALS: dict[str, str] = {
    "membership": "tell whether a target record was in the training data",
    "attribute": "infer a target's secret column from its other columns",
    "singling_out": "write a predicate that matches exactly one training record",
    "linkability": "link two halves of a record's columns through the synthetic table",
}


@dataclass(frozen=True, kw_only=True)
class ThreatModel:
    """One attacker: knowledge of the data x access to the generator x goal."""

    knowledge: Knowledge = "auxiliary"
    access: Access = "no_box"
    goal: Goal = "membership"

    def __post_init__(self) -> None:
        for field, value, known in (
            ("knowledge", self.knowledge, KNOWLEDGE),
            ("access", self.access, ACCESS),
            ("goal", self.goal, GOALS),
        ):
            if value not in known:
                raise ParamError(f"{field} ({value!r}) must be one of: {', '.join(known)}")

    def describe(self) -> str:
        return (
            f"knows {KNOWLEDGE[self.knowledge]}; has {ACCESS[self.access]}; "
            f"wants to {GOALS[self.goal]}"
        )

    def as_dict(self) -> dict[str, str]:
        return {**asdict(self), "description": self.describe()}
