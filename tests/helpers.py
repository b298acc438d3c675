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
