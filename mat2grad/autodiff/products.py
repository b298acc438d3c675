"""Per-sample vector-Jacobian (:func:`vjp`) and Jacobian-vector (:func:`jvp`) products,
without forming the Jacobian. Both share the setup and the chunk loop; they differ only in
what one chunk computes."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.autograd import forward_ad as fwAD

from ..errors import Mat2GradError, refuse_out_of_memory
from .chunks import alloc_like, chunk_loop, samples_per_chunk, saved_bytes_per_sample
from .methods import forward_ad
from .setup import Setup, as_outputs, as_tensor, as_tuple, session, setup_call

__all__ = ["vjp", "jvp"]


def _as_inputs(x: Any) -> tuple[Any, ...]:
    return tuple(x) if isinstance(x, tuple | list) else (x,)


def _vectors(v: Any, shapes: tuple[tuple[int, ...], ...], setup: Setup, what: str) -> list[Tensor]:
    """The (co)tangents, one ``(Q, *shape)`` tensor per shape, checked."""
    vs = _as_inputs(v)
    if len(vs) != len(shapes):
        raise Mat2GradError(
            f"{what}: expected {len(shapes)} array(s), one per {what.split()[0]}, found {len(vs)}"
        )
    out = []
    for k, (vk, shape) in enumerate(zip(vs, shapes, strict=True)):
        t = as_tensor(vk, k, setup.dtype, setup.device)
        if tuple(t.shape) != (setup.q, *shape):
            raise Mat2GradError(
                f"{what} {k + 1} has shape {tuple(t.shape)}; expected {(setup.q, *shape)} "
                "(batch first, like the samples)"
            )
        out.append(t)
    return out


def _vjp_chunk(
    model: nn.Module, xs: list[Tensor], vs: list[Tensor], grads: list[Tensor], ys: list[Tensor]
) -> None:
    """One reverse pass: ``grads[j] = v^T dy/dx_j`` and ``ys[k] = y_k`` for one chunk."""
    leaves = [xj.detach().requires_grad_(True) for xj in xs]
    with torch.enable_grad():
        out = as_tuple(model(*leaves))
    pairs = [(o, vk) for o, vk in zip(out, vs, strict=True) if o.requires_grad]
    if pairs:
        gs = torch.autograd.grad(
            [o for o, _ in pairs],
            leaves,
            [w for _, w in pairs],
            allow_unused=True,
            materialize_grads=True,
        )
    else:
        gs = tuple(torch.zeros_like(leaf) for leaf in leaves)
    for dst, g in zip(grads, gs, strict=True):
        dst.copy_(g)
    for dst, o in zip(ys, out, strict=True):
        dst.copy_(o.detach())


def _jvp_chunk(
    model: nn.Module, xs: list[Tensor], vs: list[Tensor], tans: list[Tensor], ys: list[Tensor]
) -> None:
    """One dual-number pass: ``tans[k] = dy_k/dx v`` and ``ys[k] = y_k`` for one chunk
    (forward mode is primed by :func:`forward_ad` first)."""
    with torch.no_grad(), fwAD.dual_level():
        args = [fwAD.make_dual(xj, vj) for xj, vj in zip(xs, vs, strict=True)]
        out = as_tuple(model(*args))
        for k, o in enumerate(out):
            primal, tan = fwAD.unpack_dual(o)
            ys[k].copy_(primal)
            if tan is None:
                tans[k].zero_()
            else:
                tans[k].copy_(tan)


def _products(
    model: nn.Module, x: Any, v: Any, forward: bool, options: dict[str, Any]
) -> tuple[Setup, list[Tensor], list[Tensor]]:
    """The products (``forward``: J v, else v^T J) and the outputs, chunk by chunk."""
    if forward:
        forward_ad()  # its first use is slow and warns (see forward_ad): before the setup
    setup = setup_call(
        model, _as_inputs(x), dtype=options["dtype"], device=options["device"], wrt=None
    )
    with session(setup):
        if forward:
            vs = _vectors(v, setup.in_shapes, setup, "input tangent")
            per, shapes, step = 2 * saved_bytes_per_sample(setup), setup.out_shapes, _jvp_chunk
        else:
            vs = _vectors(v, setup.out_shapes, setup, "output cotangent")
            per, shapes, step = saved_bytes_per_sample(setup), setup.in_shapes, _vjp_chunk
        size = samples_per_chunk(options["chunk_size"], per, setup.q)
        results = alloc_like(setup, shapes, setup.q, setup.result_device)
        ys = alloc_like(setup, setup.out_shapes, setup.q, setup.result_device)
        desc = "jvp" if forward else "vjp"
        with chunk_loop(setup.q, size, options["progress"], desc) as steps:
            for a, b in steps:
                step(
                    setup.model,
                    [xj[a:b] for xj in setup.xs],
                    [vj[a:b] for vj in vs],
                    [r[a:b] for r in results],
                    [y[a:b] for y in ys],
                )
    return setup, results, ys


@refuse_out_of_memory
def vjp(
    model: nn.Module,
    x: Any,
    v: Any,
    *,
    chunk_size: int | None = None,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    return_outputs: bool = False,
) -> Any:
    """Per-sample vector-Jacobian products ``v^T J`` without forming ``J``.

    Args:
        model: a network from :func:`mat2grad.load` (or any model following the contract).
        x: the inputs, ``(Q, *in)``, or a tuple with one array per network input.
        v: cotangents shaped like the outputs, ``(Q, *out)`` (a tuple for several outputs).
        chunk_size, dtype, device, progress: as for :func:`jacobian`.
        return_outputs: also return the outputs.

    Returns:
        ``g`` with ``g[q, r...] = sum_s v[q, s...] dy[q, s...]/dx[q, r...]``, shaped like
        the inputs ``(Q, *in)`` (a tuple for several inputs); with ``return_outputs``,
        ``(g, y)``.

    Example:
        >>> g = mat2grad.vjp(net, x, np.ones((len(x), 1)))   # doctest: +SKIP
        >>> assert g.shape == x.shape                         # gradient of sum(y) per sample
    """
    options = {"chunk_size": chunk_size, "dtype": dtype, "device": device, "progress": progress}
    setup, grads, ys = _products(model, x, v, False, options)
    g_out: Any = grads[0] if len(grads) == 1 else tuple(grads)
    return (g_out, as_outputs(setup, ys)) if return_outputs else g_out


@refuse_out_of_memory
def jvp(
    model: nn.Module,
    x: Any,
    v: Any,
    *,
    chunk_size: int | None = None,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    return_outputs: bool = False,
) -> Any:
    """Per-sample Jacobian-vector products ``J v`` (directional derivatives) without
    forming ``J``, by forward mode.

    Args:
        model: a network from :func:`mat2grad.load` (or any model following the contract).
        x: the inputs, ``(Q, *in)``, or a tuple with one array per network input.
        v: tangents shaped like the inputs (a tuple for several inputs).
        chunk_size, dtype, device, progress: as for :func:`jacobian`.
        return_outputs: also return the outputs.

    Returns:
        ``t`` with ``t[q, s...] = sum_r dy[q, s...]/dx[q, r...] v[q, r...]``, shaped like the
        outputs ``(Q, *out)`` (a tuple for several outputs); with ``return_outputs``,
        ``(t, y)``.
    """
    options = {"chunk_size": chunk_size, "dtype": dtype, "device": device, "progress": progress}
    setup, tans, ys = _products(model, x, v, True, options)
    t_out = as_outputs(setup, tans)
    return (t_out, as_outputs(setup, ys)) if return_outputs else t_out
