"""Resampling that streams: Poisson bootstrap weights and a reservoir of raw samples, both
decided per sample by a counter-based hash, so they do not depend on how samples are chunked
(or partitioned across workers) and merge like moment states.

NOTE: [Poisson bootstrap]
    The classical bootstrap draws N samples with replacement: sample q appears K_q times,
    (K_1..K_N) ~ Multinomial(N, 1/N). For large N each K_q is close to Poisson(1) and nearly
    independent of the others (Hanley & MacGibbon 2006; Chamandy et al. 2012, "Estimating
    uncertainty for massive data streams"), which needs no knowledge of N and no
    coordination between chunks: replicate b weighs sample q by K_qb = F^-1(u_qb), with F the
    Poisson(1) distribution function and u_qb a uniform number computed from (seed, q, b) by
    the SplitMix64 hash. Each replicate is then an ordinary weighted moment state
    (see NOTE: [Parallel moment merge]). A replicate whose total weight is 0 (probability
    e^-N) is dropped from the intervals.
"""

from __future__ import annotations

import math
import warnings
from statistics import NormalDist

import numpy as np

from ..errors import Mat2GradError

__all__ = [
    "MIN_SAMPLES",
    "check_bootstrap",
    "interval",
    "poisson_weights",
    "Reservoir",
    "uniforms",
]

#: the fewest samples a bootstrap is run on (one sample has no spread to resample)
MIN_SAMPLES = 2

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
# Poisson(1) distribution function at k = 0..29 (the tail beyond is below 1e-32)
_POISSON_CDF = np.cumsum([math.exp(-1.0) / math.factorial(k) for k in range(30)])


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser on a uint64 array (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = z + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def uniforms(seed: int, start: int, stop: int, streams: int, salt: int = 0) -> np.ndarray:
    """``(stop - start, streams)`` numbers in [0, 1), a pure function of (seed, salt,
    sample index, stream): the same for a sample whatever chunk it arrives in."""
    key = _mix(np.array([(int(seed) * 1_000_003 + int(salt)) % 2**64], dtype=np.uint64))
    q = np.arange(start, stop, dtype=np.uint64)[:, None]
    b = np.arange(streams, dtype=np.uint64)[None, :]
    with np.errstate(over="ignore"):
        z = _mix(_mix(q * np.uint64(streams) + b) ^ key)
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53


def poisson_weights(seed: int, start: int, stop: int, replicates: int) -> np.ndarray:
    """Bootstrap weights ``(stop - start, replicates)`` (see NOTE: [Poisson bootstrap])."""
    u = uniforms(seed, start, stop, replicates, salt=1)
    return np.searchsorted(_POISSON_CDF, u, side="right").astype(np.float64)


def check_bootstrap(replicates: int, num_samples: int, conf_level: float, where: str) -> None:
    """One-line errors for a bootstrap that cannot run."""
    if not isinstance(replicates, int | np.integer) or replicates < 0:
        raise Mat2GradError(f"{where}: bootstrap must be a whole number >= 0, found {replicates!r}")
    if not 0 < conf_level < 1:
        raise Mat2GradError(f"{where}: conf_level must be between 0 and 1, found {conf_level!r}")
    if replicates and num_samples < MIN_SAMPLES:
        raise Mat2GradError(
            f"{where}: a bootstrap needs at least {MIN_SAMPLES} samples, found {num_samples}; "
            "give more samples or bootstrap=0"
        )
    if replicates == 1:
        raise Mat2GradError(f"{where}: a bootstrap needs at least 2 replicates, found 1")


def interval(
    replicates: np.ndarray, conf_level: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Percentile interval and normal-theory half width of bootstrap replicates.

    ``replicates`` ``(B, ...)`` (NaN: dropped). Returns ``(low, high, conf)``: the
    ``(1-conf_level)/2`` and ``(1+conf_level)/2`` percentiles, and
    ``z_{(1+conf_level)/2} * std(replicates, ddof=1)`` (the half width SALib reports).
    """
    alpha = (1.0 - conf_level) / 2.0
    with warnings.catch_warnings():  # all-NaN slices (no valid replicate) give NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        low = np.nanquantile(replicates, alpha, axis=0)
        high = np.nanquantile(replicates, 1.0 - alpha, axis=0)
        # the standard normal quantile from the standard library (AS241, to double
        # precision): scipy.stats would add seconds to every import of mat2grad
        z = NormalDist().inv_cdf(0.5 + conf_level / 2.0)
        conf = z * np.nanstd(replicates, axis=0, ddof=1)
    return low, high, conf


class Reservoir:
    """Up to ``size`` samples chosen uniformly at random from a stream (for density plots):
    each sample gets a hash key from (seed, index) and the ``size`` smallest keys are kept,
    so the choice does not depend on chunking and two reservoirs merge by keeping the
    smallest keys of both."""

    def __init__(self, size: int, seed: int = 0):
        self.size = int(size)
        self.seed = seed
        self.keys = np.empty(0)
        self.index = np.empty(0, dtype=np.int64)
        self.values: np.ndarray | None = None

    def add(self, start: int, values: np.ndarray) -> None:
        if self.size <= 0 or len(values) == 0:
            return
        keys = uniforms(self.seed, start, start + len(values), 1, salt=2)[:, 0]
        index = np.arange(start, start + len(values))
        if self.values is None:
            self.values = np.empty((0, *values.shape[1:]))
        keys = np.concatenate([self.keys, keys])
        index = np.concatenate([self.index, index])
        vals = np.concatenate([self.values, np.asarray(values, dtype=np.float64)])
        keep = np.argsort(keys, kind="stable")[: self.size]
        keep = keep[np.argsort(index[keep], kind="stable")]  # in sample order
        self.keys, self.index, self.values = keys[keep], index[keep], vals[keep]

    def merge(self, other: Reservoir) -> Reservoir:
        out = Reservoir(self.size, self.seed)
        for r in (self, other):
            if r.values is not None:
                out.keys = np.concatenate([out.keys, r.keys])
                out.index = np.concatenate([out.index, r.index])
                out.values = (
                    r.values if out.values is None else np.concatenate([out.values, r.values])
                )
        if out.values is not None:
            keep = np.argsort(out.keys, kind="stable")[: out.size]
            keep = keep[np.argsort(out.index[keep], kind="stable")]  # in sample order, as add
            out.keys, out.index, out.values = out.keys[keep], out.index[keep], out.values[keep]
        return out
