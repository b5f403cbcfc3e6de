"""Every figure of the pipeline: confusion matrix, retrieval gallery, training curves, scene heat maps.

Figures are built with matplotlib's object API (``Figure``, rendered by Agg) instead of
``pyplot``, so plotting never touches a global backend or a display and is safe inside worker
processes. Every PNG is written through ``atomic_path``, so a crash never leaves half an image.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from cg3d.io import atomic_path

__all__ = ["heat_colours", "plot_confusion", "plot_gallery", "plot_loss_curves", "plot_scene_queries"]

_CORRECT_COLOUR = "#1a9641"
_WRONG_COLOUR = "#d7191c"
_ANNOTATE_UP_TO = 12  # classes; beyond this cell numbers become unreadable
_DPI = 120
_HEAT_COLOURMAP = "inferno"


def _save(figure: Figure, path: str | os.PathLike) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        # the temp file ends in .tmp, so the format cannot be inferred from its name
        figure.savefig(tmp, format="png", dpi=_DPI, bbox_inches="tight")
    return path


def plot_confusion(
    matrix, class_names: Sequence[str], path: str | os.PathLike, title: str = ""
) -> Path:
    """Row-normalised confusion matrix (rows = true class), readable up to ~40 classes."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.size == 0:
        raise ValueError(f"confusion matrix must be square and non-empty, got {matrix.shape}")
    if len(class_names) != matrix.shape[0]:
        raise ValueError(f"got {len(class_names)} class names for a {matrix.shape[0]}-class matrix")
    if np.any(matrix < 0) or not np.all(np.isfinite(matrix)):
        raise ValueError("confusion matrix must hold finite non-negative counts")
    row_sums = matrix.sum(axis=1, keepdims=True)
    rates = np.divide(matrix, row_sums, out=np.zeros_like(matrix), where=row_sums > 0)

    num_classes = matrix.shape[0]
    side = max(4.0, 0.22 * num_classes + 2.0)
    font_size = 8 if num_classes <= 20 else 6
    figure = Figure(figsize=(side + 1.0, side))
    ax = figure.add_subplot()
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    ticks = np.arange(num_classes)
    ax.set_xticks(ticks, labels=class_names, rotation=90, fontsize=font_size)
    ax.set_yticks(ticks, labels=class_names, fontsize=font_size)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if title:
        ax.set_title(title)
    if num_classes <= _ANNOTATE_UP_TO:
        for row, col in np.argwhere(rates > 0):
            value = rates[row, col]
            ax.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=font_size,
                    color="white" if value > 0.5 else "black")  # fmt: skip
    return _save(figure, path)


def _as_image(image, where: str) -> np.ndarray:
    array = np.asarray(image)
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(f"{where} must be an HxW, HxWx3 or HxWx4 image, got shape {array.shape}")
    if array.dtype == np.uint8:
        return array
    if np.issubdtype(array.dtype, np.floating):
        return np.clip(array, 0.0, 1.0)
    raise ValueError(f"{where} must be uint8 or float in [0, 1], got dtype {array.dtype}")


def plot_gallery(
    queries: Sequence,
    hits: Sequence[Sequence],
    path: str | os.PathLike,
    hit_correct: Sequence[Sequence[bool]] | None = None,
    hit_titles: Sequence[Sequence[str]] | None = None,
) -> Path:
    """One row per query: the query (text or image) on the left, its top-K hits to the right.

    With ``hit_correct``, each hit gets a green (correct) or red (wrong) frame; ``hit_titles``
    (shaped like ``hits``) replace the rank numbers above the hits.
    """
    if not queries:
        raise ValueError("plot_gallery needs at least one query")
    if len(hits) != len(queries):
        raise ValueError(f"got {len(hits)} hit lists for {len(queries)} queries")
    if hit_correct is not None:
        if len(hit_correct) != len(hits) or any(
            len(flags) != len(row) for flags, row in zip(hit_correct, hits)
        ):
            raise ValueError("hit_correct must have one flag per hit, shaped like hits")
    num_hits = max(len(row) for row in hits)
    if num_hits == 0:
        raise ValueError("plot_gallery needs at least one hit to show")

    cell = 1.5
    figure = Figure(figsize=(cell * (num_hits + 1.5), cell * len(queries)))
    grid = figure.add_gridspec(len(queries), num_hits + 1, width_ratios=[1.5] + [1] * num_hits)
    for row, query in enumerate(queries):
        query_ax = figure.add_subplot(grid[row, 0])
        query_ax.set_axis_off()
        if isinstance(query, str):
            query_ax.text(0.5, 0.5, textwrap.fill(query, width=22), ha="center", va="center",
                          fontsize=9)  # fmt: skip
        else:
            query_ax.imshow(_as_image(query, f"query {row}"))
        for col in range(num_hits):
            ax = figure.add_subplot(grid[row, col + 1])
            if col >= len(hits[row]):
                ax.set_axis_off()
                continue
            ax.imshow(_as_image(hits[row][col], f"hit {col} of query {row}"))
            ax.set_xticks([])
            ax.set_yticks([])
            if hit_correct is None:
                ax.set_frame_on(False)
            else:
                colour = _CORRECT_COLOUR if hit_correct[row][col] else _WRONG_COLOUR
                for spine in ax.spines.values():
                    spine.set_edgecolor(colour)
                    spine.set_linewidth(4)
            if hit_titles is not None:
                ax.set_title(hit_titles[row][col], fontsize=7)
            elif row == 0:
                ax.set_title(f"#{col + 1}", fontsize=8)
    return _save(figure, path)


def plot_loss_curves(
    history: Mapping[str, Sequence[float]], path: str | os.PathLike, xlabel: str = "step"
) -> Path:
    """One line per named series (e.g. "loss/3d-text"), against its index along ``xlabel``."""
    if not history:
        raise ValueError("plot_loss_curves needs at least one series")
    empty = [name for name, values in history.items() if len(values) == 0]
    if empty:
        raise ValueError(f"empty loss series: {', '.join(empty)}")
    figure = Figure(figsize=(7.0, 4.0))
    ax = figure.add_subplot()
    for name, values in history.items():
        values = np.asarray(values, dtype=np.float64)
        ax.plot(np.arange(1, len(values) + 1), values, label=name, linewidth=1.2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(figure, path)


def heat_colours(values: np.ndarray) -> np.ndarray:
    """RGBA uint8 ``[N, 4]`` of one query's heat, stretched over its own min..max."""
    low, high = float(values.min()), float(values.max())
    unit = (values - low) / (high - low) if high > low else np.zeros_like(values)
    return (colormaps[_HEAT_COLOURMAP](unit) * 255).round().astype(np.uint8)


def plot_scene_queries(scene, result: dict, path: str | os.PathLike) -> Path:
    """Top-down views of a scene (points, labels, class_names, up_axis, name): its ground-truth
    classes, then each query's heat map with its best region."""
    across = [axis for axis in range(3) if axis != scene.up_axis]
    xy = scene.points[:, across]
    order = np.argsort(scene.points[:, scene.up_axis])  # draw low points first, so tops stay visible
    panels = 1 + len(result["queries"])
    columns = min(panels, 4)
    rows = -(-panels // columns)
    figure = Figure(figsize=(3.6 * columns, 3.4 * rows))
    axes = [figure.add_subplot(rows, columns, i + 1) for i in range(panels)]
    palette = colormaps["tab20"]
    axes[0].scatter(*xy[order].T, s=1, c=palette(scene.labels[order] % 20), rasterized=True)
    for index, name in enumerate(scene.class_names):
        axes[0].scatter([], [], s=1, color=palette(index % 20), label=name)  # legend entries only
    axes[0].legend(fontsize=6, markerscale=6, loc="best")
    axes[0].set_title(f"{scene.name}: classes", fontsize=9)
    for q, (ax, query) in enumerate(zip(axes[1:], result["queries"])):
        ax.scatter(*xy[order].T, s=1, c=heat_colours(result["heat"][order, q]) / 255.0, rasterized=True)
        centre = np.asarray(query["best_region"]["centre"])[across]
        ax.scatter(*centre, marker="*", s=160, facecolor="cyan" if query["hit"] else "white", edgecolor="black")
        ax.set_title(f"\"{query['query']}\"  AP {query['ap']:.2f}  {'hit' if query['hit'] else 'miss'}",
                     fontsize=9)
    for ax in axes:
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        if scene.up_axis == 1:
            ax.invert_yaxis()  # seen from above a +Y-up scene, +Z points towards the viewer's feet
    figure.suptitle("seen from above; colour: query-region cosine, dark = lowest to bright = highest per query; "
                    "star: best region's centre (cyan when on the queried object)", fontsize=8)
    return _save(figure, path)
