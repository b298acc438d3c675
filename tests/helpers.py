"""Shared test helpers: the real-file corpus (read from ../shared/corpus, never copied into
the repo), the committed fixtures, and the tolerances used everywhere."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
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
#: float32 evaluations of the same network by two implementations (mat2grad's module and a
#: converted file run by onnxruntime): a few float32 roundings, relative to max |y|
FLOAT32_RTOL = 1e-5

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

#: float32 results vs float64
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

#: converted model vs onnxruntime, both fed the same float32-representable input: as a
#: fraction of max(1, largest reference magnitude) (float32 round-off of the reference)
ONNX_FLOAT32_RTOL = 1e-4
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
