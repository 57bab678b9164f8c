"""Typed scores: every number carries its direction, and where meaningful an interval and baseline.

Names are the stable MLflow metric names (``fidelity.*``, ``utility.*``, ``privacy.*``), so a
scorecard logs, prints and serialises the same way everywhere.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

_FIDELITY_KEYS = {
    "fidelity.quality": "qual",
    "fidelity.detection_auc": "detect",
    "utility.gap.roc_auc": "gap",
    "utility.gap.r2": "gap r2",
}


def key_metrics() -> dict[str, str]:
    """The scores every summary shows first (the release card, the reports, the terminal), in
    order, each with a heading short enough for a table that fits a page: fidelity and utility,
    each registered attack's key metrics (``attacks.registry``), then the fit's cost."""
    from attacks.registry import privacy_key_metrics

    return {**_FIDELITY_KEYS, **privacy_key_metrics(), "cost.fit_seconds": "fit s"}


@dataclass(frozen=True)
class Score:
    name: str
    value: float
    goal: Literal["max", "min"]
    ci: tuple[float, float] | None = None
    baseline: float | None = None
    """A reference value: what a perfect or a naive table scores (e.g. 0.5 for detection AUC)."""
    help: str = ""

    def metrics(self) -> dict[str, float]:
        """As MLflow metrics: the value, and ``_lo``/``_hi`` when there is an interval."""
        out = {self.name: self.value}
        if self.ci is not None:
            out[f"{self.name}_lo"], out[f"{self.name}_hi"] = self.ci
        return out


@dataclass
class Scorecard:
    """An ordered set of scores plus per-column details (a JSON artifact, not metrics)."""

    scores: list[Score] = field(default_factory=list)
    columns: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, score: Score) -> None:
        if not math.isfinite(score.value):
            return  # an undefined score (e.g. AUC with one class) is left out, not logged as NaN
        self.scores = [s for s in self.scores if s.name != score.name] + [score]

    def extend(self, scores: Iterable[Score]) -> None:
        for score in scores:
            self.add(score)

    def __iter__(self) -> Iterator[Score]:
        return iter(self.scores)

    def __getitem__(self, name: str) -> Score:
        for score in self.scores:
            if score.name == name:
                return score
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return any(score.name == name for score in self.scores)

    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for score in self.scores:
            out |= score.metrics()
        return out

    def to_json(self) -> str:
        return json.dumps(
            {"scores": [asdict(s) for s in self.scores], "columns": self.columns},
            indent=2,
            default=float,
        )
