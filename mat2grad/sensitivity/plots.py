"""Charts of sensitivity results with matplotlib (the optional extra ``mat2grad[plot]``).

NeuralSens' three plots (mean against std per input; bar of rms with bootstrap confidence
bars; density of the raw derivatives per input), the interaction heat map, the lag
heat map of dynamic networks and, for image inputs, a saliency image per output. Every
function takes a :class:`SensitivityResult`, draws into a new figure, and returns it;
:func:`save_report` writes all charts that apply to one file.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import Mat2GradError
from .result import SensitivityResult

__all__ = [
    "plot_density",
    "plot_interactions",
    "plot_lags",
    "plot_mean_std",
    "plot_rms",
    "plot_saliency",
    "check_target",
    "save_report",
]


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise Mat2GradError("plots need matplotlib: pip install 'mat2grad[plot]'") from None
    if "matplotlib.pyplot" not in __import__("sys").modules:
        matplotlib.use("Agg")  # files, not windows, unless the user chose a backend
    import matplotlib.pyplot as plt

    return plt


def _grid(n: int, size: tuple[float, float] = (4.0, 3.2)) -> tuple[Any, np.ndarray]:
    plt = _pyplot()
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(size[0] * cols, size[1] * rows), squeeze=False, layout="constrained"
    )
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat


def _need(result: SensitivityResult, *names: str) -> None:
    missing = [n for n in names if n not in result.stats]
    if missing:
        raise Mat2GradError(
            f"this chart needs the statistic(s) {', '.join(missing)}, which a "
            f"'{result.kind}' result does not have"
        )


def plot_mean_std(result: SensitivityResult) -> Any:
    """Mean against std of the derivatives, one point per input, one panel per output."""
    _need(result, "mean", "std")
    fig, axes = _grid(len(result.outputs))
    for k, ax in enumerate(axes[: len(result.outputs)]):
        mean, std = result["mean"][k], result["std"][k]
        ax.scatter(mean, std, color="C0")
        for i, name in enumerate(result.inputs):
            ax.annotate(
                name, (mean[i], std[i]), fontsize=8, xytext=(3, 3), textcoords="offset points"
            )
        ax.axvline(0.0, color="0.6", lw=0.8)
        ax.set(xlabel="mean", ylabel="std", title=result.outputs[k])
    return fig


def plot_rms(result: SensitivityResult) -> Any:
    """Bars of rms (sqrt(mean(D^2))) per input with bootstrap intervals, per output."""
    _need(result, "rms")
    fig, axes = _grid(len(result.outputs))
    x = np.arange(len(result.inputs))
    for k, ax in enumerate(axes[: len(result.outputs)]):
        rms = result["rms"][k]
        err = None
        if "rms_low" in result and "rms_high" in result:
            err = np.vstack([rms - result["rms_low"][k], result["rms_high"][k] - rms])
            err = np.clip(np.nan_to_num(err), 0, None)
        ax.bar(x, rms, yerr=err, capsize=3, color="C1")
        ax.set_xticks(x, result.inputs, rotation=60, fontsize=8)
        ax.set(ylabel="rms", title=result.outputs[k])
    return fig


def plot_density(result: SensitivityResult) -> Any:
    """Density (histogram) of the raw derivatives per input, one panel per output; needs
    the subset kept with ``sensitivity(..., keep=M)``."""
    if result.derivatives is None or len(result.derivatives) == 0:
        raise Mat2GradError(
            "the density chart needs raw derivatives: run sensitivity(..., keep=2000)"
        )
    d = result.derivatives
    fig, axes = _grid(len(result.outputs))
    for k, ax in enumerate(axes[: len(result.outputs)]):
        for i, name in enumerate(result.inputs):
            if np.ptp(d[:, k, i]) == 0:  # a constant derivative (an input removed as
                continue  # constant) is a spike that would hide every other density
            ax.hist(d[:, k, i], bins=40, density=True, histtype="step", label=name)
        ax.set(xlabel="dy/dx", ylabel="density", title=result.outputs[k])
        if len(result.inputs) <= 12:
            ax.legend(fontsize=7)
    return fig


def _heat(ax: Any, fig: Any, data: np.ndarray, title: str, cmap: str = "viridis") -> None:
    im = ax.imshow(data, cmap=cmap, aspect="auto")
    fig.colorbar(im, ax=ax)
    ax.set_title(title)


def plot_interactions(result: SensitivityResult, stat: str = "mean_abs") -> Any:
    """Heat map of mean |d^2 y / dx_i dx_j| (or ``stat``) per output."""
    _need(result, stat)
    data = result[stat]
    if data.ndim != 3 or data.shape[1] != data.shape[2]:
        raise Mat2GradError("plot_interactions needs an 'interactions' result (S x R x R)")
    fig, axes = _grid(len(result.outputs))
    ticks = np.arange(len(result.inputs))
    for k, ax in enumerate(axes[: len(result.outputs)]):
        _heat(ax, fig, data[k], f"{result.outputs[k]}: {stat}")
        ax.set_xticks(ticks, result.inputs, rotation=60, fontsize=7)
        ax.set_yticks(ticks, result.inputs, fontsize=7)
    return fig


def plot_lags(result: SensitivityResult, stat: str = "rms") -> Any:
    """Heat map of ``stat`` per input (rows) and delay (columns), per output."""
    _need(result, stat)
    data = result[stat]
    if data.ndim != 3 or result.kind != "lags":
        raise Mat2GradError("plot_lags needs a 'lags' result (a dynamic network's S x R x (L+1))")
    fig, axes = _grid(len(result.outputs))
    for k, ax in enumerate(axes[: len(result.outputs)]):
        _heat(ax, fig, data[k], f"{result.outputs[k]}: {stat} by delay", cmap="magma")
        ax.set_yticks(np.arange(len(result.inputs)), result.inputs, fontsize=7)
        ax.set_xlabel("delay d")
    return fig


def plot_saliency(result: SensitivityResult, stat: str = "mean_abs") -> Any:
    """``stat`` per output as an image of the input's shape (image models: ``(C, H, W)``
    summed over channels, or ``(H, W)``)."""
    _need(result, stat)
    shape = result.input_shape
    if shape is None or len(shape) < 2:
        raise Mat2GradError("a saliency image needs a single input of 2 or more dimensions")
    fig, axes = _grid(len(result.outputs))
    for k, ax in enumerate(axes[: len(result.outputs)]):
        img = np.abs(result[stat][k]).reshape(shape)
        while img.ndim > 2:
            img = img.sum(axis=0)
        _heat(ax, fig, img, f"{result.outputs[k]}: {stat}", cmap="hot")
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


def charts(result: SensitivityResult) -> list[Any]:
    """Every chart that applies to ``result`` (and its parts)."""
    figs = []
    if result.kind == "lags":
        figs.append(plot_lags(result))
    elif "rms" in result and "mean" in result:
        if result.input_shape is not None and len(result.input_shape) >= 2:
            figs.append(plot_saliency(result))
        else:
            figs += [plot_mean_std(result), plot_rms(result)]
            if result.derivatives is not None and len(result.derivatives):
                figs.append(plot_density(result))
    inter = result.parts.get("interactions")
    if inter is not None:
        figs.append(plot_interactions(inter))
    return figs


def check_target(path: str | Path) -> Path:
    """``path`` as a chart file :func:`save_report` can write (``.png``, ``.svg`` or
    ``.pdf``), with matplotlib installed: checked before an analysis, not after it."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".png", ".svg", ".pdf"):
        raise Mat2GradError(f"{path}: plots are written as .png, .svg or .pdf, not '{suffix}'")
    _pyplot()
    return path


def save_report(result: SensitivityResult, path: str | Path, dpi: int = 100) -> Path:
    """All charts of ``result`` in one file: ``.png``, ``.svg`` or ``.pdf`` (a ``.pdf``
    gets one page per chart; ``.png``/``.svg`` stack them vertically)."""
    path = check_target(path)
    suffix = path.suffix.lower()
    plt = _pyplot()
    figs = charts(result)
    if not figs:
        raise Mat2GradError(f"no chart applies to a '{result.kind}' result")
    try:
        if suffix == ".pdf":
            from matplotlib.backends.backend_pdf import PdfPages

            with PdfPages(path) as pdf:
                for f in figs:
                    pdf.savefig(f)
        else:
            _stack(figs, path, dpi)
    finally:
        for f in figs:
            plt.close(f)
    return path


def _stack(figs: list[Any], path: Path, dpi: int) -> None:
    """Several figures as one image, one under another (an ``.svg`` embeds that image)."""
    import io

    import matplotlib.image as mpimg

    if len(figs) == 1:
        figs[0].savefig(path, dpi=dpi)
        return
    images = []
    for f in figs:
        buf = io.BytesIO()
        f.savefig(buf, format="png", dpi=dpi)
        buf.seek(0)
        im = mpimg.imread(buf)
        images.append(im if im.shape[2] == 4 else np.dstack([im, np.ones(im.shape[:2])]))
    width = max(im.shape[1] for im in images)
    canvas = np.ones((sum(im.shape[0] for im in images), width, 4))
    top = 0
    for im in images:
        canvas[top : top + im.shape[0], : im.shape[1]] = im
        top += im.shape[0]
    if path.suffix.lower() == ".png":
        mpimg.imsave(path, canvas)
        return
    plt = _pyplot()
    fig = plt.figure(figsize=(width / dpi, canvas.shape[0] / dpi), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(canvas)
    ax.axis("off")
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
