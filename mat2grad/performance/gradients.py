"""The performance of a MATLAB shallow network and its derivatives with respect to the
weights and biases (backpropagation), laid out the way MATLAB lays them out.

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

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import jacrev, vmap

from ..errors import refuse_out_of_memory
from .functions import check_choice
from .problem import Problem, static_shallow, warn_zero_derivative
from .wb import flatten_wb, matlab_cells, wb_layout

__all__ = [
    "CONVENTIONS",
    "ErrorJacobian",
    "WeightGradient",
    "error_jacobian",
    "getwb",
    "performance",
    "weight_gradient",
]

CONVENTIONS = ("math", "matlab")


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


@refuse_out_of_memory
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
    problem = Problem.build(model, x, t, performance, ew, normalization, regularization)
    params = {n: p.detach() for n, p in problem.net.named_parameters()}
    with torch.no_grad():
        return float(problem.objective(params, matlab=False, outputs=problem.y))


@refuse_out_of_memory
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
    check_choice(convention, CONVENTIONS, "convention")
    problem = Problem.build(model, x, t, performance, ew, normalization, regularization)
    net = problem.net
    layout = wb_layout(net.spec, wb_order)
    warn_zero_derivative(net, "weight_gradient")
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
    db, d_iw, d_lw = matlab_cells(blocks, spec)
    return WeightGradient(
        perf=float(perf.detach()),
        db=db,
        dIW=d_iw,
        dLW=d_lw,
        dwb=flatten_wb(blocks, layout),
        count=problem.count,
        performance=problem.name,
        normalization=problem.normalization,
        regularization=problem.regularization,
        convention=convention,
        wb_order=wb_order,
        num_layers=len(spec.layers),
        num_inputs=len(spec.inputs),
    )


@refuse_out_of_memory
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
    problem = Problem.build(model, x, t, None, ew, normalization, 0.0, need_perform=False)
    net = problem.net
    layout = wb_layout(net.spec, wb_order)
    warn_zero_derivative(net, "error_jacobian")
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
        j_parts.append(flatten_wb(blocks, layout))
        e_parts.append(e)
    return ErrorJacobian(
        e=torch.cat(e_parts).detach(),
        J=torch.cat(j_parts).detach(),
        mask=mask,
        wb_order=wb_order,
    )


def getwb(model: nn.Module, *, wb_order: str = "bias-first") -> Tensor:
    """The network's weights and biases as one vector, like MATLAB's ``getwb(net)``.

    Returns:
        ``(P,)`` tensor in the model's dtype, ``P = net.numWeightElements`` (learned
        weights only), in the order of NOTE: [getwb order].
    """
    net = static_shallow(model, "getwb")
    params = dict(net.named_parameters())
    return flatten_wb(params, wb_layout(net.spec, wb_order)).detach()
