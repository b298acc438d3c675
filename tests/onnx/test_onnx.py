"""mat2grad.onnx: ONNX files (every generation of MATLAB's exporter, and others) as
differentiable PyTorch modules.

References, all independent of the code under test: onnxruntime on the same file (float32),
the numpy reference implementations of ``fixtures/generate_onnx.py``, central finite
differences of the float64 module, and the other autodiff mode.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import onnx  # noqa: E402
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from torch.func import jacfwd, jacrev, jvp, vmap

from mat2grad.errors import Mat2GradError
from mat2grad.onnx import describe_onnx, load_onnx  # noqa: E402
from mat2grad.onnx.check import (  # noqa: E402
    check_against_onnxruntime,
    import_onnxruntime,
    random_feeds,
    run_module,
)
from mat2grad.onnx.normalize import normalize  # noqa: E402
from mat2grad.onnx.reader import read_model  # noqa: E402
from tests.support.helpers import (
    CORPUS,
    FD_RTOL,
    FD_STEP,
    JAC_MODES_RTOL,
    ONNX_FIXTURE_RTOL,
    ONNX_FIXTURES,
    assert_float32_agree,
    assert_scaled_close,
    corpus_cases,
    float32_rounding_bound,
)

HAVE_ORT = importlib.util.find_spec("onnxruntime") is not None
requires_ort = pytest.mark.skipif(not HAVE_ORT, reason="onnxruntime is not installed")

# Full forward-mode Jacobians (one JVP per input element) only below this many input
# elements per sample; above it, forward mode is checked along random directions.
FULL_JACFWD_MAX = 400
FD_COORDS = 4  # input coordinates probed by finite differences, per input


@functools.cache
def loaded(path: str, dtype: torch.dtype = torch.float64):
    return load_onnx(path, dtype=dtype, check=False)


def sample_inputs(net, q: int, seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.rand((q, *[3 if d is None else d for d in shape]), generator=gen, dtype=net.dtype) * 2
        - 1
        for shape in net.input_shapes
    ]


def flat_outputs(net, *one_sample: torch.Tensor) -> torch.Tensor:
    """All outputs of one sample, flattened and concatenated."""
    outs = net(*(x.unsqueeze(0) for x in one_sample))
    outs = outs if isinstance(outs, tuple) else (outs,)
    return torch.cat([o[0].reshape(-1) for o in outs])


def check_jacobians(net, xs: list[torch.Tensor], what: str) -> None:
    """For every input: vmap(jacrev) vs vmap(jacfwd) (or forward-mode JVPs), and central
    finite differences of the float64 module on a few coordinates, for every sample."""
    q = xs[0].shape[0]
    f = functools.partial(flat_outputs, net)
    rng = np.random.default_rng(0)
    for k in range(len(xs)):
        n_in = xs[k][0].numel()
        j_rev = vmap(jacrev(f, argnums=k))(*xs).reshape(q, -1, n_in)
        assert torch.isfinite(j_rev).all(), what
        scale = max(1.0, float(j_rev.abs().max()))
        if n_in <= FULL_JACFWD_MAX:
            j_fwd = vmap(jacfwd(f, argnums=k))(*xs).reshape(q, -1, n_in)
            assert_scaled_close(j_fwd, j_rev, JAC_MODES_RTOL, f"{what}: jacfwd vs jacrev")
        else:
            for _ in range(2):
                v = torch.randn_like(xs[k])

                def along(*sample, v_one, k=k):
                    tangents = tuple(
                        v_one if i == k else torch.zeros_like(s) for i, s in enumerate(sample)
                    )
                    return jvp(f, tuple(sample), tangents)[1]

                fwd = vmap(lambda *s: along(*s[:-1], v_one=s[-1]))(*xs, v)
                rev = torch.einsum("qsr,qr->qs", j_rev, v.reshape(q, -1))
                assert_scaled_close(fwd, rev, JAC_MODES_RTOL * scale, f"{what}: jvp vs jacrev")
        coords = rng.choice(n_in, size=min(FD_COORDS, n_in), replace=False)
        for r in coords:
            step = torch.zeros(n_in, dtype=xs[k].dtype)
            step[r] = FD_STEP
            step = step.reshape(xs[k].shape[1:])
            plus = [x + step if i == k else x for i, x in enumerate(xs)]
            minus = [x - step if i == k else x for i, x in enumerate(xs)]
            fd = (vmap(f)(*plus) - vmap(f)(*minus)) / (2 * FD_STEP)
            assert_scaled_close(fd, j_rev[:, :, r], FD_RTOL * scale, f"{what}: FD, coord {r}")


def _float32_bounds(net, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The float32 rounding bound of every output (tests/support/helpers.py), on file-layout feeds,
    in the file's layout, as ``run_module`` returns outputs."""
    xs = [np.moveaxis(feeds[i.name], i.batch_axis, 0) for i in net.input_infos]
    bounds = float32_rounding_bound(net, xs)
    return [
        b[0] if axis is None else np.moveaxis(b, 0, axis)
        for b, axis in zip(bounds, net.output_batch_axes, strict=True)
    ]


def _ort_reference(path: Path, net):
    """onnxruntime on the file as it is, or on the normalised graph where onnxruntime
    refuses the file (MATLAB 2018's Gemm on a 4-D tensor, PyTorch 0.3's LSTM-1)."""
    ort = import_onnxruntime()
    model = read_model(path)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(model.SerializeToString(), options)
    except Exception:  # noqa: BLE001
        norm = normalize(model).model
        session = ort.InferenceSession(norm.SerializeToString(), options)
    feeds = random_feeds(net, seed=7)
    return feeds, session.run(None, feeds)


# --------------------------------------------------------------------------------------
# The real files of the corpus
# --------------------------------------------------------------------------------------

CORPUS_ONNX = corpus_cases("onnx/")


def _is_negative(case) -> bool:
    return "not differentiable" in case.get("check", "")


#: the corpus cases that must load (the parameter is None when the corpus is absent)
POSITIVE = [c for c in CORPUS_ONNX if c.values[0] is None or not _is_negative(c.values[0])]


@pytest.mark.parametrize("case", CORPUS_ONNX)
def test_corpus_file_loads_or_fails_cleanly(case):
    path = CORPUS / case["file"]
    if _is_negative(case):
        with pytest.raises(Mat2GradError, match=r"operator OneHotEncoder .*ai\.onnx\.ml"):
            load_onnx(path)
        return
    net = loaded(str(path))
    assert not net.training and net.dtype == torch.float64
    assert all(not p.requires_grad for p in net.parameters())
    assert net.input_layouts[0] == case["layout"], net.input_layouts
    assert len(net.input_shapes) == len(net.input_names) == len(net.input_layouts)
    assert len(net.output_shapes) == len(net.output_names) == len(net.output_layouts)
    assert net.not_differentiable is None


@requires_ort
@pytest.mark.parametrize("case", POSITIVE)
def test_corpus_forward_matches_onnxruntime(case):
    path = CORPUS / case["file"]
    net = loaded(str(path))
    feeds, expected = _ort_reference(path, net)
    bounds = _float32_bounds(net, feeds)
    for dtype in (torch.float64, torch.float32):
        got = run_module(loaded(str(path), dtype), feeds)
        for name, e, g, b in zip(net.output_names, expected, got, bounds, strict=True):
            assert g.dtype == (np.float64 if dtype == torch.float64 else np.float32)
            assert_float32_agree(g, e, b, f"{case['file']} {name} {dtype}")
    net = load_onnx(path)  # the load-time check itself
    assert "skipped" not in net.check and net.check["max_abs_error"] <= max(
        o["tolerance"] for o in net.check["outputs"].values()
    )


@pytest.mark.parametrize("case", POSITIVE)
def test_corpus_any_batch_size_equals_one_sample_at_a_time(case):
    net = loaded(str(CORPUS / case["file"]))
    xs = sample_inputs(net, 3, seed=1)
    batch = net(*xs)
    batch = batch if isinstance(batch, tuple) else (batch,)
    for q in range(3):
        one = net(*(x[q : q + 1] for x in xs))
        one = one if isinstance(one, tuple) else (one,)
        for b, o, shape in zip(batch, one, net.output_shapes, strict=True):
            assert b.shape == (3, *shape)
            torch.testing.assert_close(b[q : q + 1], o, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("case", POSITIVE)
def test_corpus_jacobian(case):
    net = loaded(str(CORPUS / case["file"]))
    check_jacobians(net, sample_inputs(net, 2, seed=2), case["file"])


# --------------------------------------------------------------------------------------
# Hand-built fixtures (fixtures/generate_onnx.py): MATLAB's old opsets and patterns
# --------------------------------------------------------------------------------------

# fixture -> (input layouts, output layouts, a rewrite note that must be there or None)
FIXTURE_TABLE = {
    "matlab2018_gemm6_features": (("features",), ("features",), "inserted Flatten(axis=1)"),
    "matlab2018_gemm6_image": (("image",), ("features",), "inserted Flatten(axis=1)"),
    "matlab2018b_flatten1_matmul": (("features",), ("features",), "upgraded opset 8"),
    "matlab2020a_conv_fc_dropout": (("image",), ("features",), "Dropout node(s) by Identity"),
    "matlab_addition_sum": (("image",), ("features",), "OnnxSum"),
    "pytorch_baked_batch1_reshape": (("image",), ("features",), None),
    "matlab_lstm_baked_states": (("sequence",), ("features",), None),
    "matlab2018_lstm_gemm3d": (("sequence",), ("sequence",), "MatMul + Add"),
    "matlab_lstm_zerocenter_sequence": (("sequence",), ("sequence",), None),
    "matlab2024b_same_pad": (("image",), ("features",), "OnnxCast"),
}


def test_every_fixture_is_in_the_table():
    files = sorted(p.stem for p in ONNX_FIXTURES.glob("*.onnx"))
    assert files == sorted(FIXTURE_TABLE)


@pytest.mark.parametrize("name", sorted(FIXTURE_TABLE))
def test_fixture_matches_numpy_reference(name):
    net = loaded(str(ONNX_FIXTURES / f"{name}.onnx"))
    data = np.load(ONNX_FIXTURES / f"{name}.npz")
    xs = [torch.from_numpy(data[f"x{k}"]) for k in range(len(net.input_names))]
    outs = net(*xs)
    outs = outs if isinstance(outs, tuple) else (outs,)
    for j, out in enumerate(outs):
        assert out.dtype == torch.float64
        assert_scaled_close(out.numpy(), data[f"y{j}"], ONNX_FIXTURE_RTOL, f"{name} y{j}")
    inputs, outputs, note = FIXTURE_TABLE[name]
    assert net.input_layouts == inputs and net.output_layouts == outputs
    if note is not None:
        assert any(note in n for n in net.notes), net.notes


@requires_ort
@pytest.mark.parametrize("name", sorted(FIXTURE_TABLE))
def test_fixture_load_time_check_against_onnxruntime(name):
    net = load_onnx(ONNX_FIXTURES / f"{name}.onnx")
    assert "skipped" not in net.check, net.check
    invalid = name.startswith("matlab2018_")  # onnxruntime refuses these files as they are
    assert net.check["reference"] == ("normalised graph" if invalid else "file")


@pytest.mark.parametrize("name", sorted(FIXTURE_TABLE))
def test_fixture_jacobian(name):
    net = loaded(str(ONNX_FIXTURES / f"{name}.onnx"))
    check_jacobians(net, sample_inputs(net, 3, seed=3), name)


def test_fixture_generator_is_reproducible(tmp_path):
    sys.path.insert(0, str(ONNX_FIXTURES.parent))
    try:
        import generate_onnx
    finally:
        sys.path.remove(str(ONNX_FIXTURES.parent))
    generate_onnx.main(tmp_path)
    for name in FIXTURE_TABLE:
        assert (tmp_path / f"{name}.onnx").read_bytes() == (
            ONNX_FIXTURES / f"{name}.onnx"
        ).read_bytes(), f"{name}.onnx is stale: run python fixtures/generate_onnx.py"
        new, old = np.load(tmp_path / f"{name}.npz"), np.load(ONNX_FIXTURES / f"{name}.npz")
        assert sorted(new.files) == sorted(old.files)
        for key in new.files:
            if key.startswith("x"):  # seeded numpy Generator draws: the same on every machine
                np.testing.assert_array_equal(new[key], old[key])
            else:  # float64 references, computed here with this machine's BLAS and libm
                assert_scaled_close(new[key], old[key], ONNX_FIXTURE_RTOL, f"{name}.npz {key}")


# --------------------------------------------------------------------------------------
# Single operators whose onnx2torch modules are replaced (mat2grad.onnx.fixes) or added
# --------------------------------------------------------------------------------------


def _one_op_model(op, inputs, inits, attrs=None, opset=13, out_shape=None):
    """A one-node model; ``inputs`` are (name, shape) data inputs (batch axis 0)."""
    names = [n for n, _ in inputs] + [t.name for t in inits]
    node = helper.make_node(op, names, ["y"], name="node_under_test", **(attrs or {}))
    graph = helper.make_graph(
        [node],
        op,
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _i64(name, values):
    return numpy_helper.from_array(np.array(values, dtype=np.int64), name)


def _f32(name, values):
    return numpy_helper.from_array(np.array(values, dtype=np.float32), name)


def _split_sum_model():
    nodes = [
        helper.make_node("Split", ["x"], ["a", "b", "c"], name="split", axis=1, num_outputs=3),
        helper.make_node("Mul", ["b", "c"], ["bc"], name="mul"),
        helper.make_node("Sum", ["a", "bc"], ["y"], name="sum"),
    ]
    graph = helper.make_graph(
        nodes,
        "split",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 7])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    return model


OP_CASES = {
    "Split-18-num-outputs": _split_sum_model(),
    "Slice-negative-step": _one_op_model(
        "Slice",
        [("x", [2, 5, 4])],
        [_i64("s", [4, 3]), _i64("e", [0, -100]), _i64("a", [1, 2]), _i64("st", [-2, -1])],
    ),
    "Sum-three-branches": _one_op_model(
        "Sum", [("x", [2, 3, 4]), ("z", [2, 3, 4])], [_f32("c", np.arange(4.0))]
    ),
    "Mean-two": _one_op_model("Mean", [("x", [2, 3]), ("z", [2, 3])], []),
    "PRelu-row-slope": _one_op_model(
        "PRelu", [("x", [2, 3, 4])], [_f32("slope", [[0.1, -0.2, 0.3, 0.5]])]
    ),
    "Flatten-axis0": _one_op_model("Flatten", [("x", [1, 3, 4])], [], {"axis": 0}),
    "Pad-reflect-axis1": _one_op_model(
        "Pad", [("x", [2, 4, 3])], [_i64("p", [0, 2, 1, 0, 1, 2])], {"mode": "reflect"}
    ),
    "Pad-edge-18-axes": _one_op_model(
        "Pad",
        [("x", [2, 4, 3])],
        [_i64("p", [1, 2]), _f32("v", 0.0), _i64("ax", [2])],
        {"mode": "edge"},
        opset=18,
    ),
    "Resize-linear-half-pixel": _one_op_model(
        "Resize",
        [("x", [2, 1, 3, 4])],
        [_f32("roi", []), _f32("scales", [1, 1, 1.5, 0.75])],
        {"mode": "linear"},
    ),
    "Resize-nearest-asymmetric": _one_op_model(
        "Resize",
        [("x", [2, 2, 3, 3])],
        [_f32("roi", []), _f32("scales", [1, 1, 2, 2])],
        {"mode": "nearest", "coordinate_transformation_mode": "asymmetric"},
    ),
    "Resize-cubic-align-corners": _one_op_model(
        "Resize",
        [("x", [1, 1, 4, 4])],
        [_f32("roi", []), _f32("scales", []), _i64("sizes", [1, 1, 6, 3])],
        {"mode": "cubic", "coordinate_transformation_mode": "align_corners"},
    ),
    "Cast-to-float": _one_op_model("Cast", [("x", [2, 3])], [], {"to": TensorProto.FLOAT}),
    # Upsample-9 upgraded to Resize-13 must keep asymmetric coordinates (the version
    # converter's adapter drops them) and floor(5/3 * 3) computed in float32 is 5
    "Upsample9-nearest": _one_op_model(
        "Upsample",
        [("x", [2, 1, 3, 3])],
        [_f32("scales", [1, 1, 5 / 3, 2])],
        {"mode": "nearest"},
        opset=9,
    ),
    "Upsample9-linear": _one_op_model(
        "Upsample",
        [("x", [2, 2, 3, 3])],
        [_f32("scales", [1, 1, 2, 1.5])],
        {"mode": "linear"},
        opset=9,
    ),
    "ReduceMean-18-axes-input": _one_op_model(
        "ReduceMean", [("x", [2, 3, 4])], [_i64("axes", [-1])], {"keepdims": 0}, opset=18
    ),
    "ReduceL2-18-all-axes": _one_op_model("ReduceL2", [("x", [1, 3, 4])], [], opset=18),
    "Gelu-20-tanh": _one_op_model("Gelu", [("x", [2, 5])], [], {"approximate": "tanh"}, opset=20),
    "Mish-18": _one_op_model("Mish", [("x", [2, 5])], [], opset=18),
    "AveragePool-same-upper": _one_op_model(
        "AveragePool",
        [("x", [2, 1, 4, 4])],
        [],
        {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"},
    ),
    "ConvTranspose-asymmetric": _one_op_model(
        "ConvTranspose",
        [("x", [2, 1, 3, 3])],
        [_f32("w", np.arange(18.0).reshape(1, 2, 3, 3) / 10)],
        {"strides": [2, 2], "pads": [0, 1, 1, 0]},
    ),
}


@pytest.mark.parametrize("name", sorted(OP_CASES))
def test_single_operator(name, tmp_path):
    """Forward equals onnxruntime; vmap, jacrev and jacfwd work and agree."""
    path = tmp_path / f"{name}.onnx"
    onnx.save(OP_CASES[name], path)
    net = load_onnx(path, check=HAVE_ORT)
    if HAVE_ORT:
        assert "skipped" not in net.check, net.check
    xs = sample_inputs(net, 2, seed=4)
    check_jacobians(net, xs, name)


# --------------------------------------------------------------------------------------
# Refusals, safety, the onnxruntime check, differentiability, the model contract
# --------------------------------------------------------------------------------------


def _save(model, path):
    onnx.save(model, path)
    return path


def test_torchvision_guard():
    from mat2grad.onnx._onnx2torch import import_onnx2torch, torchvision_problem

    module = import_onnx2torch()
    assert hasattr(module, "convert")
    problem = torchvision_problem()
    if problem is None:
        pytest.skip("torchvision loads here: the guard is not needed")
    # the stand-in torchvision was only in sys.modules while onnx2torch was imported
    assert not getattr(sys.modules.get("torchvision"), "__mat2grad_stand_in__", False)
    nms = sys.modules["onnx2torch.node_converters.nms"]
    with pytest.raises(Mat2GradError, match="torchvision could not be loaded"):
        nms.torchvision.ops.nms(None, None, 0.5)


@pytest.mark.parametrize(
    "op, problem, message",
    [
        ("NonMaxSuppression", "RuntimeError: broken", "NonMaxSuppression.*torchvision"),
        ("RoiAlign", "RuntimeError: broken", "RoiAlign.*torchvision"),
        ("SequenceMap", None, "SequenceMap .*control flow"),
    ],
)
def test_scan_refuses(op, problem, message):
    from mat2grad.onnx.reader import scan

    node = helper.make_node(op, ["x"], ["y"], name="n")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    with pytest.raises(Mat2GradError, match=message):
        scan(helper.make_model(graph), "m.onnx", problem)


def test_custom_domain_and_string_inputs_are_refused(tmp_path):
    node = helper.make_node("Magic", ["x"], ["y"], domain="com.example")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.example", 1)]
    )
    with pytest.raises(Mat2GradError, match="domain 'com.example'"):
        load_onnx(_save(model, tmp_path / "custom.onnx"))
    node = helper.make_node("Identity", ["s"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("s", TensorProto.STRING, [1])],
        [helper.make_tensor_value_info("y", TensorProto.STRING, [1])],
    )
    with pytest.raises(Mat2GradError, match="input 's' holds strings"):
        load_onnx(_save(helper.make_model(graph), tmp_path / "strings.onnx"))


def test_not_an_onnx_file(tmp_path):
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"\x00\xff definitely not a protobuf" * 10)
    with pytest.raises(Mat2GradError, match="not an ONNX model"):
        load_onnx(path)
    with pytest.raises(Mat2GradError, match="no such file"):
        load_onnx(tmp_path / "missing.onnx")


def test_checker_rejects_a_broken_graph(tmp_path):
    node = helper.make_node("Relu", ["nowhere"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(Mat2GradError, match="onnx.checker"):
        load_onnx(_save(model, tmp_path / "broken.onnx"))


def _external_model(folder: Path) -> Path:
    weight = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(3, 4), "W")
    node = helper.make_node("MatMul", ["x", "W"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = folder / "ext.onnx"
    onnx.save(model, path, save_as_external_data=True, location="ext.bin", size_threshold=0)
    return path


def _relocate(path: Path, location: str) -> None:
    model = onnx.load(path, load_external_data=False)
    for entry in model.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = location
    onnx.save(model, path)


def test_external_data_inside_the_folder_loads(tmp_path):
    net = load_onnx(_external_model(tmp_path), check=False)
    y = net(torch.ones(2, 3, dtype=torch.float64))
    torch.testing.assert_close(
        y, torch.ones(2, 3, dtype=torch.float64) @ torch.arange(12.0).reshape(3, 4).double()
    )


@pytest.mark.parametrize(
    "location, message",
    [
        ("../ext.bin", "without '..'"),
        ("sub/../../ext.bin", "without '..'"),
        ("/etc/passwd", "only paths relative"),
        ("C:\\\\Windows\\\\win.ini", "only paths relative"),
        ("missing.bin", "does not exist"),
        ("link.bin", "outside the model's folder"),
    ],
)
def test_external_data_outside_the_folder_is_refused(tmp_path, location, message):
    folder = tmp_path / "model"
    folder.mkdir()
    path = _external_model(folder)
    (tmp_path / "ext.bin").write_bytes((folder / "ext.bin").read_bytes())
    if location == "link.bin":
        try:
            os.symlink(tmp_path / "ext.bin", folder / "link.bin")
        except OSError:
            pytest.skip("symbolic links are not available")
    _relocate(path, location)
    with pytest.raises(Mat2GradError, match=message):
        load_onnx(path)


@requires_ort
def test_mismatch_with_onnxruntime_names_the_diverging_node():
    path = ONNX_FIXTURES / "matlab2020a_conv_fc_dropout.onnx"
    net = load_onnx(path, check=False)
    conv = net.graph_module.get_submodule("fc_2")
    with torch.no_grad():
        conv.bias[0] += 0.5  # a defect planted in the second Conv
    model = read_model(path)
    with pytest.raises(Mat2GradError, match=r"first diverging node: 'fc_2' \(Conv\)"):
        check_against_onnxruntime(net, model, normalize(model).model)


def _graph_model(nodes, out="y", inits=()):
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
        initializer=list(inits),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def test_node_names_that_collide_in_onnx2torch(tmp_path):
    """onnx2torch names modules after nodes, stripping a leading '/' and numbering repeats:
    '/Constant_1' and the second unnamed Constant both become 'Constant_1'."""
    const = [
        helper.make_node("Constant", [], [f"c{k}"], name=name, value=_f32("v", [k + 1.0]))
        for k, name in enumerate(["", "", "/Constant_1"])
    ]
    total = [
        helper.make_node("Mul", ["x", "c0"], ["a"], name="m"),
        helper.make_node("Add", ["a", "c1"], ["b"], name="/m"),
        helper.make_node("Sub", ["b", "c2"], ["y"], name=""),
    ]
    model = _graph_model(const + total)
    net = load_onnx(_save(model, tmp_path / "names.onnx"), check=HAVE_ORT)
    x = torch.rand(3, 4, dtype=torch.float64)
    torch.testing.assert_close(net(x), x * 1 + 2 - 3)


def test_without_onnxruntime_the_check_is_skipped_with_a_warning(monkeypatch):
    import mat2grad.onnx.check as check
    import mat2grad.onnx.loader as loader

    monkeypatch.setattr(check, "onnxruntime_available", lambda: False)
    monkeypatch.setattr(loader, "_WARNED", set())
    with pytest.warns(UserWarning, match="not compared with onnxruntime"):
        net = load_onnx(ONNX_FIXTURES / "matlab_addition_sum.onnx")
    assert net.check == {"skipped": "onnxruntime is not installed"}


def test_argmax_output_is_not_differentiable(tmp_path):
    model = _graph_model(
        [
            helper.make_node("ArgMax", ["x"], ["i"], name="am", axis=1),
            helper.make_node("Cast", ["i"], ["y"], name="c", to=TensorProto.FLOAT),
        ]
    )
    net = load_onnx(_save(model, tmp_path / "argmax.onnx"), check=False)
    assert net.not_differentiable is not None and "ArgMax (node 'am')" in net.not_differentiable


def test_floor_on_the_data_path_has_zero_derivative(tmp_path):
    model = _graph_model(
        [
            helper.make_node("Floor", ["x"], ["f"], name="fl"),
            helper.make_node("Mul", ["f", "x"], ["y"], name="m"),
        ]
    )
    net = load_onnx(_save(model, tmp_path / "floor.onnx"), check=False)
    assert net.zero_derivative == ("Floor (node 'fl')",)
    assert net.not_differentiable is None
    # the shape arithmetic of R2024b's 'same' padding (Ceil/Floor on Shape) is not data
    assert loaded(str(ONNX_FIXTURES / "matlab2024b_same_pad.onnx")).zero_derivative == ()


@pytest.mark.skipif(not (CORPUS / "MANIFEST.toml").is_file(), reason="no corpus")
def test_wrt_selects_inputs_and_rejects_unknown_names():
    path = CORPUS / "onnx/pytorch03_colisaar_lstm.onnx"
    assert load_onnx(path, check=False).wrt == ("0", "1", "2")
    assert load_onnx(path, check=False, wrt="0").wrt == ("0",)
    with pytest.raises(Mat2GradError, match=r"--wrt 'h0' is not an input .*0, 1, 2"):
        load_onnx(path, check=False, wrt="h0")


def test_wrong_input_shape_is_a_clear_error():
    net = loaded(str(ONNX_FIXTURES / "matlab2020a_conv_fc_dropout.onnx"))
    with pytest.raises(Mat2GradError, match=r"must be batch-first with shape \(Q, 1, 4, 3\)"):
        net(torch.zeros(2, 4, 3))


def test_float32_on_request():
    net = loaded(str(ONNX_FIXTURES / "matlab2024b_same_pad.onnx"), torch.float32)
    assert net(torch.zeros(2, 2, 5, 5)).dtype == torch.float32


def test_describe_onnx():
    info = describe_onnx(ONNX_FIXTURES / "matlab2018_gemm6_features.onnx")
    assert info["matlab_exporter"] and info["producer_version"] == "18.2.0"
    assert info["opsets"] == {"ai.onnx": 6}
    assert info["operators"] == {"Gemm": 2, "Sub": 1, "Relu": 1}
    assert info["inputs"][0]["matlab_layout"] == "features"
    assert info["inputs"][0]["sample_shape"] == (1, 1, 4)
    assert info["outputs"][0]["shape"] == (1, 2, 1, 1)  # as MATLAB 18.2 declared it (wrong)
    assert info["outputs"][0]["sample_shape"] == (2,)  # what the loaded model returns
    assert info["problem"] is None and info["parameters"] == 4 + 20 + 5 + 10 + 2
    assert any("Flatten(axis=1)" in note for note in info["notes"])
    assert "MATLAB layout 'features'" in info["text"]


@pytest.mark.skipif(not (CORPUS / "MANIFEST.toml").is_file(), reason="no corpus")
def test_describe_onnx_names_the_problem_of_an_unsupported_file():
    info = describe_onnx(CORPUS / "onnx/skl2onnx_titanic_pipeline.onnx")
    assert info["producer"] == "skl2onnx" and "OneHotEncoder" in info["problem"]
    assert [i["name"] for i in info["inputs"]] == ["pclass", "sex", "age", "fare", "embarked"]
