"""The attack registry: a literal dict, as ``synth.registry`` is for generators.

The audit runs these in order (each that ``applies``); the release gate, the reports and the
terminal read their key metrics and default rules from here. Add an attack: one module with an
``attacks.base.Attack`` subclass, and one line below.
"""

from __future__ import annotations

from attacks.anonymeter import Linkability, SinglingOut
from attacks.base import Attack
from attacks.distance import ClosestDistance, DensityRatio
from attacks.inference import AttributeInference
from attacks.shadow import Shadow

ATTACKS: dict[str, Attack] = {
    a.name: a
    for a in (
        ClosestDistance(), DensityRatio(), AttributeInference(), SinglingOut(),
        Linkability(), Shadow(),
    )
}  # fmt: skip


def privacy_key_metrics() -> dict[str, str]:
    """Every registered attack's key metrics, as full metric names: short heading."""
    return {
        f"privacy.{metric}": heading
        for attack in ATTACKS.values()
        for metric, heading in attack.key_metrics.items()
    }


def privacy_rules() -> dict[str, str]:
    """The rules the registered attacks add to the default release policy."""
    return {
        f"privacy.{metric}": rule
        for attack in ATTACKS.values()
        for metric, rule in attack.rules.items()
    }
