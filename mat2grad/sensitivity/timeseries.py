"""Importance per input and per delay for dynamic networks (narxnet, timedelaynet, ...).

From the step sensitivities D_d[q, t, k, i] = dy_k(t) / dx_i(t - d) of
:func:`mat2grad.dynamic.step_sensitivity` (total derivatives: through the fed-back outputs
too for a closed-loop network), averaged over the time steps t >= d and the series q:
``mean``, ``std``, ``rms`` and ``mean_abs`` as in :mod:`.local`, each ``(S, R, L+1)`` with
the lag d on the last axis, so ``rms[k, i, d]`` says how much lag d of input i matters for
output k (the question users answer today by retraining without that lag). ``rms_total``
``(S, R)`` is ``sqrt(sum_d rms[..., d]^2)``, the root mean square size of an input's whole
impulse response. Time steps with ``t < d`` have no x(t - d) and are not counted.

Series are processed a chunk at a time (memory: one chunk's step sensitivities); the
bootstrap resamples whole series, the independent units of a time-series data set.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..contract import contract_of, to_numpy
from ..dynamic import step_sensitivity
from ..errors import Mat2GradError
from . import moments as mom
from .bootstrap import check_bootstrap, interval, poisson_weights
from .network import element_names
from .result import SensitivityResult

__all__ = ["lag_importance"]

_CHUNK_BYTES = 32 * 2**20


def _blocks(result: Any) -> list[list[torch.Tensor]]:
    return [[result]] if isinstance(result, torch.Tensor) else [list(row) for row in result]


def _lag_chunk(band: np.ndarray, w: np.ndarray | None) -> mom.Moments:
    """Moments per lag of ``band`` ``(c, TS, S, L+1, R)``: lag d counts steps t >= d."""
    ts, lags = band.shape[1], band.shape[3]
    parts = []
    for d in range(lags):
        v = band[:, d:, :, d, :]  # (c, TS-d, S, R)
        c = v.shape[0] * v.shape[1]
        flat = v.reshape(c, *v.shape[2:])
        ww = None if w is None else np.repeat(w, ts - d, axis=0)
        parts.append(
            mom.chunk(flat, ww) if c else mom.empty(v.shape[2:], () if w is None else (w.shape[1],))
        )
    axis = 0 if w is None else 1  # lags after the replicate axis
    return mom.Moments(
        np.stack([p.count for p in parts], axis=axis),
        np.stack([p.mean for p in parts], axis=axis),
        np.stack([p.m2 for p in parts], axis=axis),
    )


def _stats(m: dict[str, mom.Moments], ddof: int) -> dict[str, np.ndarray]:
    """Statistics with the lag axis moved last: ``(..., S, R, L+1)``."""
    mean, var = mom.aggregate(m["d"], ddof)
    rms = np.sqrt(m["sq"].mean)
    out = {
        "mean": mean,
        "std": np.sqrt(var),
        "rms": rms,
        "mean_abs": m["abs"].mean,
    }
    # not MATLAB layout: the library's (..., S, R, L+1) order, lags last
    out = {k: np.moveaxis(v, -3, -1) for k, v in out.items()}
    out["rms_total"] = np.sqrt(np.sum(out["rms"] ** 2, axis=-1))
    return out


def lag_importance(
    model: nn.Module,
    *x: Any,
    xi: Sequence[Any] | None = None,
    ai: Sequence[Any] | None = None,
    max_lag: int | None = None,
    ddof: int = 0,
    bootstrap: int = 0,
    conf_level: float = 0.95,
    seed: int = 0,
    chunk_size: int | None = None,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
) -> SensitivityResult:
    """Importance per input and delay of a dynamic network, over the series ``x``.

    Args:
        model: a dynamic network (open or closed loop, e.g. ``mat2grad.dynamic.closeloop``).
        *x: one sequence array ``(Q, TS, R_j)`` per network input (raw units).
        xi, ai: initial input and layer delay states (zeros by default).
        max_lag: the largest delay d (default: the network's ``numInputDelays``).
        ddof, bootstrap, conf_level, seed: as for :func:`mat2grad.sensitivity.sensitivity`
            (the bootstrap resamples series).
        chunk_size: series per step (default: from a ~32 MB budget).

    Returns:
        A :class:`SensitivityResult` of kind ``"lags"``: ``mean``, ``std``, ``rms``,
        ``mean_abs`` ``(S, R, L+1)`` and ``rms_total`` ``(S, R)``.
    """
    c = contract_of(model)
    if not c.is_dynamic:
        raise Mat2GradError(
            f"{c.name}: lag importance is for dynamic networks (delays, feedback); this "
            "network is static: use mat2grad.sensitivity.sensitivity"
        )
    if not x:
        raise Mat2GradError(f"{c.name}: no input sequences given (one (Q, TS, R) per input)")
    xs = [np.asarray(to_numpy(v), dtype=np.float64) for v in x]
    if xs[0].ndim != 3:
        raise Mat2GradError(
            f"{c.name}: expected sequences (Q, TS, R) per input, found shape {xs[0].shape}"
        )
    q, ts = xs[0].shape[:2]
    check_bootstrap(bootstrap, q, conf_level, "lag_importance")
    if ddof not in (0, 1):
        raise Mat2GradError(f"ddof must be 0 (population std) or 1 (sample std); found {ddof!r}")
    state: dict[str, mom.Moments] | None = None
    boot: dict[str, mom.Moments] | None = None
    sizes_in = [v.shape[2] for v in xs]
    r = sum(sizes_in)
    per_series = 8 * ts * max(r, 1) * 4 * (ts if c.spec and c.spec.num_layer_delays else 8)
    size = int(chunk_size or max(1, min(q, _CHUNK_BYTES // max(per_series, 1))))

    def states(src: Sequence[Any] | None, sl: slice) -> list[Any] | None:
        return None if src is None else [None if s is None else np.asarray(s)[sl] for s in src]

    sizes_out: list[int] = []
    for a in range(0, q, size):
        sl = slice(a, min(q, a + size))
        res = step_sensitivity(
            model, *[v[sl] for v in xs], xi=states(xi, sl), ai=states(ai, sl), max_lag=max_lag
        )
        rows = _blocks(res)
        sizes_out = [row[0].shape[2] for row in rows]
        band = np.concatenate(
            [np.concatenate([to_numpy(b) for b in row], axis=4) for row in rows], axis=2
        ).astype(np.float64, copy=False)
        data = {"d": band, "abs": np.abs(band), "sq": band * band}
        new = {k: _lag_chunk(v, None) for k, v in data.items()}
        state = new if state is None else {k: mom.combine(state[k], new[k]) for k in new}
        if bootstrap:
            w = poisson_weights(seed, sl.start, sl.stop, bootstrap)
            newb = {k: _lag_chunk(v, w) for k, v in data.items()}
            boot = newb if boot is None else {k: mom.combine(boot[k], newb[k]) for k in newb}
    assert state is not None
    stats = _stats(state, ddof)
    if boot is not None:
        reps = _stats(boot, ddof)
        for name in list(stats):
            low, high, _ = interval(reps[name], conf_level)
            stats[f"{name}_low"], stats[f"{name}_high"] = low, high
    spec = c.spec
    names_in = [i.name for i in spec.inputs] if spec is not None else list(c.input_names)
    names_out = [o.name for o in spec.outputs] if spec is not None else list(c.output_names)
    inputs = (
        tuple(input_names)
        if input_names
        else element_names(names_in, sizes_in, "x", {"", "input", "inputs"})
    )
    outputs = (
        tuple(output_names)
        if output_names
        else element_names(
            names_out, sizes_out, "y", {"", "output", "outputs", "target", "targets"}
        )
    )
    lags = stats["rms"].shape[-1]
    return SensitivityResult(
        kind="lags",
        stats=stats,
        inputs=inputs,
        outputs=outputs,
        num_samples=q * ts,
        settings={
            "std": "population" if ddof == 0 else "sample",
            "ddof": ddof,
            "max_lag": lags - 1,
            "series": q,
            "time_steps": ts,
            "bootstrap": bootstrap,
            "seed": seed,
        },
    )
