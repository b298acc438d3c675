"""``predict``: evaluate a network on its inputs, like MATLAB's ``sim``, and hand over Y
(S x Q; a numOutputs x 1 cell for several outputs); a dynamic network's time series also
give the final delay states Xf and Af."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import matfile
from ..contract import contract_of, to_numpy
from ..dynamic import predict_series
from ..loading import is_onnx
from .options import SERIES_OPTIONS, PredictOptions
from .results import FileResults, Results
from .sources import Loader, inputs_of, load_model, refuse_series_options, series

__all__ = ["outputs", "run"]

# The module itself (the package's `mat2grad.predict` is the function), looked up per call
# so that a substitute put in its place (tests do) is the one called.
_PREDICT = importlib.import_module("mat2grad.predict")


def outputs(model: Any, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The model's outputs on batch-first inputs, float64 ``(Q, *out_k)`` arrays."""
    return _PREDICT.predict_arrays(model, inputs)


def run(
    opts: PredictOptions, results: Results | None = None, *, loader: Loader | None = None
) -> None:
    """Evaluate the network of ``opts.file`` on the inputs and hand Y to ``results``
    (default: the MAT-file ``opts.output``)."""
    results = results or FileResults(opts.output)
    model = load_model(opts, loader)
    if contract_of(model).is_dynamic:
        _run_dynamic(opts, model, results)
        return
    refuse_series_options(opts, SERIES_OPTIONS)
    ys = outputs(model, inputs_of(opts, model))
    if is_onnx(opts.file):
        res = matfile.ResultLayout(model, opts.layout or "matlab", opts.samples)
        y = [res.output_array(k, o) for k, o in enumerate(ys)]
    else:
        y = [matfile.samples_to_matlab(o, opts.samples) for o in ys]
    results.save({"Y": y[0] if len(y) == 1 else matfile.column_cell(y)})


def _run_dynamic(opts: PredictOptions, model: Any, results: Results) -> None:
    """predict for networks with delays or feedback: MATLAB's time-series cells in and out."""
    data = series(model, opts)
    _, sim = predict_series(
        model,
        data.inputs,
        **data.how(prepare=opts.prepare, closed_loop=opts.closed_loop, steps=opts.steps),
    )
    outs = [_float64(o) for o in sim.outputs]
    results.save(
        {
            "Y": matfile.sequences_to_matlab(outs, matrix=data.matrix, samples=opts.samples),
            "Xf": matfile.sequences_to_matlab([_float64(s) for s in sim.xf]),
            "Af": matfile.sequences_to_matlab([_float64(s) for s in sim.af]),
        }
    )


def _float64(t: Any) -> np.ndarray:
    return to_numpy(t.double())
