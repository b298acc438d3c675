"""mat2grad.matfile, MATLAB layouts of ONNX inputs/outputs: matlab_to_batch,
batch_to_matlab and the S x R x N Jacobian rule (NOTE [MATLAB layouts for ONNX models])."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from mat2grad.errors import Mat2GradError
from mat2grad.matfile import (
    MATLAB_LAYOUTS,
    SampleBlock,
    batch_to_matlab,
    batch_to_matlab_samples,
    jacobian_to_matlab,
    matlab_block,
    matlab_element_order,
    matlab_to_batch,
)
from tests.support.helpers import FD_RTOL, FD_STEP, ONNX_FIXTURES, assert_scaled_close

RNG = np.random.default_rng(0)

# kind -> (MATLAB array shape, per-sample ONNX shape, element map: MATLAB index -> batch index)
CASES = {
    "features": ((5, 3), (5,), lambda i: (i[1], i[0])),
    "image": ((4, 6, 2, 3), (2, 4, 6), lambda i: (i[3], i[2], i[0], i[1])),
    "volume": ((4, 5, 2, 3, 2), (3, 2, 4, 5), lambda i: (i[4], i[3], i[2], i[0], i[1])),
    "sequence": ((3, 2, 7), (7, 3), lambda i: (i[1], i[2], i[0])),
    "generic": ((4, 5, 3), (4, 5), lambda i: (i[2], i[0], i[1])),
}


def test_every_layout_is_tested():
    assert set(CASES) == set(MATLAB_LAYOUTS)


@pytest.mark.parametrize("kind", sorted(CASES))
def test_element_positions_and_round_trip(kind):
    mshape, sample, where = CASES[kind]
    x = RNG.normal(size=mshape)
    batch = matlab_to_batch(x, kind, sample)
    assert batch.shape == (mshape[-1] if kind != "sequence" else mshape[1], *sample)
    for index in np.ndindex(*mshape):
        assert batch[where(index)] == x[index]
    np.testing.assert_array_equal(batch_to_matlab(batch, kind), x)


def test_old_exporter_feature_input_takes_features_or_the_image_form():
    x = RNG.normal(size=(8, 4))  # n x N, as a MATLAB user holds features
    batch = matlab_to_batch(x, "features", (1, 1, 8))
    assert batch.shape == (4, 1, 1, 8)
    np.testing.assert_array_equal(batch[:, 0, 0, :], x.T)
    image_form = x.reshape(1, 8, 1, 4, order="F")  # 1 x n x 1 x N: imageInputLayer([1 n 1])
    np.testing.assert_array_equal(matlab_to_batch(image_form, "features", (1, 1, 8)), batch)
    np.testing.assert_array_equal(batch_to_matlab(batch, "features"), x)


def test_missing_trailing_singletons_are_read_as_one():
    one_image = RNG.normal(size=(4, 6, 2))  # MATLAB drops N = 1
    assert matlab_to_batch(one_image, "image", (2, 4, 6)).shape == (1, 2, 4, 6)
    gray = RNG.normal(size=(4, 6))  # and C = 1
    assert matlab_to_batch(gray, "image", (1, 4, 6)).shape == (1, 1, 4, 6)
    one_step = RNG.normal(size=(3, 2))  # C x N with T = 1
    assert matlab_to_batch(one_step, "sequence", (1, 3)).shape == (2, 1, 3)


@pytest.mark.parametrize(
    "array, layout, shape, message",
    [
        (np.zeros((4, 6, 2, 3)), "picture", None, "not a MATLAB layout kind"),
        (np.zeros((4, 6, 2, 3)), "image", (3, 4, 6), "takes 3x4x6"),
        (np.zeros((5, 3)), "features", (6,), "takes 6"),
        (np.zeros((4, 6, 2, 3, 2)), "image", None, "has 4 dimensions"),
        (np.zeros((4, 3)), "features", (2, 2), "one non-singleton axis"),
    ],
)
def test_bad_arrays_are_clear_errors(array, layout, shape, message):
    with pytest.raises(Mat2GradError, match=message):
        matlab_to_batch(array, layout, shape)


def test_jacobian_rule_by_index():
    """J(s, r, n) with r the column-major position of (h, w, c) in H x W x C."""
    n, s, c, h, w = 2, 3, 2, 4, 5
    jac = RNG.normal(size=(n, s, c, h, w))
    jm = jacobian_to_matlab(jac, "features", "image", (s,))
    assert jm.shape == (s, h * w * c, n)
    for q, o, cc, hh, ww in np.ndindex(n, s, c, h, w):
        assert jm[o, hh + h * (ww + w * cc), q] == jac[q, o, cc, hh, ww]
    # reshape(J(s,:,n), H, W, C) in MATLAB is the gradient image
    image = jm[1, :, 0].reshape(h, w, c, order="F")
    np.testing.assert_array_equal(image, np.transpose(jac[0, 1], (1, 2, 0)))


def test_jacobian_rule_for_sequence_to_sequence():
    n, t, co, ci = 2, 3, 4, 2
    jac = RNG.normal(size=(n, t, co, t, ci))  # (N, T, C_out, T, C_in)
    jm = jacobian_to_matlab(jac, "sequence", "sequence", (t, co))
    for q, to, o, ti, i in np.ndindex(n, t, co, t, ci):
        assert jm[o + co * to, i + ci * ti, q] == jac[q, to, o, ti, i]


@pytest.mark.skipif(
    importlib.util.find_spec("onnx2torch") is None, reason="onnx2torch is not installed"
)
def test_jacobian_rule_against_finite_differences_in_matlab_layout():
    """End to end: a MATLAB user's H x W x C x N images, perturbed element by element."""
    import torch
    from torch.func import jacrev, vmap

    from mat2grad.onnx import load_onnx

    net = load_onnx(ONNX_FIXTURES / "matlab_addition_sum.onnx", check=False)
    (in_layout,), (out_layout,) = net.input_layouts, net.output_layouts
    xm = RNG.normal(size=(4, 4, 2, 2))  # H x W x C x N

    def run(matlab_x):
        batch = torch.from_numpy(matlab_to_batch(matlab_x, in_layout, net.input_shapes[0]))
        return batch_to_matlab(net(batch).detach().numpy(), out_layout)  # S x N

    batch = torch.from_numpy(matlab_to_batch(xm, in_layout, net.input_shapes[0]))
    jac = vmap(jacrev(lambda s: net(s[None])[0]))(batch).numpy()
    jm = jacobian_to_matlab(jac, out_layout, in_layout, net.output_shapes[0])
    for h, w, c in [(0, 0, 0), (3, 1, 1), (2, 3, 0)]:
        step = np.zeros_like(xm)
        step[h, w, c, :] = FD_STEP
        fd = (run(xm + step) - run(xm - step)) / (2 * FD_STEP)  # S x N
        r = h + 4 * (w + 4 * c)
        assert_scaled_close(jm[:, r, :], fd, FD_RTOL, f"pixel {(h, w, c)}")


@pytest.mark.parametrize("kind", sorted(CASES))
def test_sample_blocks_place_the_sample_index(kind):
    """matlab_block + batch_to_matlab_samples: (c, *MATLAB per-sample) chunks that a
    SampleWriter block turns back into the MATLAB array, element by element."""
    mshape, sample, where = CASES[kind]
    x = RNG.normal(size=mshape)
    batch = matlab_to_batch(x, kind, sample)
    block = matlab_block(sample, kind)
    chunk = batch_to_matlab_samples(batch, kind)
    assert chunk.shape == (batch.shape[0], *block.shape)
    np.testing.assert_array_equal(np.moveaxis(chunk, 0, block.axis), x)
    assert block.dims(batch.shape[0]) == mshape


@pytest.mark.parametrize("kind", sorted(CASES))
def test_element_order_is_column_major_of_the_matlab_sample(kind):
    mshape, sample, where = CASES[kind]
    x = RNG.normal(size=mshape)
    batch = matlab_to_batch(x, kind, sample)
    order = matlab_element_order(sample, kind)
    block = matlab_block(sample, kind)
    one = np.take(x, 1, axis=block.axis).reshape(-1, order="F")  # sample 2, MATLAB's order
    np.testing.assert_array_equal(batch[1].reshape(-1)[order], one)


def test_feature_blocks_flatten_singleton_axes():
    assert matlab_block((1, 1, 8), "features") == SampleBlock((8,), 1)
    assert matlab_block((), "features") == SampleBlock((1,), 1)
    with pytest.raises(Mat2GradError, match="one non-singleton axis"):
        matlab_block((2, 3), "features")
