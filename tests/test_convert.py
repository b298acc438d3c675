"""Converted files reproduce the network without mat2grad.

Every corpus shallow network and every static synthetic fixture (``fixtures/MANIFEST.toml``:
one per MATLAB transfer, weight, net input and processing function, several inputs and outputs,
NaN inputs, every file variant) is converted to ``.pt2``, ``.pt``, ``.onnx`` float64, ``.onnx``
float32 and ``.onnx`` in MATLAB's layout. One fresh interpreter per kind
(``tests/portable_check.py``, run with ``python -I`` and with ``import mat2grad`` blocked) loads
the files with plain torch / onnxruntime and evaluates them on the case's own inputs; its
outputs and, for ``.pt2`` and ``.pt``, its ``torch.func.jacrev`` Jacobians are compared here
with mat2grad's own module.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import tomllib
import torch

import mat2grad
from mat2grad import Mat2GradError, matfile
from mat2grad.cli import build_parser, main
from mat2grad.convert import DEFAULT_OPSET
from mat2grad.shallow.module import ShallowNetwork
from mat2grad.shallow.record import parse_network
from tests.helpers import (
    CORPUS,
    FIXTURES,
    FLOAT32_RTOL,
    FORWARD_RTOL,
    assert_close,
    corpus_cases,
    requires_corpus,
)
from tests.records import tiny_record

CHECKER = Path(__file__).with_name("portable_check.py")
Q = 6  # samples per case (fewer where the file holds fewer)

# --------------------------------------------------------------------------------------
# The cases: corpus shallow networks and static fixtures, with their own inputs
# --------------------------------------------------------------------------------------

with open(FIXTURES / "MANIFEST.toml", "rb") as _fh:
    _FIXTURES = [c for c in tomllib.load(_fh)["case"] if not c.get("dynamic")]

#: case id -> (folder, manifest entry)
CASES: dict[str, tuple[Path, dict]] = {
    f"fixture:{Path(c['file']).stem}": (FIXTURES, c) for c in _FIXTURES
}
CASE_PARAMS = []
for _p in corpus_cases("shallow/"):
    if _p.values[0] is None:
        CASE_PARAMS.append(pytest.param(None, marks=requires_corpus, id=_p.id))
    else:
        CASES[f"corpus:{_p.id}"] = (CORPUS, _p.values[0])
        CASE_PARAMS.append(pytest.param(f"corpus:{_p.id}", id=_p.id))
CASE_PARAMS += [pytest.param(k, id=k.split(":", 1)[1]) for k in CASES if k.startswith("fixture")]


def _load(case_id: str) -> ShallowNetwork:
    folder, case = CASES[case_id]
    return mat2grad.load(folder / case["file"], case["network"])


def _samples(case_id: str, net: ShallowNetwork) -> list[np.ndarray]:
    """Up to Q samples per input, batch-first, in raw units: the file's own inputs (with its
    first sample holding a NaN, where one does), else uniform over the inputs' ranges."""
    folder, case = CASES[case_id]
    if "inputs" not in case:
        rng = np.random.default_rng(0)
        return [
            rng.uniform(inp.range[:, 0], inp.range[:, 1], (Q, inp.size))
            if inp.range is not None
            else rng.uniform(-2.0, 2.0, (Q, inp.size))
            for inp in net.spec.inputs
        ]
    value = matfile.resolve(matfile.read_mat(folder / case["file"]), case["inputs"])
    ports = list(value.reshape(-1)) if value.dtype == object else [value]
    columns = case.get("samples", "columns") == "columns"
    xs = [matfile.as_float(x).T if columns else matfile.as_float(x) for x in ports]
    rows = list(range(min(Q, xs[0].shape[0])))
    nan_rows = np.flatnonzero(np.any([np.isnan(x).any(axis=1) for x in xs], axis=0))
    if nan_rows.size and not set(rows) & set(nan_rows.tolist()):
        rows[-1] = int(nan_rows[0])
    return [np.ascontiguousarray(x[rows]) for x in xs]


def _hand_made(name: str, **layer1) -> ShallowNetwork:
    """tiny_record (2 -> 2 tansig -> 1 purelin, mapminmax both ends), layer 1 changed."""
    rec = tiny_record()
    if "transfer" in layer1:
        rec["layers"][0, 0].fields["transferFcn"] = layer1["transfer"]
    if "weight" in layer1:
        rec["inputWeights"][0, 0].fields["weightFcn"] = layer1["weight"]
    return ShallowNetwork(parse_network(rec, path="net", source=f"{name}.mat"))


def _outputs(net, xs) -> list[np.ndarray]:
    with torch.no_grad():
        y = net(*[torch.from_numpy(x) for x in xs])
    return [o.numpy() for o in (y if isinstance(y, tuple) else (y,))]


def _jacobians(net, xs) -> dict[str, np.ndarray]:
    """Per-sample Jacobians of mat2grad's module, the same way portable_check.py does."""

    def per_sample(*xi):
        y = net(*(t.unsqueeze(0) for t in xi))
        return tuple(yk.squeeze(0) for yk in (y if isinstance(y, tuple) else (y,)))

    n_in = len(xs)
    jac = torch.func.vmap(torch.func.jacrev(per_sample, argnums=tuple(range(n_in))))
    blocks = jac(*[torch.from_numpy(x) for x in xs])
    return {f"J{k}_{j}": blocks[k][j].numpy() for k in range(len(blocks)) for j in range(n_in)}


# --------------------------------------------------------------------------------------
# Convert everything once, run the three portable checks once (module scope)
# --------------------------------------------------------------------------------------


class Converted:
    def __init__(self, root: Path):
        self.root = root
        self.manifest: list[dict] = []
        self.reference: dict[str, dict] = {}
        self.results: dict[str, np.ndarray] = {}

    def add(self, case_id: str) -> None:
        net = _load(case_id)
        xs = _samples(case_id, net)
        stem = self.root / case_id.replace(":", "_").replace("{", "(").replace("}", ")").replace(
            "/", "_"
        )
        files = {
            "pt2": mat2grad.convert(net, f"{stem}.pt2"),
            "pt": mat2grad.convert(net, f"{stem}.pt"),
            "onnx64": mat2grad.convert(net, f"{stem}.f64.onnx"),
            "onnx32": mat2grad.convert(net, f"{stem}.f32.onnx", dtype="float32"),
            "onnx_ml": mat2grad.convert(net, f"{stem}.ml.onnx", matlab_layout=True),
        }
        np.savez(f"{stem}.npz", **{f"x{j}": x for j, x in enumerate(xs)})
        net32 = copy.deepcopy(net).to(torch.float32)
        self.reference[case_id] = {
            "net": net,
            "x": xs,
            "y64": _outputs(net, xs),
            "y32": _outputs(net32, [x.astype(np.float32) for x in xs]),
            "J": _jacobians(net, xs),
        }
        in_names = list(net.input_names)
        out_names = [n if n not in in_names else f"{n}_2" for n in net.output_names]
        self.manifest.append(
            {
                "id": case_id,
                "files": {k: str(v) for k, v in files.items()},
                "data": f"{stem}.npz",
                "n_inputs": len(xs),
                "input_names": in_names,
                "output_names": out_names,
            }
        )

    def run(self) -> None:
        path = self.root / "manifest.json"
        path.write_text(json.dumps(self.manifest))
        for kind in ("pt2", "pt", "onnx"):
            out = self.root / f"results_{kind}.npz"
            proc = subprocess.run(
                [sys.executable, "-I", str(CHECKER), kind, str(path), str(out)],
                cwd=self.root,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert proc.returncode == 0, f"portable check of .{kind} failed:\n{proc.stderr}"
            with np.load(out) as data:
                self.results.update({k: data[k] for k in data.files})


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Converted:
    torch.set_num_threads(1)
    conv = Converted(tmp_path_factory.mktemp("convert"))
    for p in CASE_PARAMS:
        if p.values[0] is not None:
            conv.add(p.values[0])
    conv.run()
    return conv


#: file kind -> (reference outputs, dtype, tolerance): float64 files against mat2grad's
#: float64 module, the float32 ONNX file against mat2grad's float32 module
KINDS = {
    "pt2": ("y64", np.float64, FORWARD_RTOL),
    "pt": ("y64", np.float64, FORWARD_RTOL),
    "onnx64": ("y64", np.float64, FORWARD_RTOL),
    "onnx_ml": ("y64", np.float64, FORWARD_RTOL),
    "onnx32": ("y32", np.float32, FLOAT32_RTOL),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case_id", CASE_PARAMS)
def test_reloaded_files_reproduce_the_network(converted, case_id, kind):
    """Outputs of the reloaded file, without mat2grad, on a batch and on one sample."""
    ref_key, dtype, rtol = KINDS[kind]
    for k, expected in enumerate(converted.reference[case_id][ref_key]):
        got = converted.results[f"{case_id}|{kind}|y{k}"]
        assert got.dtype == dtype
        assert_close(got, expected, rtol, f"{case_id} {kind} output {k + 1}")
        one = converted.results[f"{case_id}|{kind}|q1_y{k}"]
        assert_close(one, expected[:1], rtol, f"{case_id} {kind} output {k + 1}, Q=1")


@pytest.mark.parametrize("kind", ["pt2", "pt"])
@pytest.mark.parametrize("case_id", CASE_PARAMS)
def test_jacobians_of_the_reloaded_file_equal_mat2grads(converted, case_id, kind):
    ref = converted.reference[case_id]
    for key, expected in ref["J"].items():
        got = converted.results[f"{case_id}|{kind}|{key}"]
        assert got.shape == expected.shape == (Q, *got.shape[1:])
        assert_close(got, expected, FORWARD_RTOL, f"{case_id} {kind} Jacobian {key}")
    if ref["net"].zero_derivative:
        # in these networks every path to the output crosses a step function (hardlim,
        # hardlims, compet): the derivative is zero almost everywhere, and exactly zero here
        assert all(not np.any(j) for j in ref["J"].values())


@pytest.mark.parametrize("case_id", CASE_PARAMS)
def test_onnx_passes_the_checker_with_full_shape_inference(converted, case_id):
    entry = next(e for e in converted.manifest if e["id"] == case_id)
    net = converted.reference[case_id]["net"]
    for kind, batch_axis in (("onnx64", 0), ("onnx32", 0), ("onnx_ml", 1)):
        model = onnx.load(entry["files"][kind])
        onnx.checker.check_model(model, full_check=True)
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
        assert [o.opset_import[0].version for o in [model]] == [DEFAULT_OPSET]
        for value, size in zip(
            list(inferred.graph.input) + list(inferred.graph.output),
            net.input_sizes + net.output_sizes,
            strict=True,
        ):
            dims = value.type.tensor_type.shape.dim
            assert dims[batch_axis].dim_param == "Q"
            assert dims[1 - batch_axis].dim_value == size
        doc = model.doc_string
        assert net.spec.path in doc and Path(net.spec.source).name in doc
        for inp in net.spec.inputs:
            assert all(s.fcn in doc for s in inp.steps)
        meta = {p.key: p.value for p in model.metadata_props}
        info = json.loads(meta["mat2grad"])
        assert info["network_path"] == net.spec.path
        assert info["opset"] == DEFAULT_OPSET


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("case_id", CASE_PARAMS[:2] + CASE_PARAMS[-2:])
def test_torch_files_carry_their_description(converted, case_id):
    entry = next(e for e in converted.manifest if e["id"] == case_id)
    net = converted.reference[case_id]["net"]
    extra = {"mat2grad.json": ""}
    torch.export.load(entry["files"]["pt2"], extra_files=extra)
    info = json.loads(extra["mat2grad.json"])
    assert info["network_path"] == net.spec.path
    assert info["inputs"][0]["processing"] == [s.fcn for s in net.spec.inputs[0].steps]
    assert info["dtype"] == "float64"
    extra = {"mat2grad.json": ""}
    torch.jit.load(entry["files"]["pt"], _extra_files=extra)
    assert json.loads(extra["mat2grad.json"])["layout"].startswith("batch-first")


# --------------------------------------------------------------------------------------
# Options and errors
# --------------------------------------------------------------------------------------


@pytest.fixture
def tiny() -> ShallowNetwork:
    return _hand_made("tiny")


@pytest.mark.parametrize("opset", [7, 8, 9, 11, 13, 17, 20])
def test_chosen_opset_is_written(tiny, tmp_path, opset):
    import onnxruntime as ort

    out = mat2grad.convert(tiny, tmp_path / "n.onnx", opset=opset)
    model = onnx.load(out)
    assert model.opset_import[0].version == opset
    onnx.checker.check_model(model, full_check=True)
    x = np.random.default_rng(opset).uniform(-2, 2, (5, 2))
    (y,) = ort.InferenceSession(out, providers=["CPUExecutionProvider"]).run(None, {"Input": x})
    assert_close(y, _outputs(tiny, [x])[0], FORWARD_RTOL, f"opset {opset}")


@pytest.mark.parametrize(
    ("out", "options", "match"),
    [
        ("n.keras", {}, r"unknown output format '\.keras'.*\.pt2, \.pt, \.onnx"),
        ("n.pt2", {"opset": 14}, r"opset applies to \.onnx output only"),
        ("n.pt", {"matlab_layout": True}, r"MATLAB layout applies to \.onnx output only"),
        ("n.onnx", {"opset": 6}, r"opset 6 cannot be written \(supported: 7 to 20"),
        ("n.onnx", {"dtype": "float16"}, r"dtype must be float64 or float32"),
        ("n.onnx", {"network": "net"}, r"network= applies to a file"),
        ("no/such/n.pt2", {}, r"the folder .*no/such does not exist"),
    ],
)
def test_bad_options_are_clear_errors(tiny, tmp_path, out, options, match):
    with pytest.raises(Mat2GradError, match=match):
        mat2grad.convert(tiny, tmp_path / out, **options)
    assert not list(tmp_path.iterdir())


def test_a_function_without_onnx_equivalent_is_named(tmp_path):
    """normprod compares doubles (Equal), which ONNX has only from opset 11."""
    net = _hand_made("weight-normprod", weight="normprod")
    with pytest.raises(
        Mat2GradError,
        match=r"weight-normprod\.mat: network 'net': cannot be written as ONNX \(\.onnx\) at opset "
        r"10; the part that fails: weight IW\{1,1\} function 'normprod' .*Try another opset",
    ):
        mat2grad.convert(net, tmp_path / "n.onnx", opset=10)
    assert not list(tmp_path.iterdir())
    mat2grad.convert(net, tmp_path / "n.onnx", opset=11)


def test_dynamic_networks_are_refused_naming_the_delays(tmp_path):
    rec = tiny_record()
    rec["inputWeights"][0, 0].fields["delays"] = np.array([[0, 1]])
    rec["IW"][0, 0] = np.ones((2, 4))
    net = ShallowNetwork(parse_network(rec, path="narx"))
    with pytest.raises(Mat2GradError, match=r"'narx' is a dynamic network \(tapped delays on IW"):
        mat2grad.convert(net, tmp_path / "n.pt2")


def test_only_mat2grad_networks_are_taken(tmp_path):
    with pytest.raises(Mat2GradError, match=r"Linear has no 'input_shapes'"):
        mat2grad.convert(torch.nn.Linear(2, 1), tmp_path / "n.pt2")


def test_converting_does_not_change_the_network(tiny, tmp_path):
    mat2grad.convert(tiny, tmp_path / "n.onnx", dtype=torch.float32)
    assert all(p.dtype == torch.float64 for p in tiny.parameters())


def test_a_loaded_module_keeps_its_precision_by_default(tmp_path):
    net32 = ShallowNetwork(parse_network(tiny_record(), path="net"), dtype=torch.float32)
    model = onnx.load(mat2grad.convert(net32, tmp_path / "n.onnx"))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    program = torch.export.load(mat2grad.convert(net32, tmp_path / "n.pt2", dtype="float64"))
    assert program.module()(torch.zeros(2, 2, dtype=torch.float64)).dtype == torch.float64


def test_output_names_distinct_from_input_names(tmp_path):
    rec = tiny_record()
    rec["outputs"][0, 1].fields["name"] = "Input"
    net = ShallowNetwork(parse_network(rec, path="net"))
    model = onnx.load(mat2grad.convert(net, tmp_path / "n.onnx"))
    assert [i.name for i in model.graph.input] == ["Input"]
    assert [o.name for o in model.graph.output] == ["Input_2"]


# --------------------------------------------------------------------------------------
# From a file, and the CLI
# --------------------------------------------------------------------------------------


@requires_corpus
def test_convert_from_a_mat_file_by_network_path(tmp_path):
    src = CORPUS / "shallow/juanpovedapl_net1.mat"
    out = mat2grad.convert(src, tmp_path / "n.pt2", network="net3")
    info = {"mat2grad.json": ""}
    program = torch.export.load(out, extra_files=info)
    assert json.loads(info["mat2grad.json"])["source_file"] == "juanpovedapl_net1.mat"
    x = torch.rand(4, 7, dtype=torch.float64)
    net3 = mat2grad.load(src, "net3")
    assert torch.equal(program.module()(x), net3(x))


@requires_corpus
def test_cli_convert(tmp_path, capsys):
    out = tmp_path / "net.onnx"
    args = ["convert", str(CORPUS / "shallow/abj247_ann.mat"), "-o", str(out)]
    assert main(args + ["--dtype", "float32", "--opset", "13", "--matlab-layout"]) == 0
    model = onnx.load(out)
    assert model.opset_import[0].version == 13
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert "MATLAB layout" in model.doc_string
    assert capsys.readouterr().out.strip().endswith(str(out))


def test_cli_convert_errors_are_one_line(tmp_path, capsys):
    rec_file = tmp_path / "net.mat"
    matfile.write_mat(rec_file, {"x": np.ones((2, 2))})
    assert main(["convert", str(rec_file), "-o", str(tmp_path / "n.pt")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mat2grad: ") and err.count("\n") == 1
    assert main(["convert", str(rec_file), "-o", str(tmp_path / "n.pt"), "--opset", "13"]) == 1
    assert "opset applies to .onnx output only" in capsys.readouterr().err


def test_cli_help_states_the_layout():
    sub = build_parser()._subparsers._group_actions[0].choices["convert"]
    text = " ".join(sub.format_help().split())
    assert "batch-first" in text and "features last" in text
    assert "R x Q" in text  # --matlab-layout
    assert f"default {DEFAULT_OPSET}" in text


def test_onnx_graph_of_a_feedforward_net_is_plain_arithmetic(tiny, tmp_path):
    """mapminmax, weights and biases export as elementwise ops and MatMul, with no shape
    arithmetic, so importers map them onto layers."""
    model = onnx.load(mat2grad.convert(tiny, tmp_path / "n.onnx"))
    ops = [node.op_type for node in model.graph.node]
    assert ops == [
        "Sub",
        "Mul",
        "Add",
        "MatMul",
        "Add",
        "Tanh",
        "MatMul",
        "Add",
        "Sub",
        "Div",
        "Add",
    ]


class _BakesTheBatchSize(torch.nn.Module):
    """Follows the model contract, but its output depends on the batch size as a Python
    number: tracing freezes it, so a converted file is wrong at any other batch size."""

    input_shapes = ((2,),)
    output_shapes = ((2,),)
    input_names = ("x",)
    output_names = ("y",)
    zero_derivative = ()

    def forward(self, x):
        return x * float(x.shape[0])


@pytest.mark.parametrize(
    ("suffix", "match"),
    [
        (".pt", r"the written TorchScript.* does not reproduce the network: output 1 differs"),
        (".onnx", r"the written ONNX .* does not reproduce the network: output 1 differs"),
        (".pt2", r"cannot be written as torch.export ExportedProgram"),
    ],
)
def test_a_file_that_does_not_reproduce_the_network_is_not_written(tmp_path, suffix, match):
    with pytest.raises(Mat2GradError, match=match):
        mat2grad.convert(_BakesTheBatchSize(), tmp_path / f"n{suffix}", dtype="float64")
    assert not list(tmp_path.iterdir())


def test_a_model_with_an_open_feature_size_is_refused(tmp_path):
    class Open(_BakesTheBatchSize):
        input_shapes = ((None,),)

    with pytest.raises(Mat2GradError, match=r"input 'x' has per-sample shape \(\?\), with a size"):
        mat2grad.convert(Open(), tmp_path / "n.pt2")


class _EvaluatedOnly(ShallowNetwork):
    """Refuses training mode, as mat2grad's ONNX networks do."""

    def train(self, mode: bool = True):
        if mode:
            raise Mat2GradError("evaluated, never trained")
        return super().train(False)


@pytest.mark.parametrize("suffix", [".pt2", ".pt", ".onnx"])
def test_networks_that_refuse_training_mode_convert(tmp_path, suffix):
    net = _EvaluatedOnly(parse_network(tiny_record(), path="net"))
    mat2grad.convert(net, tmp_path / f"n{suffix}")
