"""Shared test helpers: the real-file corpus (read from ../shared/corpus, never copied into
the repo), the committed fixtures, and the tolerances used everywhere."""

from __future__ import annotations

import collections
import copy
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tomllib
import torch

ROOT = Path(__file__).resolve().parents[2]


def checkout_env() -> dict[str, str]:
    """The environment of a subprocess that imports this checkout of mat2grad."""
    return dict(os.environ, PYTHONPATH=str(ROOT))


def run_python(*args: str, cwd: Path = ROOT, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python ARGS`` in a fresh interpreter that imports this checkout; text captured."""
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env=checkout_env(),
        cwd=cwd,
        timeout=timeout,
    )


FIXTURES = ROOT / "fixtures"
CORPUS = (ROOT / ".." / "shared" / "corpus").resolve()
HAVE_CORPUS = (CORPUS / "MANIFEST.toml").is_file()

requires_corpus = pytest.mark.skipif(
    not HAVE_CORPUS,
    reason=f"the real-file corpus is not here ({CORPUS}); it sits beside the repository "
    "in the project's workspace and is not distributed with it",
)


def corpus_cases(prefix: str, having: tuple[str, ...] = ()) -> list:
    """MANIFEST.toml [[case]] entries whose file starts with ``prefix`` (e.g. 'shallow/')
    and that have every key in ``having``, as pytest params with readable ids; one skipped
    param when the corpus is absent."""
    if not HAVE_CORPUS:
        return [pytest.param(None, marks=requires_corpus, id="no-corpus")]
    with open(CORPUS / "MANIFEST.toml", "rb") as fh:
        cases = tomllib.load(fh)["case"]
    return [
        pytest.param(c, id=f"{Path(c['file']).stem}:{c.get('network', '')}")
        for c in cases
        if c["file"].startswith(prefix) and all(k in c for k in having)
    ]


# Tolerances, in one place -----------------------------------------------------------

#: forward outputs vs MATLAB's own saved outputs (float64)
FORWARD_RTOL = 1e-12
#: performance values vs MATLAB's recorded ones (tr.best_perf, perform(...)), float64
PERF_RTOL = 1e-13

#: weight gradients vs central finite differences of the performance (5-point, float64)
GRAD_FD_RTOL = 1e-7

#: gradients vs an independent closed form or MATLAB's recorded gradient norm (round-off)
GRAD_EXACT_RTOL = 1e-12


def max_rel_err(actual: np.ndarray, expected: np.ndarray) -> float:
    """max |a - e| / max |e| over finite entries (NaNs must coincide)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    nan_a, nan_e = np.isnan(actual), np.isnan(expected)
    assert np.array_equal(nan_a, nan_e), "NaN positions differ"
    scale = np.max(np.abs(expected[~nan_e]), initial=0.0)
    diff = np.max(np.abs(actual[~nan_a] - expected[~nan_e]), initial=0.0)
    return diff / scale if scale > 0 else diff


def assert_close(actual, expected, rtol: float, what: str = "") -> None:
    err = max_rel_err(actual, expected)
    assert err <= rtol, f"{what}: relative error {err:.3e} > {rtol:.1e}"


#: two ways of computing the same derivative in float64 (rev vs fwd vs closed forms)
MODES_RTOL = 1e-13

#: autograd vs central finite differences where the function is smooth (float64, with the
#: steps of central_differences below)
FD_SMOOTH_RTOL = 1e-7

#: a float32 Jacobian vs the float64 one, for the small synthetic networks it is used on
#: (4 inputs, 6 tansig units, 2 outputs, N(0, 1) weights and inputs): each entry is a sum of
#: 6 three-factor products (W2, tansig', W1) after a float32 forward pass, so with weights,
#: inputs, products and tansig' each rounded (Higham's gamma_n, n <= 6 + 2 + 8) the error is
#: at most about 16 u times the entries' condition (a small multiple for such weights); 1e-5
#: is 168 u, i.e. a condition of 10 relative to max |J|
FLOAT32_RTOL = 1e-5


def central_differences(fn, x: np.ndarray, h: float | np.ndarray | None = None) -> np.ndarray:
    """Per-sample Jacobian of ``fn: (Q, R) -> (Q, S)`` by central differences, computed
    here independently of mat2grad's own check: ``(Q, S, R)``.

    The step per feature is ``cbrt(eps)`` times the feature's spread over the samples (its
    magnitude for a single sample); where that moves the outputs by less than their
    rounding (a near-constant input row) the classic ``cbrt(eps) max(|x|, 1)`` is used.
    The step actually represented in floating point is the denominator.
    """
    x = np.asarray(x, dtype=np.float64)
    eps = np.finfo(np.float64).eps
    if h is None:
        spread = x.std(0) if x.shape[0] > 1 else np.abs(x).max(0)
        steps = np.cbrt(eps) * np.where(spread > 0, spread, 1.0)
        classic = np.cbrt(eps) * np.maximum(np.abs(x).max(0), 1.0)
    else:
        steps = classic = np.broadcast_to(np.asarray(h, dtype=np.float64), x.shape[1:])

    def column(r, step):
        plus, minus = x.copy(), x.copy()
        plus[:, r] += step
        minus[:, r] -= step
        yp, ym = np.asarray(fn(plus)), np.asarray(fn(minus))
        resolved = np.nanmax(np.abs(yp - ym), initial=0) > 1e7 * eps * np.nanmax(
            np.abs(yp), initial=0
        )
        return (yp - ym) / (plus[:, r] - minus[:, r])[:, None], resolved

    cols = []
    for r in range(x.shape[1]):
        col, resolved = column(r, steps[r])
        if not resolved and classic[r] > steps[r]:
            col, _ = column(r, classic[r])
        cols.append(col)
    return np.stack(cols, axis=-1)


# ONNX (mat2grad.onnx) -----------------------------------------------------------------

ONNX_FIXTURES = FIXTURES / "onnx"

#: float64 module vs the float64 numpy references of fixtures/generate_onnx.py
ONNX_FIXTURE_RTOL = 1e-12
#: per-sample Jacobian, reverse vs forward mode (both float64), relative to max(1, |J|)
JAC_MODES_RTOL = 1e-10
#: central finite differences (step FD_STEP, float64) vs the reverse-mode Jacobian
FD_STEP = 1e-6
FD_RTOL = 1e-6


def assert_scaled_close(actual, expected, rtol: float, what: str = "") -> None:
    """max |a - e| <= rtol * max(1, max |e|); NaNs must coincide."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    nan_a, nan_e = np.isnan(actual), np.isnan(expected)
    assert np.array_equal(nan_a, nan_e), f"{what}: NaN positions differ"
    scale = max(1.0, float(np.max(np.abs(expected[~nan_e]), initial=0.0)))
    err = float(np.max(np.abs(actual[~nan_a] - expected[~nan_e]), initial=0.0))
    assert err <= rtol * scale, f"{what}: error {err:.3e} > {rtol:.1e} x {scale:.3g}"


# float32 round-off, derived per case ---------------------------------------------------

#: float32 unit roundoff
U32 = float(np.finfo(np.float32).eps) / 2
#: elementwise roundings one value may suffer between two layers' products, beside the
#: accumulation of the product itself: the transfer or processing function's own result
#: (library exp/tanh/log are accurate to a few units in the last place; 4 are allowed), the
#: subtractions/scalings of processing functions and of composite transfer functions, and
#: the store; see NOTE: [float32 round-off bound]
ELEMENTWISE_ROUNDINGS = 8


def _fan_in(model: torch.nn.Module) -> int:
    """The longest accumulation a product in ``model`` performs: for every weight of two or
    more dimensions both the product of its trailing dimensions (Linear/Conv layout) and its
    leading dimension (a MatMul initializer stored input-major), plus one for a bias."""
    n = 1
    for p in [*model.parameters(), *model.buffers()]:
        if p.is_floating_point() and p.dim() >= 2:
            n = max(n, int(np.prod(p.shape[1:])), int(p.shape[0]))
    return n + 1


def float32_rounding_bound(model: torch.nn.Module, xs) -> list[np.ndarray]:
    """Per sample and output element, a first-order bound on how far an evaluation of
    ``model``'s formulas in float32 can be from the exact value, for inputs ``xs`` (a list
    of batch-first arrays, one per input) that are already float32 numbers; see
    :func:`rounding_bound`."""
    return rounding_bound(model, xs, U32)


#: float64 unit roundoff
U64 = float(np.finfo(np.float64).eps) / 2


def rounding_bound(model: torch.nn.Module, xs, unit: float) -> list[np.ndarray]:
    """Per sample and output element, a first-order bound on how far an evaluation of
    ``model``'s formulas in a precision of unit roundoff ``unit`` (U32, U64) can be from
    the exact value, for inputs ``xs`` that are numbers of that precision.

    NOTE: [float32 round-off bound]
    In the standard model of floating-point arithmetic a product ``W a + b`` with ``n``
    terms, summed in any order (blocked, pairwise, with FMA), equals the exact product with
    every weight perturbed by a relative ``gamma_n = n u / (1 - n u)`` (Higham, Accuracy and
    Stability of Numerical Algorithms, section 3.1), and an elementwise function whose
    result is accurate to ``c`` roundings equals the exact function with its output
    perturbed by a relative ``c u``. To first order the output error is then at most
    ``eps * S`` with ``eps = gamma_(n_max + ELEMENTWISE_ROUNDINGS)`` and

        S[q, k] = sum over parameters, buffers, inputs and the output of every
                  leaf module v of |dy[q, k] / dv| * |v|,

    the componentwise condition of ``y[q, k]`` with respect to every value the evaluation
    rounds. ``S`` is computed here in float64 by reverse mode, one pass per sample and
    output element. Two float32 implementations of the same network (say mat2grad's
    module and onnxruntime on the exported file) are each within ``eps * S`` of the exact
    value, so they differ by at most ``2 eps S``: that is what the tests allow, nothing
    tuned to a run. (For weights shared across positions or time steps the signed sum in
    ``dy/dtheta`` can hide cancellation; the leaf-output terms, one per use, cover those.)
    """

    model = copy.deepcopy(model).to(torch.float64).eval()
    # buffers count as rounded values too (MATLAB's processing settings are buffers), but
    # not the running statistics of batch normalisation, which autograd refuses to track
    # (its output, a leaf module's, is counted below)
    norm = (torch.nn.modules.batchnorm._NormBase,)
    frozen = {id(b) for m in model.modules() if isinstance(m, norm) for b in m.buffers()}
    leaves = [
        t
        for t in [*model.parameters(), *model.buffers()]
        if t.is_floating_point() and id(t) not in frozen
    ]
    for t in leaves:
        t.requires_grad_(True)
    outputs_of_leaves: list[torch.Tensor] = []

    def keep(_module, _inputs, out):
        for o in out if isinstance(out, tuple) else (out,):
            if isinstance(o, torch.Tensor) and o.is_floating_point() and o.requires_grad:
                outputs_of_leaves.append(o)

    hooks = [
        m.register_forward_hook(keep)
        for m in model.modules()
        if not list(m.children()) and m is not model
    ]
    n = _fan_in(model) + ELEMENTWISE_ROUNDINGS
    eps = n * unit / (1 - n * unit)
    bounds: list[np.ndarray] = []
    try:
        xs = [np.asarray(x, dtype=np.float64) for x in xs]
        q_total = xs[0].shape[0]
        per_output: list[list[np.ndarray]] = []
        for q in range(q_total):
            inputs = [torch.tensor(x[q], requires_grad=True) for x in xs]
            outputs_of_leaves.clear()
            ys = _one_sample(model, inputs)
            values = [*leaves, *inputs, *outputs_of_leaves]
            row = []
            for yk in ys:
                row.append(_condition(yk, values).reshape(yk.shape))
            per_output.append(row)
        for k in range(len(per_output[0])):
            bounds.append(eps * np.stack([row[k] for row in per_output]))
    finally:
        for h in hooks:
            h.remove()
    return bounds


def _condition(y: torch.Tensor, values: list[torch.Tensor]) -> np.ndarray:
    """``sum_v |dy[e]/dv| |v|`` for every element ``e`` of ``y``: all reverse passes in one
    batched pass (one per element where an operator cannot be batched); NaN where ``y[e]``
    is not finite."""
    flat = y.reshape(-1)
    m = flat.numel()

    def total(grads) -> torch.Tensor:
        out = torch.zeros(m, dtype=torch.float64)
        for g, v in zip(grads, values, strict=True):
            if g is not None:
                out += (g.abs() * v.detach().abs()).nan_to_num().reshape(m, -1).sum(1)
        return out

    try:
        grads = torch.autograd.grad(
            flat,
            values,
            grad_outputs=torch.eye(m, dtype=flat.dtype),
            retain_graph=True,
            allow_unused=True,
            is_grads_batched=True,
        )
        s = total(grads)
    except RuntimeError:  # an operator without a batching rule
        s = torch.zeros(m, dtype=torch.float64)
        for e in range(m):
            one = torch.autograd.grad(flat[e], values, retain_graph=True, allow_unused=True)
            s[e] = total([None if g is None else g.unsqueeze(0) for g in one])[0]
    s = s.numpy()
    s[~torch.isfinite(flat).numpy()] = np.nan
    return s


def _one_sample(model: torch.nn.Module, sample: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """``model`` on one sample (no batch axis in or out). ONNX networks evaluate their graph
    per sample under ``torch.func.vmap``, where forward hooks cannot keep values for reverse
    mode: their graph is run directly, with the batch axes the file declares."""
    if hasattr(model, "run_graph"):
        args = [x.unsqueeze(a) for x, a in zip(sample, model.input_batch_axes, strict=True)]
        outs = model.run_graph(*args)
        return tuple(
            y if a is None else y.squeeze(a)
            for y, a in zip(outs, model.output_batch_axes, strict=True)
        )
    y = model(*[x.unsqueeze(0) for x in sample])
    return tuple(yk.squeeze(0) for yk in (y if isinstance(y, tuple) else (y,)))


def assert_float32_agree(actual, expected, bound: np.ndarray, what: str = "") -> None:
    """Two float32 evaluations of one network agree within twice the rounding bound of
    :func:`float32_rounding_bound`, element by element (NaNs must coincide)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape == bound.shape, (what, actual.shape, bound.shape)
    nan_a, nan_e = np.isnan(actual), np.isnan(expected)
    assert np.array_equal(nan_a, nan_e), f"{what}: NaN positions differ"
    ok = ~nan_e
    diff = np.abs(actual[ok] - expected[ok])
    allowed = 2 * bound[ok]
    worst = int(np.argmax(diff - allowed)) if diff.size else 0
    assert np.all(diff <= allowed), (
        f"{what}: float32 results differ by {diff[worst]:.3e} where the rounding bound "
        f"allows {allowed[worst]:.3e}"
    )


def read_only(folder, monkeypatch) -> None:
    """Make ``folder`` read-only. Where the process may write there anyway (root), the
    refusal the kernel gives everyone else is given to this process's creations in it."""
    folder.chmod(0o555)
    probe = folder / ".probe"
    try:
        probe.write_bytes(b"")
    except PermissionError:
        return
    probe.unlink()
    real_open = os.open

    def refusing_open(path, flags, *args, **kwargs):
        creates = flags & (os.O_CREAT | getattr(os, "O_TMPFILE", 0))
        if creates and os.path.realpath(
            os.path.dirname(path) if flags & os.O_CREAT else path
        ) == os.path.realpath(folder):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing_open)


def custom_sin(gradient_factor: float = 1.0) -> type[torch.autograd.Function]:
    """``sin`` as an old-style ``torch.autograd.Function`` (``forward(ctx, x)``, no
    ``setup_context``, so torch.func cannot transform it) whose backward pass returns
    ``gradient_factor`` times the true derivative (1.0: the right one)."""

    class CustomSin(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return torch.sin(x)

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * torch.cos(x) * gradient_factor

    return CustomSin


def backward_node_types(outputs) -> collections.Counter:
    """How many nodes of each type the backward graph behind ``outputs`` holds (autograd
    node class names: ``SelectBackward0``, ``UnbindBackward0``, ...)."""
    seen, stack = set(), [o.grad_fn for o in outputs]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        stack.extend(f for f, _ in node.next_functions)
    return collections.Counter(type(n).__name__ for n in seen)
