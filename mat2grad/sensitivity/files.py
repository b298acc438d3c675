"""File in, file out: read a network and its samples, run the analysis, write a struct
``S`` to a MAT-file. The CLI command ``mat2grad sens`` (:mod:`mat2grad.commands.sens`) and
the MATLAB helper ``mat2grad_sensitivity`` are thin layers over the pieces here:
:func:`samples_of` (the samples, with :func:`~.committee.committee_models` for several
networks), :func:`analyse` (every analysis a run asks for, as one result) and
:func:`save_plot`; :func:`sensitivity_file` strings them together for Python callers."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from .. import matfile
from ..contract import contract_of
from ..loading import load
from .api import sensitivity
from .committee import committee, committee_models
from .dgsm import dgsm
from .result import SensitivityResult
from .weights import weight_importance

__all__ = [
    "analyse",
    "check_plot_file",
    "network_parts",
    "read_samples",
    "samples_of",
    "save_plot",
    "sensitivity_file",
]

#: raw derivatives kept for the density chart when a plot is asked for
PLOT_KEEP = 2000


def samples_of(model: nn.Module, value: Any, samples: str, what: str) -> list[np.ndarray]:
    """A MAT-file variable ``value`` as batch-first arrays for ``model``: ``R x Q``
    matrices (``samples="columns"``, MATLAB's convention) or cells of them; time-series
    cells for dynamic networks; ONNX models' own layout rules. ``what`` names the variable
    in messages."""
    c = contract_of(model)
    if c.is_dynamic:
        sizes = tuple(int(i.size) for i in c.spec.inputs)
        seqs, _, _ = matfile.sequences_from_matlab(value, sizes, samples=samples, what=what)
        return seqs
    if c.spec is None:  # an ONNX model: its layout rules live in matfile.onnx_layout
        return matfile.inputs_from_mat(model, value, layout="matlab", samples=samples, what=what)
    sizes = tuple(int(s[0]) for s in c.input_shapes)
    return matfile.samples_from_matlab(value, sizes, samples=samples, what=what)


def read_samples(
    model: Any, inputs_file: str | os.PathLike[str], inputs_var: str | None, samples: str
) -> list[np.ndarray]:
    """The samples in ``inputs_file`` (variable ``inputs_var``, or the one
    :func:`mat2grad.matfile.select_variable` picks) as :func:`samples_of` reads them."""
    source = str(inputs_file)
    name, value = matfile.select_variable(matfile.read_mat(source), inputs_var, source=source)
    return samples_of(model, value, samples, f"{source}: '{name}'")


def analyse(
    models: Sequence[nn.Module],
    x: Sequence[Any],
    *,
    names: Sequence[str] | None = None,
    committee_all: bool = False,
    scale: str | None = None,
    ddof: int = 0,
    bootstrap: int = 0,
    conf_level: float = 0.95,
    seed: int = 0,
    interactions: bool = False,
    dgsm_samples: int | None = None,
    weights: bool = False,
    max_lag: int | None = None,
    chunk_size: int | None = None,
    keep: int = 0,
) -> SensitivityResult:
    """Every analysis one run asks for, as one result: the local statistics of
    ``models[0]`` (or, with ``committee_all``, of all ``models`` pooled, named ``names``)
    on the batch-first samples ``x``; with ``interactions`` the Hessian summaries, with
    ``dgsm_samples`` DGSM over that many uniform samples in the recorded input ranges,
    with ``weights`` Garson's and Olden's importance, each in ``result.parts``.
    ``max_lag`` applies to dynamic networks (their lags); ``keep`` raw derivatives are
    kept for the density chart."""
    model = models[0]
    if committee_all:
        result = committee(
            models,
            *x,
            scale=scale,
            ddof=ddof,
            bootstrap=bootstrap,
            conf_level=conf_level,
            seed=seed,
            chunk_size=chunk_size,
            names=names,
        )
    else:
        series = {"max_lag": max_lag} if contract_of(model).is_dynamic else {}
        result = sensitivity(
            model,
            *x,
            scale=scale,
            ddof=ddof,
            bootstrap=bootstrap,
            conf_level=conf_level,
            seed=seed,
            interactions=interactions,
            chunk_size=chunk_size,
            keep=keep,
            **series,
        )
    return network_parts(
        result,
        model,
        dgsm_samples=dgsm_samples,
        weights=weights,
        bootstrap=bootstrap,
        conf_level=conf_level,
        seed=seed,
        chunk_size=chunk_size,
    )


def network_parts(
    result: SensitivityResult,
    model: nn.Module,
    *,
    dgsm_samples: int | None = None,
    weights: bool = False,
    bootstrap: int = 0,
    conf_level: float = 0.95,
    seed: int = 0,
    chunk_size: int | None = None,
) -> SensitivityResult:
    """``result`` with the parts that need the network but not the data: DGSM over
    ``dgsm_samples`` uniform samples in the recorded input ranges, and with ``weights``
    Garson's and Olden's importance (wherever the statistics were computed)."""
    if dgsm_samples:
        result.parts["dgsm"] = dgsm(
            model,
            int(dgsm_samples),
            bootstrap=bootstrap or 100,
            conf_level=conf_level,
            seed=seed,
            chunk_size=chunk_size,
        )
    if weights:
        result.parts["weights"] = weight_importance(model)
    return result


def check_plot_file(path: str | os.PathLike[str]) -> Path:
    """The chart file ``path``, checked before any work is done: a ``.png``, ``.svg`` or
    ``.pdf`` name, and matplotlib installed."""
    from .plots import check_target  # the plots module itself imports matplotlib lazily

    return check_target(Path(path))


def save_plot(result: SensitivityResult, path: str | os.PathLike[str]) -> Path:
    """Draw every chart that applies to ``result`` into ``path`` (needs
    ``mat2grad[plot]``)."""
    from .plots import save_report  # matplotlib only when a plot is asked for

    return save_report(result, Path(path))


def sensitivity_file(
    network_file: str | os.PathLike[str],
    inputs_file: str | os.PathLike[str],
    output_file: str | os.PathLike[str],
    *,
    network: str | None = None,
    inputs_var: str | None = None,
    samples: str = "columns",
    plot: str | os.PathLike[str] | None = None,
    scale: str | None = None,
    ddof: int = 0,
    bootstrap: int = 0,
    conf_level: float = 0.95,
    seed: int = 0,
    interactions: bool = False,
    dgsm_samples: int | None = None,
    weights: bool = False,
    committee_all: bool = False,
    max_lag: int | None = None,
    chunk_size: int | None = None,
) -> SensitivityResult:
    """Sensitivity analysis of a network file on the samples of a MAT-file.

    Writes ``S`` to ``output_file`` (see :meth:`SensitivityResult.to_struct`): the local
    statistics (``S.mean``, ``S.std``, ``S.rms``, ``S.mean_abs``, ``S x R``; lag statistics
    ``S x R x (L+1)`` for dynamic networks), ``S.inputs``, ``S.outputs``,
    ``S.num_samples``, ``S.settings``; with ``interactions`` ``S.interactions``; with
    ``dgsm_samples`` ``S.dgsm`` (uniform samples in the recorded input ranges); with
    ``weights`` ``S.weights`` (Garson, Olden); with ``committee_all`` every network in
    the file pooled (``S.<stat>_spread``, ``S.<stat>_networks``). ``plot``: also draw the
    charts into this file (``.png``, ``.svg``, ``.pdf``; needs ``mat2grad[plot]``).

    Returns the result written.
    """
    if plot:
        check_plot_file(plot)
    if committee_all:
        models, names = committee_models(network_file)
    else:
        models, names = [load(network_file, network)], None
    x = read_samples(models[0], inputs_file, inputs_var, samples)
    result = analyse(
        models,
        x,
        names=names,
        committee_all=committee_all,
        scale=scale,
        ddof=ddof,
        bootstrap=bootstrap,
        conf_level=conf_level,
        seed=seed,
        interactions=interactions,
        dgsm_samples=dgsm_samples,
        weights=weights,
        max_lag=max_lag,
        chunk_size=chunk_size,
        keep=PLOT_KEEP if plot else 0,
    )
    result.settings["network_file"] = str(network_file)
    result.settings["inputs_file"] = str(inputs_file)
    matfile.write_mat(output_file, {"S": result.to_struct()})
    if plot:
        save_plot(result, plot)
    return result
