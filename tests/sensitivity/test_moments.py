"""Moment states (mat2grad.sensitivity.moments): the BLAS chunk sums and the corrected
two-pass deviations agree with numpy's one-shot mean and variance for any chunking, also
where the mean dwarfs the spread (the case a raw sum of squares gets wrong)."""

from __future__ import annotations

import numpy as np
import pytest

from mat2grad.sensitivity import moments as mom

Q = 1000
#: sums of Q float64 terms: at most Q * eps relative (2.2e-13), with margin for the merges
RTOL = 1e-12


def _data(offset: float) -> np.ndarray:
    rng = np.random.default_rng(7)
    return offset + rng.standard_normal((Q, 3, 4)) * np.arange(1, 13).reshape(3, 4)


# offset 1e6: one chunk, the chunk formula alone (the merges of many chunks carry their
# running means' rounding, eps * offset per merge, which is the merge's bound, not this one)
@pytest.mark.parametrize("size, offset", [(1, 0.0), (7, 0.0), (Q, 0.0), (Q, 1e6)])
def test_chunks_merge_to_the_one_shot_moments(size, offset):
    x = _data(offset)
    work = np.empty_like(x[:size])
    state = mom.reduce(
        mom.chunk(x[a : a + size], work=work[: len(x[a : a + size])]) for a in range(0, Q, size)
    )
    mean, var = mom.aggregate(state, ddof=1)
    assert state.count == Q
    np.testing.assert_allclose(mean, x.mean(0), rtol=RTOL, atol=0)
    np.testing.assert_allclose(var, x.var(0, ddof=1), rtol=RTOL, atol=0)
    # a raw sum of squares would lose about log10(offset^2 / var) digits here
    if offset:
        raw = (x * x).mean(0) - x.mean(0) ** 2
        assert np.max(np.abs(raw * Q / (Q - 1) / x.var(0, ddof=1) - 1)) > 1e-10


@pytest.mark.parametrize("size", [1, 7, Q])
def test_mean_square_and_mean_only(size):
    x = _data(0.5)
    sq = mom.reduce(mom.mean_square(x[a : a + size]) for a in range(0, Q, size))
    ab = mom.reduce(mom.chunk(np.abs(x[a : a + size]), second=False) for a in range(0, Q, size))
    np.testing.assert_allclose(sq.mean, (x * x).mean(0), rtol=RTOL, atol=0)
    np.testing.assert_allclose(ab.mean, np.abs(x).mean(0), rtol=RTOL, atol=0)


def test_weighted_chunk_equals_repeated_samples():
    x = _data(3.0)[:50]
    w = np.random.default_rng(1).poisson(1.0, size=(50, 4)).astype(float)
    state = mom.chunk(x, w)
    for b in range(4):
        rep = np.repeat(x, w[:, b].astype(int), axis=0)
        np.testing.assert_allclose(state.mean[b], rep.mean(0), rtol=RTOL)
        np.testing.assert_allclose(state.m2[b], ((rep - rep.mean(0)) ** 2).sum(0), rtol=1e-10)
