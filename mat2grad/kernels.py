"""Dense kernels of the closed-form Jacobian (matrix products, ``tanh``), run by numpy or by
torch, whichever measured faster on this machine.

# NOTE: [Kernel backend]
# On CPUs the BLAS behind torch's wheels and the one behind numpy's differ, and so do their
# vectorised ``tanh``: on the machine this was written on (an AMD EPYC with AVX-512),
# numpy's OpenBLAS ran the closed form's float64 products 1.2-2.5x faster than torch's MKL
# (a (10000 x 20) @ (20 x 30) product 0.46 ms against 0.82 ms) and ``np.tanh`` 2.4x faster
# than ``torch.tanh``; elsewhere it may be the other way round. The closed form computes
# without autograd, on plain CPU tensors whose memory numpy can share, so either library can
# run each kernel into the same buffers. The first use measures both on one representative
# product and one ``tanh`` (a few milliseconds, once per process) and keeps numpy for a
# kernel only where it is at least ``MARGIN`` faster, so that close calls stay with torch.
# ``MAT2GRAD_KERNELS=torch`` (or ``numpy``) fixes the choice. The two agree to round-off
# (different summation orders), never bit for bit, which no result of mat2grad relies on.
# numpy is considered only where torch runs one thread: with more, torch's OpenMP pool and
# numpy's BLAS threads take turns on the same cores and each spins while the other works
# (model A's Jacobian at 1e5 samples on 2 cores: 167 ms with numpy's kernels against 39 ms
# with torch's, and 28 ms with numpy's on one thread). numpy's BLAS is kept at torch's
# thread count (one, or what an explicit ``MAT2GRAD_KERNELS=numpy`` meets).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

__all__ = ["MARGIN", "choice", "mm", "tanh"]

#: numpy must be at least this much faster (time ratio) to be chosen for a kernel
MARGIN = 1.1
_ENV = "MAT2GRAD_KERNELS"
_NUMPY_DTYPES = (torch.float64, torch.float32)
_chosen: dict[str, str] = {}
_blas: list = []  # [controller or None, threads last set]


def _best(fn: Callable[[], object], repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _measure(kernel: str) -> str:
    """Time both libraries on one representative call of ``kernel``."""
    g = torch.Generator().manual_seed(0)
    if kernel == "mm":
        a = torch.rand(4096, 64, generator=g, dtype=torch.float64)
        b = torch.rand(64, 64, generator=g, dtype=torch.float64)
        out = torch.empty(4096, 64, dtype=torch.float64)
        an, bn, on = a.numpy(), b.numpy(), out.numpy()
        t_torch = _best(lambda: torch.mm(a, b, out=out))
        t_numpy = _best(lambda: np.matmul(an, bn, out=on))
    else:
        x = torch.rand(65536, generator=g, dtype=torch.float64)
        out = torch.empty_like(x)
        xn, on = x.numpy(), out.numpy()
        t_torch = _best(lambda: torch.tanh(x, out=out))
        t_numpy = _best(lambda: np.tanh(xn, out=on))
    return "numpy" if t_torch >= MARGIN * t_numpy else "torch"


def choice(kernel: str) -> str:
    """``"numpy"`` or ``"torch"`` for ``kernel`` (``"mm"`` or ``"tanh"``); see NOTE:
    [Kernel backend]."""
    forced = os.environ.get(_ENV, "").strip().lower()
    if forced in ("numpy", "torch"):
        return forced
    if torch.get_num_threads() > 1:
        return "torch"  # two thread pools would fight over the cores
    found = _chosen.get(kernel)
    if found is None:
        _sync_threads()
        found = _chosen[kernel] = _measure(kernel)
    return found


def _sync_threads() -> None:
    """numpy's BLAS at torch's thread count (set again only when that count changed)."""
    want = torch.get_num_threads()
    if not _blas:
        try:
            from threadpoolctl import ThreadpoolController

            _blas.extend([ThreadpoolController().select(user_api="blas"), None])
        except Exception:  # noqa: BLE001 - no control over numpy's BLAS threads here
            _blas.extend([None, None])
    if _blas[0] is not None and _blas[1] != want:
        _blas[0].limit(limits=want)
        _blas[1] = want


def _numpy_ok(*tensors: Tensor) -> bool:
    """Whether numpy may compute on these tensors: CPU, one float dtype, and nothing that
    autograd would have to see."""
    first = tensors[0]
    grad = torch.is_grad_enabled()
    return first.dtype in _NUMPY_DTYPES and all(
        t.device.type == "cpu" and t.dtype == first.dtype and not (grad and t.requires_grad)
        for t in tensors
    )


def mm(a: Tensor, b: Tensor, out: Tensor | None = None) -> Tensor:
    """``a @ b`` for ``a`` of shape ``(..., K)`` and a matrix ``b`` ``(K, M)``, into ``out``
    when given (contiguous, ``(..., M)``)."""
    given = () if out is None else (out,)
    if (
        choice("mm") == "numpy"
        and _numpy_ok(a, b, *given)
        and all(o.is_contiguous() for o in given)
    ):
        _sync_threads()
        a2, b2 = a.detach().reshape(-1, a.shape[-1]).numpy(), b.detach().numpy()
        if out is None:
            return torch.from_numpy(np.matmul(a2, b2)).view(*a.shape[:-1], b.shape[-1])
        np.matmul(a2, b2, out=out.view(-1, b.shape[-1]).numpy())
        return out
    if a.ndim == 2 and out is not None:
        return torch.mm(a, b, out=out)
    result = torch.matmul(a, b)
    return result if out is None else out.copy_(result)


def tanh(x: Tensor, out: Tensor) -> Tensor:
    """``tanh(x)`` into ``out`` (contiguous, the shape of ``x``)."""
    if choice("tanh") == "numpy" and _numpy_ok(x, out):
        np.tanh(x.detach().numpy(), out=out.detach().numpy())
        return out
    return torch.tanh(x, out=out)
