"""The training problem: a static MATLAB shallow network, its inputs, targets, error weights
and performance settings, checked once and held ready for the performance and its
derivatives with respect to the weights.

NOTE: [NaN inputs]
    MATLAB's ``nntraining.fix_nan_inputs`` sets the targets to NaN wherever the simulated
    output is NaN (so those errors are ignored) and then replaces NaN inputs by 0 so that
    they cannot turn the gradient into NaN. mat2grad does the same, replacing NaN in the
    *processed* inputs (the 2010 version of that function): the outputs that count are
    then exactly ``sim(net, x)``'s, and ``performance`` equals
    ``perform(net, t, sim(net, x))``. (From R2015 MATLAB replaces NaN in the *raw* inputs,
    before input processing; the two agree except for ``fixunknowns`` inputs, where MATLAB's
    training then sees 0 instead of an unknown value.)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from ..errors import Mat2GradError
from ..predict import as_batches, float_tensor
from ..shallow.module import ShallowNetwork
from ..shallow.record import NetworkSpec
from .functions import (
    NORMALIZATIONS,
    PerformFcn,
    check_choice,
    ignore_nan_errors,
    normalization_ratios,
    perform,
    perform_fcn,
    regularize,
)
from .wb import flatten_wb, wb_layout

__all__ = ["Problem", "static_shallow", "warn_zero_derivative"]


class _TrainingForward(nn.Module):
    """``sim(net, x)`` with NaN *processed* inputs replaced by 0 (NOTE: [NaN inputs]).

    A wrapper, so that ``torch.func.functional_call`` can substitute the weights (names
    ``net.IW.1_1``, ...) without touching the network's own parameters.
    """

    def __init__(self, net: ShallowNetwork):
        super().__init__()
        self.net = net

    def forward(self, *x: Tensor) -> tuple[Tensor, ...]:
        net = self.net
        p = [chain.apply(xj) for chain, xj in zip(net.input_processing, x, strict=True)]
        p = [torch.where(torch.isnan(pj), torch.zeros_like(pj), pj) for pj in p]
        # ShallowNetwork offers no public pass from processed inputs (its forward processes
        # the raw inputs itself, so the NaN fix cannot go between); its private layer pass
        # is the one forward uses, so both compute the same outputs.
        a = net._layers(p, batch_shape=x[0].shape[:-1])
        return tuple(
            chain.reverse(a[o.layer])
            for chain, o in zip(net.output_processing, net.spec.outputs, strict=True)
        )


@dataclass
class Problem:
    """A checked training problem; build it with :meth:`Problem.build`."""

    net: ShallowNetwork
    x: tuple[Tensor, ...]  # (Q, R_j) per input
    t: list[Tensor]  # (Q, S_k) per output, NaN replaced by 0 where masked
    mask: list[Tensor]  # (Q, S_k) bool: the error counts
    ew: list[Tensor]  # (Q, S_k) error weights
    ratio: list[Tensor]  # (S_k,) normalization factor per output row
    fcn: PerformFcn | None
    name: str
    normalization: str
    regularization: float
    count: int
    wrapper: _TrainingForward
    y: tuple[Tensor, ...]  # the outputs for the network's own weights (NaN inputs fixed)

    @classmethod
    def build(
        cls,
        model: nn.Module,
        x: Any,
        t: Any,
        name: str | None,
        ew: Any,
        normalization: str | None,
        regularization: float | None,
        *,
        need_perform: bool = True,
    ) -> Problem:
        """Check the network, the data and the settings (defaults: ``performFcn`` and
        ``performParam``) and simulate once. Raises :class:`Mat2GradError`."""
        net = static_shallow(model, "performance")
        spec = net.spec
        param = spec.perform_param
        fcn = None
        if need_perform:
            name, fcn = perform_fcn(name or spec.perform_fcn, spec.where)
        normalization = normalization or str(param.get("normalization", "none") or "none")
        check_choice(normalization, NORMALIZATIONS, "normalization")
        if regularization is None:
            regularization = float(param.get("regularization", 0.0) or 0.0)
        regularization = float(regularization)
        if not 0.0 <= regularization <= 1.0:
            raise Mat2GradError(f"regularization must be in [0, 1], found {regularization}")

        xs = as_batches(net, list(x) if isinstance(x, list | tuple) else [x])
        q = xs[0].shape[0]
        dtype = xs[0].dtype
        ts = _targets(net, t, q, dtype)
        ews = _error_weights(net, ew, q, dtype)
        ratios = normalization_ratios(spec, normalization, dtype)
        wrapper = _TrainingForward(net)
        with torch.no_grad():
            y_fixed = wrapper(*xs)
            if any(bool(torch.isnan(xj).any()) for xj in xs):
                y_sim = net(*xs)
                y_sim = y_sim if isinstance(y_sim, tuple) else (y_sim,)
                _check_nan_fix(spec, y_sim, y_fixed)
                y_ref = y_sim
            else:
                y_ref = y_fixed
        ts, masks, count = ignore_nan_errors(ts, y_ref)
        if need_perform and count == 0:
            raise Mat2GradError(
                f"{spec.where}: every error is NaN (NaN targets or outputs), so there is no "
                "performance to compute; check the targets and the NaN inputs"
            )
        if fcn is not None and fcn.inferred_regularization and regularization > 0:
            warnings.warn(
                f"{name} with regularization {regularization}: MATLAB's weight term for "
                "crossentropy was not found in its sources; mat2grad uses the documented "
                "mean squared weights, sum(wb.^2)/numel(wb)",
                UserWarning,
                stacklevel=3,
            )
        return cls(
            net=net,
            x=xs,
            t=ts,
            mask=masks,
            ew=ews,
            ratio=ratios,
            fcn=fcn,
            name=name or "",
            normalization=normalization,
            regularization=regularization,
            count=count,
            wrapper=wrapper,
            y=y_fixed,
        )

    def forward(self, params: Mapping[str, Tensor], xs: Sequence[Tensor]) -> tuple[Tensor, ...]:
        """Raw outputs for the weights ``params`` (module names: ``IW.1_1``, ...)."""
        named = {f"net.{n}": p for n, p in params.items()}
        return functional_call(self.wrapper, named, tuple(xs))

    def objective(
        self,
        params: Mapping[str, Tensor],
        *,
        matlab: bool,
        outputs: tuple[Tensor, ...] | None = None,
    ) -> Tensor:
        """The performance as a differentiable scalar (NOTE: [MATLAB performance]);
        ``outputs``: the network's outputs for ``params`` if already computed."""
        fcn = self.fcn
        assert fcn is not None
        ys = self.forward(params, self.x) if outputs is None else outputs
        total = perform(fcn, ys, self.t, self.mask, self.ew, self.ratio, self.count, matlab=matlab)
        if self.regularization > 0:
            wb = flatten_wb(params, wb_layout(self.net.spec))
            total = regularize(fcn, total, wb, self.regularization)
        return total


# --------------------------------------------------------------------------------------
# Checking and shaping the data
# --------------------------------------------------------------------------------------


def static_shallow(model: nn.Module, what: str) -> ShallowNetwork:
    """``model`` if it is a static MATLAB shallow network, else a :class:`Mat2GradError`
    that names the API (``what``)."""
    if not isinstance(model, ShallowNetwork):
        raise Mat2GradError(
            f"{what}: MATLAB performance functions and weight gradients apply to MATLAB "
            f"shallow networks (mat2grad.load of a MAT-file); found {type(model).__name__}"
        )
    if model.spec.is_dynamic:
        raise Mat2GradError(
            f"{model.spec.where} is a dynamic network (tapped delays or feedback); "
            f"{what} supports static networks only"
        )
    return model


def _one_per_output(
    net: ShallowNetwork, value: Any, default: list[Any], message: Callable[[int, int], str]
) -> list[Any]:
    """``value`` as one part per output: a list/tuple as it is, anything else ``default``;
    ``message(outputs, found)`` says why when the count is wrong."""
    parts = list(value) if isinstance(value, list | tuple) else default
    if len(parts) != len(net.output_sizes):
        raise Mat2GradError(message(len(net.output_sizes), len(parts)))
    return parts


def _targets(net: ShallowNetwork, value: Any, q: int, dtype: torch.dtype) -> list[Tensor]:
    """Targets -> one ``(Q, S_k)`` tensor per output."""
    what = "targets"
    parts = _one_per_output(
        net,
        value,
        [value],
        lambda n, found: (
            f"{net.spec.where} has {n} output(s); pass one (Q, S) array of "
            f"{what} per output, found {found}"
        ),
    )
    out = []
    for k, (part, size) in enumerate(zip(parts, net.output_sizes, strict=True)):
        tk = float_tensor(part, dtype, f"{what} {k + 1}")
        if tk.ndim == 1 and size == 1:
            tk = tk.reshape(-1, 1)
        if tk.ndim == 1 and q == 1:
            tk = tk.reshape(1, -1)
        if tuple(tk.shape) != (q, size):
            hint = ""
            if tuple(tk.shape) == (size, q):
                hint = " (samples seem to be in columns: pass the transpose)"
            raise Mat2GradError(
                f"{what} for output {k + 1} have shape {tuple(tk.shape)}; the network gives "
                f"({q}, {size}) (Q samples x outputs{{{net.spec.outputs[k].layer}}}.size)"
                f"{hint}"
            )
        out.append(tk)
    return out


def _error_weights(net: ShallowNetwork, ew: Any, q: int, dtype: torch.dtype) -> list[Tensor]:
    """Error weights (default 1; one array for every output, or one per output) -> one
    ``(Q, S_k)`` tensor per output."""
    sizes = net.output_sizes
    if ew is None:
        return [torch.ones(q, s, dtype=dtype) for s in sizes]
    parts = _one_per_output(
        net,
        ew,
        [ew] * len(sizes),
        lambda n, found: (
            f"error weights: {n} output(s), so give one array per output (or "
            f"one for all); found {found}"
        ),
    )
    out = []
    for k, (part, size) in enumerate(zip(parts, sizes, strict=True)):
        w = float_tensor(part, dtype, f"error weights {k + 1}")
        if w.ndim == 1 and w.shape[0] == q:
            w = w.reshape(q, 1)  # per sample
        elif w.ndim == 1:
            w = w.reshape(1, -1)
        try:
            w = torch.broadcast_to(w, (q, size))
        except RuntimeError:
            raise Mat2GradError(
                f"error weights for output {k + 1} have shape {tuple(w.shape)}; expected a "
                f"scalar, ({q},) per sample, (1, {size}) per row or ({q}, {size})"
            ) from None
        if bool((w < 0).any()):
            raise Mat2GradError(f"error weights for output {k + 1} must be >= 0")
        out.append(w)
    return out


def _check_nan_fix(spec: NetworkSpec, y_sim: Sequence[Tensor], y_fixed: Sequence[Tensor]) -> None:
    """Replacing NaN inputs by 0 must leave every output that is not NaN as it was."""
    for k, (ys, yf) in enumerate(zip(y_sim, y_fixed, strict=True)):
        keep = ~torch.isnan(ys)
        if not keep.any():
            continue
        diff = torch.abs(ys[keep] - yf[keep]).max()
        scale = torch.abs(ys[keep]).max().clamp_min(1e-300)
        if not bool(diff <= 1e-12 * scale):
            raise Mat2GradError(
                f"{spec.where}, output {k + 1}: replacing NaN inputs by 0 (as MATLAB does for "
                "gradients) changed outputs that are not NaN; a transfer function absorbs "
                "NaN here (hardlim/compet), which is not supported: remove the NaN samples"
            )


def warn_zero_derivative(net: ShallowNetwork, what: str) -> None:
    """Warn (at the caller of the public API) when some layer's derivative is zero almost
    everywhere: the result is exact, but zero for every weight before it."""
    if net.zero_derivative:
        warnings.warn(
            f"{net.spec.where}: the derivative is zero almost everywhere in "
            f"{', '.join(net.zero_derivative)}; {what} is exact but gives zero for every "
            "weight before those layers",
            UserWarning,
            stacklevel=3,
        )
