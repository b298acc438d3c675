"""``jacobian``: per-sample Jacobians J = dY/dX and the outputs Y, streamed chunk by chunk
(memory is bounded by one chunk); for a dynamic network, gradients through time."""

from __future__ import annotations

from typing import Any

from .. import matfile
from ..autodiff import jacobian_chunks
from ..contract import contract_of, to_numpy
from ..dynamic import gradient_series
from ..errors import Mat2GradError
from ..loading import is_onnx
from .options import SERIES_OPTIONS, JacobianOptions
from .results import FileResults, Results
from .sources import (
    Loader,
    inputs_of,
    load_model,
    read_variables,
    refuse_series_options,
    series,
    set_threads,
    wrt_indices,
)

__all__ = ["run", "run_dynamic"]


def run(
    opts: JacobianOptions, results: Results | None = None, *, loader: Loader | None = None
) -> None:
    """Differentiate the network of ``opts.file`` at every sample of the inputs and hand J
    and Y to ``results`` (default: the MAT-file ``opts.output``), in MATLAB's layout: J is
    S x R x Q, a numOutputs x numInputs cell of such blocks for several inputs or outputs."""
    results = results or FileResults(opts.output)
    set_threads(opts)
    model = load_model(opts, loader)
    if contract_of(model).is_dynamic:
        run_dynamic(opts, model, results)
        return
    refuse_series_options(opts, SERIES_OPTIONS)
    inputs = inputs_of(opts, model)
    if is_onnx(opts.file):
        _run_onnx(opts, model, inputs, results)
        return
    chunks = jacobian_chunks(model, *inputs, mode=opts.mode, chunk_size=opts.chunk_size)
    outs, ins = chunks.output_shapes, chunks.input_shapes
    layout = {
        "J": matfile.result_cell([[(*o, *i) for i in ins] for o in outs]),
        "Y": matfile.output_cell(outs),
    }
    with results.stream(
        chunks.num_samples, layout, samples=opts.samples, format=opts.format
    ) as writer:
        for chunk in chunks:
            writer.write(
                chunk.start,
                {
                    "J": matfile.result_cell(chunk.jacobian),
                    "Y": matfile.output_cell(chunk.outputs),
                },
            )


def _run_onnx(opts: JacobianOptions, model: Any, inputs: list[Any], results: Results) -> None:
    """jacobian for ONNX models: J and Y in the --layout, streamed chunk by chunk."""
    wrt = wrt_indices(opts, model)
    chunks = jacobian_chunks(model, *inputs, mode=opts.mode, chunk_size=opts.chunk_size, wrt=wrt)
    res = matfile.ResultLayout(model, opts.layout or "matlab", opts.samples)
    outs, ins = chunks.output_shapes, chunks.input_shapes
    j_blocks = [
        [res.jacobian_block(k, j, o, i) for j, i in zip(wrt, ins, strict=True)]
        for k, o in enumerate(outs)
    ]
    y_blocks = [res.output_block(k, o) for k, o in enumerate(outs)]
    layout = {"J": matfile.result_cell(j_blocks), "Y": matfile.output_cell(y_blocks)}
    with results.stream(
        chunks.num_samples, layout, samples=opts.samples, format=opts.format
    ) as writer:
        for chunk in chunks:
            J = [
                [res.jacobian_chunk(k, j, blk, outs[k]) for j, blk in zip(wrt, row, strict=True)]
                for k, row in enumerate(chunk.jacobian)
            ]
            Y = [res.output_chunk(k, y) for k, y in enumerate(chunk.outputs)]
            writer.write(chunk.start, {"J": matfile.result_cell(J), "Y": matfile.output_cell(Y)})


def run_dynamic(opts: JacobianOptions, model: Any, results: Results) -> None:
    """jacobian for networks with delays or feedback: gradients through time of the run
    predict would make (--targets-var/--prepare, --closed-loop, known sequence), handed
    over in MATLAB's layout with the outputs Y."""
    data = series(model, opts)
    form = opts.form or "full"
    weights = None
    if opts.weights_var:
        if form != "sum":
            raise Mat2GradError("--weights-var applies to --form sum")
        value = read_variables(opts).resolve(opts.weights_var)
        weights, _, _ = matfile.sequences_from_matlab(
            value, tuple(model.output_sizes), samples=opts.samples, what=opts.weights_var
        )
    run_, result = gradient_series(
        model,
        data.inputs,
        form=form,
        mode=opts.mode or "auto",
        max_lag=opts.max_lag,
        chunk_size=opts.chunk_size,
        weights=weights,
        **data.how(prepare=opts.prepare, closed_loop=opts.closed_loop, steps=opts.steps),
    )
    sim = run_.simulate()
    outs = [to_numpy(o.double()) for o in sim.outputs]
    name = "dX" if form == "sum" else "J"
    results.save(
        {
            name: matfile.series_gradient_to_matlab(
                result, form, matrix=data.matrix, samples=opts.samples
            ),
            "Y": matfile.sequences_to_matlab(outs, matrix=data.matrix, samples=opts.samples),
        }
    )
