"""Per-sample Hessians of a network's outputs with respect to one input (reverse over
reverse mode)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import Mat2GradError, refuse_out_of_memory
from .chunks import (
    alloc_like,
    chunk_loop,
    empty,
    guard_independence,
    samples_per_chunk,
    saved_bytes_per_sample,
)
from .setup import as_outputs, as_tuple, session, setup_call

__all__ = ["hessian"]


@refuse_out_of_memory
def hessian(
    model: nn.Module,
    *x: Any,
    output: int | tuple[int, int] | None = None,
    wrt: int | None = None,
    chunk_size: int | None = None,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    return_outputs: bool = False,
) -> Any:
    """Per-sample Hessians of outputs with respect to one input (reverse over reverse).

    Args:
        model: a network from :func:`mat2grad.load` (or any model following the contract).
        *x: one batch-first array per network input, ``(Q, *in_j)``.
        output: which output element: ``k`` (0-based, in the flattened per-sample output of
            a single-output model), ``(i, k)`` (element ``k`` of output ``i``), or ``None``
            for all elements (a tuple per output for several outputs).
        wrt: the input to differentiate with respect to (0-based); needed when the model
            has several inputs.
        chunk_size, dtype, device, progress: as for :func:`jacobian`.
        return_outputs: also return the outputs.

    Returns:
        ``(Q, *in, *in)`` for one output element, e.g. ``(Q, R, R)``:
        ``H[q, r, t] = d^2 y[q, k] / dx[q, r] dx[q, t]``; with ``output=None``
        ``(Q, *out, *in, *in)``. With ``return_outputs``, ``(H, y)``.

    Example:
        >>> H = mat2grad.hessian(net, np.random.rand(64, 10), output=0)   # doctest: +SKIP
        >>> assert H.shape == (64, 10, 10)
    """
    setup = setup_call(model, x, dtype=dtype, device=device, wrt=wrt)
    with session(setup):
        if wrt is None and len(setup.xs) > 1:
            raise Mat2GradError(
                f"{setup.name} has {len(setup.xs)} inputs: choose one with wrt=j (0-based)"
            )
        j = setup.wrt[0]
        n_in = setup.numel_in(j)
        in_shape = setup.in_shapes[j]
        n_outputs = len(setup.out_shapes)
        # selection: list of (output tensor, flat elements, result per-sample shape)
        if output is None:
            sel = [
                (k, list(range(setup.numel_out(k))), setup.out_shapes[k]) for k in range(n_outputs)
            ]
        else:
            i, e = (0, output) if isinstance(output, int | np.integer) else tuple(output)
            if not 0 <= i < n_outputs or (n_outputs > 1 and isinstance(output, int)):
                raise Mat2GradError(
                    f"output must be an element index k of the single output, or (i, k) with "
                    f"i in 0..{n_outputs - 1}; found {output!r}"
                )
            if not 0 <= e < setup.numel_out(i):
                raise Mat2GradError(
                    f"output element {e} is out of range: output {i + 1} has "
                    f"{setup.numel_out(i)} elements per sample (0-based indices)"
                )
            sel = [(int(i), [int(e)], ())]
        itemsize = torch.empty(0, dtype=setup.dtype).element_size()
        n_sel = sum(len(elems) for _, elems, _ in sel)
        per = 3 * saved_bytes_per_sample(setup) + itemsize * n_in * (n_in * n_sel + 2)
        size = samples_per_chunk(chunk_size, per, setup.q)
        H = [
            empty((setup.q, *shape, *in_shape, *in_shape), setup.dtype, setup.result_device)
            for _, _, shape in sel
        ]
        ys = alloc_like(setup, setup.out_shapes, setup.q, setup.result_device)

        def compute(xs: list[Tensor], dest: list[Tensor], y_dest: list[Tensor] | None) -> None:
            c = xs[0].shape[0]
            leaves = [xi.detach().requires_grad_(i == j) for i, xi in enumerate(xs)]
            with torch.enable_grad():
                out = as_tuple(setup.model(*leaves))
                if y_dest is not None:
                    for dst, o in zip(y_dest, out, strict=True):
                        dst.copy_(o.detach())
                for (k, elems, _), h in zip(sel, dest, strict=True):
                    hv = h.view(c, len(elems), n_in, n_in)
                    yk = out[k].reshape(c, -1)
                    for m, e in enumerate(elems):
                        if not yk.requires_grad:
                            hv[:, m].zero_()
                            continue
                        (g,) = torch.autograd.grad(
                            yk[:, e].sum(), leaves[j], create_graph=True, materialize_grads=True
                        )
                        gf = g.reshape(c, n_in)
                        for r in range(n_in):
                            if not gf.requires_grad:  # linear in x: the Hessian is zero
                                hv[:, m, r].zero_()
                                continue
                            (h2,) = torch.autograd.grad(
                                gf[:, r].sum(),
                                leaves[j],
                                retain_graph=True,
                                allow_unused=True,
                                materialize_grads=True,
                            )
                            hv[:, m, r].copy_(h2.reshape(c, n_in))

        def alone(xs: list[Tensor]) -> list[Tensor]:
            single = [torch.empty_like(h[:1]) for h in H]
            compute(xs, single, None)
            return single

        with chunk_loop(setup.q, size, progress, "hessian") as steps:
            for a, b in steps:
                xs = [xi[a:b] for xi in setup.xs]
                dest = [h[a:b] for h in H]
                compute(xs, dest, [y[a:b] for y in ys])
                if a == 0:
                    guard_independence(setup, xs, dest, alone, "Hessian")
    if output is None:
        result: Any = H[0] if n_outputs == 1 else tuple(H)
    else:
        result = H[0].view(setup.q, *in_shape, *in_shape)
    return (result, as_outputs(setup, ys)) if return_outputs else result
