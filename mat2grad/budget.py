"""The working-set budget every sample loop shares (predict, the Jacobian engine): samples
per chunk, the chunk ranges, large preallocated results, and the measured bytes a forward
pass needs per sample."""

from __future__ import annotations

import math
import mmap
import weakref
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from .errors import Mat2GradError, size_text

__all__ = [
    "CHUNK_BUDGET_BYTES",
    "MAX_CHUNK",
    "available_memory",
    "budget_chunk",
    "check_fits",
    "empty",
    "forward_bytes_per_sample",
    "ranges",
    "saved_bytes_per_sample",
    "size_text",
]

#: working set per chunk; 16-64 MB measured best on a machine with a 32 MB L3 cache
CHUNK_BUDGET_BYTES = 32 * 2**20
MAX_CHUNK = 2**16

#: outputs at least this large are allocated with transparent huge pages where the OS
#: allows it. glibc's malloc maps every block of 32 MiB or more afresh (its largest mmap
#: threshold), so each such result pays a first-touch fault per 4 KiB page: filling a
#: 60 MiB result took 39 ms against 10 ms on huge pages, and the Jacobian of 2^18 samples
#: of the 10-20-3 network (a Dask block) 93 ms against 62 ms; smaller results come from
#: malloc's heap, whose pages are reused from call to call.
_HUGE_ALLOC_BYTES = 32 * 2**20
#: allocations smaller than this are not checked against the free memory
_CHECK_BYTES = 64 * 2**20


def budget_chunk(per_sample_bytes: float, q: int) -> int:
    """Samples per chunk that fit the working-set budget (at least 1, at most ``q``)."""
    size = int(CHUNK_BUDGET_BYTES // max(per_sample_bytes, 1.0))
    return max(1, min(size, MAX_CHUNK, q))


def ranges(q: int, size: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of consecutive chunks of ``size`` samples covering ``0..q``."""
    for a in range(0, q, size):
        yield a, min(q, a + size)


def available_memory(device: torch.device) -> int | None:
    """Bytes that can still be allocated on ``device`` without swapping out other work
    (Linux: MemAvailable + SwapFree, and no more than the process's own address-space limit
    (``ulimit -v``) leaves; CUDA: the free device memory); None where unknown."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            info = {k: v.split() for k, v in (line.split(":", 1) for line in fh if ":" in line)}
        free = 1024 * (int(info["MemAvailable"][0]) + int(info.get("SwapFree", ["0"])[0]))
    except (OSError, KeyError, ValueError, IndexError):
        return None
    left = _address_space_left()
    return free if left is None else min(free, left)


def _address_space_left() -> int | None:
    """What the process's address-space limit (RLIMIT_AS) still allows, or None (no limit,
    or not knowable here)."""
    try:
        import resource  # POSIX only; local so that other platforms import this module

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft == resource.RLIM_INFINITY:
            return None
        with open("/proc/self/status", encoding="ascii") as fh:
            used = next(int(line.split()[1]) for line in fh if line.startswith("VmSize:"))
        return max(0, soft - 1024 * used)
    except (ImportError, OSError, ValueError, StopIteration):
        return None


def check_fits(nbytes: int, device: torch.device, what: str, remedy: str) -> None:
    """Refuse an allocation of ``nbytes`` that cannot fit in the memory of ``device`` (before
    trying: a failed allocation may take the machine's memory down with it). Allocations
    under 64 MiB are not checked: reading the free memory would cost more than they do."""
    if nbytes < _CHECK_BYTES:
        return
    free = available_memory(device)
    if free is not None and nbytes > free:
        raise Mat2GradError(
            f"{what} needs {size_text(nbytes)}, more than the {size_text(free)} of memory "
            f"available; {remedy}"
        )


def empty(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> Tensor:
    """A preallocated result; large CPU results on transparent huge pages where possible.

    Raises:
        Mat2GradError: it cannot fit in memory (checked before allocating).
    """
    nbytes = math.prod(shape) * dtype.itemsize
    what = f"a result of shape {tuple(shape)} ({str(dtype).removeprefix('torch.')})"
    remedy = "pass fewer samples per call"
    check_fits(nbytes, device, what, remedy)
    if device.type == "cpu" and nbytes >= _HUGE_ALLOC_BYTES and hasattr(mmap, "MADV_HUGEPAGE"):
        try:
            buf = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
            buf.madvise(mmap.MADV_HUGEPAGE)
            arr = np.frombuffer(buf, dtype=torch.empty(0, dtype=dtype).numpy().dtype)
            return torch.from_numpy(arr).view(shape)
        except (OSError, ValueError, AttributeError, TypeError):  # pragma: no cover - platform
            pass
    try:
        return torch.empty(shape, dtype=dtype, device=device)
    except (RuntimeError, MemoryError) as exc:  # torch.OutOfMemoryError is a RuntimeError
        raise Mat2GradError(
            f"{what} ({size_text(nbytes)}) cannot be allocated ({type(exc).__name__}: {exc}); "
            f"{remedy}"
        ) from None


def forward_bytes_per_sample(model: nn.Module, xs: Sequence[Tensor]) -> float:
    """Bytes one sample occupies during a forward pass without autograd: its inputs and
    outputs, and twice the activations autograd would keep for it (see NOTE: [Forward
    working set])."""
    inputs = sum(x[:1].numel() * x.element_size() for x in xs)
    saved, outputs = saved_bytes_per_sample(model, xs, [x.is_floating_point() for x in xs])
    return inputs + outputs + 2.0 * saved


# NOTE: [Forward working set]
#   Autograd saves the intermediate results that the backward pass needs; a pass without
#   autograd frees each intermediate once its consumer has run, but it also creates
#   temporaries that are never saved (arithmetic with constants, such as mapminmax's
#   (x - xoffset) * gain + ymin). Twice the saved bytes is the estimate for both. It is a
#   target, not a bound: on benchmark model A (10-20-3) autograd saves 160 bytes per sample,
#   the estimate is 424 and the measured peak above inputs and outputs was about 640 (40 MB
#   for chunks of 65536 samples); for deep networks it overestimates, as most saved
#   activations are dead by the time the last layer runs.

#: measured (saved, output) bytes per sample, per model and per input signature
_MEASURED: weakref.WeakKeyDictionary[nn.Module, dict[tuple, tuple[float, float]]] = (
    weakref.WeakKeyDictionary()
)


def saved_bytes_per_sample(
    model: nn.Module, xs: Sequence[Tensor], grad: Sequence[bool]
) -> tuple[float, float]:
    """(saved, output) bytes per sample of one forward pass with autograd, the inputs
    flagged in ``grad`` requiring gradients: the slope between batches of 4 and 8 samples
    (the first sample repeated where there are fewer), so that weights saved once, or once
    per time step, do not count. Measured once per model and input signature (shapes,
    dtypes, devices, ``grad``): the sizes do not depend on the values."""
    key = (tuple((tuple(x.shape[1:]), x.dtype, x.device) for x in xs), tuple(grad))
    known = _MEASURED.setdefault(model, {})
    if key not in known:
        (s4, o4), (s8, o8) = _measure(model, xs, grad, 4), _measure(model, xs, grad, 8)
        known[key] = (max(s8 - s4, 0) / 4.0, max(o8 - o4, 0) / 4.0)
    return known[key]


def _measure(model: nn.Module, xs: Sequence[Tensor], grad: Sequence[bool], m: int) -> tuple:
    total = 0

    def pack(t: Tensor) -> Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    leaves = [_rows(x, m).requires_grad_(g) for x, g in zip(xs, grad, strict=True)]
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), torch.enable_grad():
        ys = model(*leaves)
    outs = ys if isinstance(ys, tuple | list) else (ys,)
    return total, sum(y.numel() * y.element_size() for y in outs if isinstance(y, Tensor))


def _rows(x: Tensor, m: int) -> Tensor:
    """``m`` samples of ``x`` (detached): its first ``m``, or its first repeated where it
    has fewer (samples are independent, so sizes per sample are the same)."""
    if x.shape[0] >= m:
        return x[:m].detach()
    return x[:1].detach().repeat(m, *([1] * (x.ndim - 1)))
