"""``sensitivity``: the one entry point that picks the analysis a network needs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..contract import contract_of
from ..errors import Mat2GradError, refuse_out_of_memory
from .bootstrap import check_bootstrap
from .interactions import interactions as hessian_summary
from .local import local_result
from .result import SensitivityResult
from .stream import accumulate
from .timeseries import lag_importance

__all__ = ["sensitivity"]


@refuse_out_of_memory
def sensitivity(
    model: nn.Module,
    *x: Any,
    scale: str | None = None,
    ddof: int = 0,
    bootstrap: int = 0,
    conf_level: float = 0.95,
    seed: int = 0,
    keep: int = 0,
    interactions: bool = False,
    chunk_size: int | None = None,
    mode: str = "auto",
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    **series: Any,
) -> SensitivityResult:
    """Which inputs matter: derivative statistics of every output w.r.t. every input.

    Args:
        model: a network from :func:`mat2grad.load` (static or dynamic MATLAB network, ONNX
            model) or any module following the model contract.
        *x: one batch-first array per network input, ``(Q, *in_j)`` (raw units); for a
            dynamic network, sequences ``(Q, TS, R_j)`` (see
            :func:`mat2grad.sensitivity.timeseries.lag_importance`, which takes ``xi``,
            ``ai`` and ``max_lag`` through ``**series``).
        scale: None (raw units), ``"std"`` or ``"range"`` (see the module docstring).
        ddof: 0 (population std, NeuralSens' Python package) or 1 (R's ``sd``).
        bootstrap: number of bootstrap replicates (0: none); adds ``<stat>_low`` and
            ``<stat>_high`` percentile intervals at ``conf_level``.
        seed: seed of the bootstrap weights and of the ``keep`` subset.
        keep: keep a random subset of this many raw derivatives (for density plots).
        interactions: also summarise the Hessians (``result.parts["interactions"]``).
        chunk_size, mode, dtype, device, progress: as for :func:`mat2grad.jacobian`.
        input_names, output_names: element names (default: from the network).

    Returns:
        A :class:`SensitivityResult` with ``mean``, ``std``, ``rms``, ``mean_abs``, each
        ``(S, R)``: ``result["rms"][k, i]`` for output k and input i.

    Raises:
        Mat2GradError: a non-differentiable network, bad samples, too few samples for a
            bootstrap, a scale that cannot be computed.

    Example:
        >>> res = sensitivity(net, np.random.rand(1000, 10))          # doctest: +SKIP
        >>> assert res["rms"].shape == (3, 10)                          # (S, R)
    """
    if contract_of(model).is_dynamic:
        return lag_importance(
            model,
            *x,
            ddof=ddof,
            bootstrap=bootstrap,
            conf_level=conf_level,
            seed=seed,
            chunk_size=chunk_size,
            input_names=input_names,
            output_names=output_names,
            **series,
        )
    if series:
        raise Mat2GradError(
            f"unexpected options {', '.join(series)}: they apply to dynamic networks only"
        )
    q = _num_samples(x)
    check_bootstrap(bootstrap, q, conf_level, "sensitivity")
    state = accumulate(
        model,
        x,
        replicates=bootstrap,
        seed=seed,
        keep=keep,
        chunk_size=chunk_size,
        mode=mode,
        dtype=dtype,
        device=device,
        progress=progress,
        input_names=input_names,
        output_names=output_names,
    )
    result = local_result(state, model, scale=scale, ddof=ddof, conf_level=conf_level)
    if interactions:
        result.parts["interactions"] = hessian_summary(
            model,
            *x,
            chunk_size=chunk_size,
            bootstrap=bootstrap,
            conf_level=conf_level,
            seed=seed,
            input_names=input_names,
            output_names=output_names,
        )
    return result


def _num_samples(x: Sequence[Any]) -> int:
    if not x:
        raise Mat2GradError("no inputs given: pass one batch-first array per network input")
    first = x[0]
    shape = getattr(first, "shape", None) or np.shape(first)
    return int(shape[0]) if len(shape) else 0
