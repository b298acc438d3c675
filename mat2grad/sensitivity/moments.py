"""Streamed moment states: count, mean and sum of squared deviations, merged in any order.

A statistic over N samples is computed in three steps, as a tree reduction (the same steps
serve chunks in a loop, threads, and Dask partitions):

* :func:`chunk`: the state of one block of samples (axis 0 runs over samples);
* :func:`combine`: the state of two disjoint sets of samples from their states;
* :func:`aggregate`: the mean and variance of a state.

Memory is the size of one sample's array, whatever N is.

NOTE: [Parallel moment merge]
    Chan, Golub & LeVeque (1979), "Updating formulae and a pairwise algorithm for computing
    sample variances": for disjoint sets a and b with counts n_a, n_b, means m_a, m_b and
    sums of squared deviations M2_a, M2_b::

        n = n_a + n_b,   d = m_b - m_a,
        m = m_a + d * n_b / n,
        M2 = M2_a + M2_b + d^2 * n_a * n_b / n

    Counts may be weights (the Poisson bootstrap gives each sample a whole-number weight per
    replicate); a set of total weight 0 leaves the other unchanged. Merging is exact in
    arithmetic and stable in floating point (no sum of squares is ever subtracted from
    another), so the result agrees with the one-pass formula to round-off for any chunking.

NOTE: [Chunk sums by BLAS]
    A chunk's sums over its samples are matrix-vector products with a vector of ones
    (``ones @ x``, BLAS) and ``einsum("qi,qi->i")``: numpy's ``x.sum(axis=0)`` over a
    ``(c, S*R)`` array with a short second axis runs a slow strided loop, about ten times
    slower for the few dozen columns of a Jacobian. The sum of squared deviations is the
    corrected two-pass formula (Chan, Golub & LeVeque 1983): ``sum(dev^2) - sum(dev)^2/c``
    with ``dev = x - mean``, where the second term removes what the rounding of the mean
    left in the deviations; no sums of squares of raw values are subtracted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

__all__ = ["Moments", "aggregate", "chunk", "combine", "empty", "mean_square", "reduce"]


@dataclass(frozen=True)
class Moments:
    """The moment state of a set of samples of an array of shape ``shape``.

    ``count`` has the shape of the leading (replicate) axes, or ``()``; ``mean`` and ``m2``
    (the sum of squared deviations from the mean) have ``count.shape + shape``.
    """

    count: np.ndarray
    mean: np.ndarray
    m2: np.ndarray


def empty(shape: tuple[int, ...], lead: tuple[int, ...] = ()) -> Moments:
    """The state of no samples (the identity of :func:`combine`)."""
    return Moments(np.zeros(lead), np.zeros(lead + shape), np.zeros(lead + shape))


def _expand(count: np.ndarray, like: np.ndarray) -> np.ndarray:
    return count.reshape(count.shape + (1,) * (like.ndim - count.ndim))


def chunk(
    x: np.ndarray,
    weights: np.ndarray | None = None,
    second: bool = True,
    work: np.ndarray | None = None,
) -> Moments:
    """The state of the samples ``x[0], x[1], ...`` (float64).

    ``weights`` ``(c, B)`` gives ``B`` weighted states at once (a leading axis of length B):
    replicate b counts sample q ``weights[q, b]`` times. ``second=False`` skips the sum of
    squared deviations (left 0) where only the mean is wanted. ``work``: a scratch array
    of ``x``'s size that the unweighted state may overwrite (saves an allocation per
    chunk). See NOTE: [Chunk sums by BLAS].
    """
    x = np.asarray(x, dtype=np.float64)
    c = x.shape[0]
    if weights is None:
        if c == 0:
            return empty(x.shape[1:])
        flat = x.reshape(c, -1)
        ones = np.ones(c)
        mean = (ones @ flat) / c
        if not second:
            return Moments(np.asarray(float(c)), mean.reshape(x.shape[1:]), np.zeros(x.shape[1:]))
        dev = np.subtract(flat, mean, out=None if work is None else work.reshape(c, -1))
        resid = ones @ dev  # what the rounding of the mean left over (0 in exact arithmetic)
        m2 = np.maximum(np.einsum("qi,qi->i", dev, dev) - resid * resid / c, 0.0)
        return Moments(np.asarray(float(c)), mean.reshape(x.shape[1:]), m2.reshape(x.shape[1:]))
    w = np.asarray(weights, dtype=np.float64)
    flat = x.reshape(c, -1)
    # centre on the chunk's own mean first, so the expanded sums below cancel only within
    # the chunk's spread, not against the mean's magnitude
    centre = (np.ones(c) @ flat) / c if c else np.zeros(flat.shape[1])
    xc = flat - centre
    count = w.sum(axis=0)  # (B,)
    # not MATLAB layout: weights (c, B) contracted over the samples, a matrix product
    s1 = w.T @ xc  # (B, n)
    # not MATLAB layout: as above, the weighted sum of squares
    s2 = w.T @ (xc * xc) if second else s1 * (s1 / np.where(count > 0, count, 1.0)[:, None])
    safe = np.where(count > 0, count, 1.0)[:, None]
    shift = s1 / safe
    mean = np.where(count[:, None] > 0, centre + shift, 0.0)
    m2 = np.maximum(s2 - s1 * shift, 0.0)
    shape = (w.shape[1], *x.shape[1:])
    return Moments(count, mean.reshape(shape), m2.reshape(shape))


def mean_square(x: np.ndarray) -> Moments:
    """The state of ``x**2`` (mean only, as ``chunk(x * x, second=False)``) in one pass,
    without forming ``x * x``."""
    c = x.shape[0]
    if c == 0:
        return empty(x.shape[1:])
    flat = x.reshape(c, -1)
    mean = np.einsum("qi,qi->i", flat, flat) / c
    return Moments(np.asarray(float(c)), mean.reshape(x.shape[1:]), np.zeros(x.shape[1:]))


def combine(a: Moments, b: Moments) -> Moments:
    """The state of the union of two disjoint sets (see NOTE: [Parallel moment merge])."""
    n = a.count + b.count
    na, nb, nn = _expand(a.count, a.mean), _expand(b.count, b.mean), _expand(n, a.mean)
    d = b.mean - a.mean
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(nn > 0, nb / np.where(nn > 0, nn, 1.0), 0.0)
        mean = a.mean + d * frac
        m2 = a.m2 + b.m2 + d * d * na * frac
    return Moments(n, mean, m2)


def reduce(states: Iterable[Moments]) -> Moments:
    """:func:`combine` over an iterable of states (at least one)."""
    it = iter(states)
    out = next(it)
    for s in it:
        out = combine(out, s)
    return out


def aggregate(m: Moments, ddof: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, variance)``: the variance divides by ``count - ddof`` (0: population, as
    numpy's default; 1: the sample variance, as R's ``var``/``sd``); NaN where that is not
    positive."""
    denom = _expand(m.count, m.m2) - ddof
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.where(denom > 0, m.m2 / np.where(denom > 0, denom, 1.0), np.nan)
    return m.mean, var
