"""Converted files reproduce the network without mat2grad.

Every corpus shallow network and every static synthetic fixture (``fixtures/MANIFEST.toml``:
one per MATLAB transfer, weight, net input and processing function, several inputs and outputs,
NaN inputs, every file variant) is converted to ``.pt2``, ``.pt``, ``.onnx`` float64, ``.onnx``
float32 and ``.onnx`` in MATLAB's layout; so is every corpus ONNX file (but the scikit-learn
pipeline, which must be refused naming its operator) and every ``fixtures/onnx`` model, to
``.pt2``, ``.pt``, ``.onnx`` float64 and ``.onnx`` in the file's own precision (and MATLAB's
layout where the inputs are vectors). One fresh interpreter per kind
(``tests/support/portable_check.py``, run with ``python -I`` and with ``import mat2grad``
blocked) loads the files with plain torch / onnxruntime and evaluates them on the case's own
inputs (ONNX sources: 6 random samples, a batch size no export or recording used, and each
one alone); its outputs and, for ``.pt2`` and ``.pt``, its ``torch.func.jacrev`` Jacobians are
compared here with mat2grad's own module (float64, and float32 for the float32 files) and with
``mat2grad.jacobian``.
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
from mat2grad.export import DEFAULT_OPSET
from mat2grad.onnx import load_onnx
from mat2grad.shallow.module import ShallowNetwork
from mat2grad.shallow.record import parse_network
from tests.support.helpers import (
    CORPUS,
    FIXTURES,
    FORWARD_RTOL,
    ONNX_FIXTURES,
    assert_close,
    assert_float32_agree,
    checkout_env,
    corpus_cases,
    float32_rounding_bound,
    requires_corpus,
)
from tests.support.records import tiny_record

CHECKER = Path(__file__).resolve().parents[1] / "support" / "portable_check.py"
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

#: ONNX sources: case id -> file. Corpus files whose MANIFEST check says they are not
#: differentiable must be refused instead (NOT_CONVERTIBLE)
ONNX_SOURCES: dict[str, Path] = {}
ONNX_PARAMS = []
NOT_CONVERTIBLE = []
for _p in corpus_cases("onnx/"):
    if _p.values[0] is None:
        ONNX_PARAMS.append(pytest.param(None, marks=requires_corpus, id="onnx-no-corpus"))
        NOT_CONVERTIBLE.append(pytest.param(None, marks=requires_corpus, id="onnx-no-corpus"))
    elif "not differentiable" in _p.values[0].get("check", ""):
        NOT_CONVERTIBLE.append(pytest.param(CORPUS / _p.values[0]["file"], id=_p.id))
    else:
        key = f"onnx:{Path(_p.values[0]['file']).stem}"
        ONNX_SOURCES[key] = CORPUS / _p.values[0]["file"]
        ONNX_PARAMS.append(pytest.param(key, id=key.split(":", 1)[1]))
for _f in sorted(ONNX_FIXTURES.glob("*.onnx")):
    ONNX_SOURCES[f"onnx-fixture:{_f.stem}"] = _f
    ONNX_PARAMS.append(pytest.param(f"onnx-fixture:{_f.stem}", id=_f.stem))


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
        self.onnx_files: dict[str, dict[str, str]] = {}
        self.onnx_jobs: subprocess.Popen | None = None

    def _stem(self, case_id: str) -> Path:
        name = case_id.replace(":", "_").replace("{", "(").replace("}", ")").replace("/", "_")
        return self.root / name

    def add(self, case_id: str) -> None:
        net = _load(case_id)
        xs = _samples(case_id, net)
        stem = self._stem(case_id)
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
            "bound32": float32_rounding_bound(net, [x.astype(np.float32) for x in xs]),
            "J": _jacobians(net, xs),
        }
        self._enter(case_id, net, files, stem)

    def start_onnx(self, case_ids: list[str]) -> None:
        """Convert the ONNX sources in a process beside this one
        (``tests/support/convert_jobs.py``): from the loaded float64 network ``.pt2``, ``.pt``,
        ``.onnx`` float64 and, for vector inputs, MATLAB's layout; from the file ``.onnx`` in the
        file's own precision (the default). Every format of one network after the other in one
        process: the sequence ``.pt2``, ``.pt``, ``.onnx`` once crashed torch when ONNX
        networks were traced through vmap."""
        jobs = []
        for case_id in case_ids:
            path, stem = ONNX_SOURCES[case_id], self._stem(case_id)
            files = {
                "pt2": (f"{stem}.pt2", {}, True),
                "pt": (f"{stem}.pt", {}, True),
                "onnx64": (f"{stem}.f64.onnx", {}, True),
                "onnx_own": (f"{stem}.own.onnx", {}, False),
            }
            if _vector_inputs(path):
                files["onnx_ml"] = (f"{stem}.ml.onnx", {"matlab_layout": True}, True)
            self.onnx_files[case_id] = {kind: out for kind, (out, _, _) in files.items()}
            jobs += [
                {"source": str(path), "out": out, "options": opts, "loaded": loaded}
                for out, opts, loaded in files.values()
            ]
        (self.root / "jobs.json").write_text(json.dumps(jobs))
        self.onnx_jobs = subprocess.Popen(
            [sys.executable, "-m", "tests.support.convert_jobs", "jobs.json", "jobs_done.json"],
            cwd=self.root,
            env=checkout_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    def finish_onnx(self) -> None:
        """Wait for the conversions; every one must have succeeded."""
        _, err = self.onnx_jobs.communicate(timeout=600)
        assert self.onnx_jobs.returncode == 0, f"the ONNX conversions failed:\n{err}"
        done = json.loads((self.root / "jobs_done.json").read_text())
        failed = {out: why for out, why in done.items() if why != "ok"}
        assert not failed, f"conversions of ONNX sources failed: {failed}"

    def add_onnx(self, case_id: str) -> None:
        """References for an ONNX source: ``load_onnx`` in float64 and in the file's own
        precision, and ``mat2grad.jacobian``, on 6 random samples."""
        path = ONNX_SOURCES[case_id]
        net = load_onnx(path, check=False)
        assert all(net.input_float), "integer inputs: give the case its own samples"
        rng = np.random.default_rng(0)
        xs = [rng.uniform(-1.0, 1.0, (Q, *shape)) for shape in net.input_shapes]
        stem = self._stem(case_id)
        np.savez(f"{stem}.npz", **{f"x{j}": x for j, x in enumerate(xs)})
        own = _declared_precision(path)
        net_own = load_onnx(path, dtype=torch.float32, check=False) if own == "float32" else net
        jac = {}
        if net.not_differentiable is None:
            J = mat2grad.jacobian(net, *xs, progress=False)  # J[k][j], or J for one of each
            blocks = J if isinstance(J, tuple) else ((J,),)
            for k, row in enumerate(blocks):
                for j, block in enumerate(row):
                    jac[f"J{k}_{j}"] = np.asarray(block)
        self.reference[case_id] = {
            "net": net,
            "x": xs,
            "y64": _outputs(net, xs),
            "own": own,
            "y_own": _outputs(net_own, [x.astype(own) for x in xs]),
            "bound_own": (
                float32_rounding_bound(net, [x.astype(own) for x in xs])
                if own == "float32"
                else None
            ),
            "J": jac,
        }
        self._enter(case_id, net, self.onnx_files[case_id], stem)
        self.manifest[-1]["own_dtype"] = own

    def _enter(self, case_id: str, net, files: dict, stem: Path) -> None:
        in_names = [str(n) for n in net.input_names]
        out_names = [n if n not in in_names else f"{n}_2" for n in map(str, net.output_names)]
        self.manifest.append(
            {
                "id": case_id,
                "files": {k: str(v) for k, v in files.items()},
                "data": f"{stem}.npz",
                "n_inputs": len(in_names),
                "input_names": in_names,
                "output_names": out_names,
            }
        )

    def run(self) -> None:
        """The three portable checks, side by side in fresh interpreters."""
        path = self.root / "manifest.json"
        path.write_text(json.dumps(self.manifest))
        procs = {}
        for kind in ("pt2", "pt", "onnx"):
            out = self.root / f"results_{kind}.npz"
            procs[kind] = (
                subprocess.Popen(
                    [sys.executable, "-I", str(CHECKER), kind, str(path), str(out)],
                    cwd=self.root,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                ),
                out,
            )
        for kind, (proc, out) in procs.items():
            _, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, f"portable check of .{kind} failed:\n{err}"
            with np.load(out) as data:
                self.results.update({k: data[k] for k in data.files})


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Converted:
    torch.set_num_threads(1)
    conv = Converted(tmp_path_factory.mktemp("convert"))
    onnx_ids = [p.values[0] for p in ONNX_PARAMS if p.values[0] is not None]
    conv.start_onnx(onnx_ids)
    for p in CASE_PARAMS:
        if p.values[0] is not None:
            conv.add(p.values[0])
    for case_id in onnx_ids:
        conv.add_onnx(case_id)
    conv.finish_onnx()
    conv.run()
    return conv


#: file kind -> (reference outputs, dtype): float64 files against mat2grad's float64 module
#: (to FORWARD_RTOL), the float32 ONNX file against mat2grad's float32 module (within the
#: case's own float32 rounding bound, see NOTE: [float32 round-off bound] in
#: tests/support/helpers.py)
KINDS = {
    "pt2": ("y64", np.float64),
    "pt": ("y64", np.float64),
    "onnx64": ("y64", np.float64),
    "onnx_ml": ("y64", np.float64),
    "onnx32": ("y32", np.float32),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case_id", CASE_PARAMS)
def test_reloaded_files_reproduce_the_network(converted, case_id, kind):
    """Outputs of the reloaded file, without mat2grad, on a batch and on one sample."""
    ref_key, dtype = KINDS[kind]
    ref = converted.reference[case_id]
    for k, expected in enumerate(ref[ref_key]):
        got = converted.results[f"{case_id}|{kind}|y{k}"]
        one = converted.results[f"{case_id}|{kind}|q1_y{k}"]
        assert got.dtype == dtype
        what = f"{case_id} {kind} output {k + 1}"
        if dtype == np.float32:
            assert_float32_agree(got, expected, ref["bound32"][k], what)
            assert_float32_agree(one, expected[:1], ref["bound32"][k][:1], f"{what}, Q=1")
        else:
            assert_close(got, expected, FORWARD_RTOL, what)
            assert_close(one, expected[:1], FORWARD_RTOL, f"{what}, Q=1")


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
# ONNX sources
# --------------------------------------------------------------------------------------


def _assert_close_in(dtype: str, bounds: list[np.ndarray] | None, k: int):
    """float64 results to FORWARD_RTOL; float32 results within the case's rounding bound
    (``bounds[k]``, for the first ``len(actual)`` samples)."""

    def check(actual, expected, what: str) -> None:
        if dtype == "float32":
            assert_float32_agree(actual, expected, bounds[k][: len(actual)], what)
        else:
            assert_close(actual, expected, FORWARD_RTOL, what)

    return check


#: file kind -> reference outputs: float64 files against mat2grad's float64 network
#: (load_onnx), the file in the source's own precision (float32 for all but one) against the
#: network loaded in that precision
ONNX_KINDS = {"pt2": "y64", "pt": "y64", "onnx64": "y64", "onnx_ml": "y64", "onnx_own": "y_own"}


@pytest.mark.parametrize("kind", ONNX_KINDS)
@pytest.mark.parametrize("case_id", ONNX_PARAMS)
def test_reloaded_files_reproduce_the_onnx_network(converted, case_id, kind):
    """Outputs of the file converted from an ONNX source, reloaded without mat2grad, on 6
    samples and on one (every file is also run at 1 and 4 samples by convert itself)."""
    entry = next(e for e in converted.manifest if e["id"] == case_id)
    ref = converted.reference[case_id]
    if kind not in entry["files"]:
        assert kind == "onnx_ml" and any(len(s) > 1 for s in ref["net"].input_shapes)
        return  # the MATLAB layout is written for vector inputs only
    ref_key = ONNX_KINDS[kind]
    for k, expected in enumerate(ref[ref_key]):
        check = _assert_close_in(
            ref["own"] if kind == "onnx_own" else "float64", ref["bound_own"], k
        )
        got = converted.results[f"{case_id}|{kind}|y{k}"]
        assert got.dtype == expected.dtype
        check(got, expected, f"{case_id} {kind} output {k + 1}")
        one = converted.results[f"{case_id}|{kind}|q1_y{k}"]
        check(one, expected[:1], f"{case_id} {kind} output {k + 1}, Q=1")


@pytest.mark.parametrize("kind", ["pt2", "pt"])
@pytest.mark.parametrize("case_id", ONNX_PARAMS)
def test_jacobians_of_the_reloaded_onnx_file_equal_mat2grads(converted, case_id, kind):
    """jacrev of the reloaded file, per sample, equals ``mat2grad.jacobian`` of the network."""
    ref = converted.reference[case_id]
    assert ref["J"], "the network is differentiable: mat2grad gave its Jacobian"
    for key, expected in ref["J"].items():
        got = converted.results[f"{case_id}|{kind}|{key}"]
        assert got.shape == expected.shape == (Q, *got.shape[1:])
        assert_close(got, expected, FORWARD_RTOL, f"{case_id} {kind} Jacobian {key}")


def _vector_inputs(path: Path) -> bool:
    """Whether every input of an ONNX file is (batch, n): the MATLAB layout applies."""
    model = onnx.load(path, load_external_data=False)
    inits = {t.name for t in model.graph.initializer}
    return all(
        len(v.type.tensor_type.shape.dim) == 2 for v in model.graph.input if v.name not in inits
    )


def _declared_precision(path: Path) -> str:
    """The element type of an ONNX file's first input, as numpy names it."""
    elem = onnx.load(path, load_external_data=False).graph.input[0].type.tensor_type.elem_type
    return {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.DOUBLE: "float64"}[elem]


def _original_outputs(path: Path, net, xs: list[np.ndarray], dtype: str) -> list[np.ndarray] | None:
    """onnxruntime on the original file, one sample at a time (some bake batch 1), in
    mat2grad's batch-first layout; None where onnxruntime refuses the file."""
    from mat2grad.onnx.check import import_onnxruntime

    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.log_severity_level = 3  # opset 6 files draw a warning on loading
    try:
        session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception:  # noqa: BLE001 - MATLAB 2018's Gemm on a 4-D tensor, PyTorch 0.3's LSTM-1
        return None
    names = [i.name for i in session.get_inputs() if i.name in net.input_names]
    samples = []
    for q in range(Q):
        feed = {
            name: np.moveaxis(x[q : q + 1], 0, axis).astype(dtype)
            for name, x, axis in zip(names, xs, net.input_batch_axes, strict=True)
        }
        outs = session.run(list(net.output_names), feed)
        axes = net.output_batch_axes
        samples.append([np.moveaxis(y, a, 0) for y, a in zip(outs, axes, strict=True)])
    return [np.concatenate(ys) for ys in zip(*samples, strict=True)]


@pytest.mark.parametrize("case_id", ONNX_PARAMS)
def test_onnx_from_onnx_is_valid_dynamic_and_matches_the_original(converted, case_id):
    """``convert x.onnx -o y.onnx``: the file's own precision by default (float32 for every
    file but a float64 scikit-learn MLP), a dynamic batch Q,
    the checker's full shape inference passes (also for MATLAB 2018's invalid Gemm on 4-D
    tensors), the description names the source and the rewrites, and onnxruntime gives what
    it gives for the original file (where it can run it)."""
    entry = next(e for e in converted.manifest if e["id"] == case_id)
    ref = converted.reference[case_id]
    net, path = ref["net"], ONNX_SOURCES[case_id]
    model = onnx.load(entry["files"]["onnx_own"])
    onnx.checker.check_model(model, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    assert model.opset_import[0].version == DEFAULT_OPSET
    declared = [*inferred.graph.input, *inferred.graph.output]
    shapes = [*net.input_shapes, *net.output_shapes]
    assert [v.name for v in declared] == entry["input_names"] + entry["output_names"]
    elem = {"float32": onnx.TensorProto.FLOAT, "float64": onnx.TensorProto.DOUBLE}[ref["own"]]
    for value, shape in zip(declared, shapes, strict=True):
        assert value.type.tensor_type.elem_type == elem
        dims = value.type.tensor_type.shape.dim
        assert dims[0].dim_param == "Q"
        assert [d.dim_value for d in dims[1:]] == list(shape)
    info = json.loads({p.key: p.value for p in model.metadata_props}["mat2grad"])
    assert info["source_file"] == path.name
    assert info["source_producer"] == net.producer
    assert info["rewrites"] == list(net.notes)
    assert path.name in model.doc_string and "Q, the batch, is dynamic" in model.doc_string
    original = _original_outputs(path, net, ref["x"], ref["own"])
    if original is None:  # onnxruntime refuses the original: the converted file it runs
        assert f"{case_id}|onnx_own|y0" in converted.results
        return
    for k, expected in enumerate(original):
        got = converted.results[f"{case_id}|onnx_own|y{k}"]
        check = _assert_close_in(ref["own"], ref["bound_own"], k)
        check(got, expected, f"{case_id} output {k + 1}")


@pytest.mark.parametrize("suffix", [".pt2", ".pt", ".onnx"])
@pytest.mark.parametrize("path", NOT_CONVERTIBLE)
def test_an_onnx_model_that_is_not_differentiable_is_refused_naming_the_operator(
    tmp_path, path, suffix
):
    with pytest.raises(Mat2GradError, match=r"operator \w+ \(node '[^']+'.*not differentiable"):
        mat2grad.convert(path, tmp_path / f"n{suffix}")
    assert not list(tmp_path.iterdir())


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


@pytest.mark.parametrize(
    ("options", "elem"),
    [([], onnx.TensorProto.FLOAT), (["--dtype", "float64"], onnx.TensorProto.DOUBLE)],
    ids=["own-precision", "float64"],
)
def test_cli_converts_an_onnx_file_to_onnx(tmp_path, capsys, options, elem):
    """MATLAB 2018's Gemm on a 4-D tensor, which the checker rejects, comes out valid, in
    the file's precision unless asked otherwise."""
    src = ONNX_FIXTURES / "matlab2018_gemm6_image.onnx"
    with pytest.raises(Exception, match=r"Input 0 expected to have rank 2 but has rank 4"):
        onnx.checker.check_model(onnx.load(src), full_check=True)
    out = tmp_path / "fixed.onnx"
    assert main(["convert", str(src), "-o", str(out), "--opset", "17", *options]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    model = onnx.load(out)
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 17
    assert model.graph.input[0].type.tensor_type.elem_type == elem
    assert "Gemm 'fc' applied to a rank-4 input" in model.doc_string


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
