"""ONNX's own conformance cases, run through mat2grad's conversion.

Two sources, both shipped with the ``onnx`` wheel:

* the node cases that ``onnx.backend.test.case.node.collect_testcases`` builds in memory
  (the wheel does not ship ``backend/test/data/node``), restricted to single-node cases of
  the operators MATLAB's exporter writes (:data:`MATLAB_OPS`), at the opsets the cases were
  written for;
* every model of ``backend/test/data/pytorch-converted`` and ``pytorch-operator``: small
  networks exported by PyTorch at opset 6, the vintage of MATLAB's 2018 exporter.

Each case is converted with :func:`mat2grad.onnx.loader.onnx_to_torch` (everything
``load_onnx`` does except the per-sample wrapper, since the node cases have no batch
semantics), evaluated in float64 on the case's inputs and compared with its expected
outputs at the case's own tolerances. Where the first input and the outputs are floating,
``jacrev`` and ``jacfwd`` with respect to it must agree and ``vmap`` must equal a loop.

Weights: the node cases feed convolution weights, BatchNormalization statistics, Clip and
Pad bounds, Reshape shapes and Resize scales as graph inputs; every exporter of a trained
network stores them as initializers, and onnx2torch reads them from there, so those inputs
(:data:`PARAM_INPUTS`) are moved into initializers with their values. Expected failures are
listed in :data:`EXPECTED_FAILURES` with the reason; each must fail with a
``Mat2GradError`` (a clear refusal), and is strict: a case that starts passing is reported.
"""

from __future__ import annotations

import functools
import glob
import os
import warnings

import numpy as np
import onnx  # noqa: E402
import pytest
import torch
from onnx import numpy_helper  # noqa: E402
from torch.func import jacfwd, jacrev, vmap

from mat2grad.errors import Mat2GradError
from mat2grad.onnx.loader import onnx_to_torch  # noqa: E402

MATLAB_OPS = (
    "Gemm MatMul Add Sub Mul Div Conv ConvTranspose BatchNormalization Relu LeakyRelu Elu "
    "Tanh Sigmoid Softmax Flatten Reshape Transpose Concat MaxPool AveragePool "
    "GlobalAveragePool LSTM GRU Dropout Clip Pad Resize"
).split()

#: op -> indices of inputs that are weights/constants in real networks (made initializers)
PARAM_INPUTS = {
    "Conv": (1, 2),
    "ConvTranspose": (1, 2),
    "BatchNormalization": (1, 2, 3, 4),
    "Clip": (1, 2),
    "Pad": (1, 2, 3),
    "Reshape": (1,),
    "Resize": (1, 2, 3),
    "Dropout": (1, 2),
    "LSTM": (1, 2, 3, 4, 5, 6, 7),
    "GRU": (1, 2, 3, 4, 5),
}

_TRAINING_DROPOUT = "training-mode Dropout is random; mat2grad evaluates trained networks"
_UINT = "uint16/32/64 inputs are refused: PyTorch has no arithmetic for them"
_AVG_DILATIONS = "AveragePool with dilations (opset 19) is not implemented"
EXPECTED_FAILURES = {
    **{f"test_{op}_uint{b}": _UINT for op in ("add", "sub", "mul", "div") for b in (16, 32, 64)},
    "test_averagepool_2d_dilations": _AVG_DILATIONS,
    "test_averagepool_3d_dilations_small": _AVG_DILATIONS,
    **{
        f"test_averagepool_3d_dilations_large_count_include_pad_is_{c}_ceil_mode_is_{m}": (
            _AVG_DILATIONS
        )
        for c in (0, 1)
        for m in ("True", "False")
    },
    "test_batchnorm_example_training_mode": "training-mode BatchNormalization (batch "
    "statistics, running-mean outputs) is not inference",
    "test_batchnorm_epsilon_training_mode": "training-mode BatchNormalization (batch "
    "statistics, running-mean outputs) is not inference",
    "test_convtranspose_output_shape": "an output_shape larger than the full transposed "
    "convolution (negative total padding) is not implemented",
    **{
        f"test_training_dropout{s}": _TRAINING_DROPOUT
        for s in ("", "_mask", "_default", "_default_mask", "_zero_ratio", "_zero_ratio_mask")
    },
    "test_maxpool_with_argmax_2d_precomputed_pads": "MaxPool's Indices output (integer "
    "positions) is not supported",
    "test_maxpool_with_argmax_2d_precomputed_strides": "MaxPool's Indices output (integer "
    "positions) is not supported",
    "test_reshape_allowzero_reordered": "Reshape allowzero=1 is not implemented by onnx2torch",
}

JAC_MAX_ELEMENTS = 300  # jacfwd/jacrev per case only up to this many input or output elements


@functools.cache
def _node_cases() -> dict[str, tuple]:
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = collect_testcases(None)
    picked = {}
    for case in cases:
        nodes = case.model.graph.node
        if len(nodes) == 1 and nodes[0].op_type in MATLAB_OPS:
            inputs, outputs = case.data_sets[0]
            picked[case.name] = (case.model, list(inputs), list(outputs), case.rtol, case.atol)
    return picked


def _data_dirs() -> list[str]:
    base = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")
    return sorted(glob.glob(os.path.join(base, "pytorch-*", "*", "model.onnx")))


def _params(names, expected=EXPECTED_FAILURES):
    out = []
    for name in names:
        marks = ()
        if name in expected:
            marks = pytest.mark.xfail(reason=expected[name], raises=Mat2GradError, strict=True)
        out.append(pytest.param(name, marks=marks, id=name))
    return out


def _move_params(model, feeds):
    """Graph inputs listed in PARAM_INPUTS become initializers (see the module docstring)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    node = m.graph.node[0]
    for k, name in enumerate(node.input):
        if k in PARAM_INPUTS.get(node.op_type, ()) and name in feeds:
            m.graph.initializer.append(numpy_helper.from_array(np.asarray(feeds.pop(name)), name))
    keep = [v for v in m.graph.input if v.name in feeds]
    del m.graph.input[:]
    m.graph.input.extend(keep)
    return m


def _as_tensor(array) -> torch.Tensor:
    t = torch.from_numpy(np.array(array))
    return t.to(torch.float64) if t.is_floating_point() else t


def _run_and_compare(model, feeds, expected, rtol, atol, name):
    gm, _, _ = onnx_to_torch(model, name)
    inits = {t.name for t in model.graph.initializer}
    args = [_as_tensor(feeds[v.name]) for v in model.graph.input if v.name not in inits]
    with torch.no_grad():
        got = gm(*args)
    got = got if isinstance(got, tuple | list) else (got,)
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        e = np.asarray(e)
        g = g.numpy()
        assert g.shape == e.shape, (name, g.shape, e.shape)
        if e.dtype.kind in "fc":
            np.testing.assert_allclose(g, e, rtol=rtol, atol=atol, equal_nan=True, err_msg=name)
        else:
            np.testing.assert_array_equal(g, e, err_msg=name)
    _check_torch_func(gm, args, name)


def _check_torch_func(gm, args, name):
    """jacrev == jacfwd and vmap == loop, with respect to the first floating input."""
    k = next((i for i, a in enumerate(args) if a.is_floating_point()), None)
    if k is None:
        return

    def f(x):
        outs = gm(*(x if i == k else a for i, a in enumerate(args)))
        outs = outs if isinstance(outs, tuple | list) else (outs,)
        floats = [o.reshape(-1) for o in outs if o.is_floating_point()]
        return torch.cat(floats) if floats else None

    with torch.no_grad():
        y = f(args[k])
    if y is None or args[k].numel() > JAC_MAX_ELEMENTS or y.numel() > JAC_MAX_ELEMENTS:
        return
    j_rev, j_fwd = jacrev(f)(args[k]), jacfwd(f)(args[k])
    finite = torch.isfinite(j_rev) & torch.isfinite(j_fwd)
    torch.testing.assert_close(j_rev[finite], j_fwd[finite], rtol=1e-10, atol=1e-10, msg=name)
    pair = torch.stack([args[k], args[k] * 0.5])
    batched = vmap(f)(pair)
    torch.testing.assert_close(batched[0], y, equal_nan=True, msg=name)
    torch.testing.assert_close(batched[1], f(pair[1]), equal_nan=True, msg=name)


@pytest.mark.parametrize("name", _params(sorted(_node_cases())))
def test_node_case(name):
    model, inputs, outputs, rtol, atol = _node_cases()[name]
    feeds = dict(zip([v.name for v in model.graph.input], inputs, strict=True))
    model = _move_params(model, feeds)
    _run_and_compare(model, feeds, outputs, rtol, atol, name)


def _dir_id(path: str) -> str:
    parts = path.split(os.sep)
    return f"{parts[-3]}/{parts[-2]}"


@pytest.mark.parametrize("path", _data_dirs(), ids=_dir_id)
def test_pytorch_data_dir(path):
    folder = os.path.dirname(path)
    model = onnx.load(path)
    inputs = sorted(glob.glob(os.path.join(folder, "test_data_set_0", "input_*.pb")))
    outputs = sorted(glob.glob(os.path.join(folder, "test_data_set_0", "output_*.pb")))
    load = [numpy_helper.to_array(onnx.load_tensor(p)) for p in inputs]
    expected = [numpy_helper.to_array(onnx.load_tensor(p)) for p in outputs]
    inits = {t.name for t in model.graph.initializer}
    names = [v.name for v in model.graph.input if v.name not in inits]
    feeds = dict(zip(names, load, strict=True))
    # as onnx's own backend test runner does for these models
    _run_and_compare(model, feeds, expected, 1e-3, 1e-7, _dir_id(path))


def test_every_matlab_operator_is_covered():
    ops = {model.graph.node[0].op_type for model, *_ in _node_cases().values()}
    assert ops == set(MATLAB_OPS)
    assert set(EXPECTED_FAILURES) <= set(_node_cases())
