"""mat2grad.matfile.onnx_layout (MATLAB data in and out of ONNX models) and predict.as_batch on
ONNX-style inputs: symbolic dimensions and integer inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mat2grad.errors import Mat2GradError
from mat2grad.matfile.onnx_layout import ResultLayout, inputs_from_mat, matlab_size_text  # noqa: E402
from mat2grad.onnx import load_onnx  # noqa: E402
from mat2grad.predict import as_batch
from tests.support.helpers import ONNX_FIXTURES

RNG = np.random.default_rng(0)


class _Declared(nn.Module):
    """Just the declarations as_batch reads: a sequence input with a symbolic time axis
    and an integer input."""

    input_shapes = ((None, 3), (2,))
    input_float = (True, False)

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1, dtype=torch.float64), requires_grad=False)


def test_as_batch_none_is_any_size_and_integers_stay_integers():
    m = _Declared()
    assert as_batch(m, np.zeros((4, 7, 3)), 0).shape == (4, 7, 3)
    assert as_batch(m, np.zeros((7, 3)), 0).shape == (1, 7, 3)  # one sample
    assert as_batch(m, np.zeros((4, 7, 3), dtype=np.float32), 0).dtype == torch.float64
    k = as_batch(m, np.array([[1, 2], [3, 4]], dtype=np.int32), 1)
    assert k.dtype == torch.int32 and k.tolist() == [[1, 2], [3, 4]]
    assert as_batch(m, np.array([[1.0, 2.0]]), 1).dtype == torch.int64
    assert as_batch(m, torch.tensor([[5, 6]]), 1).dtype == torch.int64
    with pytest.raises(Mat2GradError, match="integer input of the model"):
        as_batch(m, np.array([[1.5, 2.0]]), 1)
    with pytest.raises(Mat2GradError, match=r"the network takes \(Q, TS, 3\)"):
        as_batch(m, np.zeros((4, 7, 2)), 0)


def _net(name):
    return load_onnx(ONNX_FIXTURES / name, check=False)


def test_old_exporter_features_in_both_matlab_forms_and_batch_first():
    net = _net("matlab2018_gemm6_features.onnx")  # per sample (1, 1, 4)
    x = RNG.normal(size=(4, 5))  # C x N
    (a,) = inputs_from_mat(net, x)
    (b,) = inputs_from_mat(net, x.reshape(1, 4, 1, 5, order="F"))  # 1 x C x 1 x N
    (c,) = inputs_from_mat(net, x.T, samples="rows")
    (d,) = inputs_from_mat(net, x.T.reshape(5, 1, 1, 4), layout="onnx")
    assert a.shape == (5, 1, 1, 4)
    for other in (b, c, d):
        np.testing.assert_array_equal(other, a)
    np.testing.assert_array_equal(a[:, 0, 0, :], x.T)


def test_onnx_layout_reads_missing_trailing_singletons_as_one():
    net = _net("matlab2020a_conv_fc_dropout.onnx")  # per sample (1, 4, 3)
    x = RNG.normal(size=(2, 1, 4, 3))
    (a,) = inputs_from_mat(net, x, layout="onnx")
    np.testing.assert_array_equal(a, x)
    (one,) = inputs_from_mat(net, x[:1], layout="onnx")
    assert one.shape == (1, 1, 4, 3)


def test_cells_need_one_array_per_input_with_equal_sample_counts():
    net = _net("matlab2020a_conv_fc_dropout.onnx")
    cell = np.empty((2, 1), dtype=object)
    cell[0, 0], cell[1, 0] = np.zeros((4, 3, 1, 2)), np.zeros((4, 3, 1, 2))
    with pytest.raises(Mat2GradError, match=r"the model has 1 inputs \(imageinput\)"):
        inputs_from_mat(net, cell)
    with pytest.raises(Mat2GradError, match="expected a numeric array"):
        inputs_from_mat(net, "abc")


@pytest.mark.parametrize(
    "shape, kind, samples, text",
    [
        ((1, 28, 28), "image", "columns", "28x28x1xN (H x W x C x N)"),
        ((1, 1, 784), "features", "columns", "784xN (C x N)"),
        ((784,), "features", "rows", "Nx784"),
        ((None, 3), "sequence", "columns", "3xNx? (C x N x T)"),
        ((2, 3, 4, 5), "volume", "columns", "4x5x3x2xN (H x W x D x C x N)"),
        ((2, 3), "generic", "columns", "2x3xN"),
    ],
)
def test_matlab_size_text(shape, kind, samples, text):
    assert matlab_size_text(shape, kind, samples) == text


def test_result_layout_output_elements_in_matlab_order():
    net = _net("matlab_lstm_zerocenter_sequence.onnx")  # output (T, C) = (4, 2)
    res = ResultLayout(net)
    # MATLAB per-sample C x T: element 6 (1-based) is c = 1, t = 2 (0-based) -> t * C + c
    assert res.element(0, (4, 2), 6) == 2 * 2 + 1
    assert ResultLayout(net, "onnx").element(0, (4, 2), 6) == 5
    with pytest.raises(Mat2GradError, match="--output-index 9 is out of range"):
        res.element(0, (4, 2), 9)
    with pytest.raises(Mat2GradError, match="samples in rows"):
        ResultLayout(net, "matlab", "rows")
