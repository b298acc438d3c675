"""``hessian``: per-sample Hessians of one output element with respect to the inputs, and the
outputs Y (networks with one input and one output; ONNX models: one --wrt input)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import matfile
from ..autodiff import hessian
from ..contract import contract_of
from ..errors import Mat2GradError
from ..loading import is_onnx
from .options import HessianOptions
from .predict import outputs
from .results import FileResults, Results
from .sources import Loader, model_and_inputs, set_threads, wrt_indices

__all__ = ["run"]


def run(
    opts: HessianOptions, results: Results | None = None, *, loader: Loader | None = None
) -> None:
    """Hand H (R x R x Q, H(:,:,q) the Hessian of output row ``opts.output_index`` at
    sample q) and Y to ``results`` (default: the MAT-file ``opts.output``)."""
    results = results or FileResults(opts.output)
    set_threads(opts)
    model, inputs = model_and_inputs(opts, loader)
    if is_onnx(opts.file):
        _run_onnx(opts, model, inputs, results)
        return
    shapes = contract_of(model).output_shapes or ()
    if len(inputs) != 1 or len(shapes) != 1:
        raise Mat2GradError(
            f"{opts.file}: hessian supports networks with one input and one output (this one "
            f"has {len(inputs)} and {len(shapes)}); use the Python API, "
            "mat2grad.hessian(net, *x, output=(i, k), wrt=j)"
        )
    rows = int(np.prod(shapes[0]))
    k = 1 if opts.output_index is None else opts.output_index
    if not 1 <= k <= rows:
        raise Mat2GradError(f"--output-index {k} is out of range: the output has {rows} rows")
    H, Y = hessian(model, *inputs, output=k - 1, chunk_size=opts.chunk_size, return_outputs=True)
    results.save(
        {
            "H": matfile.per_sample_to_matlab(H, opts.samples),
            "Y": matfile.per_sample_to_matlab(Y, opts.samples),
        },
        compress=False,
        format=opts.format,
    )


def _run_onnx(opts: HessianOptions, model: Any, inputs: list[Any], results: Results) -> None:
    """hessian for ONNX models: one --wrt input, one output, H and Y in the --layout."""
    wrt = wrt_indices(opts, model)
    if len(wrt) != 1:
        names = ", ".join(model.input_names[j] for j in wrt)
        raise Mat2GradError(
            f"{opts.file}: hessian differentiates with respect to one input; choose one of "
            f"{names} with --wrt NAME"
        )
    if len(model.output_names) != 1:
        raise Mat2GradError(
            f"{opts.file}: hessian supports models with one output (this one has "
            f"{len(model.output_names)}: {', '.join(model.output_names)}); use the Python "
            "API, mat2grad.hessian(net, *x, output=(i, k), wrt=j)"
        )
    res = matfile.ResultLayout(model, opts.layout or "matlab", opts.samples)
    shape = model.output_shapes[0]
    if any(d is None for d in shape):  # symbolic: the size these inputs give
        shape = outputs(model, [x[:1] for x in inputs])[0].shape[1:]
    k = 1 if opts.output_index is None else opts.output_index
    element = res.element(0, shape, k)
    H, Y = hessian(
        model,
        *inputs,
        output=element,
        wrt=wrt[0],
        chunk_size=opts.chunk_size,
        return_outputs=True,
    )
    results.save(
        {"H": res.hessian_array(wrt[0], H), "Y": res.output_array(0, Y)},
        compress=False,
        format=opts.format,
    )
