"""File in, file out: read a network and its samples, run the analysis, write a struct
``S`` to a MAT-file. The CLI command ``mat2grad sens`` and the MATLAB helper
``mat2grad_sensitivity`` are thin layers over :func:`sensitivity_file`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .. import matfile
from ..contract import contract_of
from ..errors import Mat2GradError
from ..loading import find_networks, is_onnx, load
from .api import sensitivity
from .committee import committee
from .dgsm import dgsm
from .result import SensitivityResult
from .weights import weight_importance

__all__ = ["read_samples", "sensitivity_file"]


def read_samples(
    model: Any, inputs_file: str | os.PathLike[str], inputs_var: str | None, samples: str
) -> list[np.ndarray]:
    """The samples in ``inputs_file`` as batch-first arrays for ``model``: ``R x Q``
    matrices (``samples="columns"``, MATLAB's convention) or cells of them; time-series
    cells for dynamic networks; ONNX models' own layout rules."""
    source = str(inputs_file)
    variables = matfile.read_mat(source)
    name, value = matfile.select_variable(variables, inputs_var, source=source)
    what = f"{source}: '{name}'"
    c = contract_of(model)
    if c.is_dynamic:
        sizes = tuple(int(i.size) for i in c.spec.inputs)
        seqs, _, _ = matfile.sequences_from_matlab(value, sizes, samples=samples, what=what)
        return seqs
    if c.spec is None:  # an ONNX model: its layout rules live in matfile.onnx_layout
        return matfile.inputs_from_mat(model, value, layout="matlab", samples=samples, what=what)
    sizes = tuple(int(s[0]) for s in c.input_shapes)
    return matfile.samples_from_matlab(value, sizes, samples=samples, what=what)


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
    if committee_all:
        if is_onnx(network_file):
            raise Mat2GradError(f"{network_file}: a committee needs a MAT-file of networks")
        found = find_networks(network_file)
        models = [load(network_file, f.path) for f in found]
        if not models:
            raise Mat2GradError(f"{network_file}: no MATLAB network found")
        x = read_samples(models[0], inputs_file, inputs_var, samples)
        result = committee(
            models,
            *x,
            scale=scale,
            ddof=ddof,
            bootstrap=bootstrap,
            conf_level=conf_level,
            seed=seed,
            chunk_size=chunk_size,
            names=[f.path for f in found],
        )
        model = models[0]
    else:
        model = load(network_file, network)
        x = read_samples(model, inputs_file, inputs_var, samples)
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
            keep=2000 if plot else 0,
            **series,
        )
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
    result.settings["network_file"] = str(network_file)
    result.settings["inputs_file"] = str(inputs_file)
    matfile.write_mat(output_file, {"S": result.to_struct()})
    if plot:
        from .plots import save_report  # matplotlib only when a plot is asked for

        save_report(result, Path(plot))
    return result
