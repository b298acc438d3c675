"""Bad input, one case each: the CLI prints one line ``mat2grad: ...`` and exits 1 (argparse's
usage errors: exit 2, the message on the last line), and leaves no file, final or temporary,
in the output folder; the library raises :class:`mat2grad.Mat2GradError`."""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

import mat2grad
from mat2grad import Mat2GradError, matfile
from mat2grad.cli import main
from tests.support.helpers import FIXTURES, read_only

NET = FIXTURES / "example_fitnet.mat"  # R = 10, S = 3
LSTM = FIXTURES / "onnx" / "matlab_lstm_zerocenter_sequence.onnx"  # (T 4, C 3) per sample


def _two_inputs(folder):
    """y = a + b, both inputs (N, 3)."""
    value = helper.make_tensor_value_info
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["y"])],
        "two",
        [value("a", TensorProto.DOUBLE, ["N", 3]), value("b", TensorProto.DOUBLE, ["M", 3])],
        [value("y", TensorProto.DOUBLE, ["N", 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.save(model, folder / "two.onnx")
    return folder / "two.onnx"


def _symbolic_features(folder):
    """The LSTM fixture with its feature size left symbolic in the file."""
    model = onnx.load(LSTM)
    dim = model.graph.input[0].type.tensor_type.shape.dim[2]
    dim.ClearField("dim_value")
    dim.dim_param = "C"
    onnx.save(model, folder / "lstm_c.onnx")
    return folder / "lstm_c.onnx"


def _data(folder, **variables):
    matfile.write_mat(folder / "data.mat", variables)
    return folder / "data.mat"


def _x(q=5):
    return np.random.default_rng(0).random((10, q))


# (id, argv builder (inputs folder, output folder) -> argv, exit code, message pattern)
CLI_CASES = [
    (
        "chunk-size-negative",
        lambda d, o: [
            "jacobian",
            NET,
            "--inputs",
            _data(d, X=_x()),
            "-o",
            o / "J.mat",
            "--chunk-size",
            "-5",
        ],
        2,
        r"argument --chunk-size: must be a whole number >= 1, found -5",
    ),
    (
        "threads-zero",
        lambda d, o: [
            "jacobian",
            NET,
            "--inputs",
            _data(d, X=_x()),
            "-o",
            o / "J.mat",
            "--threads",
            "0",
        ],
        2,
        r"argument --threads: must be a whole number >= 1, found 0",
    ),
    (
        "read-only-output-folder",
        lambda d, o: ["jacobian", NET, "--inputs", _data(d, X=_x()), "-o", o / "J.mat"],
        1,
        r"J\.mat: cannot create a file in the folder .*\(Permission denied\); write the result",
    ),
    (
        "read-only-output-folder-convert",
        lambda d, o: ["convert", NET, "-o", o / "net.pt"],
        1,
        r"net\.pt: cannot create a file in the folder .*\(Permission denied\)",
    ),
    (
        "onnx-inputs-of-different-batch-sizes",
        lambda d, o: [
            "predict",
            _two_inputs(d),
            "--inputs",
            _data(d, X=[np.ones((3, 2)), np.ones((3, 4))]),
            "-o",
            o / "Y.mat",
        ],
        1,
        r"every input needs the same number of samples",
    ),
    (
        "onnx-symbolic-feature-size",
        lambda d, o: [
            "predict",
            _symbolic_features(d),
            "--inputs",
            _data(d, X=np.ones((5, 2, 4))),
            "-o",
            o / "Y.mat",
        ],
        1,
        r"cannot run on inputs of per-sample shape 'sequenceinput' \(4, 5\): the file leaves "
        r"sizes symbolic \('sequenceinput' \(4, \?\)\)",
    ),
    (
        "info-without-a-network",
        lambda d, o: ["info", _data(d, X=_x())],
        1,
        r"data\.mat: no MATLAB network found \(variables: X\)",
    ),
    (
        "directory-as-network-file",
        lambda d, o: ["jacobian", d, "--inputs", _data(d, X=_x()), "-o", o / "J.mat"],
        1,
        r": is a directory; give the MAT-file \(or \.onnx file\) holding the network",
    ),
]


@pytest.mark.parametrize(
    "argv, code, pattern", [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES]
)
def test_cli_refuses_bad_input(request, tmp_path, monkeypatch, capsys, argv, code, pattern):
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    out.mkdir()
    args = [str(a) for a in argv(inputs, out)]
    if "read-only" in request.node.callspec.id:
        read_only(out, monkeypatch)
    try:
        got = main(args)
    except SystemExit as exc:  # argparse's usage errors
        got = exc.code
    err = capsys.readouterr().err
    assert got == code, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    if code == 1:
        assert len(lines) == 1 and lines[0].startswith("mat2grad: "), err
    assert re.search(pattern, lines[-1]), lines[-1]
    assert list(out.iterdir()) == []  # no result, no temporary


class _Wide(torch.nn.Module):
    """10^9 outputs per sample (a view: nothing is allocated until the Jacobian)."""

    def forward(self, x):
        return x.sum(-1, keepdim=True).expand(x.shape[0], 10**9)


def _net():
    return mat2grad.load(NET)


def _x3():
    return np.random.default_rng(0).random((1, 5, 10))


LIBRARY_CASES = [
    (
        "jacobian-3d",
        lambda: mat2grad.jacobian(_net(), _x3()),
        r"has shape \(1, 5, 10\); the network takes \(Q, 10\)",
    ),
    (
        "jacobian-rev-3d",
        lambda: mat2grad.jacobian(_net(), _x3(), mode="rev"),
        r"has shape \(1, 5, 10\)",
    ),
    ("vjp-3d", lambda: mat2grad.vjp(_net(), _x3(), np.ones((1, 5, 3))), r"has shape \(1, 5, 10\)"),
    ("hessian-3d", lambda: mat2grad.hessian(_net(), _x3()), r"has shape \(1, 5, 10\)"),
    (
        "jacobian-too-large",
        lambda: mat2grad.jacobian(_Wide(), np.ones((1000, 100)), mode="rev"),
        r"the Jacobian of 1000 sample\(s\) \(100000000000 derivatives each\) needs 728 TiB, more "
        r"than the .* of memory available; take it chunk by chunk with mat2grad.jacobian_chunks",
    ),
    (
        "load-network-not-text",
        lambda: mat2grad.load(NET, network=123),
        r"network must be the MATLAB-style path .* found int 123",
    ),
    (
        "load-none",
        lambda: mat2grad.load(None),
        r"expected the path of a MAT-file or \.onnx file .* found NoneType",
    ),
    (
        "complex-tensor",
        lambda: mat2grad.jacobian(_net(), torch.ones(5, 10, dtype=torch.complex128)),
        r"input 1: expected a real numeric array, found dtype torch.complex128",
    ),
    (
        "complex-array",
        lambda: mat2grad.jacobian(_net(), np.ones((5, 10), dtype=complex)),
        r"input 1: expected a numeric array, found dtype complex128",
    ),
    (
        "onnx-module-batch-sizes",
        lambda: None,
        r"every input needs the same number of samples \(batch size\); found 'a' 2, 'b' 4",
    ),
]


@pytest.mark.parametrize(
    "call, pattern", [c[1:] for c in LIBRARY_CASES], ids=[c[0] for c in LIBRARY_CASES]
)
def test_library_refuses_bad_input(request, tmp_path, call, pattern):
    if request.node.callspec.id == "onnx-module-batch-sizes":  # the module itself, no checks before
        model = mat2grad.load(_two_inputs(tmp_path))
        call = lambda: model(torch.ones(2, 3), torch.ones(4, 3))  # noqa: E731
    with pytest.raises(Mat2GradError, match=pattern):
        call()
