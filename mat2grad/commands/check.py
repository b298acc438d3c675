"""``check``: the Jacobians mat2grad computes against central finite differences, at the
given inputs or at points the network itself suggests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..autodiff import CheckResult, check, check_points
from ..loading import is_onnx
from .options import CheckOptions
from .sources import IN_MEMORY, Loader, load_model, model_and_inputs, set_threads, wrt_indices

__all__ = ["CheckReport", "run"]


@dataclass(frozen=True)
class CheckReport:
    """What was checked (``source``: which points) and the comparison itself."""

    source: str
    result: CheckResult


def run(opts: CheckOptions, *, loader: Loader | None = None) -> CheckReport:
    """Compare the Jacobians with finite differences at the inputs (``opts.inputs`` or
    ``opts.data``), else at the network's stored example inputs or random points in its
    input ranges; at most ``opts.max_samples`` points, evenly spaced."""
    set_threads(opts)
    if opts.inputs or opts.data is not None:
        model, inputs = model_and_inputs(opts, loader)
        source = f"{len(inputs[0])} samples from {opts.inputs or IN_MEMORY}"
    else:
        model = load_model(opts, loader)
        inputs, source = check_points(model, max_samples=opts.max_samples, seed=opts.seed)
    q = len(inputs[0])
    if q > opts.max_samples:
        idx = np.unique(np.linspace(0, q - 1, opts.max_samples).round().astype(int))
        inputs = [x[idx] for x in inputs]
        source += f" ({len(idx)} of them, evenly spaced; --max-samples)"
    wrt = wrt_indices(opts, model) if is_onnx(opts.file) else None
    result = check(
        model, *inputs, mode=opts.mode, tol=opts.tol, chunk_size=opts.chunk_size, wrt=wrt
    )
    return CheckReport(source, result)
