"""Autograd against central finite differences: :func:`check`, its :class:`CheckResult`,
and :func:`check_points` (where to check when the user gives no points)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .. import matfile
from ..contract import contract_of
from ..errors import Mat2GradError, refuse_out_of_memory
from .jacobian import jacobian_chunks
from .setup import as_tuple

__all__ = ["check", "CheckResult", "check_points"]


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
        yp = [o.reshape(c, -1) for o in as_tuple(model(*_swap(xs, j, plus)))]
        ym = [o.reshape(c, -1) for o in as_tuple(model(*_swap(xs, j, minus)))]
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


@refuse_out_of_memory
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
            centre = [o.reshape(c, -1) for o in as_tuple(model(*xs))]
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
    names = setup.contract.output_names
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
    contract = contract_of(model)
    spec, shapes = contract.spec, contract.input_shapes
    inputs = getattr(spec, "inputs", None)
    if spec is None and shapes:
        rng = np.random.default_rng(seed)
        integer = contract.integer_inputs(len(shapes))
        pts = []
        for shape, is_int in zip(shapes, integer, strict=True):
            dims = (max_samples, *(3 if d is None else int(d) for d in shape))
            pts.append(np.zeros(dims, np.int64) if is_int else rng.uniform(-1.0, 1.0, dims))
        return pts, (
            f"{max_samples} random points, every input element uniform in [-1, 1] (seed {seed})"
        )
    if not inputs:
        raise Mat2GradError(
            f"{contract.name}: no inputs given and the model stores no example inputs; "
            "pass the points to check (--inputs DATA.mat)"
        )
    examples = [getattr(i, "example", None) for i in inputs]
    if all(e is not None for e in examples):
        q = min(matfile.example_count(e) for e in examples)
        idx = np.unique(np.linspace(0, q - 1, min(q, max_samples)).round().astype(int))
        pts = [matfile.example_samples(e, idx) for e in examples]
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
        f"{contract.name}: no inputs given, and the network stores neither example "
        "inputs (exampleInput) nor finite input ranges; pass the points to check with "
        "--inputs DATA.mat"
    )
