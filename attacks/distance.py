"""Closest-distance membership attacks on one released table (no-box threat model).

The attacker holds a target record and the synthetic table. Records the generator was trained on
tend to have a closer synthetic neighbour than records it never saw (the holdout), so the
membership score is minus the distance to the closest synthetic record (DCR), or minus the ratio
of the closest to the second-closest distance (NNDR), as used by Stadler, Oprisanu & Troncoso,
"Synthetic Data — Anonymisation Groundhog Day" (USENIX Security 2022) and in SDMetrics.

Distance is mixed-type and Gower-like: numbers scaled by the column's range (schema bounds when
declared, else the synthetic table's), category mismatches count 1, a missing value differs from
a present one by 1. It is computed as an L1 distance on an encoding (scaled numbers, one-hot
categories at weight 1/2), so a tree index answers nearest-neighbour queries in bounded memory,
one chunk of targets at a time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from synth.schema import Schema, as_number


def encode(frame: pd.DataFrame, schema: Schema, reference: pd.DataFrame) -> np.ndarray:
    """The L1 encoding of ``frame``; scales and category lists come from ``reference``."""
    parts = []
    for column in schema.columns:
        values, known = frame[column.name], reference[column.name]
        if column.kind in ("numerical", "datetime"):
            numbers, scale_from = as_number(values).to_numpy(), as_number(known)
            low, high = column.bounds() if column.kind == "numerical" else (None, None)
            low = scale_from.min() if low is None else low
            high = scale_from.max() if high is None else high
            span = (high - low) if high is not None and low is not None and high > low else 1.0
            missing = np.isnan(numbers)
            parts.append(np.where(missing, 0.0, (numbers - (low or 0.0)) / span)[:, None])
            parts.append(missing[:, None].astype(float))
        else:
            text = values.astype(object).where(values.notna(), "\x00missing").astype(str)
            levels = pd.Index(
                pd.unique(known.astype(object).where(known.notna(), "\x00missing").astype(str))
            )
            codes = levels.get_indexer(text)
            one_hot = np.zeros((len(frame), len(levels)))
            seen = codes >= 0
            one_hot[np.flatnonzero(seen), codes[seen]] = 0.5
            parts.append(one_hot)
    return np.hstack(parts).astype(np.float32) if parts else np.empty((len(frame), 0), np.float32)


def neighbours(queries: np.ndarray, reference: np.ndarray, k: int, chunk: int):
    """(distances, indices) of the ``k`` nearest reference rows (L1), chunk by chunk."""
    from sklearn.neighbors import NearestNeighbors

    index = NearestNeighbors(n_neighbors=min(k, len(reference)), metric="manhattan", n_jobs=1)
    index.fit(reference)
    found = [index.kneighbors(queries[i : i + chunk]) for i in range(0, len(queries), chunk)]
    if not found:
        return np.empty((0, k)), np.empty((0, k), dtype=int)
    return np.vstack([d for d, _ in found]), np.vstack([i for _, i in found])


def nearest_distances(
    queries: np.ndarray, reference: np.ndarray, *, k: int = 2, chunk: int = 10_000
) -> np.ndarray:
    """L1 distances from each query to its ``k`` nearest reference rows."""
    return neighbours(queries, reference, k, chunk)[0]


def nearest_indices(queries: np.ndarray, reference: np.ndarray, *, chunk: int = 10_000):
    """Index of each query's nearest reference row."""
    return neighbours(queries, reference, 1, chunk)[1][:, 0]


def closest_distance_scores(
    targets: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema
) -> dict[str, np.ndarray]:
    """Membership scores of each target (higher: more likely a member): DCR and NNDR."""
    distances = nearest_distances(
        encode(targets, schema, synthetic), encode(synthetic, schema, synthetic), k=2
    )
    closest = distances[:, 0]
    second = distances[:, 1] if distances.shape[1] > 1 else closest
    ratio = np.where(second > 0, closest / np.maximum(second, 1e-12), 0.0)
    return {"closest_distance": -closest, "distance_ratio": -ratio}
