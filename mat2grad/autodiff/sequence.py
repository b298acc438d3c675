"""Gradients through time of dynamic (time-series) networks.

Shapes are batch-first: Q independent series, TS time steps. For a network with one input
and one output, the three gradient forms are:

============  ==========================  ===============================================
form          shape                       entry
============  ==========================  ===============================================
``full``      ``(Q, TS, S, TS, R)``       ``J[q, t, :, u, :] = dy(t)/dx(u)`` (zero for
                                          ``u > t``: the network is causal)
``step``      ``(Q, TS, S, L+1, R)``      ``J[q, t, :, d, :] = dy(t)/dx(t-d)``, the
                                          ``full`` entries ``d`` steps below the
                                          diagonal (zero where ``t-d < 0``)
``sum``       ``(Q, TS, R)``              ``d(sum_t,s w[t,s] y[t,s])/dx``, one reverse pass
                                          through time (memory linear in TS)
============  ==========================  ===============================================

All derivatives are total derivatives through time: for a closed-loop network, ``dy(t)/
dx(u)`` includes every path through the fed-back outputs. For an open-loop network the
feedback input is an ordinary input (the one-step-ahead model). Several inputs or outputs
give a tuple (per output) of tuples (per input) for ``full``/``step``, and a tuple per
input for ``sum``. Derivatives are at the given initial delay states (zeros by default),
which are held fixed; for derivatives with respect to the states too, give
:class:`~mat2grad.shallow.simulate.WithStates` ``(net)`` (states as ordinary inputs) to the
generic engine. :mod:`mat2grad.dynamic` runs these the way MATLAB users prepare their
series (``preparets``, ``closeloop``, a known sequence before multistep prediction).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from ..contract import contract_of, model_dtype_device
from ..errors import Mat2GradError
from ..shallow.simulate import simulate
from .chunks import ranges
from .setup import nest

__all__ = ["FORMS", "sequence_jacobian", "step_sensitivity", "sequence_gradient"]

#: the gradient forms offered by the CLI (``mat2grad jacobian --form``)
FORMS = ("full", "step", "sum")


def require_dynamic(net: Any, what: str) -> None:
    """Refuse a static network where gradients through time were asked for."""
    if not contract_of(net).is_dynamic:
        raise Mat2GradError(
            f"{what} is for dynamic networks (tapped delays, layer delays, feedback); "
            "this network is static: use mat2grad.autodiff.jacobian"
        )


def placement(net: Any) -> dict[str, Any]:
    """The network's dtype and device, as keyword arguments for new tensors."""
    dtype, device = model_dtype_device(net)
    return {"dtype": dtype, "device": device}


def _series(net: Any, x: Sequence[Any]) -> tuple[Tensor, ...]:
    spec = net.spec
    if len(x) != len(spec.inputs):
        raise Mat2GradError(
            f"{spec.where} has {len(spec.inputs)} input(s), but {len(x)} sequence(s) were given"
        )
    out = []
    for j, xj in enumerate(x):
        t = torch.as_tensor(xj, **placement(net))
        if t.ndim != 3:
            raise Mat2GradError(
                f"input {j + 1}: expected sequences (Q, TS, R), found shape {tuple(t.shape)}"
            )
        out.append(t)
    return tuple(out)


def _full_states(
    states: Sequence[Any] | None,
    depth: int,
    sizes: Sequence[int],
    q: int,
    place: dict[str, Any],
) -> tuple[Tensor, ...]:
    """States as ``(Q, depth, size)`` tensors (zeros for None) so they can be vmapped."""
    if states is None:
        states = (None,) * len(sizes)
    if len(states) != len(sizes):
        raise Mat2GradError(f"expected {len(sizes)} delay states, found {len(states)}")
    out = []
    for s, size in zip(states, sizes, strict=True):
        if s is None:
            out.append(torch.zeros(q, depth, size, **place))
            continue
        t = torch.as_tensor(s, **place)
        if t.ndim == 2:
            t = t.unsqueeze(0)
        if t.shape[1:] != (depth, size) or t.shape[0] not in (1, q):
            raise Mat2GradError(
                f"a delay state has shape {tuple(t.shape)}, expected ({q}, {depth}, {size})"
            )
        out.append(t.expand(q, depth, size))
    return tuple(out)


def _prepare(
    net: Any, x: Sequence[Any], xi: Any, ai: Any
) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...], tuple[Tensor, ...]]:
    """Inputs as tensors and the states as full ``(Q, depth, size)`` tensors."""
    xs = _series(net, x)
    if not xs:
        raise Mat2GradError(
            f"{net.spec.where} has no inputs: there is nothing to differentiate with respect to"
        )
    q, place, spec = xs[0].shape[0], placement(net), net.spec
    xis = _full_states(xi, spec.num_input_delays, net.input_sizes, q, place)
    ais = _full_states(ai, spec.num_layer_delays, [layer.size for layer in spec.layers], q, place)
    return xs, xis, ais


def _chunks(q: int, chunk_size: int | None) -> list[slice]:
    """Slices of ``chunk_size`` series (all ``q`` at once when it is not given)."""
    size = q if not chunk_size or chunk_size <= 0 else int(chunk_size)
    return [slice(a, b) for a, b in ranges(q, size)]


def sequence_jacobian(
    net: Any,
    *x: Any,
    xi: Sequence[Any] | None = None,
    ai: Sequence[Any] | None = None,
    mode: str = "auto",
    chunk_size: int | None = None,
) -> Tensor | tuple[tuple[Tensor, ...], ...]:
    """The Jacobian of every output time step w.r.t. every input time step, per series.

    Args:
        net: a dynamic network module.
        *x: one input sequence ``(Q, TS, R_j)`` per network input (raw units).
        xi, ai: initial delay states (see :func:`mat2grad.shallow.simulate.simulate`).
        mode: "rev" (``jacrev``), "fwd" (``jacfwd``) or "auto" (reverse when the outputs
            have fewer features than the inputs).
        chunk_size: series per vectorised pass (memory is bounded by the chunk).

    Returns:
        ``(Q, TS, S, TS, R)`` for one input and output (``J[q, t, :, u, :] = dy(t)/dx(u)``,
        zero above the diagonal ``u > t``), else ``J[k][j]`` per output k and input j.

    Example:
        >>> J = sequence_jacobian(net, torch.rand(2, 30, 1, dtype=torch.float64))  # doctest: +SKIP
        >>> assert J.shape == (2, 30, 1, 30, 1)
    """
    require_dynamic(net, "sequence_jacobian")
    xs, xis, ais = _prepare(net, x, xi, ai)
    n_in = len(xs)
    if mode not in ("auto", "rev", "fwd"):
        raise Mat2GradError(f"mode must be 'auto', 'rev' or 'fwd', not '{mode}'")
    if mode == "auto":
        mode = "rev" if sum(net.output_sizes) <= sum(net.input_sizes) else "fwd"
    jac = torch.func.jacrev if mode == "rev" else torch.func.jacfwd

    def outputs(xs_: tuple[Tensor, ...], xis_: tuple[Tensor, ...], ais_: tuple[Tensor, ...]):
        return simulate(net, xs_, xis_, ais_).outputs

    per_series = torch.func.vmap(jac(outputs, argnums=0))
    parts = []
    for sl in _chunks(xs[0].shape[0], chunk_size):
        parts.append(
            per_series(
                tuple(t[sl] for t in xs), tuple(t[sl] for t in xis), tuple(t[sl] for t in ais)
            )
        )
    blocks = [
        [torch.cat([p[k][j] for p in parts], dim=0) for j in range(n_in)]
        for k in range(len(net.output_sizes))
    ]
    return nest(blocks)


def step_sensitivity(
    net: Any,
    *x: Any,
    xi: Sequence[Any] | None = None,
    ai: Sequence[Any] | None = None,
    max_lag: int | None = None,
    chunk_size: int | None = None,
) -> Tensor | tuple[tuple[Tensor, ...], ...]:
    """``dy(t)/dx(t-d)`` for every time step t and lag ``d = 0 .. max_lag``.

    Args:
        net, x, xi, ai, chunk_size: as :func:`sequence_jacobian`.
        max_lag: the largest lag (default: ``numInputDelays``, the tapped delay lines'
            reach).

    Returns:
        ``(Q, TS, S, max_lag+1, R)`` per output/input pair (nested like
        :func:`sequence_jacobian`), zero where ``t - d < 0``.

    Networks without layer delays (``timedelaynet``, open-loop ``narxnet``) depend on
    ``x(t-d)`` only for ``d <= numInputDelays``, so the bands come from
    ``numInputDelays+1`` forward-mode passes with inputs grouped by ``u mod
    (numInputDelays+1)`` instead of the whole ``TS x TS`` Jacobian; other networks take
    the bands of :func:`sequence_jacobian`.
    """
    require_dynamic(net, "step_sensitivity")
    spec = net.spec
    nid = spec.num_input_delays
    lag = nid if max_lag is None else int(max_lag)
    if lag < 0:
        raise Mat2GradError(f"max_lag must be >= 0, not {max_lag}")
    if spec.num_layer_delays > 0:
        full = sequence_jacobian(net, *x, xi=xi, ai=ai, chunk_size=chunk_size)
        blocks = [[full]] if isinstance(full, Tensor) else [list(row) for row in full]
        return nest([[_bands(b, lag) for b in row] for row in blocks])

    xs, xis, ais = _prepare(net, x, xi, ai)
    period = nid + 1
    ts = xs[0].shape[1]
    device = xs[0].device
    colour = torch.arange(ts, device=device) % period  # step u is perturbed by z[u mod period]

    def outputs(zs, xs_, xis_, ais_):
        moved = tuple(xj + zj[colour] for xj, zj in zip(xs_, zs, strict=True))
        return simulate(net, moved, xis_, ais_).outputs

    # the perturbations z are shared by the series of a chunk (in_dims None)
    per_series = torch.func.vmap(torch.func.jacfwd(outputs, argnums=0), in_dims=(None, 0, 0, 0))
    zeros = tuple(torch.zeros(period, n, **placement(net)) for n in net.input_sizes)
    parts = [
        per_series(
            zeros,
            tuple(t[sl] for t in xs),
            tuple(t[sl] for t in xis),
            tuple(t[sl] for t in ais),
        )
        for sl in _chunks(xs[0].shape[0], chunk_size)
    ]
    t_idx = torch.arange(ts, device=device).unsqueeze(1)  # (TS, 1)
    d_idx = torch.arange(lag + 1, device=device).unsqueeze(0)  # (1, L+1)
    u = t_idx - d_idx
    valid = (u >= 0) & (d_idx <= nid)
    col = torch.remainder(u, period)  # (TS, L+1)
    blocks = []
    for k in range(len(net.output_sizes)):
        row = []
        for j in range(len(xs)):
            jc = torch.cat([p[k][j] for p in parts], dim=0)  # (Q, TS, S, P, R)
            q, _, s, _, r = jc.shape
            index = col.view(1, ts, 1, lag + 1, 1).expand(q, ts, s, lag + 1, r)
            band = torch.gather(jc, 3, index)
            row.append(band * valid.view(1, ts, 1, lag + 1, 1).to(band.dtype))
        blocks.append(row)
    return nest(blocks)


def _bands(full: Tensor, lag: int) -> Tensor:
    """``(Q, TS, S, TS, R)`` -> ``(Q, TS, S, lag+1, R)`` with ``[.., t, :, d, :] = full[..,
    t, :, t-d, :]`` (zero where ``t-d < 0``)."""
    q, ts, s, _, r = full.shape
    t_idx = torch.arange(ts, device=full.device).unsqueeze(1)
    d_idx = torch.arange(lag + 1, device=full.device).unsqueeze(0)
    u = t_idx - d_idx
    valid = u >= 0
    index = u.clamp(min=0).view(1, ts, 1, lag + 1, 1).expand(q, ts, s, lag + 1, r)
    band = torch.gather(full, 3, index)
    return band * valid.view(1, ts, 1, lag + 1, 1).to(band.dtype)


def sequence_gradient(
    net: Any,
    *x: Any,
    xi: Sequence[Any] | None = None,
    ai: Sequence[Any] | None = None,
    weights: Sequence[Any] | Any | None = None,
    loss: Callable[..., Tensor] | None = None,
) -> Tensor | tuple[Tensor, ...]:
    """The gradient of a scalar of the whole output sequence w.r.t. the whole input
    sequence: one reverse pass through time (VJP), memory linear in TS.

    Args:
        net, x, xi, ai: as :func:`sequence_jacobian`.
        weights: the scalar is ``sum_k sum(weights[k] * y_k)`` (each broadcastable to
            ``(Q, TS, S_k)``; a single array for one output); default all ones, i.e. the
            sum of every output over time.
        loss: instead of ``weights``, a function of the output tensors returning a scalar.

    Returns:
        ``(Q, TS, R_j)`` per input (a tuple for several inputs).
    """
    require_dynamic(net, "sequence_gradient")
    if weights is not None and loss is not None:
        raise Mat2GradError("give weights or loss, not both")
    xs, xis, ais = _prepare(net, x, xi, ai)
    with torch.enable_grad():
        leaves = tuple(t.detach().clone().requires_grad_(True) for t in xs)
        outs = simulate(net, leaves, xis, ais).outputs
        if loss is not None:
            scalar = loss(*outs)
            if not isinstance(scalar, Tensor) or scalar.numel() != 1:
                raise Mat2GradError("loss must return a scalar tensor")
            scalar = scalar.reshape(())
        else:
            if weights is None:
                ws: Sequence[Any] = (None,) * len(outs)
            elif len(outs) == 1 and not isinstance(weights, list | tuple):
                ws = (weights,)
            else:
                ws = tuple(weights)
            if len(ws) != len(outs):
                raise Mat2GradError(f"expected {len(outs)} weight arrays (one per output)")
            scalar = sum(
                (o if w is None else o * torch.as_tensor(w, dtype=o.dtype, device=o.device)).sum()
                for o, w in zip(outs, ws, strict=True)
            )
        grads = torch.autograd.grad(scalar, leaves, allow_unused=True)
    grads = tuple(
        torch.zeros_like(t) if g is None else g for g, t in zip(grads, leaves, strict=True)
    )
    return grads[0] if len(grads) == 1 else grads
