"""MATLAB's performance functions, and their derivatives with respect to the weights and
biases (backpropagation), laid out the way MATLAB lays them out.

``performance(model, x, t)`` is the number ``perform(net, t, sim(net, x))`` gives (and the
one ``train`` records as ``tr.perf`` / ``tr.best_perf`` for the samples it trains on);
``weight_gradient`` is its gradient with respect to every weight and bias, as pieces shaped
like ``net.b``, ``net.IW``, ``net.LW`` and as one vector in ``getwb(net)`` order;
``error_jacobian`` is the per-sample Jacobian of the errors (what Levenberg-Marquardt uses).

The library is batch-first: inputs ``(Q, R)``, targets ``(Q, S)``, one sample per row.

Sources. MathWorks documentation pages (found with the workplace's ``search`` tool):
mse.html, sse.html, mae.html, sae.html, crossentropy.html, perform.html, getwb.html,
formwb.html, staticderiv.html, defaultderiv.html, num5deriv.html. MathWorks toolbox source
excerpts seen in public repositories (read for the formulas only; nothing is copied):
``+nncalc/perform.m`` (2012), ``+nnperf/norm_err.m`` and ``perc_err.m`` (2010),
``+crossentropy/apply.m``/``backprop.m`` (2013-2015), ``+mse``/``+sae``/``+mae`` package
functions (2012), ``+nn/wb_indices.m`` and ``formwb.m`` (2012), ``nn_hints``/``formwb.m``
of NNET 7 (2010), ``nnCalcLib.grad``/``perfsGrad``/``perfsJEJJ``,
``nnet.mode.matlab.calculateGradientBackprop`` (2016), ``nntraining.fix_nan_inputs``
(2010 and 2015), ``staticderiv.m``/``num5deriv.m``/``traingd.m`` (NNET 7, 2010).

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
      ``numel(wb)`` for the normalized functions. For crossentropy the package's weight
      term was not found; ``sum(wb.^2)/numel(wb)`` (the documented "squared weights", the
      performance template's ``perfwb``) is used and a warning says so. (R2012b's
      ``nncalc.perform`` has a slip, ``perf*(reg-1) + perfwb*reg`` with an unsummed
      ``perfwb``; the training library, and later releases, use the formula above.)

NOTE: [NaN inputs]
    MATLAB's ``nntraining.fix_nan_inputs`` sets the targets to NaN wherever the simulated
    output is NaN (so those errors are ignored) and then replaces NaN inputs by 0 so that
    they cannot turn the gradient into NaN. mat2grad does the same, replacing NaN in the
    *processed* inputs (the 2010 version of that function): the outputs that count are
    then exactly ``sim(net, x)``'s, and ``performance`` equals
    ``perform(net, t, sim(net, x))``. (From R2015 MATLAB replaces NaN in the *raw* inputs,
    before input processing; the two agree except for ``fixunknowns`` inputs, where MATLAB's
    training then sees 0 instead of an unknown value.)

NOTE: [getwb order]
    ``getwb(net)`` concatenates, layer by layer (i = 1..numLayers), the layer's bias
    ``b{i}``, then its input weights ``IW{i,j}`` (j = 1..numInputs), then its layer
    weights ``LW{i,j}`` (j = 1..numLayers), each flattened column-major (``W(:)``), and
    only those whose ``learn`` property is true: ``+nn/wb_indices.m`` (2012) and
    ``formwb.m``/``getwb.m`` (R2012b, NNET 8.0, and every release since). The current
    setwb.html example confirms it: after ``setwb(net, rand(10,1))`` it shows ``b{1}`` and
    then ``IW{1,1}`` as consecutive draws of MATLAB's default random stream. That is
    ``wb_order="bias-first"``, the default. MATLAB R2010b-R2012a (NNET 7) put the bias
    *last* in each layer (``IW{i,:}``, ``LW{i,:}``, ``b{i}``), as the ``net.hint`` indices
    stored in version-'7' network files show: ``wb_order="bias-last"``. The order belongs
    to the MATLAB that calls ``getwb``/``setwb``, not to the file.

NOTE: [Sign and scaling of MATLAB's dperf_dwb]
    MATLAB's weight derivatives are the *negative* gradient: ``defaultderiv``,
    ``staticderiv`` and ``num5deriv`` ``('dperf_dwb', net, X, T)``, and the ``gWB`` that
    ``traingd`` applies as ``WB = WB + lr*gWB``, all equal ``-d perf / d wb``
    (``calculateGradientBackprop`` seeds backpropagation with ``dy = -perfBP(t,y,e)``,
    the 'dperf_dwb' of ``+mae`` is ``-sign(wb)``, and ``num5deriv`` computes
    ``(f(w+2h) - 8 f(w+h) + 8 f(w-h) - f(w-2h)) / 12h``). The ``1/N`` of mse/mae/
    crossentropy is included, with ``N`` the number of non-NaN error elements (not the
    number of samples), and so is the normalization factor and the regularization term.
    mat2grad returns the mathematical gradient ``+d perf / d wb`` by default
    (``convention="math"``); ``convention="matlab"`` returns MATLAB's ``dperf_dwb``, which
    is its negative and, for crossentropy, evaluates ``-t./y`` at the *clipped* ``y``
    (``+crossentropy/backprop.m``) and scales it by the normalization factor as MATLAB's
    backpropagation does. The error Jacobian ``de_dwb`` has no sign flip: it is
    ``d e / d wb`` with ``e = t - y`` (``num5deriv``'s ``jacobian``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, jacrev, vmap

from .errors import Mat2GradError
from .predict import as_batches, float_tensor
from .shallow.module import ShallowNetwork
from .shallow.record import NetworkSpec

__all__ = [
    "PERFORMANCE",
    "NORMALIZATIONS",
    "CONVENTIONS",
    "WB_ORDERS",
    "PerformFcn",
    "WbEntry",
    "WeightGradient",
    "ErrorJacobian",
    "performance",
    "weight_gradient",
    "error_jacobian",
    "getwb",
    "wb_layout",
]

#: MATLAB's ``eps``: crossentropy clips outputs to ``[EPS, 1 - EPS]``.
EPS = float(np.finfo(np.float64).eps)

NORMALIZATIONS = ("none", "standard", "percent")
CONVENTIONS = ("math", "matlab")
WB_ORDERS = ("bias-first", "bias-last")


# --------------------------------------------------------------------------------------
# The performance functions
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
# getwb order
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WbEntry:
    """Where one bias or weight matrix sits in the ``getwb`` vector (0-based ``start``)."""

    kind: str  # 'b', 'IW' or 'LW'
    to: int  # layer (1-based)
    source: int  # input (IW) or layer (LW), 1-based; 0 for a bias
    start: int
    shape: tuple[int, ...]  # (S,) for a bias, (S, C) for a weight

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def param(self) -> str:
        """The module's parameter name (``b.1``, ``IW.1_1``, ``LW.2_1``)."""
        return f"b.{self.to}" if self.kind == "b" else f"{self.kind}.{self.to}_{self.source}"

    @property
    def label(self) -> str:
        """MATLAB's name: ``b{1}``, ``IW{1,1}``, ``LW{2,1}``."""
        if self.kind == "b":
            return f"b{{{self.to}}}"
        return f"{self.kind}{{{self.to},{self.source}}}"


def wb_layout(spec: NetworkSpec, wb_order: str = "bias-first") -> tuple[WbEntry, ...]:
    """The blocks of ``getwb(net)`` in order (see NOTE: [getwb order]).

    Weights and biases whose ``learn`` property is false are not part of the vector.
    """
    _check_choice(wb_order, WB_ORDERS, "wb_order")
    entries: list[WbEntry] = []
    start = 0

    def add(kind: str, to: int, source: int, shape: tuple[int, ...]) -> None:
        nonlocal start
        entry = WbEntry(kind, to, source, start, shape)
        entries.append(entry)
        start += entry.size

    for layer in spec.layers:
        i = layer.index
        bias = spec.biases[i - 1]
        learn_bias = bias is not None and (not spec.bias_learn or spec.bias_learn[i - 1])
        if learn_bias and wb_order == "bias-first":
            add("b", i, 0, (layer.size,))
        for w in sorted((w for w in spec.input_weights if w.to == i), key=lambda w: w.source):
            if w.learn:
                add("IW", i, w.source, tuple(w.value.shape))
        for w in sorted((w for w in spec.layer_weights if w.to == i), key=lambda w: w.source):
            if w.learn:
                add("LW", i, w.source, tuple(w.value.shape))
        if learn_bias and wb_order == "bias-last":
            add("b", i, 0, (layer.size,))
    return tuple(entries)


def _flatten_blocks(blocks: Mapping[str, Tensor], layout: Sequence[WbEntry]) -> Tensor:
    """Concatenate blocks (trailing dims = the parameter's shape) in ``layout`` order, each
    flattened column-major like MATLAB's ``W(:)``; leading dims are kept."""
    parts = []
    for entry in layout:
        block = blocks[entry.param]
        lead = block.shape[: block.ndim - len(entry.shape)]
        if len(entry.shape) == 2:
            block = block.transpose(-1, -2)  # column-major: W(:) runs down the columns
        parts.append(block.reshape(*lead, entry.size))
    if not parts:
        return torch.zeros(0, dtype=next(iter(blocks.values())).dtype)
    return torch.cat(parts, dim=-1)


def getwb(model: nn.Module, *, wb_order: str = "bias-first") -> Tensor:
    """The network's weights and biases as one vector, like MATLAB's ``getwb(net)``.

    Returns:
        ``(P,)`` tensor in the model's dtype, ``P = net.numWeightElements`` (learned
        weights only), in the order of NOTE: [getwb order].
    """
    net = _shallow(model, "getwb")
    params = dict(net.named_parameters())
    return _flatten_blocks(params, wb_layout(net.spec, wb_order)).detach()


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WeightGradient:
    """The derivative of the performance with respect to every weight and bias.

    Attributes:
        perf: the performance value (what MATLAB's ``perform`` reports).
        db: ``{i: (S_i,)}`` for every layer with a bias (MATLAB: ``b{i}``, ``S_i x 1``).
        dIW: ``{(i, j): (S_i, R_j * numDelays)}`` for every connected input weight.
        dLW: ``{(i, j): (S_i, S_j * numDelays)}`` for every connected layer weight.
        dwb: ``(P,)``, the learned weights and biases in ``getwb`` order (``wb_order``).
        count: ``N``, the number of error elements that counted (non-NaN).
        performance, normalization, regularization: the settings used.
        convention: 'math' (``+d perf/d wb``) or 'matlab' (MATLAB's ``dperf_dwb``).
        num_layers, num_inputs: the shape of MATLAB's cells (``b``: L x 1, ``IW``: L x I,
            ``LW``: L x L).
    """

    perf: float
    db: dict[int, Tensor]
    dIW: dict[tuple[int, int], Tensor]
    dLW: dict[tuple[int, int], Tensor]
    dwb: Tensor
    count: int
    performance: str
    normalization: str
    regularization: float
    convention: str
    wb_order: str
    num_layers: int
    num_inputs: int


@dataclass(frozen=True)
class ErrorJacobian:
    """Errors and their Jacobian with respect to the weights, per sample.

    Attributes:
        e: ``(Q, S)`` errors ``t - y`` (outputs concatenated in MATLAB's order), normalized
            as the performance function normalizes them and multiplied by ``sqrt(EW)``;
            0 where the error is NaN (ignored).
        J: ``(Q, S, P)``, ``d e / d wb`` in ``getwb`` order; zero rows where ``e`` is
            ignored. MATLAB's ``de_dwb`` is ``J.reshape(Q*S, P).T`` (P x (S*Q)).
        mask: ``(Q, S)`` bool, True where the error counts.
        wb_order: the order of the last axis of ``J``.
    """

    e: Tensor
    J: Tensor
    mask: Tensor
    wb_order: str


# --------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------


def performance(
    model: nn.Module,
    x: Any,
    t: Any,
    *,
    performance: str | None = None,
    ew: Any = None,
    normalization: str | None = None,
    regularization: float | None = None,
) -> float:
    """The network's performance on inputs ``x`` and targets ``t``, as MATLAB computes it.

    Args:
        model: a MATLAB shallow network from :func:`mat2grad.load`.
        x: ``(Q, R)`` raw inputs (numpy or torch); a sequence of arrays for several inputs.
            NaN inputs are allowed (see NOTE: [NaN inputs]).
        t: ``(Q, S)`` targets in original units; a sequence for several outputs. NaN
            targets are ignored.
        performance: 'mse', 'sse', 'mae', 'sae' or 'crossentropy'; default the network's
            ``performFcn``.
        ew: error weights: a scalar, ``(Q,)`` (per sample), ``(1, S)`` (per row) or
            ``(Q, S)``; a sequence for several outputs. Default 1.
        normalization: 'none', 'standard' or 'percent'; default
            ``performParam.normalization``.
        regularization: in [0, 1]; default ``performParam.regularization``.

    Returns:
        A Python float: ``perform(net, t, sim(net, x))`` (NOTE: [MATLAB performance]).

    Raises:
        Mat2GradError: not a MATLAB shallow network, dynamic network, unknown performance
            function, shapes that do not match, no error that counts.

    Example:
        >>> perf = mat2grad.performance(net, X.T, T.T)   # doctest: +SKIP
        >>> assert isinstance(perf, float)
    """
    problem = _Problem.build(model, x, t, performance, ew, normalization, regularization)
    params = {n: p.detach() for n, p in problem.net.named_parameters()}
    with torch.no_grad():
        return float(problem.objective(params, matlab=False, outputs=problem.y))


def weight_gradient(
    model: nn.Module,
    x: Any,
    t: Any,
    *,
    performance: str | None = None,
    ew: Any = None,
    normalization: str | None = None,
    regularization: float | None = None,
    convention: str = "math",
    wb_order: str = "bias-first",
) -> WeightGradient:
    """The gradient of the performance with respect to every weight and bias.

    Arguments as :func:`performance`, plus:

    Args:
        convention: 'math' (default): ``+d perf / d w``. 'matlab': what MATLAB's
            ``defaultderiv('dperf_dwb', net, X, T)`` returns, the negative gradient (and,
            for crossentropy, MATLAB's rule at clipped outputs); see NOTE: [Sign and
            scaling of MATLAB's dperf_dwb].
        wb_order: 'bias-first' (MATLAB R2012b and later, default) or 'bias-last'
            (R2010b-R2012a): the order of ``dwb`` (NOTE: [getwb order]).

    Returns:
        A :class:`WeightGradient`: ``db[i]`` ``(S_i,)``, ``dIW[i, j]`` and ``dLW[i, j]``
        shaped like ``net.IW{i,j}`` / ``net.LW{i,j}``, ``dwb`` ``(P,)``, in the model's
        dtype, and ``perf``.

    Warns:
        UserWarning: the network has transfer functions whose derivative is zero almost
            everywhere (hardlim, hardlims, compet): weights before them get zero gradient.

    Example:
        >>> g = mat2grad.weight_gradient(net, X.T, T.T)   # doctest: +SKIP
        >>> assert g.dIW[1, 1].shape == net.IW["1_1"].shape
        >>> assert g.dwb.shape == mat2grad.getwb(net).shape
    """
    _check_choice(convention, CONVENTIONS, "convention")
    problem = _Problem.build(model, x, t, performance, ew, normalization, regularization)
    net = problem.net
    layout = wb_layout(net.spec, wb_order)
    _warn_zero_derivative(net, "weight_gradient")
    params = {n: p.detach().requires_grad_(True) for n, p in net.named_parameters()}
    matlab = convention == "matlab"
    perf = problem.objective(params, matlab=matlab)
    names = list(params)
    grads = torch.autograd.grad(perf, [params[n] for n in names], allow_unused=True)
    blocks = {
        n: (torch.zeros_like(params[n]) if g is None else g).detach()
        for n, g in zip(names, grads, strict=True)
    }
    if matlab:
        blocks = {n: -g for n, g in blocks.items()}
    spec = net.spec
    return WeightGradient(
        perf=float(perf.detach()),
        db={i: blocks[f"b.{i}"] for i in range(1, len(spec.layers) + 1) if f"b.{i}" in blocks},
        dIW={(w.to, w.source): blocks[f"IW.{w.to}_{w.source}"] for w in spec.input_weights},
        dLW={(w.to, w.source): blocks[f"LW.{w.to}_{w.source}"] for w in spec.layer_weights},
        dwb=_flatten_blocks(blocks, layout),
        count=problem.count,
        performance=problem.name,
        normalization=problem.normalization,
        regularization=problem.regularization,
        convention=convention,
        wb_order=wb_order,
        num_layers=len(spec.layers),
        num_inputs=len(spec.inputs),
    )


def error_jacobian(
    model: nn.Module,
    x: Any,
    t: Any,
    *,
    normalization: str | None = None,
    ew: Any = None,
    wb_order: str = "bias-first",
    chunk_size: int | None = None,
) -> ErrorJacobian:
    """Per-sample Jacobian of the errors ``e = t - y`` with respect to the weights.

    This is what MATLAB's ``fpderiv``/``staticderiv('de_dwb', net, X, T)`` return and what
    Levenberg-Marquardt (``trainlm``) uses: for mse without regularization the gradient is
    ``2 * sum_q J[q].T @ e[q] / N`` (MATLAB's ``dperf_dwb`` is its negative; ``trainlm``
    records ``tr.gradient = 2 * norm(J.T @ e / N)``) and ``2 J.T J / N`` is the
    Gauss-Newton approximation of the Hessian.

    Args:
        model, x, t: as :func:`performance`.
        normalization: as :func:`performance` (errors are normalized the same way).
        ew: error weights; the errors are multiplied by ``sqrt(ew)`` (so that
            ``sum(e**2)`` is the weighted sum of squared errors).
        wb_order: the order of the last axis (NOTE: [getwb order]).
        chunk_size: samples per batched Jacobian evaluation (bounds memory); default
            chosen from the Jacobian's size.

    Returns:
        An :class:`ErrorJacobian`: ``e`` ``(Q, S)``, ``J`` ``(Q, S, P)``, ``mask``.
    """
    problem = _Problem.build(model, x, t, None, ew, normalization, 0.0, need_perform=False)
    net = problem.net
    layout = wb_layout(net.spec, wb_order)
    _warn_zero_derivative(net, "error_jacobian")
    params = {n: p.detach() for n, p in net.named_parameters()}
    mask = torch.cat(problem.mask, dim=-1)
    weights = torch.cat(
        [torch.sqrt(w).expand_as(m) for w, m in zip(problem.ew, problem.mask, strict=True)], dim=-1
    )
    targets = torch.cat(problem.t, dim=-1)
    ratios = torch.cat(problem.ratio, dim=-1)
    q_total = targets.shape[0]
    s_total = targets.shape[1]
    n_wb = sum(e.size for e in layout)
    if chunk_size is None:
        chunk_size = max(1, min(q_total, (1 << 22) // max(1, s_total * n_wb)))

    def errors_one(
        p: dict[str, Tensor], xs: tuple[Tensor, ...], tq: Tensor, mq: Tensor, wq: Tensor
    ) -> tuple[Tensor, Tensor]:
        ys = torch.cat(problem.forward(p, xs), dim=-1)
        tq = torch.where(mq, tq, torch.zeros_like(tq))
        e = (tq - ys) * ratios * wq
        e = torch.where(mq, e, torch.zeros_like(e))
        return e, e  # the Jacobian of e, and e itself (jacrev's aux)

    jac = vmap(jacrev(errors_one, has_aux=True), in_dims=(None, 0, 0, 0, 0))
    e_parts, j_parts = [], []
    for start in range(0, q_total, chunk_size):
        sl = slice(start, start + chunk_size)
        xs = tuple(xj[sl] for xj in problem.x)
        blocks, e = jac(params, xs, targets[sl], mask[sl], weights[sl])
        j_parts.append(_flatten_blocks(blocks, layout))
        e_parts.append(e)
    return ErrorJacobian(
        e=torch.cat(e_parts).detach(),
        J=torch.cat(j_parts).detach(),
        mask=mask,
        wb_order=wb_order,
    )


# --------------------------------------------------------------------------------------
# The problem: network, data and settings, checked once
# --------------------------------------------------------------------------------------


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
        a = net._layers(p, batch_shape=x[0].shape[:-1])
        return tuple(
            chain.reverse(a[o.layer])
            for chain, o in zip(net.output_processing, net.spec.outputs, strict=True)
        )


@dataclass
class _Problem:
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
    ) -> _Problem:
        net = _shallow(model, "performance")
        spec = net.spec
        where = spec.where
        param = spec.perform_param
        fcn = None
        if need_perform:
            name = name or spec.perform_fcn
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
            fcn = PERFORMANCE[name]
        normalization = normalization or str(param.get("normalization", "none") or "none")
        _check_choice(normalization, NORMALIZATIONS, "normalization")
        if regularization is None:
            regularization = float(param.get("regularization", 0.0) or 0.0)
        regularization = float(regularization)
        if not 0.0 <= regularization <= 1.0:
            raise Mat2GradError(f"regularization must be in [0, 1], found {regularization}")

        xs = _inputs(net, x)
        q = xs[0].shape[0]
        dtype = xs[0].dtype
        ts = _per_output(net, t, q, dtype, "targets")
        ews = _error_weights(net, ew, q, dtype)
        ratios = _ratios(net, normalization, dtype)
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
        masks = [~torch.isnan(tk - yk) for tk, yk in zip(ts, y_ref, strict=True)]
        ts = [torch.where(m, tk, torch.zeros_like(tk)) for tk, m in zip(ts, masks, strict=True)]
        count = int(sum(int(m.sum()) for m in masks))
        if need_perform and count == 0:
            raise Mat2GradError(
                f"{where}: every error is NaN (NaN targets or outputs), so there is no "
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
        total = ys[0].new_zeros(())
        for yk, tk, mk, wk, rk in zip(ys, self.t, self.mask, self.ew, self.ratio, strict=True):
            ek = (tk - yk) * rk
            if matlab and not fcn.uses_errors:
                # MATLAB scales dperf/dy by the normalization factor even though the
                # crossentropy value does not depend on it (calculateGradientBackprop).
                yk = yk * rk + (yk - yk * rk).detach()
            perfs = fcn.apply(tk, yk, ek, matlab) * wk
            total = total + torch.where(mk, perfs, torch.zeros_like(perfs)).sum()
        if fcn.normalize:
            total = total / self.count
        if self.regularization > 0:
            layout = wb_layout(self.net.spec)
            wb = _flatten_blocks(params, layout)
            term = fcn.weights(wb).sum()
            if fcn.normalize:
                term = term / max(1, wb.numel())
            total = (1.0 - self.regularization) * total + self.regularization * term
        return total


# --------------------------------------------------------------------------------------
# Checking and shaping the data
# --------------------------------------------------------------------------------------


def _shallow(model: nn.Module, what: str) -> ShallowNetwork:
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


def _check_choice(value: str, choices: Sequence[str], what: str) -> None:
    if value not in choices:
        raise Mat2GradError(f"{what} must be one of {', '.join(choices)}; found '{value}'")


def _inputs(net: ShallowNetwork, x: Any) -> tuple[Tensor, ...]:
    return as_batches(net, list(x) if isinstance(x, list | tuple) else [x])


def _per_output(
    net: ShallowNetwork, value: Any, q: int, dtype: torch.dtype, what: str
) -> list[Tensor]:
    """Targets (or per-output data) -> one ``(Q, S_k)`` tensor per output."""
    sizes = net.output_sizes
    parts = list(value) if isinstance(value, list | tuple) else [value]
    if len(parts) != len(sizes):
        raise Mat2GradError(
            f"{net.spec.where} has {len(sizes)} output(s); pass one (Q, S) array of {what} "
            f"per output, found {len(parts)}"
        )
    out = []
    for k, (part, size) in enumerate(zip(parts, sizes, strict=True)):
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
    sizes = net.output_sizes
    if ew is None:
        return [torch.ones(q, s, dtype=dtype) for s in sizes]
    parts = list(ew) if isinstance(ew, list | tuple) else [ew] * len(sizes)
    if len(parts) != len(sizes):
        raise Mat2GradError(
            f"error weights: {len(sizes)} output(s), so give one array per output (or one "
            f"for all); found {len(parts)}"
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


def _ratios(net: ShallowNetwork, normalization: str, dtype: torch.dtype) -> list[Tensor]:
    """Per output row, the factor that normalizes errors (+nnperf/norm_err, perc_err)."""
    out = []
    for o in net.spec.outputs:
        if normalization == "none":
            out.append(torch.ones(o.size, dtype=dtype))
            continue
        if o.range is None:
            raise Mat2GradError(
                f"{net.spec.where}: normalization '{normalization}' needs the target range "
                f"outputs{{{o.layer}}}.range, which the network does not have; use "
                "normalization='none'"
            )
        span = o.range[:, 1] - o.range[:, 0]
        if not np.all(np.isfinite(span)) or np.any(span <= 0):
            raise Mat2GradError(
                f"{net.spec.where}: outputs{{{o.layer}}}.range has rows with zero or "
                f"non-finite width ({o.range.tolist()}); errors cannot be normalized by it"
            )
        scale = 2.0 if normalization == "standard" else 1.0
        out.append(torch.as_tensor(scale / span, dtype=dtype))
    return out


def _check_nan_fix(spec: NetworkSpec, y_sim: Sequence[Tensor], y_fixed: Sequence[Tensor]) -> None:
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


def _warn_zero_derivative(net: ShallowNetwork, what: str) -> None:
    if net.zero_derivative:
        warnings.warn(
            f"{net.spec.where}: the derivative is zero almost everywhere in "
            f"{', '.join(net.zero_derivative)}; {what} is exact but gives zero for every "
            "weight before those layers",
            UserWarning,
            stacklevel=3,
        )
