"""synth: table schema, generators (SDV family, reference generators) and their runtime policy.

Importing this package is fast: torch, sdv and ctgan load only when a generator that needs them
fits or samples.
"""

from synth.errors import (
    DataError,
    OutputError,
    ParamError,
    SchemaError,
    SynthguardError,
    UnknownNameError,
)
from synth.generators import BaseGenerator, FittedGenerator, Generator
from synth.registry import GENERATORS, generator_class, make_generator, parse_params
from synth.schema import Column, Schema

__all__ = [
    "GENERATORS",
    "BaseGenerator",
    "Column",
    "DataError",
    "FittedGenerator",
    "Generator",
    "OutputError",
    "ParamError",
    "Schema",
    "SchemaError",
    "SynthguardError",
    "UnknownNameError",
    "generator_class",
    "make_generator",
    "parse_params",
]
