"""The train/holdout split: made once, seeded, optionally stratified.

Generators fit on ``train`` only. ``holdout`` is real data the generator never saw: utility is
measured on it (train on synthetic, test on holdout) and privacy attacks use it as the
non-member reference. The split is recorded by row positions, which name rows without revealing
them, so a later audit can rebuild it exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

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

    def record(self) -> dict[str, object]:
        """What reproduces the split, with rows named by position only."""
        return {
            "fraction": self.fraction,
            "seed": self.seed,
            "stratify": self.stratify,
            "n_train": len(self.train),
            "n_holdout": len(self.holdout),
            "holdout_rows": self.holdout_rows.tolist(),
        }


def split_holdout(
    data: pd.DataFrame, *, fraction: float, seed: int, stratify: str | None = None
) -> Split:
    """Hold out ``fraction`` of the rows (0 keeps everything for training).

    With ``stratify``, each value of that column (missing values as their own value) is split
    in the same proportion, so rare classes appear on both sides.
    """
    check_split_options(fraction, stratify, data.columns)
    n = len(data)
    rng = np.random.default_rng(seed)
    if fraction == 0:
        chosen = np.array([], dtype=int)
    elif stratify is None:
        size = holdout_size(n, fraction)
        chosen = rng.choice(n, size=size, replace=False)
    else:
        chosen = _stratified(data[stratify], fraction, rng)
    chosen = np.sort(chosen)
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
