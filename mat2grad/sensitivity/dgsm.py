"""Derivative-based global sensitivity measures (DGSM) over the input domain.

Sobol' & Kucherenko (2009), "Derivative based global sensitivity measures and their link
with global sensitivity indices", Math. Comput. Simul. 79(10): for inputs uniform on
[a_i, b_i],

* ``nu``    = E[(dy_k/dx_i)^2]                                 (SALib's ``vi``)
* ``nu_std`` = std((dy_k/dx_i)^2), population                  (SALib's ``vi_std``)
* ``dgsm``  = nu (b_i - a_i)^2 / (pi^2 Var(y_k))                (SALib's ``dgsm``), an upper
  bound on the total Sobol' index of input i for output k; Var(y_k) is the population
  variance of y_k over the same samples,

exactly as ``SALib.analyze.dgsm.analyze`` defines them, but with exact derivatives instead
of SALib's forward differences (its ``finite_diff`` sampler perturbs each input by 1%), and
D times fewer model evaluations. With ``bootstrap`` replicates: ``dgsm_low``/``dgsm_high``
(percentile interval), ``dgsm_conf`` (z * bootstrap std of the index) and ``nu_conf``
(z * bootstrap std of nu; SALib's ``dgsm_conf`` is this quantity, the spread of ``vi``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..contract import to_numpy
from ..errors import Mat2GradError
from . import moments as mom
from .bootstrap import check_bootstrap, interval
from .network import recorded_ranges, split_inputs
from .result import SensitivityResult
from .salib import check_bounds, declared_layout
from .stream import State, accumulate

__all__ = ["dgsm", "dgsm_statistics"]

#: samples drawn per block; the sample sequence depends on the seed only, not on chunking
_BLOCK = 65536


def dgsm_statistics(state: State, moments: dict[str, mom.Moments], width: np.ndarray) -> dict:
    """``nu``, ``nu_std``, ``var_y`` and ``dgsm`` of a state (a leading replicate axis
    carries through)."""
    nu, var_sq = mom.aggregate(moments["sq"], 0)
    _, var_y = mom.aggregate(moments["y"], 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        index = nu * (width**2) / (np.pi**2 * var_y[..., :, None])
    return {"nu": nu, "nu_std": np.sqrt(var_sq), "var_y": var_y, "dgsm": index}


def dgsm(
    model: nn.Module,
    n: int = 10000,
    *,
    bounds: Any = None,
    data: Any = None,
    bootstrap: int = 100,
    conf_level: float = 0.95,
    seed: int = 0,
    chunk_size: int | None = None,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
) -> SensitivityResult:
    """DGSM of every output w.r.t. every input (see the module docstring).

    Args:
        model: a static network (see :func:`mat2grad.sensitivity.sensitivity`).
        n: samples drawn uniformly in ``bounds`` (ignored with ``data``).
        bounds: ``(R, 2)`` [lower upper] per input element (default: the ranges the network
            recorded in training, MATLAB's ``inputs{i}.range``; inputs it saw constant are
            held at their value).
        data: the samples themselves (one batch-first array per input, or one ``(N, R)``
            array) instead of uniform draws; ``bounds`` still give the widths ``b - a``.
        bootstrap: replicates for the intervals (0: none); conf_level: their level.
        seed: seed of the uniform draws and of the bootstrap.
        chunk_size, dtype, device, progress: as for :func:`mat2grad.jacobian`.

    Returns:
        A :class:`SensitivityResult` of kind ``"dgsm"`` with ``nu``, ``nu_std``, ``dgsm``
        ``(S, R)`` (and intervals), ``var_y`` ``(S,)`` and ``bounds`` ``(R, 2)``.

    Raises:
        Mat2GradError: bounds with lower >= upper, an output that does not vary over the
            samples (Var(y) = 0), too few samples for the bootstrap.
    """
    layout = declared_layout(model)
    r = len(layout.inputs)
    if bounds is not None:
        b = check_bounds(bounds, r, f"{layout.name}: dgsm")
    else:
        rec = recorded_ranges(model, "inputs")
        if rec is None or rec.shape[0] != r:
            if data is None:
                raise Mat2GradError(
                    f"{layout.name}: dgsm samples uniformly within the input ranges the "
                    "network recorded in training, and this network recorded none; give "
                    "bounds (R x 2) or data"
                )
            flat = _flat_data(data, layout)
            rec = np.stack([flat.min(axis=0), flat.max(axis=0)], axis=1)
        b = check_bounds(rec, r, f"{layout.name}: dgsm", strict=False)
    width = b[:, 1] - b[:, 0]
    common = dict(
        replicates=bootstrap,
        seed=seed,
        chunk_size=chunk_size,
        dtype=dtype,
        device=device,
        progress=progress,
        input_names=input_names,
        output_names=output_names,
        spread_sq=True,  # nu_std
    )
    if data is not None:
        xs = (
            data
            if isinstance(data, tuple | list)
            else split_inputs(_flat_data(data, layout), layout)
        )
        total = int(np.shape(to_numpy(xs[0]))[0])
        check_bootstrap(bootstrap, total, conf_level, "dgsm")
        state = accumulate(model, list(xs), **common)
    else:
        if not isinstance(n, int | np.integer) or n < 2:
            raise Mat2GradError(f"dgsm: n must be a whole number >= 2, found {n!r}")
        check_bootstrap(bootstrap, int(n), conf_level, "dgsm")
        rng = np.random.default_rng(seed)
        state = None
        for a in range(0, int(n), _BLOCK):
            m = min(int(n), a + _BLOCK) - a
            x = b[:, 0] + rng.random((m, r)) * width
            state = accumulate(model, split_inputs(x, layout), state=state, **common)
    assert state is not None and state.layout is not None
    stats = dgsm_statistics(state, state.main, width)
    zero = np.flatnonzero(~(stats["var_y"] > 0))
    if zero.size:
        names = ", ".join(state.layout.outputs[k] for k in zero)
        raise Mat2GradError(
            f"{layout.name}: dgsm divides by Var(y), but output(s) {names} do not vary over "
            f"the {state.count} samples; drop those outputs or widen the bounds"
        )
    if state.boot is not None:
        reps = dgsm_statistics(state, state.boot, width)
        for name in ("nu", "dgsm"):
            low, high, conf = interval(reps[name], conf_level)
            stats[f"{name}_low"], stats[f"{name}_high"], stats[f"{name}_conf"] = low, high, conf
    stats["bounds"] = b
    return SensitivityResult(
        kind="dgsm",
        stats=stats,
        inputs=state.layout.inputs,
        outputs=state.layout.outputs,
        num_samples=state.count,
        settings={
            "sampling": "data" if data is not None else "uniform",
            "bootstrap": bootstrap,
            "conf_level": conf_level if bootstrap else None,
            "seed": seed,
        },
    )


def _flat_data(data: Any, layout: Any) -> np.ndarray:
    if isinstance(data, tuple | list):
        parts = [to_numpy(p).reshape(np.shape(p)[0], -1) for p in data]
        return np.concatenate(parts, axis=1).astype(np.float64)
    arr = np.asarray(to_numpy(data), dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != len(layout.inputs):
        raise Mat2GradError(
            f"{layout.name}: dgsm data must be (N, {len(layout.inputs)}), found {arr.shape}"
        )
    return arr
