"""The generator registry: a literal dict, and building a spec from ``key=value`` strings."""

from __future__ import annotations

import types
import typing
from dataclasses import fields
from typing import Any

from synth.dp import AIM, MST, LeakyMST, PrivBayes
from synth.dp.sgd import DPCTGAN, DPTVAE, LeakyDPTVAE
from synth.errors import ParamError, UnknownNameError
from synth.generators import BaseGenerator, Identity, Independent
from synth.sdv_models import CTGAN, TVAE, CopulaGAN, GaussianCopula

GENERATORS: dict[str, type[BaseGenerator]] = {
    g.name: g
    for g in (
        GaussianCopula, CTGAN, TVAE, CopulaGAN, MST, AIM, PrivBayes, DPTVAE, DPCTGAN, Identity,
        Independent, LeakyMST, LeakyDPTVAE,
    )
}  # fmt: skip


def generator_class(name: str) -> type[BaseGenerator]:
    try:
        return GENERATORS[name]
    except KeyError:
        raise UnknownNameError("generator", name, GENERATORS) from None


def make_generator(name: str, params: dict[str, Any] | None = None) -> BaseGenerator:
    """Build a generator spec; ``params`` values may be strings (from ``--param key=value``)."""
    cls = generator_class(name)
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    params = dict(params or {})
    unknown = sorted(set(params) - known)
    if unknown:
        allowed = ", ".join(sorted(known)) or "none"
        raise ParamError(
            f"generator {name!r} has no parameter {', '.join(unknown)}; its parameters: {allowed}"
        )
    values = {key: _coerce(name, key, value, hints[key]) for key, value in params.items()}
    return cls(**values)


def parse_params(pairs: list[str] | None) -> dict[str, str]:
    """``["epochs=10", "pac=5"]`` -> ``{"epochs": "10", "pac": "5"}``."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ParamError(f"--param {pair!r} must look like key=value")
        out[key.strip()] = value.strip()
    return out


def _coerce(generator: str, key: str, value: Any, hint: Any) -> Any:
    if not isinstance(value, str):
        return value
    where = f"parameter {key!r} of {generator!r}"
    try:
        if hint is bool:
            lowered = value.lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return lowered in ("true", "1", "yes")
        if hint is int:
            return int(value)
        if hint is float:
            return float(value)
        if typing.get_origin(hint) is tuple:
            inner = typing.get_args(hint)[0]
            return tuple(inner(part) for part in value.replace(" ", "").split(",") if part)
        if hint is str or isinstance(hint, types.UnionType):
            return value
    except ValueError:
        pass
    else:
        return value
    kind = getattr(hint, "__name__", str(hint))
    raise ParamError(f"{where}: {value!r} is not a valid {kind}")
