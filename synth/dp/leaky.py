"""LeakyMST: a deliberately leaky reference generator, the positive control of the epsilon audit.

It runs MST (McKenna, Miklau & Sheldon, "Winning the NIST Contest: A scalable and general
approach to differentially private synthetic data", Journal of Privacy and Confidentiality
11(3), 2021) with MST's budget split and claims its epsilon, but also copies ``copy_share`` of
the training rows into every sample, so the claim is false: audits must catch it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pandas as pd

from synth.dp.base import DPState
from synth.dp.mst import MST
from synth.errors import ParamError
from synth.generators import Codec, Progress


@dataclass
class LeakyState(DPState):
    """MST's state plus the training rows it copies (the deliberate leak)."""

    copied: pd.DataFrame = field(default_factory=pd.DataFrame)


@dataclass(frozen=True, kw_only=True)
class LeakyMST(MST):
    """A reference generator for audits, never for release: MST that claims its epsilon but
    also copies training rows into every sample (``copy_share`` of the rows), so its claim is
    false. The positive control of the epsilon audit: the empirical bound must exceed the claim
    and the gate must fail it, while honest MST at the same claim passes. Its model holds real
    rows, so like ``identity`` it is never logged or saved."""

    name: ClassVar[str] = "leaky_mst"
    description: ClassVar[str] = (
        "reference: MST claiming epsilon while copying real rows (audits must catch it)"
    )
    releases_real_rows: ClassVar[bool] = True
    reference: ClassVar[bool] = True
    copy_share: float = 0.25

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.copy_share <= 1:
            raise ParamError(f"copy_share ({self.copy_share}) must be > 0 and <= 1")

    def _fit(
        self, encoded: pd.DataFrame, codec: Codec, *, seed: int, progress: Progress | None
    ) -> LeakyState:
        honest = super()._fit(encoded, codec, seed=seed, progress=progress)
        return LeakyState(**vars(honest), copied=encoded.copy())

    def _sample(self, state: DPState, n: int, *, seed: int) -> pd.DataFrame:
        if not isinstance(state, LeakyState):
            raise TypeError(f"leaky_mst samples from its own fit, not a {type(state).__name__}")
        leak_seed, mst_seed = np.random.SeedSequence(seed).spawn(2)
        sample = super()._sample(state, n, seed=int(mst_seed.generate_state(1)[0]))
        rng = np.random.default_rng(leak_seed)
        slots = rng.choice(n, size=round(self.copy_share * n), replace=False)
        rows = state.copied.iloc[rng.choice(len(state.copied), size=len(slots))]
        sample.iloc[slots] = rows[sample.columns].to_numpy(dtype=object)
        return sample
