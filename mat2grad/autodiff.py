"""Derivatives of a network's outputs with respect to its inputs.

``jacobian`` (reverse mode, forward mode, or a closed form where the model has one),
``vjp`` / ``jvp`` (products without forming J), ``hessian``, and ``check`` (autograd against
central finite differences). The engine works on any ``nn.Module`` that follows the model
contract (``mat2grad.load`` returns one): it never looks inside the model except to find an
optional closed form, and it takes every per-sample shape from the actual inputs, so a model
whose input is ``(Q, T, R)`` gets its full ``(Q, *out, T, R)`` Jacobian for free.

Shape contract
--------------
Inputs ``x_j`` are batch-first ``(Q, *in_j)`` (numpy arrays or tensors); outputs ``y_k`` are
``(Q, *out_k)``. The Jacobian block of output ``k`` with respect to input ``j`` is::

    J_kj  (Q, *out_k, *in_j),    J_kj[q, s..., r...] = d y_k[q, s...] / d x_j[q, r...]

One output and one (selected) input give a plain tensor; otherwise the result is a tuple over
outputs of tuples over the selected inputs (``J[k][j]``), like MATLAB's numOutputs x
numInputs cell. Results are per sample: the derivative of sample q's outputs with respect
to sample q's inputs.

NOTE: [Samples are independent]
    The fast generic methods differentiate ``sum_q y[q, e]`` with respect to the whole batch
    (one backward pass per output element, all samples at once). That equals the
    per-sample Jacobian only if no sample's output depends on another sample's input,
    which the model contract requires (eval mode, no batch statistics). The engine puts the
    model in eval mode, and on the first chunk compares one sample computed alone with the
    batched result; a model that mixes samples is refused instead of giving a wrong answer.

NOTE: [Kinks]
    At points where a function has no derivative the engine returns torch's convention,
    which the closed forms reproduce: ``poslin`` (relu) has derivative 0 at n == 0;
    ``satlin``/``satlins`` (clamp) have derivative 1 at their corners; ``tribas`` has
    derivative -sign(n) at |n| == 1 and 0 at n == 0; ``dist`` is given derivative 0 where
    the input equals a weight row. ``hardlim``, ``hardlims`` and ``compet`` have derivative
    0 almost everywhere: the Jacobian through them is exactly 0, with a
    :class:`ZeroDerivativeWarning`. Inputs removed by ``removeconstantrows`` get zero
    columns, constant outputs zero rows. NaN inputs give NaN Jacobian entries wherever the
    NaN reaches (as MATLAB's outputs are NaN there).

Speed and memory
----------------
Samples are processed in chunks sized from a working-set budget (about 32 MB, where the
measured speed is best; ``chunk_size`` overrides it) and written into one preallocated
result, so memory is the result plus one chunk. :func:`jacobian_chunks` yields the chunks
instead, for writers that stream results larger than memory to disk. A progress bar
(tqdm, on stderr) appears only on terminals and only for jobs longer than two seconds.
"""

from __future__ import annotations

import contextlib
import copy
import math
import mmap
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .errors import Mat2GradError

__all__ = [
    "jacobian",
    "jacobian_chunks",
    "JacobianChunk",
    "JacobianChunks",
    "vjp",
    "jvp",
    "hessian",
    "check",
    "CheckResult",
    "check_points",
    "ZeroDerivativeWarning",
    "MODES",
]

#: Jacobian methods: "auto" picks "analytic" where the model has a closed form, else
#: reverse mode unless the outputs outnumber the inputs more than 3 to 1 (torch's forward
#: mode costs about 1.4-3.4 reverse passes per pass, research/perf.md).
MODES = ("auto", "rev", "fwd", "analytic")

#: working set per chunk; 16-64 MB measured best on a 32 MB-L3 machine (research/perf.md 5)
CHUNK_BUDGET_BYTES = 32 * 2**20
MAX_CHUNK = 2**16

#: outputs at least this large are allocated with transparent huge pages where the OS
#: allows it: first-touch page faults otherwise cost ~40% of a small network's Jacobian
_HUGE_ALLOC_BYTES = 64 * 2**20


class ZeroDerivativeWarning(UserWarning):
    """The network contains functions whose derivative is zero almost everywhere
    (hardlim, hardlims, compet): Jacobians through them are exactly zero by construction."""


Nested = Tensor | tuple[tuple[Tensor, ...], ...]


# --------------------------------------------------------------------------------------
# Setup shared by every entry point
# --------------------------------------------------------------------------------------


@dataclass
class _Setup:
    model: nn.Module
    xs: list[Tensor]  # on the compute device, in the compute dtype
    q: int
    wrt: tuple[int, ...]
    in_shapes: tuple[tuple[int, ...], ...]
    out_shapes: tuple[tuple[int, ...], ...]
    tuple_output: bool  # the model returns a tuple (several outputs)
    dtype: torch.dtype
    device: torch.device
    result_device: torch.device
    name: str = "the model"
    restore: list[Callable[[], None]] = field(default_factory=list)

    def numel_in(self, j: int) -> int:
        return math.prod(self.in_shapes[j])

    def numel_out(self, k: int) -> int:
        return math.prod(self.out_shapes[k])


def _model_name(model: nn.Module) -> str:
    spec = getattr(model, "spec", None)
    where = getattr(spec, "where", None) or getattr(model, "source", None)  # ONNX: its file
    return str(where) if where else type(model).__name__


def _model_dtype_device(model: nn.Module) -> tuple[torch.dtype, torch.device]:
    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_floating_point():
            return t.dtype, t.device
    return torch.float64, torch.device("cpu")


def _check_differentiable(model: nn.Module, warn: bool = True) -> None:
    reason = getattr(model, "not_differentiable", None)
    if reason:
        name = _model_name(model)
        raise Mat2GradError(
            f"{name}: gradients with respect to the inputs are not defined: "
            f"{str(reason).removeprefix(f'{name}: ')}"
        )
    zero = tuple(getattr(model, "zero_derivative", ()) or ())
    if zero and warn:
        warnings.warn(
            ZeroDerivativeWarning(
                f"{_model_name(model)}: the derivative of {', '.join(zero)} is zero almost "
                "everywhere, so the Jacobian through it is zero by construction"
            ),
            stacklevel=3,
        )


def _integer_inputs(model: nn.Module, n: int) -> tuple[bool, ...]:
    """Which inputs the model declares non-floating (``input_float``: ONNX indices); they
    are passed as integers and never differentiated."""
    floats = tuple(getattr(model, "input_float", None) or ())
    return tuple(j < len(floats) and not floats[j] for j in range(n))


def _as_tensor(
    x: Any, j: int, dtype: torch.dtype, device: torch.device, integer: bool = False
) -> Tensor:
    from .predict import integer_tensor, numeric_tensor

    if integer:
        return integer_tensor(x, f"input {j + 1}").to(device=device)
    t = numeric_tensor(x, f"input {j + 1}")
    if not t.is_floating_point():
        t = t.to(torch.float64)
    return t.to(device=device, dtype=dtype)


def _setup(
    model: nn.Module,
    xs: Sequence[Any],
    *,
    dtype: torch.dtype | None,
    device: str | torch.device | None,
    wrt: int | Sequence[int] | None,
    warn: bool = True,
) -> _Setup:
    if not isinstance(model, nn.Module):
        raise Mat2GradError(
            f"expected a torch.nn.Module (e.g. from mat2grad.load), found {type(model).__name__}"
        )
    if not xs:
        raise Mat2GradError("no inputs given: pass one batch-first array per network input")
    _check_differentiable(model, warn)
    model_dtype, model_device = _model_dtype_device(model)
    dtype = dtype or model_dtype
    if dtype not in (torch.float64, torch.float32):
        raise Mat2GradError(f"dtype must be torch.float64 or torch.float32, not {dtype}")
    device = torch.device(device) if device is not None else model_device
    if dtype != model_dtype or device != model_device:
        model = copy.deepcopy(model).to(device=device, dtype=dtype)
    first = xs[0]
    result_device = first.device if isinstance(first, Tensor) else torch.device("cpu")
    integer = _integer_inputs(model, len(xs))
    tensors = [_as_tensor(x, j, dtype, device, integer[j]) for j, x in enumerate(xs)]

    declared = getattr(model, "input_shapes", None)
    for j, t in enumerate(tensors):
        # a single sample shaped exactly like the declared per-sample shape: a batch of one
        if declared is not None and j < len(declared) and tuple(t.shape) == tuple(declared[j]):
            tensors[j] = t = t.unsqueeze(0)
        if t.ndim == 0:
            raise Mat2GradError(f"input {j + 1} is a scalar; pass a batch-first array (Q, ...)")
    q = tensors[0].shape[0]
    for j, t in enumerate(tensors):
        if t.shape[0] != q:
            raise Mat2GradError(
                f"every input needs the same number of samples (rows, batch first); input 1 "
                f"has {q} and input {j + 1} has {t.shape[0]}"
            )
    if q == 0:
        raise Mat2GradError("no samples: the inputs have 0 rows")

    n_inputs = len(tensors)
    if wrt is None:
        sel = tuple(j for j in range(n_inputs) if not integer[j])
        if not sel:
            raise Mat2GradError(f"{_model_name(model)}: no floating inputs to differentiate")
    else:
        sel = (wrt,) if isinstance(wrt, int) else tuple(wrt)
        if not sel or any(not isinstance(j, int) or not 0 <= j < n_inputs for j in sel):
            raise Mat2GradError(f"wrt must name inputs 0..{n_inputs - 1} (0-based), found {wrt!r}")
        if len(set(sel)) != len(sel):
            raise Mat2GradError(f"wrt names an input twice: {wrt!r}")
        if any(integer[j] for j in sel):
            bad = next(j for j in sel if integer[j])
            raise Mat2GradError(
                f"{_model_name(model)}: input {bad + 1} is an integer input; only floating "
                "inputs can be differentiated"
            )

    setup = _Setup(
        model=model,
        xs=tensors,
        q=q,
        wrt=sel,
        in_shapes=tuple(tuple(t.shape[1:]) for t in tensors),
        out_shapes=(),
        tuple_output=False,
        dtype=dtype,
        device=device,
        result_device=result_device,
        name=_model_name(model),
    )
    _freeze(setup)
    declared_out = getattr(model, "output_shapes", None)
    if declared is not None and declared_out and tuple(map(tuple, declared)) == setup.in_shapes:
        # the model declares its shapes (the model contract) and the inputs match them
        setup.tuple_output = len(declared_out) > 1
        setup.out_shapes = tuple(tuple(s) for s in declared_out)
        return setup
    try:  # otherwise the shapes come from evaluating one sample
        with torch.no_grad():
            probe = model(*[t[:1] for t in tensors])
    except Mat2GradError:
        _unfreeze(setup)
        raise
    except Exception as exc:
        _unfreeze(setup)
        raise Mat2GradError(
            f"{setup.name}: evaluating the model on inputs of shape "
            f"{[tuple(t.shape[1:]) for t in tensors]} (per sample) failed: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    setup.tuple_output = isinstance(probe, tuple | list)
    outs = tuple(probe) if setup.tuple_output else (probe,)
    for k, o in enumerate(outs):
        if not isinstance(o, Tensor) or o.ndim == 0 or o.shape[0] != 1:
            _unfreeze(setup)
            raise Mat2GradError(
                f"{setup.name}: output {k + 1} is not batch-first (found "
                f"{getattr(o, 'shape', type(o).__name__)} for a batch of 1)"
            )
    setup.out_shapes = tuple(tuple(o.shape[1:]) for o in outs)
    return setup


def _freeze(setup: _Setup) -> None:
    """Eval mode and no parameter gradients for the duration of the computation."""
    model = setup.model
    was_training = model.training
    frozen = [p for p in model.parameters() if p.requires_grad]
    model.eval()
    for p in frozen:
        p.requires_grad_(False)

    def restore() -> None:
        for p in frozen:
            p.requires_grad_(True)
        model.train(was_training)

    setup.restore.append(restore)


def _unfreeze(setup: _Setup) -> None:
    while setup.restore:
        setup.restore.pop()()


@contextlib.contextmanager
def _session(setup: _Setup) -> Iterator[_Setup]:
    try:
        yield setup
    finally:
        _unfreeze(setup)


def _as_tuple(y: Any) -> tuple[Tensor, ...]:
    return tuple(y) if isinstance(y, tuple | list) else (y,)


# --------------------------------------------------------------------------------------
# Allocation, chunking, progress
# --------------------------------------------------------------------------------------


def _empty(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> Tensor:
    """A preallocated result; large CPU results on transparent huge pages where possible."""
    nbytes = math.prod(shape) * torch.tensor([], dtype=dtype).element_size()
    if device.type == "cpu" and nbytes >= _HUGE_ALLOC_BYTES and hasattr(mmap, "MADV_HUGEPAGE"):
        try:
            buf = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
            buf.madvise(mmap.MADV_HUGEPAGE)
            arr = np.frombuffer(buf, dtype=torch.empty(0, dtype=dtype).numpy().dtype)
            return torch.from_numpy(arr).view(shape)
        except (OSError, ValueError, AttributeError):  # pragma: no cover - platform dependent
            pass
    return torch.empty(shape, dtype=dtype, device=device)


def _progress(total: int, progress: bool | None, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit="sample",
        unit_scale=True,
        disable=None if progress is None else not progress,  # None: only on terminals
        delay=2.0 if progress is None else 0.0,  # and only for jobs longer than 2 s
        leave=False,
        file=sys.stderr,
        dynamic_ncols=True,
    )


def _ranges(q: int, size: int) -> Iterator[tuple[int, int]]:
    for a in range(0, q, size):
        yield a, min(q, a + size)


def _chunk_size(chunk_size: int | None, per_sample_bytes: float, q: int) -> int:
    if chunk_size is not None:
        if not isinstance(chunk_size, int | np.integer) or chunk_size < 1:
            raise Mat2GradError(f"chunk_size must be a whole number >= 1, found {chunk_size!r}")
        return int(min(chunk_size, q))
    size = int(CHUNK_BUDGET_BYTES // max(per_sample_bytes, 1.0))
    return max(1, min(size, MAX_CHUNK, q))


def _saved_bytes_per_sample(setup: _Setup) -> float:
    """Bytes autograd saves per sample for one forward pass (measured, not guessed): the
    slope between batches of 4 and 8 samples, so weights saved once do not count."""

    def saved(m: int) -> int:
        total = 0

        def pack(t: Tensor) -> Tensor:
            nonlocal total
            total += t.numel() * t.element_size()
            return t

        leaves = [x[:m].detach().requires_grad_(j in setup.wrt) for j, x in enumerate(setup.xs)]
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), torch.enable_grad():
            setup.model(*leaves)
        return total

    if setup.q >= 8:
        return max((saved(8) - saved(4)) / 4.0, 1.0)
    return max(saved(setup.q) / setup.q, 1.0)


# --------------------------------------------------------------------------------------
# Jacobian methods. Each fills J[k][jj] (c, *out_k, *in_wrt[jj]) and Y[k] (c, *out_k).
# --------------------------------------------------------------------------------------

Method = Callable[[list[Tensor], list[list[Tensor]], list[Tensor] | None], None]


def _rev_method(setup: _Setup) -> Method:
    """Reverse mode, all samples at once: one backward pass per output element."""
    model, wrt = setup.model, setup.wrt

    def run(xs: list[Tensor], J: list[list[Tensor]], Y: list[Tensor] | None) -> None:
        c = xs[0].shape[0]
        leaves = [x.detach().requires_grad_(j in wrt) for j, x in enumerate(xs)]
        targets = [leaves[j] for j in wrt]
        with torch.enable_grad():
            ys = _as_tuple(model(*leaves))
            # sum over the samples first: d(sum_q y[q, e])/dx[q] = dy[q, e]/dx[q]
            sums = [y.reshape(c, -1).sum(0) if y.requires_grad else None for y in ys]
            n_total = sum(setup.numel_out(k) for k in range(len(ys)))
            done = 0
            for k, (y, total) in enumerate(zip(ys, sums, strict=True)):
                if Y is not None:
                    Y[k].copy_(y.detach())
                n_out = setup.numel_out(k)
                flat = [J[k][jj].view(c, n_out, setup.numel_in(j)) for jj, j in enumerate(wrt)]
                if total is None:  # the output does not depend on any input
                    for f in flat:
                        f.zero_()
                    done += n_out
                    continue
                for e in range(n_out):
                    done += 1
                    grads = torch.autograd.grad(
                        total[e],
                        targets,
                        retain_graph=done < n_total,
                        allow_unused=True,
                        materialize_grads=True,
                    )
                    for f, g in zip(flat, grads, strict=True):
                        f[:, e].copy_(g.reshape(c, -1))

    return run


def _forward_ad() -> Any:
    """torch.autograd.forward_ad; its first use scripts a helper with torch.jit, which
    warns that torch.jit is deprecated (torch's business, not the user's)."""
    import torch.autograd.forward_ad as fwAD

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.script", category=DeprecationWarning)
        with fwAD.dual_level():
            fwAD.make_dual(torch.zeros(1), torch.zeros(1))
    return fwAD


def _fwd_method(setup: _Setup, activation_bytes: float) -> Method:
    """Forward mode: one dual-number pass per input element, with B input elements per
    pass by replicating the chunk B times along the batch (samples are independent), so
    that per-operation overheads are paid once per B tangents rather than once each."""
    fwAD = _forward_ad()
    model, wrt = setup.model, setup.wrt

    def run(xs: list[Tensor], J: list[list[Tensor]], Y: list[Tensor] | None) -> None:
        c = xs[0].shape[0]
        n_outs = [setup.numel_out(k) for k in range(len(setup.out_shapes))]
        if Y is not None:
            with torch.no_grad():
                for k, y in enumerate(_as_tuple(model(*xs))):
                    Y[k].copy_(y)
        with torch.no_grad():
            for jj, j in enumerate(wrt):
                n_in = setup.numel_in(j)
                block = int(max(1, min(n_in, CHUNK_BUDGET_BYTES // (c * activation_bytes))))
                reps = [x.repeat(block, *([1] * (x.ndim - 1))) for x in xs]
                tangent = torch.zeros_like(reps[j])
                tflat = tangent.view(block, c, n_in)
                for r0 in range(0, n_in, block):
                    b = min(block, n_in - r0)
                    for m in range(b):
                        tflat[m, :, r0 + m] = 1
                    with fwAD.dual_level():
                        args = [
                            fwAD.make_dual(x[: b * c], tangent[: b * c]) if i == j else x[: b * c]
                            for i, x in enumerate(reps)
                        ]
                        ys = _as_tuple(model(*args))
                        for k, y in enumerate(ys):
                            tan = fwAD.unpack_dual(y).tangent
                            dest = J[k][jj].view(c, n_outs[k], n_in)[:, :, r0 : r0 + b]
                            if tan is None:
                                dest.zero_()
                            else:  # (b*c, out) -> (c, out, b)
                                dest.copy_(tan.reshape(b, c, n_outs[k]).permute(1, 2, 0))
                    for m in range(b):
                        tflat[m, :, r0 + m] = 0

    return run


def _specialised(setup: _Setup) -> tuple[Any, str]:
    """A closed-form Jacobian for this model, or (None, why not)."""
    from .shallow.module import ShallowNetwork

    if isinstance(setup.model, ShallowNetwork):
        from .shallow.jacobian import closed_form

        return closed_form(setup.model, setup.wrt)
    return None, f"no closed form is known for {type(setup.model).__name__} models"


@dataclass
class _Plan:
    mode: str
    method: Method
    chunk: int
    per_sample_bytes: float


def _plan(setup: _Setup, mode: str, chunk_size: int | None) -> _Plan:
    if mode not in MODES:
        raise Mat2GradError(f"mode must be one of {', '.join(MODES)}; found {mode!r}")
    n_out = sum(setup.numel_out(k) for k in range(len(setup.out_shapes)))
    n_in = sum(setup.numel_in(j) for j in setup.wrt)
    itemsize = torch.empty(0, dtype=setup.dtype).element_size()
    if mode in ("auto", "analytic"):
        closed, why = _specialised(setup)
        if closed is not None:
            per = float(closed.bytes_per_sample)
            return _Plan("analytic", closed, _chunk_size(chunk_size, per, setup.q), per)
        if mode == "analytic":
            raise Mat2GradError(f"{setup.name}: mode='analytic' is not available: {why}")
        mode = "fwd" if 3 * n_in < n_out else "rev"
    # the graph (or the dual numbers), the Jacobian rows, the input gradients, the outputs
    saved = _saved_bytes_per_sample(setup)
    per = saved + itemsize * (2 * n_out * n_in + n_in + n_out)
    if mode == "rev":
        method = _rev_method(setup)
    else:  # about 2x the activations per tangent; chunks sized so a few tangents fit
        method = _fwd_method(setup, 2 * saved)
        per = max(per, 2 * saved * min(n_in, 16))
    return _Plan(mode, method, _chunk_size(chunk_size, per, setup.q), per)


def _release(plan: _Plan) -> None:
    release = getattr(plan.method, "release", None)
    if release is not None:
        release()


def _alloc_blocks(setup: _Setup, c: int, device: torch.device) -> list[list[Tensor]]:
    return [
        [
            _empty((c, *setup.out_shapes[k], *setup.in_shapes[j]), setup.dtype, device)
            for j in setup.wrt
        ]
        for k in range(len(setup.out_shapes))
    ]


def _alloc_outputs(setup: _Setup, c: int, device: torch.device) -> list[Tensor]:
    return [_empty((c, *s), setup.dtype, device) for s in setup.out_shapes]


def _nest(setup: _Setup, blocks: list[list[Tensor]]) -> Nested:
    if len(blocks) == 1 and len(blocks[0]) == 1:
        return blocks[0][0]
    return tuple(tuple(row) for row in blocks)


def _outputs(setup: _Setup, outs: list[Tensor]) -> Tensor | tuple[Tensor, ...]:
    return tuple(outs) if setup.tuple_output else outs[0]


def _guard_independence(
    setup: _Setup, method: Method, xs: list[Tensor], J: list[list[Tensor]]
) -> None:
    """See NOTE [Samples are independent]: sample 0 alone must match the batched result."""
    if xs[0].shape[0] < 2 or not all(bool(torch.isfinite(x[:1]).all()) for x in xs):
        return
    single = _alloc_blocks(setup, 1, setup.device)
    method([x[:1] for x in xs], single, None)
    tol = 1e-9 if setup.dtype == torch.float64 else 1e-4
    for row_b, row_s in zip(J, single, strict=True):
        for b, s in zip(row_b, row_s, strict=True):
            batched = b[:1]
            scale = float(torch.nan_to_num(s).abs().max()) if s.numel() else 0.0
            diff = float(torch.nan_to_num(batched - s).abs().max()) if s.numel() else 0.0
            if diff > tol * max(scale, 1e-300) and diff > 0:
                raise Mat2GradError(
                    f"{setup.name}: the model mixes samples within a batch (sample 1's "
                    f"Jacobian computed alone differs from the batched one by {diff:.3g}, "
                    f"relative {diff / max(scale, 1e-300):.3g}), so per-sample gradients "
                    "would be wrong; put the model in eval mode and remove operations that "
                    "combine samples (batch statistics, reshapes across the batch)"
                )


# --------------------------------------------------------------------------------------
# Public: jacobian and its chunk stream
# --------------------------------------------------------------------------------------


@dataclass
class JacobianChunk:
    """Results for samples ``start:stop``. The tensors are reused for the next chunk: copy
    what you keep."""

    start: int
    stop: int
    jacobian: list[list[Tensor]]  # [output][selected input] (c, *out_k, *in_j)
    outputs: list[Tensor]  # [output] (c, *out_k)


class JacobianChunks:
    """An iterable of :class:`JacobianChunk` (see :func:`jacobian_chunks`). The shapes are
    known before iterating, so a writer can lay out its file first."""

    def __init__(self, setup: _Setup, plan: _Plan, progress: bool | None):
        self._setup = setup
        self._plan = plan
        self._progress = progress
        self.num_samples = setup.q
        self.input_shapes = tuple(setup.in_shapes[j] for j in setup.wrt)
        self.output_shapes = setup.out_shapes
        self.wrt = setup.wrt
        self.mode = plan.mode
        self.chunk_size = plan.chunk
        self.dtype = setup.dtype

    def __iter__(self) -> Iterator[JacobianChunk]:
        setup, plan = self._setup, self._plan
        _freeze(setup)
        with _session(setup):
            J = _alloc_blocks(setup, plan.chunk, setup.device)
            Y = _alloc_outputs(setup, plan.chunk, setup.device)
            bar = _progress(setup.q, self._progress, "jacobian")
            try:
                for a, b in _ranges(setup.q, plan.chunk):
                    c = b - a
                    xs = [x[a:b] for x in setup.xs]
                    Jc = [[blk[:c] for blk in row] for row in J]
                    Yc = [y[:c] for y in Y]
                    plan.method(xs, Jc, Yc)
                    if a == 0 and plan.mode != "analytic":
                        _guard_independence(setup, plan.method, xs, Jc)
                    yield JacobianChunk(a, b, Jc, Yc)
                    bar.update(c)
            finally:
                bar.close()
                _release(plan)


def jacobian_chunks(
    model: nn.Module,
    *x: Any,
    mode: str = "auto",
    chunk_size: int | None = None,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    wrt: int | Sequence[int] | None = None,
) -> JacobianChunks:
    """:func:`jacobian` as a stream of chunks, for results larger than memory.

    Returns an iterable whose ``output_shapes``, ``input_shapes``, ``num_samples``, ``mode``
    (resolved) and ``chunk_size`` are known before iterating; each item is a
    :class:`JacobianChunk` with ``jacobian[k][j]`` ``(c, *out_k, *in_j)`` and
    ``outputs[k]`` ``(c, *out_k)`` for samples ``start:stop``, in buffers that are reused
    for the next chunk. Memory is bounded by the chunk, not by Q.
    """
    setup = _setup(model, x, dtype=dtype, device=device, wrt=wrt)
    with _session(setup):  # __iter__ freezes the model again while it runs
        plan = _plan(setup, mode, chunk_size)
    return JacobianChunks(setup, plan, progress)


def jacobian(
    model: nn.Module,
    *x: Any,
    mode: str = "auto",
    chunk_size: int | None = None,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    wrt: int | Sequence[int] | None = None,
    return_outputs: bool = False,
) -> Nested | tuple[Nested, Tensor | tuple[Tensor, ...]]:
    """Per-sample Jacobians of the outputs with respect to the inputs.

    Args:
        model: a network from :func:`mat2grad.load`, or any ``nn.Module`` following the
            model contract (batch-first, samples independent).
        *x: one batch-first array per network input, ``(Q, *in_j)`` (numpy or torch). For a
            MATLAB shallow network ``(Q, R)``: raw, unprocessed inputs, one sample per row.
        mode: ``"auto"`` (default: the closed form where the model has one, else reverse
            mode unless outputs outnumber inputs 3 to 1), ``"rev"``, ``"fwd"``, or
            ``"analytic"`` (the closed form; an error where there is none). All agree to
            round-off (1e-13 relative in float64).
        chunk_size: samples per chunk (default: from a ~32 MB working-set budget).
        dtype: compute in ``torch.float64`` or ``torch.float32`` (default: the model's).
        device: compute device (default: the model's); results land on the device of
            the first input (CPU for numpy inputs).
        progress: ``None`` (a bar on terminals for jobs over 2 s), ``True``, ``False``.
        wrt: differentiate with respect to these inputs only (0-based index or indices).
        return_outputs: also return the outputs ``y`` (computed in the same pass).

    Returns:
        ``J`` of shape ``(Q, *out, *in)``, e.g. ``(Q, S, R)`` for a shallow network, with
        ``J[q, s, r] = dy[q, s] / dx[q, r]``; for several outputs or inputs a tuple of
        tuples ``J[k][j]``. With ``return_outputs``, ``(J, y)``.

    Raises:
        Mat2GradError: the model is not differentiable (``not_differentiable``), inputs are
            malformed, the model mixes samples, or ``mode`` is not available.

    Warns:
        ZeroDerivativeWarning: the model contains hardlim/hardlims/compet.

    Example:
        >>> net = mat2grad.load("net.mat")                  # doctest: +SKIP
        >>> J = mat2grad.jacobian(net, np.random.rand(64, 10))
        >>> assert J.shape == (64, 3, 10)                   # (Q, S, R)
    """
    setup = _setup(model, x, dtype=dtype, device=device, wrt=wrt)
    with _session(setup):
        plan = _plan(setup, mode, chunk_size)
        out = _alloc_blocks(setup, setup.q, setup.result_device)
        ys = _alloc_outputs(setup, setup.q, setup.result_device)
        direct = setup.result_device == setup.device
        J_ws = None if direct else _alloc_blocks(setup, plan.chunk, setup.device)
        Y_ws = None if direct else _alloc_outputs(setup, plan.chunk, setup.device)
        bar = _progress(setup.q, progress, "jacobian")
        try:
            for a, b in _ranges(setup.q, plan.chunk):
                c = b - a
                xs = [xj[a:b] for xj in setup.xs]
                if direct:
                    Jc = [[blk[a:b] for blk in row] for row in out]
                    Yc = [y[a:b] for y in ys]
                else:
                    assert J_ws is not None and Y_ws is not None
                    Jc = [[blk[:c] for blk in row] for row in J_ws]
                    Yc = [y[:c] for y in Y_ws]
                plan.method(xs, Jc, Yc)
                if a == 0 and plan.mode != "analytic":
                    _guard_independence(setup, plan.method, xs, Jc)
                if not direct:
                    for row_o, row_c in zip(out, Jc, strict=True):
                        for o, blk in zip(row_o, row_c, strict=True):
                            o[a:b].copy_(blk)
                    for o, y in zip(ys, Yc, strict=True):
                        o[a:b].copy_(y)
                bar.update(c)
        finally:
            bar.close()
            _release(plan)
    J = _nest(setup, out)
    return (J, _outputs(setup, ys)) if return_outputs else J


# --------------------------------------------------------------------------------------
# Public: vector-Jacobian and Jacobian-vector products
# --------------------------------------------------------------------------------------


def _as_inputs(x: Any) -> tuple[Any, ...]:
    return tuple(x) if isinstance(x, tuple | list) else (x,)


def _vectors(
    v: Any, shapes: tuple[tuple[int, ...], ...], q: int, setup: _Setup, what: str
) -> list[Tensor]:
    vs = _as_inputs(v)
    if len(vs) != len(shapes):
        raise Mat2GradError(
            f"{what}: expected {len(shapes)} array(s), one per {what.split()[0]}, found {len(vs)}"
        )
    out = []
    for k, (vk, shape) in enumerate(zip(vs, shapes, strict=True)):
        t = _as_tensor(vk, k, setup.dtype, setup.device)
        if tuple(t.shape) != (q, *shape):
            raise Mat2GradError(
                f"{what} {k + 1} has shape {tuple(t.shape)}; expected {(q, *shape)} "
                "(batch first, like the samples)"
            )
        out.append(t)
    return out


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
    setup = _setup(model, _as_inputs(x), dtype=dtype, device=device, wrt=None)
    with _session(setup):
        vs = _vectors(v, setup.out_shapes, setup.q, setup, "output cotangent")
        per = _saved_bytes_per_sample(setup)
        size = _chunk_size(chunk_size, per, setup.q)
        grads = [_empty((setup.q, *s), setup.dtype, setup.result_device) for s in setup.in_shapes]
        ys = _alloc_outputs(setup, setup.q, setup.result_device)
        bar = _progress(setup.q, progress, "vjp")
        try:
            for a, b in _ranges(setup.q, size):
                leaves = [xj[a:b].detach().requires_grad_(True) for xj in setup.xs]
                with torch.enable_grad():
                    out = _as_tuple(setup.model(*leaves))
                pairs = [(o, vk[a:b]) for o, vk in zip(out, vs, strict=True) if o.requires_grad]
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
                    dst[a:b].copy_(g)
                for dst, o in zip(ys, out, strict=True):
                    dst[a:b].copy_(o.detach())
                bar.update(b - a)
        finally:
            bar.close()
    g_out: Any = grads[0] if len(grads) == 1 else tuple(grads)
    return (g_out, _outputs(setup, ys)) if return_outputs else g_out


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
    fwAD = _forward_ad()
    setup = _setup(model, _as_inputs(x), dtype=dtype, device=device, wrt=None)
    with _session(setup):
        vs = _vectors(v, setup.in_shapes, setup.q, setup, "input tangent")
        per = 2 * _saved_bytes_per_sample(setup)
        size = _chunk_size(chunk_size, per, setup.q)
        tans = _alloc_outputs(setup, setup.q, setup.result_device)
        ys = _alloc_outputs(setup, setup.q, setup.result_device)
        bar = _progress(setup.q, progress, "jvp")
        try:
            for a, b in _ranges(setup.q, size):
                with torch.no_grad(), fwAD.dual_level():
                    args = [
                        fwAD.make_dual(xj[a:b], vj[a:b])
                        for xj, vj in zip(setup.xs, vs, strict=True)
                    ]
                    out = _as_tuple(setup.model(*args))
                    for k, o in enumerate(out):
                        primal, tan = fwAD.unpack_dual(o)
                        ys[k][a:b].copy_(primal)
                        if tan is None:
                            tans[k][a:b].zero_()
                        else:
                            tans[k][a:b].copy_(tan)
                bar.update(b - a)
        finally:
            bar.close()
    t_out = _outputs(setup, tans)
    return (t_out, _outputs(setup, ys)) if return_outputs else t_out


# --------------------------------------------------------------------------------------
# Public: Hessians
# --------------------------------------------------------------------------------------


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
    setup = _setup(model, x, dtype=dtype, device=device, wrt=wrt)
    with _session(setup):
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
        per = 3 * _saved_bytes_per_sample(setup) + itemsize * n_in * (n_in * n_sel + 2)
        size = _chunk_size(chunk_size, per, setup.q)
        H = [
            _empty((setup.q, *shape, *in_shape, *in_shape), setup.dtype, setup.result_device)
            for _, _, shape in sel
        ]
        ys = _alloc_outputs(setup, setup.q, setup.result_device)

        def compute(xs: list[Tensor], dest: list[Tensor], y_dest: list[Tensor] | None) -> None:
            c = xs[0].shape[0]
            leaves = [xi.detach().requires_grad_(i == j) for i, xi in enumerate(xs)]
            with torch.enable_grad():
                out = _as_tuple(setup.model(*leaves))
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

        bar = _progress(setup.q, progress, "hessian")
        try:
            for a, b in _ranges(setup.q, size):
                xs = [xi[a:b] for xi in setup.xs]
                dest = [h[a:b] for h in H]
                compute(xs, dest, [y[a:b] for y in ys])
                if a == 0 and b - a >= 2 and all(bool(torch.isfinite(xi[:1]).all()) for xi in xs):
                    single = [torch.empty_like(h[:1]) for h in H]
                    compute([xi[:1] for xi in xs], single, None)
                    for s, h in zip(single, dest, strict=True):
                        scale = float(s.abs().max()) if s.numel() else 0.0
                        diff = float((h[:1] - s).abs().max()) if s.numel() else 0.0
                        tol = 1e-9 if setup.dtype == torch.float64 else 1e-4
                        if diff > tol * max(scale, 1e-300) and diff > 0:
                            raise Mat2GradError(
                                f"{setup.name}: the model mixes samples within a batch (sample "
                                f"1's Hessian computed alone differs from the batched one); "
                                "put the model in eval mode"
                            )
                bar.update(b - a)
        finally:
            bar.close()
    if output is None:
        result: Any = H[0] if n_outputs == 1 else tuple(H)
    else:
        result = H[0].view(setup.q, *in_shape, *in_shape)
    return (result, _outputs(setup, ys)) if return_outputs else result


# --------------------------------------------------------------------------------------
# Public: the finite-difference check
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckResult:
    """Autograd against central finite differences, per output.

    ``errors[k]`` is ``max |J_ad - J_fd| / max |J_ad|`` over the compared entries of output
    k. Entries where the function is not smooth at the scale of the step cannot be checked
    by differences: where the central differences with steps h and h/2 disagree by more
    than 1e-5, or the forward and backward one-sided differences by more than 1e-3
    (relative to the same scale; smooth functions stay orders of magnitude below both),
    a kink or step (poslin, hardlim, ...) lies within the step. Those entries are counted
    in ``skipped``, not compared; entries that are NaN/Inf in ``nonfinite``. A kink close
    to the edge of the step can escape detection: it then shows as an error, never as a
    pass.
    """

    errors: tuple[float, ...]
    compared: tuple[int, ...]
    skipped: tuple[int, ...]
    nonfinite: tuple[int, ...]
    tol: float
    output_names: tuple[str, ...]
    mode: str

    @property
    def max_error(self) -> float:
        return max(self.errors) if self.errors else 0.0

    @property
    def passed(self) -> bool:
        return all(n > 0 for n in self.compared) and all(e <= self.tol for e in self.errors)

    def summary(self) -> str:
        lines = []
        for name, e, n, s, bad in zip(
            self.output_names,
            self.errors,
            self.compared,
            self.skipped,
            self.nonfinite,
            strict=True,
        ):
            extra = []
            if s:
                extra.append(f"{s} skipped: not smooth within the step (kinks/steps)")
            if bad:
                extra.append(f"{bad} NaN/Inf")
            note = f" ({'; '.join(extra)})" if extra else ""
            lines.append(f"output {name}: max relative error {e:.3g} over {n} entries{note}")
        verdict = "OK" if self.passed else "FAILED"
        lines.append(
            f"{verdict}: autograd ({self.mode}) vs central finite differences, "
            f"max relative error {self.max_error:.3g}, tolerance {self.tol:.3g}"
        )
        return "\n".join(lines)


#: thresholds (relative to max |J|) above which an entry is "not smooth within the step";
#: fixed, not tied to the tolerance, so that a tight tolerance fails instead of skipping
_SMOOTH_CENTRAL = 1e-5
_SMOOTH_ONE_SIDED = 1e-3


def _fd_steps(x: Tensor, step: Any, classic: bool = False) -> Tensor:
    """Per-element steps (*in): about cbrt(eps) times the spread of each feature over the
    samples, enlarged where the values themselves are much larger than their spread (so
    that x + h is still resolved in floating point). ``classic``: cbrt(eps) max(|x|, 1)."""
    if classic:
        finite = torch.where(torch.isfinite(x), x, torch.zeros_like(x))
        return torch.finfo(x.dtype).eps ** (1 / 3) * torch.clamp(finite.abs().amax(0), min=1.0)
    if step is not None:
        h = torch.as_tensor(step, dtype=x.dtype, device=x.device)
        if not bool((h > 0).all()):
            raise Mat2GradError("step must be > 0")
        return h.expand(x.shape[1:]).clone()
    eps = torch.finfo(x.dtype).eps
    finite = torch.where(torch.isfinite(x), x, torch.zeros_like(x))
    mag = finite.abs().amax(0)
    spread = finite.std(0) if x.shape[0] >= 2 else torch.zeros_like(mag)
    scale = torch.where(spread > 0, spread, torch.where(mag > 0, mag, torch.ones_like(mag)))
    return eps ** (1 / 3) * scale * torch.clamp(mag / scale, min=1.0) ** (1 / 3)


def _differences(
    model: nn.Module, xs: list[Tensor], centre: list[Tensor], j: int, r: int, h: float
) -> tuple[list[Tensor], list[Tensor], list[Tensor], bool]:
    """Central differences along element r of input j at steps h and h/2 (per output,
    ``(c, n_out)``), forward minus backward one-sided differences at h, and whether the
    outputs' change at h stands out of their rounding."""
    c = xs[0].shape[0]
    eps = torch.finfo(xs[j].dtype).eps
    central: list[list[Tensor]] = []
    one_sided: list[Tensor] = []
    resolved = True
    for hs in (h, h / 2):
        plus, minus = xs[j].clone(), xs[j].clone()
        plus.view(c, -1)[:, r] += hs
        minus.view(c, -1)[:, r] -= hs
        up = (plus - xs[j]).reshape(c, -1)[:, r : r + 1]  # the steps actually taken
        down = (xs[j] - minus).reshape(c, -1)[:, r : r + 1]
        yp = [o.reshape(c, -1) for o in _as_tuple(model(*_swap(xs, j, plus)))]
        ym = [o.reshape(c, -1) for o in _as_tuple(model(*_swap(xs, j, minus)))]
        central.append([(p - m) / (up + down) for p, m in zip(yp, ym, strict=True)])
        if hs == h:
            one_sided = [
                (p - y0) / up - (y0 - m) / down for p, m, y0 in zip(yp, ym, centre, strict=True)
            ]
            change = max(
                float(torch.nan_to_num((p - m).abs()).max()) for p, m in zip(yp, ym, strict=True)
            )
            size = max(float(torch.nan_to_num(p.abs()).max()) for p in yp)
            resolved = change > 1e7 * eps * size
    return central[0], central[1], one_sided, resolved


def _swap(xs: list[Tensor], j: int, value: Tensor) -> list[Tensor]:
    return [value if i == j else x for i, x in enumerate(xs)]


def check(
    model: nn.Module,
    *x: Any,
    mode: str = "auto",
    tol: float = 1e-6,
    step: Any = None,
    chunk_size: int | None = None,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    wrt: int | Sequence[int] | None = None,
) -> CheckResult:
    """Compare the autograd Jacobian with central finite differences.

    Args:
        model: a network from :func:`mat2grad.load` (or any model following the contract).
        *x: the points, one batch-first array per input (see :func:`check_points`).
        mode: the Jacobian method to check (:func:`jacobian`).
        tol: the relative tolerance for ``passed`` (1e-6 suits float64: central
            differences are accurate to about 1e-9 here).
        step: finite-difference step, a scalar or an array shaped like one sample
            (default: per feature, from the spread of the samples; see ``_fd_steps``).
        chunk_size, device, progress, wrt: as for :func:`jacobian`.
        dtype: computation dtype, float64 by default (float32 differences are too coarse).

    Returns:
        A :class:`CheckResult` (``errors`` per output, ``passed``, ``summary()``).
    """
    chunks = jacobian_chunks(
        model,
        *x,
        mode=mode,
        chunk_size=chunk_size,
        dtype=dtype,
        device=device,
        progress=progress,
        wrt=wrt,
    )
    setup = chunks._setup
    n_out = len(setup.out_shapes)
    # pass 1: the scale of each output's Jacobian (the denominator of the errors)
    scales = [0.0] * n_out
    for chunk in chunks:
        for k, row in enumerate(chunk.jacobian):
            for blk in row:
                finite = torch.nan_to_num(blk, 0.0, 0.0, 0.0).abs()
                scales[k] = max(scales[k], float(finite.max()) if finite.numel() else 0.0)
    # pass 2: central differences with steps h and h/2, chunk by chunk
    max_diff = [0.0] * n_out
    max_fd = [0.0] * n_out
    compared = [0] * n_out
    skipped = [0] * n_out
    nonfinite = [0] * n_out
    model = setup.model
    steps = {j: _fd_steps(setup.xs[j], step) for j in setup.wrt}
    classic = {j: _fd_steps(setup.xs[j], None, classic=True) for j in setup.wrt}
    with torch.no_grad():
        for chunk in chunks:
            a, b = chunk.start, chunk.stop
            c = b - a
            xs = [xj[a:b] for xj in setup.xs]
            centre = [o.reshape(c, -1) for o in _as_tuple(model(*xs))]
            for jj, j in enumerate(setup.wrt):
                for r in range(setup.numel_in(j)):
                    h = float(steps[j].reshape(-1)[r])
                    fd, fd2, one_sided, resolved = _differences(model, xs, centre, j, r, h)
                    h_classic = float(classic[j].reshape(-1)[r])
                    if not resolved and step is None and h_classic > h:
                        # the data barely vary along this input (a near-constant row): a step
                        # from their spread moves the outputs by less than their rounding
                        fd, fd2, one_sided, _ = _differences(model, xs, centre, j, r, h_classic)
                    for k in range(n_out):
                        ad = chunk.jacobian[k][jj].reshape(c, -1, setup.numel_in(j))[:, :, r]
                        finite = torch.isfinite(fd[k]) & torch.isfinite(fd2[k])
                        finite &= torch.isfinite(ad) & torch.isfinite(one_sided[k])
                        scale = scales[k] if scales[k] > 0 else 1.0
                        # smooth: halving the step changes nothing at the tolerance, and the
                        # one-sided slopes agree (they differ by h f'' where f is smooth, by
                        # the jump in slope at a kink, even one exactly at x)
                        smooth = (fd[k] - fd2[k]).abs() <= _SMOOTH_CENTRAL * scale
                        smooth &= one_sided[k].abs() <= _SMOOTH_ONE_SIDED * scale
                        use = finite & smooth
                        nonfinite[k] += int((~finite).sum())
                        skipped[k] += int((finite & ~smooth).sum())
                        compared[k] += int(use.sum())
                        if bool(use.any()):
                            max_diff[k] = max(max_diff[k], float((fd[k] - ad).abs()[use].max()))
                            max_fd[k] = max(max_fd[k], float(fd[k].abs()[use].max()))
    resolved_mode = chunks.mode
    errors = []
    for k in range(n_out):
        scale = scales[k] if scales[k] > 0 else max_fd[k]
        errors.append(max_diff[k] / scale if scale > 0 else 0.0)
        if compared[k] == 0:
            errors[k] = float("nan")
    names = tuple(getattr(model, "output_names", ()) or ())
    if len(names) != n_out:
        names = tuple(str(k + 1) for k in range(n_out))
    return CheckResult(
        errors=tuple(errors),
        compared=tuple(compared),
        skipped=tuple(skipped),
        nonfinite=tuple(nonfinite),
        tol=tol,
        output_names=names,
        mode=resolved_mode,
    )


def check_points(
    model: nn.Module, max_samples: int = 200, seed: int = 0
) -> tuple[list[np.ndarray], str]:
    """Points for :func:`check` when the user gives none: the network's stored example
    inputs (``inputs{j}.exampleInput``, evenly spaced samples), else uniform random points
    inside the input processing's recorded ranges (``inputs{j}.range``).

    Models without a MATLAB network spec that declare their per-sample ``input_shapes``
    (ONNX models) get ``max_samples`` points drawn uniformly from [-1, 1] in every element
    of each floating input (dimensions left symbolic, ``None``, get size 3); inputs the
    model declares non-floating (``input_float``) are zeros.

    Returns:
        ``(inputs, description)``: one ``(Q, *in_j)`` array per input (float64, or int64
        for integer inputs), and where they came from.

    Raises:
        Mat2GradError: the model stores neither (pass inputs explicitly).
    """
    spec = getattr(model, "spec", None)
    inputs = getattr(spec, "inputs", None)
    shapes = getattr(model, "input_shapes", None)
    if spec is None and shapes:
        rng = np.random.default_rng(seed)
        integer = _integer_inputs(model, len(shapes))
        pts = []
        for shape, is_int in zip(shapes, integer, strict=True):
            dims = (max_samples, *(3 if d is None else int(d) for d in shape))
            pts.append(np.zeros(dims, np.int64) if is_int else rng.uniform(-1.0, 1.0, dims))
        return pts, (
            f"{max_samples} random points, every input element uniform in [-1, 1] (seed {seed})"
        )
    if not inputs:
        raise Mat2GradError(
            f"{_model_name(model)}: no inputs given and the model stores no example inputs; "
            "pass the points to check (--inputs DATA.mat)"
        )
    examples = [getattr(i, "example", None) for i in inputs]
    if all(e is not None for e in examples):
        q = min(e.shape[1] for e in examples)
        idx = np.unique(np.linspace(0, q - 1, min(q, max_samples)).round().astype(int))
        pts = [np.ascontiguousarray(np.asarray(e[:, idx], dtype=np.float64).T) for e in examples]
        return pts, f"{len(idx)} of the network's stored example inputs (exampleInput)"
    ranges = [getattr(i, "range", None) for i in inputs]
    if all(r is not None and np.all(np.isfinite(r)) for r in ranges):
        rng = np.random.default_rng(seed)
        pts = [rng.uniform(r[:, 0], r[:, 1], size=(max_samples, r.shape[0])) for r in ranges]
        return pts, (
            f"{max_samples} random points inside the input ranges the network recorded "
            f"(inputs{{j}}.range, seed {seed})"
        )
    raise Mat2GradError(
        f"{_model_name(model)}: no inputs given, and the network stores neither example "
        "inputs (exampleInput) nor finite input ranges; pass the points to check with "
        "--inputs DATA.mat"
    )
