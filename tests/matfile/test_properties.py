"""Property-based tests (Hypothesis) of MATLAB paths and the layout round trips."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mat2grad import matfile
from mat2grad.matfile.paths import format_path
from mat2grad.matfile.sequences import sequences_to_matlab

_NAME = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,20}", fullmatch=True)
_INDEX = st.lists(st.integers(1, 10**6), min_size=1, max_size=3).map(tuple)
_STEP = st.one_of(
    _NAME.map(lambda n: ("field", n)),
    _INDEX.map(lambda i: ("cell", i)),
    _INDEX.map(lambda i: ("paren", i)),
)
_STEPS = st.tuples(_NAME.map(lambda n: ("field", n)), st.lists(_STEP, max_size=6)).map(
    lambda t: [t[0], *t[1]]
)
_FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64)
_SAMPLES = st.sampled_from(("columns", "rows"))


@given(_STEPS)
def test_parse_path_inverts_format_path(steps):
    assert matfile.parse_path(format_path(steps)) == steps


@given(_STEPS)
def test_format_path_is_canonical(steps):
    text = format_path(steps)
    assert format_path(matfile.parse_path(text)) == text
    # MATLAB spelling: spaces after commas are accepted and mean the same path
    assert matfile.parse_path(text.replace(",", ", ")) == steps


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1), elements=_FLOATS),
    _SAMPLES,
)
def test_samples_round_trip(batch, samples):
    """(Q, R) -> MATLAB -> (Q, R) loses nothing, and MATLAB's element (r, q) is batch[q, r]
    (samples in columns) or batch[q, r] at (q, r) (samples in rows)."""
    mat = matfile.samples_to_matlab(batch, samples)
    q, r = batch.shape
    for qq, rr in [(0, 0), (q - 1, r - 1), (q // 2, r // 2)]:
        at = (rr, qq) if samples == "columns" else (qq, rr)
        np.testing.assert_array_equal(mat[at], batch[qq, rr])
    (back,) = matfile.samples_from_matlab(mat, (r,), samples=samples)
    np.testing.assert_array_equal(back, batch)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 4),  # Q
    st.integers(1, 5),  # TS
    st.lists(st.integers(1, 4), min_size=1, max_size=3),  # R_j per signal
    _SAMPLES,
    st.data(),
)
def test_sequences_round_trip(q, ts, sizes, samples, data):
    seqs = [data.draw(hnp.arrays(np.float64, (q, ts, r), elements=_FLOATS)) for r in sizes]
    cell = sequences_to_matlab(seqs, samples=samples)
    assert cell.shape == (len(sizes), ts)
    k, t = len(sizes) - 1, ts - 1
    expected = seqs[k][:, t, :].T if samples == "columns" else seqs[k][:, t, :]
    np.testing.assert_array_equal(cell[k, t], expected)
    back, ts_back, matrix = matfile.sequences_from_matlab(cell, tuple(sizes), samples=samples)
    assert (ts_back, matrix) == (ts, False)
    for got, want in zip(back, seqs, strict=True):
        np.testing.assert_array_equal(got, want)
