"""Interactions: summaries of the per-sample Hessians d^2 y_k / dx_i dx_j.

NeuralSens' second-order analysis (``HessianMLP``; its Python package's ``hessian_mlp``)
reports, per output k and input pair (i, j), the mean, the std (population) and the
root mean square ``sqrt(mean(H^2))`` of the second derivatives over the samples; the mean
of ``|H|`` is added here. Large ``mean_abs[k, i, j]`` (i != j) says inputs i and j act
together on output k. Hessians are computed chunk by chunk with :func:`mat2grad.hessian`
and folded into moment states (see NOTE: [Parallel moment merge]), never all at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..autodiff import hessian
from ..contract import contract_of, to_numpy
from ..errors import Mat2GradError
from ..predict import predict
from . import moments as mom
from .bootstrap import check_bootstrap, poisson_weights
from .local import with_intervals
from .network import Layout, flat_model, flatten_inputs, layout_of
from .result import SensitivityResult

__all__ = ["interactions", "layout_for"]

#: about this many bytes of Hessians per chunk
_CHUNK_BYTES = 32 * 2**20


def layout_for(
    model: nn.Module,
    x: Sequence[Any],
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
) -> Layout:
    """The layout of a static model at samples ``x``, from one evaluated sample."""
    if not x:
        raise Mat2GradError("no inputs given: pass one batch-first array per network input")
    c = contract_of(model)
    integer = c.integer_inputs(len(x))
    wrt = tuple(j for j in range(len(x)) if not integer[j])
    y = predict(model, *[to_numpy(xj)[:1] for xj in x])
    ys = y if isinstance(y, tuple) else (y,)
    in_shapes = [tuple(np.shape(to_numpy(x[j]))[1:]) for j in wrt]
    out_shapes = [tuple(o.shape[1:]) for o in ys]
    return layout_of(model, in_shapes, out_shapes, wrt, input_names, output_names)


def interactions(
    model: nn.Module,
    *x: Any,
    chunk_size: int | None = None,
    bootstrap: int = 0,
    conf_level: float = 0.95,
    seed: int = 0,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
) -> SensitivityResult:
    """Hessian summaries over the samples ``x`` (one batch-first array per input).

    Returns:
        A :class:`SensitivityResult` of kind ``"interactions"`` with ``mean``,
        ``mean_abs``, ``std`` (population) and ``rms``, each ``(S, R, R)``:
        ``[k, i, j]`` summarises d^2 y_k / dx_i dx_j (symmetric in i, j).

    Example:
        >>> res = interactions(net, np.random.rand(500, 10))       # doctest: +SKIP
        >>> assert res["mean_abs"].shape == (3, 10, 10)
    """
    layout = layout_for(model, x, input_names, output_names)
    flat = flat_model(model, layout)
    xf = flatten_inputs(x, layout)
    q, r, s = xf.shape[0], len(layout.inputs), len(layout.outputs)
    check_bootstrap(bootstrap, q, conf_level, "interactions")
    size = chunk_size or max(1, min(q, _CHUNK_BYTES // (8 * s * r * r + 1)))
    names = ("h", "abs", "sq")
    main = {k: mom.empty((s, r, r)) for k in names}
    boot = {k: mom.empty((s, r, r), (bootstrap,)) for k in names} if bootstrap else None
    for a in range(0, q, size):
        b = min(q, a + size)
        h = hessian(flat, xf[a:b], output=None, chunk_size=chunk_size, dtype=dtype, device=device)
        h = to_numpy(h).astype(np.float64, copy=False).reshape(b - a, s, r, r)
        data = {"h": h, "abs": np.abs(h), "sq": h * h}
        for k, v in data.items():
            main[k] = mom.combine(main[k], mom.chunk(v))
        if boot is not None:
            w = poisson_weights(seed, a, b, bootstrap)
            for k, v in data.items():
                boot[k] = mom.combine(boot[k], mom.chunk(v, w))
    stats = _summaries(main)
    reps = _summaries(boot) if boot is not None else None
    return SensitivityResult(
        kind="interactions",
        stats=with_intervals(stats, reps, conf_level),
        inputs=layout.inputs,
        outputs=layout.outputs,
        num_samples=q,
        settings={"std": "population", "ddof": 0, "bootstrap": bootstrap, "seed": seed},
    )


def _summaries(m: dict[str, mom.Moments]) -> dict[str, np.ndarray]:
    mean, var = mom.aggregate(m["h"], 0)
    return {
        "mean": mean,
        "mean_abs": m["abs"].mean,
        "std": np.sqrt(var),
        "rms": np.sqrt(m["sq"].mean),
    }
