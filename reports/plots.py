"""Every plot of the reports, drawn offline with matplotlib's Agg renderer and returned as PNG data
URIs (``data:image/png;base64,...``) to inline in a self-contained HTML page.

Plots receive aggregates only (shares, curves, scores), never records: the privacy rules live in
the report modules that compute those aggregates. matplotlib is imported inside each function,
so importing :mod:`reports` stays cheap, and figures are built as ``matplotlib.figure.Figure``
objects drawn by an Agg canvas: no pyplot state, no global backend switch, nothing to close.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 90
REAL, SYNTHETIC = "#4c72b0", "#dd8452"
_PALETTE = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3")


@dataclass(frozen=True, kw_only=True)
class Marginal:
    """One column's real and synthetic shares on a shared grid, ready to draw.

    Numerical columns give ``edges`` (one more than the shares); categorical ones ``labels``,
    and so do numerical ones cut at quantiles (cells of unequal width, drawn side by side).
    ``suppressed`` marks real cells drawn as 0 because too few training records fell in them;
    it is not drawn, so a suppressed cell looks like an empty one.
    """

    column: str
    note: str
    real: np.ndarray
    synthetic: np.ndarray
    suppressed: np.ndarray
    edges: np.ndarray | None = None
    labels: tuple[str, ...] | None = None


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def to_data_uri(figure: Figure) -> str:
    """The figure as a PNG data URI. The PNG carries no metadata (matplotlib writes its web
    address into ``Software`` by default); should the base64 text happen to spell ``http``, the
    image is saved again with a different padding comment so that the page never contains it."""
    for attempt in range(16):
        buffer = io.BytesIO()
        metadata: dict[str, str | None] = {"Software": None}
        if attempt:
            metadata["Comment"] = "." * attempt
        figure.savefig(buffer, format="png", dpi=DPI, metadata=metadata)
        text = base64.b64encode(buffer.getvalue()).decode("ascii")
        if "http" not in text.lower():
            break
    return "data:image/png;base64," + text


def marginals(panels: Sequence[Marginal]) -> str:
    """Real vs synthetic shares, one panel per column (two panels a row)."""
    columns = 2 if len(panels) > 1 else 1
    rows = math.ceil(len(panels) / columns)
    figure = _figure(5.2 * columns, 3.2 * rows)
    axes = np.atleast_1d(figure.subplots(rows, columns)).ravel()
    for ax, panel in zip(axes, panels, strict=False):
        if panel.edges is not None and panel.labels is None:
            ax.stairs(panel.real, panel.edges, fill=True, color=REAL, alpha=0.45, label="real")
            ax.stairs(panel.synthetic, panel.edges, color=SYNTHETIC, linewidth=2, label="synthetic")
        else:
            x = np.arange(len(panel.labels or ()))
            ax.bar(x - 0.2, panel.real, 0.4, color=REAL, label="real")
            ax.bar(x + 0.2, panel.synthetic, 0.4, color=SYNTHETIC, label="synthetic")
            ax.set_xticks(x, panel.labels or (), rotation=30, ha="right", fontsize=8)
        ax.set_title(f"{panel.column} ({panel.note})", fontsize=10)
        ax.set_ylabel("share of rows")
        ax.legend(fontsize=8)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    return to_data_uri(figure)


def heatmap(matrix: np.ndarray, names: Sequence[str], *, label: str) -> str:
    """A symmetric difference matrix on a diverging scale from -1 to 1."""
    size = min(2.5 + 0.3 * len(names), 11.0)
    figure = _figure(size + 1.2, size)
    ax = figure.subplots()
    image = ax.imshow(matrix, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    figure.colorbar(image, ax=ax, label=label, shrink=0.8)
    return to_data_uri(figure)


def grouped_bars(
    panels: Mapping[str, tuple[Sequence[str], Mapping[str, Sequence[float | None]]]],
    *,
    ylabel: str = "",
) -> str:
    """One panel per key: categories on x, one bar per series (missing values left out)."""
    count = len(panels)
    widest = max(len(categories) for categories, _ in panels.values())
    width = max(4.5, 1.2 * widest * max(1, max(len(s) for _, s in panels.values()) / 2) + 2.0)
    figure = _figure(min(width * count, 16.0), 4.0)
    axes = np.atleast_1d(figure.subplots(1, count)).ravel()
    handles: dict[str, Any] = {}
    for ax, (title, (categories, series)) in zip(axes, panels.items(), strict=True):
        x = np.arange(len(categories))
        step = 0.8 / max(len(series), 1)
        for i, (name, values) in enumerate(series.items()):
            heights = np.array([np.nan if v is None else float(v) for v in values])
            offset = (i - (len(series) - 1) / 2) * step
            bars = ax.bar(
                x + offset,
                np.nan_to_num(heights),
                step,
                label=name,
                color=_PALETTE[i % len(_PALETTE)],
            )
            handles.setdefault(name, bars)
            for bar, height in zip(bars, heights, strict=True):  # a 0 is a value, not a gap
                if math.isfinite(height):
                    ax.annotate(f"{height:.2g}", (bar.get_x() + bar.get_width() / 2, height),
                                ha="center", va="bottom", fontsize=6, rotation=90,
                                xytext=(0, 2), textcoords="offset points")  # fmt: skip
        slanted = widest > 3 or max((len(str(c)) for c in categories), default=0) > 10
        ax.set_xticks(
            x,
            categories,
            rotation=25 if slanted else 0,
            ha="right" if slanted else "center",
            fontsize=8,
        )
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(ylabel)
        ax.axhline(0, color="black", linewidth=0.6)
        tallest = max((float(v) for vs in series.values() for v in vs if v is not None), default=0)
        if math.isfinite(tallest) and tallest > 0:
            ax.set_ylim(top=tallest * 1.25)  # room for the value labels
    # one legend for every panel, below them, where it covers no bar
    figure.legend(list(handles.values()), list(handles), loc="outside lower center",
                  ncol=min(len(handles), 6), fontsize=8)  # fmt: skip
    return to_data_uri(figure)


def roc_curves(panels: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]]) -> str:
    """ROC curves (TPR against FPR on a log scale), one panel per attacker access, with the
    diagonal of an attacker who guesses."""
    figure = _figure(5.0 * len(panels), 4.0)
    axes = np.atleast_1d(figure.subplots(1, len(panels))).ravel()
    for ax, (title, curves) in zip(axes, panels.items(), strict=True):
        floor = 1.0
        for i, (name, (fpr, tpr)) in enumerate(curves.items()):
            positive = fpr[fpr > 0]
            low = positive.min() if len(positive) else 1e-3
            floor = min(floor, low / 2)
            ax.step(
                np.maximum(fpr, low / 2),
                tpr,
                where="post",
                label=name,
                color=_PALETTE[i % len(_PALETTE)],
            )
        chance = np.logspace(math.log10(floor), 0, 100)
        ax.plot(chance, chance, "--", color="grey", label="chance")
        ax.set_xscale("log")
        ax.set_xlim(floor, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("false positive rate (log scale)")
        ax.set_ylabel("true positive rate")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3,
                  frameon=False)  # below the axes: the curves stay visible  # fmt: skip
    return to_data_uri(figure)


def intervals(
    categories: Sequence[str],
    series: Mapping[str, Sequence[tuple[float, float | None, float | None]]],
    *,
    ylabel: str,
    reference: float | None = None,
) -> str:
    """Points with interval error bars: per category, one point per series of
    ``(value, low, high)``."""
    figure = _figure(max(4.5, 1.6 * len(categories) + 2), 3.6)
    ax = figure.subplots()
    x = np.arange(len(categories))
    for i, (name, points) in enumerate(series.items()):
        values = np.array([p[0] for p in points], float)
        low = np.array([p[0] if p[1] is None else p[1] for p in points], float)
        high = np.array([p[0] if p[2] is None else p[2] for p in points], float)
        errors = np.clip(np.vstack([values - low, high - values]), 0, None)
        offset = (i - (len(series) - 1) / 2) * 0.25
        ax.errorbar(
            x + offset,
            values,
            yerr=errors,
            fmt="o",
            capsize=4,
            label=name,
            color=_PALETTE[i % len(_PALETTE)],
        )
    if reference is not None:
        ax.axhline(reference, linestyle="--", color="grey", label=f"chance ({reference:g})")
    ax.set_xticks(x, categories, fontsize=9)
    ax.set_xlim(-0.6, len(categories) - 0.4)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    return to_data_uri(figure)


def scatter(
    points: Sequence[tuple[str, float, float]],
    *,
    xlabel: str,
    ylabel: str,
    reference_y: float | None = None,
) -> str:
    """Labelled points ``(label, x, y)``."""
    figure = _figure(5.5, 4.2)
    ax = figure.subplots()
    for i, (label, x, y) in enumerate(points):
        ax.scatter([x], [y], color=_PALETTE[i % len(_PALETTE)], s=40)
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(5, 5), fontsize=9)
    if reference_y is not None:
        ax.axhline(reference_y, linestyle="--", color="grey", label=f"chance ({reference_y:g})")
        ax.legend(fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.margins(0.2)
    return to_data_uri(figure)
