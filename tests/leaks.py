"""Looking for training rows inside artifacts and fitted models.

A fitted model leaks rows if its object graph holds per-row data: a table or array with one entry
per training row, or a partition of the row indices (ctgan's per-category row lists). Per-column
summaries (bounds, category lists, mixture parameters) are fine. A table artifact leaks if any of
its rows equals a training row on every column.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def per_row_objects(obj: Any, n_train: int, *, path: str = "model") -> list[str]:
    """Paths inside ``obj`` holding one entry per training row. ``n_train`` should be a size no
    hyper-parameter shares (an odd number of rows, say)."""
    found: list[str] = []
    seen: set[int] = set()
    stack: list[tuple[Any, str, int]] = [(obj, path, 0)]
    while stack:
        item, where, depth = stack.pop()
        if id(item) in seen or depth > 40:
            continue
        seen.add(id(item))
        if isinstance(item, pd.DataFrame | pd.Series):
            if len(item) >= n_train:
                found.append(f"{where}: {type(item).__name__} of {len(item)} rows")
            continue
        if isinstance(item, np.ndarray):
            if item.dtype != object and n_train in item.shape:
                found.append(f"{where}: array of shape {item.shape}")
            if item.dtype != object:
                continue
            children = list(enumerate(item.ravel()[:10_000]))
        elif isinstance(item, list | tuple):
            arrays = [x for x in item if isinstance(x, np.ndarray) and x.dtype.kind in "iu"]
            if arrays and len(arrays) == len(item) and sum(len(a) for a in arrays) == n_train:
                found.append(f"{where}: row indices partitioned into {len(arrays)} lists")
            children = list(enumerate(item))
        elif isinstance(item, dict):
            children = list(item.items())
        elif hasattr(item, "__dict__") and not isinstance(item, type):
            children = list(vars(item).items())
        else:
            continue
        for key, child in children:
            stack.append((child, f"{where}.{key}", depth + 1))
    return found


def shared_rows(table: pd.DataFrame, train: pd.DataFrame) -> int:
    """How many rows of ``table`` equal some training row on every column (compared as text)."""
    columns = list(train.columns)
    if list(table.columns) != columns:
        return 0
    as_text = lambda frame: frame.astype(str).agg("\x1f".join, axis=1)  # noqa: E731
    return int(as_text(table.reset_index(drop=True)).isin(set(as_text(train))).sum())
