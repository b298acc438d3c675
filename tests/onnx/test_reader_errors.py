"""Corrupt or hostile ONNX files are refused with Mat2GradError before any work is done."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

import mat2grad
from mat2grad.errors import Mat2GradError
from mat2grad.onnx.check import MAX_FEED_ELEMENTS, MAX_SEQUENCE_STEPS
from mat2grad.onnx.reader import _missing_required_input

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "onnx"


def test_invalid_utf8_in_a_name(tmp_path):
    data = (FIXTURES / "matlab2018b_flatten1_matmul.onnx").read_bytes()
    at = data.index(onnx.load_from_string(data).graph.input[0].name.encode())
    path = tmp_path / "bad.onnx"
    path.write_bytes(data[:at] + b"\xff" + data[at + 1 :])
    with pytest.raises(Mat2GradError, match="not valid UTF-8"):
        mat2grad.load(path)


def test_unparsable_protobuf(tmp_path):
    path = tmp_path / "bad.onnx"
    path.write_bytes((FIXTURES / "matlab2018b_flatten1_matmul.onnx").read_bytes()[:-37])
    with pytest.raises(Mat2GradError, match="not an ONNX model|corrupt|rejects"):
        mat2grad.load(path)


@pytest.mark.parametrize("dim", [1 << 40, (1 << 24) + 1])
def test_huge_declared_input_is_refused_before_allocating(tmp_path, dim):
    model = onnx.load(FIXTURES / "matlab2018_gemm6_features.onnx")
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = dim
    path = tmp_path / "huge.onnx"
    onnx.save(model, path)
    with pytest.raises(Mat2GradError, match=f"at most {MAX_FEED_ELEMENTS} are supported"):
        mat2grad.load(path)


def test_sequence_with_too_many_fixed_steps(tmp_path):
    model = onnx.load(FIXTURES / "matlab_lstm_zerocenter_sequence.onnx")
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = MAX_SEQUENCE_STEPS + 1
    path = tmp_path / "long.onnx"
    onnx.save(model, path)
    with pytest.raises(Mat2GradError, match=f"at most {MAX_SEQUENCE_STEPS} are supported"):
        mat2grad.load(path)


def test_required_input_left_empty(tmp_path):
    # onnx.checker accepts an empty name anywhere; onnxruntime's Sum then reads a
    # missing tensor and the process dies (found by the fuzz campaign)
    model = onnx.load(FIXTURES / "matlab_addition_sum.onnx")
    node = next(n for n in model.graph.node if n.op_type == "Sum")
    node.input[1] = ""
    path = tmp_path / "empty_input.onnx"
    onnx.save(model, path)
    with pytest.raises(
        Mat2GradError, match=r"the file is corrupt: node '.*' \(Sum\) leaves its input #2 empty"
    ):
        mat2grad.load(path)


@pytest.mark.parametrize(
    ("node", "refused"),
    [
        (onnx.helper.make_node("Clip", ["x", "", "hi"], ["y"]), None),  # optional min omitted
        (onnx.helper.make_node("Gemm", ["a", "b", ""], ["y"]), None),  # optional C omitted
        (onnx.helper.make_node("Sum", ["a", "", "c"], ["y"]), 1),  # variadic: all required
        (onnx.helper.make_node("Add", ["", "b"], ["y"]), 0),
        (onnx.helper.make_node("NoSuchOp", ["", "b"], ["y"]), None),  # the checker's matter
    ],
)
def test_only_optional_inputs_may_be_left_empty(node, refused):
    assert _missing_required_input(node, 17) == refused


def test_a_converted_graph_that_fails_in_the_load_check_is_one_error(monkeypatch):
    # a converter defect surfaces in the comparison with onnxruntime: still Mat2GradError
    from mat2grad.onnx import check

    def broken(net, feeds):
        raise RuntimeError("The size of tensor a (4) must match the size of tensor b (5)")

    monkeypatch.setattr(check, "run_module", broken)
    with pytest.raises(Mat2GradError, match=r"fails on the random input .*RuntimeError: The size"):
        mat2grad.load(FIXTURES / "matlab_addition_sum.onnx")
