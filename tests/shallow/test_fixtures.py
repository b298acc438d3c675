"""The synthetic fixtures (fixtures/MANIFEST.toml, written by fixtures/generate.py).

* the module under test (``mat2grad.load``) reproduces every static fixture's ``Y``, which the
  independent numpy reference (tests/support/reference.py) computed from MATLAB's documented
  formulas;
* the module reproduces every dynamic fixture's ``Y`` over the sequence from the stored
  initial states, and ``preparets`` reproduces the stored X, Xi (and the Ai that matter);
* the committed files are exactly what the generator writes, list every file, and hold what
  the reference computes from them (v7.3 included, read through mat-io).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.io
import tomllib
import torch

import mat2grad
from tests.support import reference as ref
from tests.support.helpers import FIXTURES, assert_close

with open(FIXTURES / "MANIFEST.toml", "rb") as _fh:
    CASES: list[dict[str, Any]] = tomllib.load(_fh)["case"]
STATIC = [c for c in CASES if not c.get("dynamic")]
DYNAMIC = [c for c in CASES if c.get("dynamic")]

# The transfer functions whose derivative is zero almost everywhere.
ZERO_DERIVATIVE = {"hardlim", "hardlims", "compet"}

#: cross-machine slack for regenerated numbers (libm, LAPACK in processpca's SVD)
REGENERATE_RTOL = 1e-12


def _ids(cases):
    return [Path(c["file"]).stem for c in cases]


def read_variables(path: Path) -> dict[str, Any]:
    """A MAT-file's variables: scipy for v5 ("v7") files, mat-io for v7.3 (HDF5)."""
    try:
        return scipy.io.loadmat(path, squeeze_me=False, struct_as_record=True)
    except NotImplementedError:  # scipy: "Please use HDF reader for matlab v7.3 files"
        import matio

        return matio.load_from_mat(str(path))


def _per_port(value: np.ndarray) -> list[np.ndarray]:
    """A static ``R x Q`` matrix, or a ``numInputs x 1`` cell of them -> list of matrices."""
    if value.dtype == object:
        return [np.asarray(v, dtype=np.float64) for v in value[:, 0]]
    return [np.asarray(value, dtype=np.float64)]


def _sequence(value: np.ndarray) -> list[list[np.ndarray]]:
    """A ``rows x TS`` cell of matrices -> rows of time steps."""
    return [
        [np.asarray(value[i, j], dtype=np.float64) for j in range(value.shape[1])]
        for i in range(value.shape[0])
    ]


# --------------------------------------------------------------------------------------
# The module under test against the reference
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", STATIC, ids=_ids(STATIC))
def test_module_reproduces_reference_outputs(case):
    path = FIXTURES / case["file"]
    variables = read_variables(path)
    xs, ys = _per_port(variables[case["inputs"]]), _per_port(variables[case["expected"]])
    model = mat2grad.load(path, network=case["network"])
    with torch.no_grad():
        out = model(*[torch.from_numpy(x.T.copy()) for x in xs])
    outs = [out] if isinstance(out, torch.Tensor) else list(out)
    assert len(outs) == len(ys), f"{case['file']}: {len(outs)} outputs, expected {len(ys)}"
    for k, (o, y) in enumerate(zip(outs, ys, strict=True)):
        assert o.dtype == torch.float64
        assert_close(o.numpy().T, y, case["rtol"], f"{case['file']} output {k + 1}")


def _dynamic_case(case):
    """The module, and the stored X, Xi, Ai, Y as batch-first arrays (matfile's layout)."""
    from mat2grad import matfile

    path = FIXTURES / case["file"]
    variables = matfile.read_mat(path)
    model = mat2grad.load(path, network=case["network"])
    spec = model.spec
    x, _, _ = matfile.sequences_from_matlab(variables[case["inputs"]], tuple(model.input_sizes))
    xi = matfile.states_from_matlab(
        variables[case["xi"]], tuple(model.input_sizes), spec.num_input_delays
    )
    layer_sizes = tuple(layer.size for layer in spec.layers)
    ai = matfile.states_from_matlab(variables[case["ai"]], layer_sizes, spec.num_layer_delays)
    y, _, _ = matfile.sequences_from_matlab(variables[case["expected"]], tuple(model.output_sizes))
    return model, variables, x, xi, ai, y


def _tensors(arrays):
    return None if arrays is None else [torch.from_numpy(a) for a in arrays]


@pytest.mark.parametrize("case", DYNAMIC, ids=_ids(DYNAMIC))
def test_module_reproduces_dynamic_reference_outputs(case):
    """sim(net, X, Xi, Ai) over the whole sequence, from the stored initial states."""
    model, _, x, xi, ai, ys = _dynamic_case(case)
    with torch.no_grad():
        out = model(*_tensors(x), xi=_tensors(xi), ai=_tensors(ai))
    outs = [out] if isinstance(out, torch.Tensor) else list(out)
    for k, (o, y) in enumerate(zip(outs, ys, strict=True)):
        assert o.shape == y.shape
        assert_close(o.numpy(), y, case["rtol"], f"{case['file']} output {k + 1}")


@pytest.mark.parametrize("case", DYNAMIC, ids=_ids(DYNAMIC))
def test_preparets_reproduces_the_stored_states(case):
    """preparets on the raw series (Xseries, Tseries) gives the stored X and Xi, and the
    stored Ai wherever a delayed layer weight reads it (MATLAB's preparets also fills the
    output layers' Ai with processed targets, which no weight of these networks reads)."""
    from mat2grad import matfile
    from mat2grad.shallow.preparets import preparets

    model, variables, x, xi, ai, _ = _dynamic_case(case)
    spec = model.spec
    plain_inputs = tuple(i.size for i in spec.inputs if i.feedback_output is None)
    series, _, _ = (
        matfile.sequences_from_matlab(variables[case["series"]], plain_inputs)
        if plain_inputs
        else ([], 0, False)
    )
    targets, _, _ = matfile.sequences_from_matlab(
        variables[case["targets"]], tuple(model.output_sizes)
    )
    feedback = any(o.feedback_mode != "none" for o in spec.outputs)
    p = preparets(model, series, [] if feedback else targets, targets if feedback else [])
    for a, b in zip(p.x, x, strict=True):
        assert_close(a.numpy(), b, 0.0, "X")
    for a, b in zip(p.xi, xi or [], strict=True):
        assert a.shape[1] == 0 or np.array_equal(a.numpy(), b)
    read = {w.source for w in spec.layer_weights if max(w.delays) > 0}
    for k, (a, b) in enumerate(zip(p.ai, ai or [], strict=True)):
        if k + 1 in read:
            assert_close(a.numpy(), b, 0.0, f"Ai layer {k + 1}")


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_find_networks_lists_the_manifest_path(case):
    paths = [found.path for found in mat2grad.find_networks(FIXTURES / case["file"])]
    assert case["network"] in paths


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_model_contract_sizes_and_zero_derivative(case):
    path = FIXTURES / case["file"]
    net = ref.resolve(read_variables(path), case["network"])
    model = mat2grad.load(path, network=case["network"])
    inputs = ref.cell_list(ref.field(net, "inputs"))
    outputs = [o for o in ref.cell_list(ref.field(net, "outputs")) if not ref.is_empty(o)]
    layers = ref.cell_list(ref.field(net, "layers"))
    assert tuple(model.input_sizes) == tuple(int(ref.scalar(ref.field(p, "size"))) for p in inputs)
    assert tuple(model.output_sizes) == tuple(
        int(ref.scalar(ref.field(p, "size"))) for p in outputs
    )
    transfers = {ref.text(ref.field(layer, "transferFcn")) for layer in layers}
    assert bool(model.zero_derivative) == bool(transfers & ZERO_DERIVATIVE), model.zero_derivative


# --------------------------------------------------------------------------------------
# The fixtures themselves
# --------------------------------------------------------------------------------------


def test_manifest_lists_every_fixture_file():
    on_disk = {p.name for p in FIXTURES.glob("*.mat")}
    assert on_disk == {c["file"] for c in CASES}


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_stored_outputs_are_what_the_reference_computes(case):
    """Guards against a fixture that went stale after a change of the reference."""
    variables = read_variables(FIXTURES / case["file"])
    net = ref.resolve(variables, case["network"])
    if case.get("dynamic"):
        x, xi, ai = (_sequence(variables[case[k]]) for k in ("inputs", "xi", "ai"))
        y, _, _ = ref.simulate(net, x, xi or None, ai or None)
        expected = _sequence(variables[case["expected"]])
        for i, (got, want) in enumerate(zip(y, expected, strict=True)):
            assert_close(np.hstack(got), np.hstack(want), case["rtol"], f"output {i + 1}")
    else:
        got = ref.sim(net, _per_port(variables[case["inputs"]]))
        got = [got] if isinstance(got, np.ndarray) else got
        for i, (g, want) in enumerate(
            zip(got, _per_port(variables[case["expected"]]), strict=True)
        ):
            assert_close(g, want, case["rtol"], f"output {i + 1}")


def _same(a: Any, b: Any, where: str, rtol: float = 0.0) -> None:
    """Recursive comparison of two decoded MAT values (structure exact, numbers to rtol)."""
    if isinstance(a, np.ndarray) and a.dtype.names is not None:
        assert isinstance(b, np.ndarray) and b.dtype.names == a.dtype.names, where
        assert getattr(a, "classname", None) == getattr(b, "classname", None), where
        assert a.shape == b.shape, where
        for idx in np.ndindex(a.shape):
            for name in a.dtype.names:
                _same(a[idx][name], b[idx][name], f"{where}.{name}", rtol)
    elif isinstance(a, np.ndarray) and a.dtype == object:
        assert isinstance(b, np.ndarray) and b.dtype == object and a.shape == b.shape, where
        for idx in np.ndindex(a.shape):
            _same(a[idx], b[idx], f"{where}{list(idx)}", rtol)
    elif isinstance(a, np.ndarray) and a.dtype.kind in "US":
        assert np.array_equal(a, b), where
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.shape == b.shape, where
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        if rtol == 0.0:
            assert np.array_equal(a64, b64, equal_nan=True), where
        elif a.size:
            assert np.array_equal(np.isnan(a64), np.isnan(b64)), where
            scale = max(np.max(np.abs(b64[~np.isnan(b64)]), initial=0.0), 1.0)
            diff = np.max(np.abs(np.nan_to_num(a64) - np.nan_to_num(b64)), initial=0.0)
            assert diff <= rtol * scale, f"{where}: differs by {diff:.3e}"
    else:
        assert type(a) is type(b), where


def test_generator_is_reproducible(tmp_path):
    """The committed fixtures are what `python fixtures/generate.py` writes (fixed seeds)."""
    from fixtures.generate import generate

    generate(tmp_path)
    assert (tmp_path / "MANIFEST.toml").read_text() == (FIXTURES / "MANIFEST.toml").read_text()
    for case in CASES:
        fresh, committed = tmp_path / case["file"], FIXTURES / case["file"]
        if fresh.read_bytes() == committed.read_bytes():
            continue
        a, b = read_variables(fresh), read_variables(committed)
        keys = sorted(k for k in a if not k.startswith("__"))
        assert keys == sorted(k for k in b if not k.startswith("__")), case["file"]
        for k in keys:
            _same(a[k], b[k], f"{case['file']}:{k}", REGENERATE_RTOL)


def _as_scipy_reads(value: Any) -> Any:
    """mat-io's v7.3 forms where scipy reads the same thing differently: the canonical empty
    of an unconnected slot (scipy: a 1x0 double) and a struct with no fields (scipy: [[None]])."""
    name = type(value).__name__
    if name == "MatlabCanonicalEmpty":
        return np.zeros((1, 0))
    if name == "EmptyMatStruct":
        return np.full((1, 1), None, dtype=object)
    return value


@pytest.mark.parametrize(
    "case", [c for c in CASES if c["file"].startswith("v73")], ids=lambda c: c["file"]
)
def test_v73_fixture_holds_the_record_a_v7_file_holds(case):
    """The HDF5 writer loses nothing: mat-io reads from the v7.3 file the same record (field
    names, order, shapes, values) that scipy reads from the same network saved as v7."""
    from fixtures.generate import RECIPES
    from fixtures.matlab_layout import mat_bytes, read_back, rebuild

    v73 = read_variables(FIXTURES / case["file"])
    assert getattr(v73["net"], "classname", None) == "network"
    recipe = next(r for r in RECIPES if r.__name__ == Path(case["file"]).stem)
    v7 = read_back(mat_bytes({"net": recipe()().variables["net"]}))["net"]
    _same(rebuild(v73["net"], _as_scipy_reads), rebuild(v7, lambda v: v), "net", REGENERATE_RTOL)
