"""``grad``: the network's performance on inputs and targets (as MATLAB's ``perform``
computes it) and its gradient with respect to every weight and bias: perf; db, dIW, dLW
(cells shaped like net.b, net.IW, net.LW); dwb (a column in getwb(net) order)."""

from __future__ import annotations

from typing import Any

from .. import matfile
from ..contract import contract_of
from ..performance import weight_gradient
from .options import GradOptions
from .results import FileResults, Results
from .sources import Loader, model_and_inputs, read_variables

__all__ = ["run", "targets_of"]


def run(opts: GradOptions, results: Results | None = None, *, loader: Loader | None = None) -> None:
    """Hand the performance and its gradient to ``results`` (default: the MAT-file
    ``opts.output``)."""
    results = results or FileResults(opts.output)
    model, inputs = model_and_inputs(opts, loader)
    targets, ew = targets_of(opts, model)
    g = weight_gradient(
        model,
        inputs,
        targets,
        performance=opts.performance,
        ew=ew,
        normalization=opts.normalization,
        regularization=opts.regularization,
        convention=opts.convention,
        wb_order=opts.wb_order,
    )
    layers, n_in = g.num_layers, g.num_inputs
    results.save(
        {
            "perf": g.perf,
            "db": matfile.weight_cells((layers, 1), {(i, 1): v for i, v in g.db.items()}),
            "dIW": matfile.weight_cells((layers, n_in), g.dIW),
            "dLW": matfile.weight_cells((layers, layers), g.dLW),
            "dwb": matfile.column(g.dwb),
        }
    )


def targets_of(opts: GradOptions, model: Any) -> tuple[list[Any], list[Any] | None]:
    """The targets (and error weights) in batch-first layout: from ``opts.targets``, else
    from the inputs' own file or variables."""
    data = read_variables(opts, opts.targets)
    same_source = not opts.targets or opts.targets == opts.inputs
    exclude = (opts.inputs_var,) if same_source and opts.inputs_var else ()
    name, value = data.select(
        opts.targets_var,
        role="targets",
        option="--targets-var",
        defaults=("T", "t"),
        exclude=exclude,
    )
    contract = contract_of(model)
    spec = contract.spec  # MATLAB networks; others fail in weight_gradient
    sizes = tuple(int(s[0]) for s in contract.output_shapes)
    targets = matfile.samples_from_matlab(
        value,
        sizes,
        samples=opts.samples,
        what=data.what(name),
        size_names=[f"outputs{{{o.layer}}}.size" for o in spec.outputs] if spec else None,
    )
    ew = None
    if opts.ew_var:
        ew = matfile.error_weights_from_matlab(
            data.resolve(opts.ew_var), len(sizes), samples=opts.samples, what=data.what(opts.ew_var)
        )
    return targets, ew
