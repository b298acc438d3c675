"""SALib on a network without glue code: the problem definition from the network's
recorded input ranges, and a batched model function over SALib's ``(N, D)`` samples.

    problem = salib_problem(net)
    X = SALib.sample.sobol.sample(problem, 1024)
    Y = salib_model(net, output=0)(X)
    Si = SALib.analyze.sobol.analyze(problem, Y)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from torch import nn

from ..contract import contract_of, to_numpy
from ..errors import Mat2GradError
from ..predict import predict
from .interactions import layout_for
from .network import Layout, recorded_ranges, split_inputs

__all__ = ["check_bounds", "declared_layout", "salib_model", "salib_problem"]

_BLOCK = 65536


def declared_layout(model: nn.Module) -> Layout:
    c = contract_of(model)
    if c.input_shapes is None or any(d is None for s in c.input_shapes for d in s):
        raise Mat2GradError(
            f"{c.name}: the model does not declare fixed per-sample input shapes; give "
            "example inputs to mat2grad.sensitivity instead"
        )
    x = [np.zeros((1, *s)) for s in c.input_shapes]  # type: ignore[misc]
    return layout_for(model, x)


def check_bounds(bounds: Any, r: int, where: str, *, strict: bool = True) -> np.ndarray:
    """``bounds`` as a float64 ``(R, 2)`` array of [lower upper] rows; one-line errors for
    a wrong shape, non-finite values or lower >= upper (lower > upper when not
    ``strict``: the network's recorded ranges hold constant inputs at their one value)."""
    b = np.asarray(bounds, dtype=np.float64)
    if b.shape == (2, r) and r != 2:
        b = b.T  # not MATLAB layout: a 2 x R [lower; upper] argument, turned to R x 2 rows
    if b.shape != (r, 2):
        raise Mat2GradError(
            f"{where}: bounds must be R x 2 [lower upper] rows for the {r} inputs; found shape "
            f"{b.shape}"
        )
    if not np.all(np.isfinite(b)):
        raise Mat2GradError(f"{where}: bounds must be finite")
    bad = np.flatnonzero(b[:, 0] >= b[:, 1]) if strict else np.flatnonzero(b[:, 0] > b[:, 1])
    if bad.size:
        i = int(bad[0])
        raise Mat2GradError(
            f"{where}: bounds of input {i + 1} have lower {b[i, 0]:g} >= upper {b[i, 1]:g}; "
            "give lower < upper for every input"
        )
    return b


def salib_problem(
    model: nn.Module, bounds: Any = None, names: Sequence[str] | None = None
) -> dict[str, Any]:
    """SALib's problem dict (``num_vars``, ``names``, ``bounds``) for ``model``'s inputs:
    the ranges the network recorded in training unless ``bounds`` (R x 2) are given.
    Inputs the network saw constant (zero-width range) get a width of 1e-12 relative, as
    SALib needs lower < upper."""
    layout = declared_layout(model)
    r = len(layout.inputs)
    if bounds is None:
        rec = recorded_ranges(model, "inputs")
        if rec is None or rec.shape[0] != r:
            raise Mat2GradError(
                f"{layout.name}: the network recorded no input ranges; give bounds (R x 2)"
            )
        b = check_bounds(rec, r, layout.name, strict=False).copy()
        flat = b[:, 0] == b[:, 1]
        b[flat, 1] += np.maximum(np.abs(b[flat, 1]), 1.0) * 1e-12
    else:
        b = check_bounds(bounds, r, layout.name)
    return {
        "num_vars": r,
        "names": list(names) if names is not None else list(layout.inputs),
        "bounds": b.tolist(),
    }


def salib_model(model: nn.Module, output: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """A function ``f(X)`` for SALib: ``X`` ``(N, D)`` samples (D = all input elements, see
    NOTE: [Sensitivity layout]) -> ``(N,)`` values of output element ``output`` (0-based),
    or ``(N, S)`` for all outputs when ``output`` is None and there are several (SALib's
    analyses take one output at a time). Evaluated in blocks, float64."""
    layout = declared_layout(model)
    r, s = len(layout.inputs), len(layout.outputs)
    if output is not None and not 0 <= int(output) < s:
        raise Mat2GradError(f"{layout.name}: output must be in 0..{s - 1}, found {output!r}")

    def f(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != r:
            raise Mat2GradError(
                f"{layout.name}: SALib samples must be (N, {r}), found shape {x.shape}"
            )
        out = np.empty((x.shape[0], s))
        for a in range(0, x.shape[0], _BLOCK):
            b = min(x.shape[0], a + _BLOCK)
            y = predict(model, *split_inputs(x[a:b], layout))
            ys = y if isinstance(y, tuple) else (y,)
            out[a:b] = np.concatenate([to_numpy(o).reshape(b - a, -1) for o in ys], axis=1)
        if output is not None:
            return out[:, int(output)]
        return out[:, 0] if s == 1 else out

    return f
