"""MATLAB's performance functions as a table, and the arithmetic around them: error
normalization, error weights, ignored (NaN) errors and regularization.

NOTE: [MATLAB performance]
    With ``e = t - y`` in original (reverse-processed) target units, per output element:

    * normalization (``performParam.normalization``, ``+nnperf/norm_err``/``perc_err``):
      'none' leaves ``e``; 'standard' multiplies row k of output i by
      ``2 / (rmax - rmin)`` and 'percent' by ``1 / (rmax - rmin)``, where
      ``[rmin rmax] = net.outputs{i}.range(k,:)`` (the target range seen by configure);
    * element performance ``apply(t, y, e)``: mse/sse ``e.^2``; mae/sae ``abs(e)``;
      crossentropy ``-t.*log(y)``, or ``-t.*log(y) - (1-t).*log(1-y)`` when the output
      has one row (binary), after clipping ``y`` to ``[eps, 1-eps]`` and ``t`` to ``[0, 1]``
      (``+crossentropy/apply.m``; MATLAB's ``eps = 2^-52``). crossentropy uses ``t`` and
      ``y``, not ``e``, so normalization does not change its value;
    * error weights: the element performances are multiplied by ``EW`` (broadcast over
      samples and rows, like MATLAB's ``gmultiply``);
    * NaN errors are ignored: they add nothing and are not counted (``perform.m``);
    * mse, mae and crossentropy divide the sum by ``N``, the number of counted elements
      over all outputs and samples (crossentropy.html: ``perf = sum(ce(:))/numel(ce)``);
      sse and sae return the sum;
    * regularization ``r`` (``nnCalcLib``, which the training record uses; the docs say
      the larger ``r`` "the more squared weights and biases are included"):
      ``perf = (1 - r) * perf + r * P(wb)`` with ``wb = getwb(net)`` and ``P`` the same
      function applied to the weights (``apply(0, wb, -wb)``): ``sum(wb.^2)`` for mse/sse,
      ``sum(abs(wb))`` for mae/sae (``+mae/dperf_dwb.m`` is ``-sign(wb)``), divided by
      ``numel(wb)`` for the normalized functions. For crossentropy the weight term of
      MATLAB's ``+crossentropy`` package is not known; ``sum(wb.^2)/numel(wb)`` (the
      documented "squared weights", the performance template's ``perfwb``) is used and a
      warning says so. (R2012b's ``nncalc.perform`` has a slip, ``perf*(reg-1) +
      perfwb*reg`` with an unsummed ``perfwb``; the training library, and later releases,
      use the formula above.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..errors import Mat2GradError
from ..shallow.record import NetworkSpec

__all__ = [
    "EPS",
    "NORMALIZATIONS",
    "PERFORMANCE",
    "PerformFcn",
    "check_choice",
    "ignore_nan_errors",
    "normalization_ratios",
    "perform",
    "perform_fcn",
    "regularize",
]

#: MATLAB's ``eps``: crossentropy clips outputs to ``[EPS, 1 - EPS]``.
EPS = float(np.finfo(np.float64).eps)

NORMALIZATIONS = ("none", "standard", "percent")


@dataclass(frozen=True)
class PerformFcn:
    """One MATLAB performance function (see NOTE: [MATLAB performance]).

    ``apply(t, y, e, matlab)`` returns the element performances of one output, ``(..., S)``;
    ``matlab=True`` asks for MATLAB's own derivative rule where it differs from the
    derivative of the value (crossentropy's clipping). ``weights(wb)`` is the
    regularization term per weight.
    """

    apply: Callable[[Tensor, Tensor, Tensor, bool], Tensor]
    normalize: bool  # divide by the number of counted errors (mse, mae, crossentropy)
    weights: Callable[[Tensor], Tensor]
    uses_errors: bool = True  # the value depends on e = t - y (crossentropy: on t and y)
    inferred_regularization: bool = False


def _squares(t: Tensor, y: Tensor, e: Tensor, matlab: bool) -> Tensor:
    return e * e


def _absolute(t: Tensor, y: Tensor, e: Tensor, matlab: bool) -> Tensor:
    return torch.abs(e)


def _crossentropy(t: Tensor, y: Tensor, e: Tensor, matlab: bool) -> Tensor:
    # +crossentropy/apply.m: y = max(min(y,1-eps),eps); t = max(min(t,1),0). MATLAB's
    # backprop.m evaluates -t./y at the clipped y, i.e. it passes the derivative straight
    # through the clip; the derivative of the clipped value is 0 where y was clipped.
    clipped = torch.clamp(y, EPS, 1.0 - EPS)
    if matlab:
        clipped = y + (clipped - y).detach()
    t = torch.clamp(t, 0.0, 1.0)
    if t.shape[-1] > 1:  # 1-of-N
        return -t * torch.log(clipped)
    return -t * torch.log(clipped) - (1.0 - t) * torch.log(1.0 - clipped)  # binary


PERFORMANCE: dict[str, PerformFcn] = {
    # mse.html, sse.html: mean / sum of squared errors (+mse/apply.m: perfs = e.*e)
    "mse": PerformFcn(_squares, True, lambda wb: wb * wb),
    "sse": PerformFcn(_squares, False, lambda wb: wb * wb),
    # mae.html, sae.html: mean / sum of absolute errors (+sae/backprop.m: dy = -sign(e))
    "mae": PerformFcn(_absolute, True, torch.abs),
    "sae": PerformFcn(_absolute, False, torch.abs),
    # crossentropy.html: ce = -t.*log(y), perf = sum(ce(:))/numel(ce); binary when S == 1
    "crossentropy": PerformFcn(
        _crossentropy,
        True,
        lambda wb: wb * wb,
        uses_errors=False,
        inferred_regularization=True,
    ),
}


def check_choice(value: str, choices: Sequence[str], what: str) -> None:
    """Reject a setting outside its closed vocabulary, listing the valid ones."""
    if value not in choices:
        raise Mat2GradError(f"{what} must be one of {', '.join(choices)}; found '{value}'")


def perform_fcn(name: str | None, where: str) -> tuple[str, PerformFcn]:
    """The row of :data:`PERFORMANCE` for ``name`` (falsy: the network has no performFcn)."""
    if not name:
        raise Mat2GradError(
            f"{where} has no performFcn; choose one with performance=... "
            f"(CLI: --performance; supported: {', '.join(PERFORMANCE)})"
        )
    if name not in PERFORMANCE:
        raise Mat2GradError(
            f"{where}: performance function '{name}' is not supported (supported: "
            f"{', '.join(PERFORMANCE)}); choose one with performance=... "
            "(CLI: --performance)"
        )
    return name, PERFORMANCE[name]


def normalization_ratios(spec: NetworkSpec, normalization: str, dtype: torch.dtype) -> list[Tensor]:
    """Per output, ``(S_k,)`` factors that normalize the errors row by row
    (``+nnperf/norm_err``, ``perc_err``; see NOTE: [MATLAB performance])."""
    out = []
    for o in spec.outputs:
        if normalization == "none":
            out.append(torch.ones(o.size, dtype=dtype))
            continue
        if o.range is None:
            raise Mat2GradError(
                f"{spec.where}: normalization '{normalization}' needs the target range "
                f"outputs{{{o.layer}}}.range, which the network does not have; use "
                "normalization='none'"
            )
        span = o.range[:, 1] - o.range[:, 0]
        if not np.all(np.isfinite(span)) or np.any(span <= 0):
            raise Mat2GradError(
                f"{spec.where}: outputs{{{o.layer}}}.range has rows with zero or "
                f"non-finite width ({o.range.tolist()}); errors cannot be normalized by it"
            )
        scale = 2.0 if normalization == "standard" else 1.0
        out.append(torch.as_tensor(scale / span, dtype=dtype))
    return out


def ignore_nan_errors(
    targets: Sequence[Tensor], outputs: Sequence[Tensor]
) -> tuple[list[Tensor], list[Tensor], int]:
    """MATLAB ignores NaN errors: per output, the targets with 0 where the error is NaN,
    the ``(Q, S_k)`` mask of the errors that count, and ``N``, how many count in all."""
    masks = [~torch.isnan(tk - yk) for tk, yk in zip(targets, outputs, strict=True)]
    ts = [torch.where(m, tk, torch.zeros_like(tk)) for tk, m in zip(targets, masks, strict=True)]
    count = int(sum(int(m.sum()) for m in masks))
    return ts, masks, count


def perform(
    fcn: PerformFcn,
    outputs: Sequence[Tensor],
    targets: Sequence[Tensor],
    masks: Sequence[Tensor],
    error_weights: Sequence[Tensor],
    ratios: Sequence[Tensor],
    count: int,
    *,
    matlab: bool,
) -> Tensor:
    """The performance before regularization, a differentiable scalar: the weighted
    element performances of the errors that count, summed over every output, divided by
    ``count`` for the normalized functions (NOTE: [MATLAB performance]).

    ``matlab=True`` follows MATLAB's backpropagation rules where they differ from the
    derivative of the value (see NOTE: [Sign and scaling of MATLAB's dperf_dwb])."""
    total = outputs[0].new_zeros(())
    for yk, tk, mk, wk, rk in zip(outputs, targets, masks, error_weights, ratios, strict=True):
        ek = (tk - yk) * rk
        if matlab and not fcn.uses_errors:
            # MATLAB scales dperf/dy by the normalization factor even though the
            # crossentropy value does not depend on it (calculateGradientBackprop).
            yk = yk * rk + (yk - yk * rk).detach()
        perfs = fcn.apply(tk, yk, ek, matlab) * wk
        total = total + torch.where(mk, perfs, torch.zeros_like(perfs)).sum()
    if fcn.normalize:
        total = total / count
    return total


def regularize(fcn: PerformFcn, perf: Tensor, wb: Tensor, regularization: float) -> Tensor:
    """``(1 - r) * perf + r * P(wb)``, ``wb`` the ``getwb`` vector (NOTE: [MATLAB
    performance])."""
    term = fcn.weights(wb).sum()
    if fcn.normalize:
        term = term / max(1, wb.numel())
    return (1.0 - regularization) * perf + regularization * term
