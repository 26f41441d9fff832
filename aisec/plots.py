"""Plotting helpers: every figure gets a title and labelled axes, so no plot is a riddle."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def _require_labels(title: str, *labels: str) -> None:
    if not title or not all(labels):
        raise ValueError("every course plot needs a title and labelled axes")


def curves(
    x: Sequence[float],
    ys: Mapping[str, Sequence[float]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    ylim: tuple[float, float] | None = None,
    logx: bool = False,
    ax=None,
):
    """One line per entry of ``ys`` against ``x``, with a legend. Returns the Axes."""
    import matplotlib.pyplot as plt

    _require_labels(title, xlabel, ylabel)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    for label, y in ys.items():
        ax.plot(list(x), list(y), marker="o", label=label)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    if logx:
        ax.set_xscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def image_grid(
    images: Sequence[np.ndarray] | np.ndarray,
    *,
    title: str,
    captions: Sequence[str] | None = None,
    shape: tuple[int, int] = (8, 8),
    ncols: int = 8,
    cmap: str = "gray_r",
    vmin: float | None = 0.0,
    vmax: float | None = 1.0,
):
    """Show flattened or 2-D images in a grid with optional captions. Returns the Figure."""
    import matplotlib.pyplot as plt

    _require_labels(title)
    images = [np.asarray(im).reshape(shape) for im in images]
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.4 * ncols, 1.6 * nrows + 0.4), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i], cmap=cmap, vmin=vmin, vmax=vmax)
            if captions is not None:
                ax.set_title(captions[i], fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def roc(
    curves_by_name: Mapping[str, tuple[np.ndarray, np.ndarray]],
    *,
    title: str,
    log_scale: bool = True,
    ax=None,
):
    """ROC curves from ``{name: (fpr, tpr)}``, with the chance diagonal. Log axes show the
    low-false-positive region that matters for membership inference (Carlini et al. 2022)."""
    import matplotlib.pyplot as plt

    _require_labels(title)
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 5))
    grid = np.logspace(-4, 0, 200) if log_scale else np.linspace(0, 1, 200)
    ax.plot(grid, grid, linestyle="--", color="gray", label="chance")
    for name, (fpr, tpr) in curves_by_name.items():
        ax.plot(fpr, tpr, label=name)
    if log_scale:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(1e-3, 1)
        ax.set_ylim(1e-3, 1)
    ax.set_title(title)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend()
    return ax


def bars(
    values: Mapping[str, float],
    *,
    title: str,
    ylabel: str,
    xlabel: str = "",
    ax=None,
):
    """A labelled bar chart of named values. Returns the Axes."""
    import matplotlib.pyplot as plt

    _require_labels(title, ylabel)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    names = list(values)
    ax.bar(names, [values[k] for k in names])
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.set_xlabel(xlabel or " ")
    ax.tick_params(axis="x", rotation=20)
    return ax
