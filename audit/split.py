"""The train/holdout split: made once, seeded, optionally stratified.

Generators fit on ``train`` only. ``holdout`` is real data the generator never saw: utility is
measured on it (train on synthetic, test on holdout) and privacy attacks use it as the
non-member reference. The split is recorded by row positions, which name rows without revealing
them, so a later audit can rebuild it exactly.

For an audit, ``canaries`` rows are drawn first, at random from the whole table, and each goes
to the training side or the holdout on its own fair coin: the membership targets of the one-run
epsilon bound (Steinke, Nasr & Jagielski 2023), which needs every target included independently
with probability 1/2. The other rows are split by ``fraction`` as usual.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from synth.errors import ParamError

# Strata smaller than this cannot put a row on both sides; they are pooled into one stratum.
_MIN_STRATUM = 2


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    holdout: pd.DataFrame
    holdout_rows: np.ndarray
    fraction: float
    seed: int
    stratify: str | None
    canary_rows: np.ndarray = field(default_factory=lambda: np.array([], dtype=int))
    canary_member: np.ndarray = field(default_factory=lambda: np.array([], dtype=bool))

    def record(self) -> dict[str, object]:
        """What reproduces the split, with rows named by position only."""
        return {
            "fraction": self.fraction,
            "seed": self.seed,
            "stratify": self.stratify,
            "n_train": len(self.train),
            "n_holdout": len(self.holdout),
            "holdout_rows": self.holdout_rows.tolist(),
            "canary_rows": self.canary_rows.tolist(),
        }

    def canaries(self, data: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        """The canary records (rows of ``data``, the table that was split) and whether each
        went to training."""
        return data.iloc[self.canary_rows], self.canary_member


def split_holdout(
    data: pd.DataFrame,
    *,
    fraction: float,
    seed: int,
    stratify: str | None = None,
    canaries: int = 0,
) -> Split:
    """Hold out ``fraction`` of the rows (0 keeps everything for training).

    With ``stratify``, each value of that column (missing values as their own value) is split
    in the same proportion, so rare classes appear on both sides. With ``canaries``, that many
    random rows are first sent to either side by a fair coin each (see the module's note).
    """
    check_split_options(fraction, stratify, data.columns)
    n = len(data)
    if not 0 <= canaries <= n:
        raise ParamError(f"canaries ({canaries}) must be between 0 and the {n} rows")
    rng = np.random.default_rng(seed)
    canary_rows = np.sort(rng.choice(n, size=canaries, replace=False))
    canary_member = rng.random(canaries) < 0.5
    rest = np.setdiff1d(np.arange(n), canary_rows)
    if fraction == 0:
        chosen = np.array([], dtype=int)
    elif stratify is None:
        size = holdout_size(len(rest), fraction)
        chosen = rest[rng.choice(len(rest), size=size, replace=False)]
    else:
        chosen = rest[_stratified(data[stratify].iloc[rest], fraction, rng)]
    chosen = np.sort(np.r_[chosen, canary_rows[~canary_member]]).astype(int)
    mask = np.zeros(n, dtype=bool)
    mask[chosen] = True
    if fraction > 0 and mask.all():
        raise ParamError(f"holdout fraction ({fraction}) leaves no rows to train on")
    return Split(
        train=data.iloc[~mask],
        holdout=data.iloc[mask],
        holdout_rows=chosen,
        fraction=fraction,
        seed=seed,
        stratify=stratify,
        canary_rows=canary_rows,
        canary_member=canary_member,
    )


def check_split_options(
    fraction: float, stratify: str | None, columns: Iterable[str] | None = None
) -> None:
    """Validate split options; with ``columns``, also that the stratify column exists."""
    if not 0 <= fraction < 1:
        raise ParamError(f"holdout fraction ({fraction}) must be >= 0 and < 1")
    if stratify is not None and columns is not None and stratify not in set(columns):
        raise ParamError(f"cannot stratify on {stratify!r}: no such column")


def holdout_size(n: int, fraction: float) -> int:
    """Rows an unstratified split of ``n`` rows holds out."""
    return min(n - 1, max(1, round(n * fraction))) if n > 1 else 0


def _stratified(labels: pd.Series, fraction: float, rng: np.random.Generator) -> np.ndarray:
    codes, _ = pd.factorize(labels, use_na_sentinel=False)
    counts = np.bincount(codes)
    small = counts[codes] < _MIN_STRATUM
    codes = np.where(small, -1, codes)
    chosen = []
    for code in np.unique(codes):
        members = np.flatnonzero(codes == code)
        size = holdout_size(len(members), fraction)
        chosen.append(rng.choice(members, size=size, replace=False))
    return np.concatenate(chosen) if chosen else np.array([], dtype=int)
