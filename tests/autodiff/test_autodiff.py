"""The gradient engine: every Jacobian is checked two independent ways (the other AD mode,
the closed form, numpy closed forms written here, central finite differences)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.io as scipy_io
import torch
from torch import nn

import mat2grad
from mat2grad import Mat2GradError, matfile
from mat2grad.autodiff import (
    ZeroDerivativeWarning,
    check,
    check_points,
    hessian,
    jacobian,
    jacobian_chunks,
    jvp,
    vjp,
)
from mat2grad.shallow.functions import TRANSFER, ZERO_DERIVATIVE
from tests.support.helpers import (
    CORPUS,
    FD_SMOOTH_RTOL,
    FLOAT32_RTOL,
    MODES_RTOL,
    U64,
    assert_close,
    central_differences,
    corpus_cases,
    custom_sin,
    rounding_bound,
)
from tests.support.records import network

# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def _blocks(J):
    """Nested Jacobian -> flat list of numpy blocks."""
    if isinstance(J, tuple):
        return [b.numpy() for row in J for b in row]
    return [J.numpy()]


def _modes_agree(net, *xs, modes=("rev", "fwd", "analytic")):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ZeroDerivativeWarning)
        ref = _blocks(jacobian(net, *xs, mode="rev"))
        for mode in modes:
            if mode == "analytic" and jacobian_chunks(net, *xs).mode != "analytic":
                continue
            other = _blocks(jacobian(net, *xs, mode=mode, chunk_size=7))
            for a, b in zip(other, ref, strict=True):
                assert_close(a, b, MODES_RTOL, f"{mode} vs rev")
    return ref


def _predict_fn(net):
    return lambda x: mat2grad.predict(net, x).numpy()


def _corpus_points(case, net, q=40):
    if "inputs" in case:
        variables = matfile.read_mat(CORPUS / case["file"])
        arr = matfile.as_float(matfile.resolve(variables, case["inputs"]))
        arr = arr.T if case.get("samples", "columns") == "columns" else arr
        return np.ascontiguousarray(arr[:q])
    (points,), _ = check_points(net, max_samples=q)
    return points


def _kink_free(net, x, kinks):
    """Keep the samples whose net inputs are away from the kinks (and poles) of the layers'
    transfer functions: there central differences are not a valid reference."""
    spec = net.spec
    ok = np.ones(len(x), dtype=bool)
    with torch.no_grad():
        p = [c.apply(torch.from_numpy(x)) for c in net.input_processing]
        a = net._layers(p, torch.Size([len(x)]))
    for layer in spec.layers:
        if layer.transfer not in kinks:
            continue
        # the layer's net input, recomputed from its inputs (dotprod, netsum)
        n = torch.zeros(len(x), layer.size, dtype=torch.float64)
        for w in spec.weights:
            if w.to == layer.index:
                src = p[w.source - 1] if w.kind == "IW" else a[w.source]
                n = n + src @ torch.from_numpy(w.value).T
        b = spec.biases[layer.index - 1]
        if b is not None:
            n = n + torch.from_numpy(b)
        points, margin = kinks[layer.transfer]
        for k in points:
            ok &= (torch.abs(n - k) > margin).all(1).numpy()
    return x[ok]


#: transfer function -> (net input values where it has a kink or pole, distance to keep)
KINKS = {
    "poslin": ((0.0,), 1e-4),
    "satlin": ((0.0, 1.0), 1e-4),
    "satlins": ((-1.0, 1.0), 1e-4),
    "tribas": ((-1.0, 0.0, 1.0), 1e-4),
    "netinv": ((0.0,), 0.5),  # 1/n: differences lose accuracy near the pole
}


# --------------------------------------------------------------------------------------
# Every corpus network
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", corpus_cases("shallow/"))
def test_corpus_modes_agree_and_match_finite_differences(case):
    net = mat2grad.load(CORPUS / case["file"], case["network"])
    x = _corpus_points(case, net)
    x = x[np.isfinite(x).all(1)]  # NaN samples are tested separately
    J = _modes_agree(net, x)[0]
    assert J.shape == (len(x), net.output_sizes[0], net.input_sizes[0])
    transfers = {layer.transfer for layer in net.spec.layers}
    if transfers & ZERO_DERIVATIVE:
        # hardlim/compet: exactly zero, with a warning (a claim, not an approximation)
        with pytest.warns(ZeroDerivativeWarning, match="zero almost everywhere"):
            J = jacobian(net, x).numpy()
        assert np.all(J == 0)
        return
    x = _kink_free(net, x, KINKS)
    assert len(x) >= 10
    J = jacobian(net, x).numpy()
    fd = central_differences(_predict_fn(net), x)
    assert_close(J, fd, FD_SMOOTH_RTOL, "autograd vs central differences")


def _numpy_one_hidden(spec, x):
    """y and J of a one-hidden-layer network, computed from the spec's numbers with numpy:
    J = G_out . D2 . W2 . diag(f1'(n1)) . W1 . G_in."""
    q, r = x.shape
    p, g_in = x.copy(), np.eye(r)
    for step in spec.inputs[0].steps:
        s = step.settings
        if step.fcn == "removeconstantrows":
            p, g_in = p[:, s["keep"]], g_in[s["keep"]]
        else:
            base = s["ymin"] if step.fcn == "mapminmax" else s["ymean"]
            p = (p - s["xoffset"]) * s["gain"] + base
            g_in = s["gain"][:, None] * g_in
    w1, w2 = spec.input_weights[0].value, spec.layer_weights[0].value
    n1 = p @ w1.T + spec.biases[0]
    f1 = {
        "tansig": (np.tanh(n1), 1 - np.tanh(n1) ** 2),
        "logsig": (1 / (1 + np.exp(-n1)), np.exp(-n1) / (1 + np.exp(-n1)) ** 2),
        "poslin": (np.maximum(n1, 0), (n1 > 0).astype(float)),
    }
    a1, d1 = f1[spec.layers[0].transfer]
    n2 = a1 @ w2.T + spec.biases[1]
    s_out = n2.shape[1]
    transfer2 = spec.layers[1].transfer
    if transfer2 == "purelin":
        a2, d2 = n2, np.broadcast_to(np.eye(s_out), (q, s_out, s_out))
    elif transfer2 == "tansig":
        a2 = np.tanh(n2)
        d2 = np.einsum("qs,st->qst", 1 - a2**2, np.eye(s_out))
    elif transfer2 == "softmax":
        e = np.exp(n2 - n2.max(1, keepdims=True))
        a2 = e / e.sum(1, keepdims=True)
        d2 = np.einsum("qs,st->qst", a2, np.eye(s_out)) - np.einsum("qs,qt->qst", a2, a2)
    else:
        raise AssertionError(transfer2)
    y, g_out = a2, np.eye(s_out)
    for step in reversed(spec.outputs[0].steps):
        s = step.settings
        assert step.fcn == "mapminmax"
        y = (y - s["ymin"]) / s["gain"] + s["xoffset"]
        g_out = g_out / s["gain"][:, None]
    J = np.einsum("st,qtu,uh,qh,hp,pr->qsr", g_out, d2, w2, d1, w1, g_in, optimize=True)
    return y, J


def _one_hidden(spec):
    return (
        len(spec.layers) == 2
        and [(w.to, w.source) for w in spec.input_weights] == [(1, 1)]
        and [(w.to, w.source) for w in spec.layer_weights] == [(2, 1)]
        and [o.layer for o in spec.outputs] == [2]
        and spec.layers[0].transfer in ("tansig", "logsig", "poslin")
        and spec.layers[1].transfer in ("purelin", "tansig", "softmax")
        and all(
            s.fcn in ("mapminmax", "mapstd", "removeconstantrows") for s in spec.inputs[0].steps
        )
    )


@pytest.mark.parametrize(
    "case",
    [
        c
        for c in corpus_cases("shallow/")
        if c.values[0] is None
        or c.values[0]["file"].split("/")[1].split("_")[0]
        in ("abj247", "akobell5", "dan", "mahmoudjumaa", "marakaido", "saniavn")
    ],
)
def test_corpus_one_hidden_layer_closed_form_in_numpy(case):
    net = mat2grad.load(CORPUS / case["file"], case["network"])
    if not _one_hidden(net.spec):
        pytest.skip(f"{case['network']} is not a one-hidden-layer network")
    x = _corpus_points(case, net)
    x = x[np.isfinite(x).all(1)]
    y_np, J_np = _numpy_one_hidden(net.spec, x)
    J, y = jacobian(net, x, return_outputs=True)
    assert_close(y.numpy(), y_np, 1e-13, "outputs")
    assert_close(J.numpy(), J_np, MODES_RTOL, "closed form (numpy) vs mat2grad")
    assert_close(jacobian(net, x, mode="rev").numpy(), J_np, MODES_RTOL, "numpy vs rev")


def test_marakaido_removed_constant_rows_get_exact_zero_columns():
    path = CORPUS / "shallow/marakaido_network.mat"
    if not path.is_file():
        pytest.skip("corpus absent")
    net = mat2grad.load(path)
    keep = net.spec.inputs[0].steps[0].settings["keep"]
    removed = np.setdiff1d(np.arange(768), keep)
    assert removed.size == 141
    x = _corpus_points({"file": "shallow/marakaido_network.mat", "inputs": "x"}, net, q=8)
    for mode in ("analytic", "rev", "fwd"):
        J = jacobian(net, x, mode=mode).numpy()
        assert np.all(J[:, :, removed] == 0), mode
        assert np.all(np.any(J[:, :, keep] != 0, axis=(0, 1))), mode


def test_nan_inputs_give_nan_rows_in_every_mode():
    """mahmoudjumaa's data has NaN inputs: those samples' Jacobians are NaN (as MATLAB's
    outputs are), the same entries in every mode; the other samples are untouched."""
    path = CORPUS / "shallow/mahmoudjumaa_net.mat"
    if not path.is_file():
        pytest.skip("corpus absent")
    net = mat2grad.load(path)
    x = matfile.as_float(matfile.read_mat(path)["Input_Training"])
    bad = ~np.isfinite(x).all(1)
    n_bad = int(bad.sum())
    assert n_bad >= 2
    x = np.concatenate([x[bad], x[~bad][:20]])
    ref = jacobian(net, x, mode="rev").numpy()
    assert np.isnan(ref[:n_bad]).all() and np.isfinite(ref[n_bad:]).all()
    for mode in ("fwd", "analytic"):
        assert_close(jacobian(net, x, mode=mode).numpy(), ref, MODES_RTOL, mode)


# --------------------------------------------------------------------------------------
# Hand-made networks: every transfer and processing function, several topologies
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("transfer", sorted(TRANSFER))
@pytest.mark.parametrize("position", ["hidden", "output"])
def test_every_transfer_function(transfer, position):
    layers = (
        ((5, transfer), (2, "purelin")) if position == "hidden" else ((5, "tansig"), (3, transfer))
    )
    net = network((3,), layers, seed=3)
    x = np.random.default_rng(1).uniform(-2, 2, (60, 3))
    if transfer in ZERO_DERIVATIVE:
        with pytest.warns(ZeroDerivativeWarning):
            for mode in ("rev", "fwd", "analytic"):
                assert np.all(jacobian(net, x, mode=mode).numpy() == 0)
        return
    _modes_agree(net, x)
    assert jacobian_chunks(net, x).mode == "analytic"
    x = _kink_free(net, x, KINKS)
    assert len(x) >= 20
    fd = central_differences(_predict_fn(net), x)
    assert_close(jacobian(net, x).numpy(), fd, FD_SMOOTH_RTOL, "central differences")


@pytest.mark.parametrize(
    ("input_steps", "output_steps"),
    [
        ([[]], [[]]),
        ([["mapminmax"]], [["mapminmax"]]),
        ([["mapstd"]], [["mapstd"]]),
        ([[("removeconstantrows", [2, 4]), "mapminmax"]], [["mapminmax"]]),
        ([["mapminmax", "processpca"]], [[("removeconstantrows", [1]), "mapminmax"]]),
        ([["mapstd", "mapminmax"]], [["processpca"]]),
    ],
    ids=["none", "mapminmax", "mapstd", "removeconstantrows", "pca+rcr-out", "chain"],
)
def test_processing_functions(input_steps, output_steps):
    net = network(
        (5,),
        ((6, "tansig"), (3, "purelin")),
        input_steps=input_steps,
        output_steps=output_steps,
        seed=4,
    )
    x = np.random.default_rng(2).normal(size=(50, 5))
    J = _modes_agree(net, x)[0]
    fd = central_differences(_predict_fn(net), x)
    assert_close(J, fd, FD_SMOOTH_RTOL, "central differences")
    for step in input_steps[0]:
        if isinstance(step, tuple):  # removed input rows: exact zero columns
            assert np.all(J[:, :, np.array(step[1]) - 1] == 0)
    for step in output_steps[0]:
        if isinstance(step, tuple):  # constant output rows: exact zero rows
            assert np.all(J[:, np.array(step[1]) - 1, :] == 0)


TOPOLOGIES = {
    "three-layer": dict(input_sizes=(4,), layers=((6, "tansig"), (5, "logsig"), (2, "purelin"))),
    "cascade": dict(
        input_sizes=(3,),
        layers=((4, "tansig"), (3, "tansig"), (2, "purelin")),
        input_connect={(1, 1), (2, 1), (3, 1)},
        layer_connect={(2, 1), (3, 1), (3, 2)},
    ),
    "two-in-two-out": dict(
        input_sizes=(5, 4),
        layers=((6, "logsig"), (3, "tansig"), (2, "purelin")),
        input_connect={(1, 1), (2, 2), (3, 1)},
        layer_connect={(2, 1), (3, 2), (3, 1)},
        output_layers=(2, 3),
        input_steps=[[("removeconstantrows", [2]), "mapminmax"], ["mapstd", "processpca"]],
        output_steps=[["mapminmax"], [("removeconstantrows", [1, 3]), "mapminmax"]],
    ),
    "softmax-after-relu": dict(input_sizes=(4,), layers=((7, "poslin"), (3, "softmax"))),
    "linear": dict(input_sizes=(3,), layers=((4, "purelin"), (2, "purelin"))),
    "no-bias": dict(input_sizes=(3,), layers=((4, "tansig"), (2, "purelin")), bias=False),
    "unused-input": dict(
        input_sizes=(3, 2), layers=((4, "tansig"), (2, "purelin")), input_connect={(1, 1)}
    ),
}


@pytest.mark.parametrize("name", sorted(TOPOLOGIES))
def test_topologies(name):
    net = network(**TOPOLOGIES[name], seed=5)
    rng = np.random.default_rng(3)
    xs = [rng.normal(size=(40, r)) for r in net.input_sizes]
    blocks = _modes_agree(net, *xs)
    n_out, n_in = len(net.output_sizes), len(net.input_sizes)
    J = jacobian(net, *xs)
    if n_out == 1 and n_in == 1:
        assert isinstance(J, torch.Tensor)
    else:
        assert len(J) == n_out and all(len(row) == n_in for row in J)
    # each block against central differences of the right output/input
    for k in range(n_out):
        for j in range(n_in):

            def f(xj, k=k, j=j):
                args = [xj if i == j else x for i, x in enumerate(xs)]
                y = mat2grad.predict(net, *args)
                return (y[k] if isinstance(y, tuple) else y).numpy()

            x_ok = _kink_free(net, xs[0], KINKS) if n_in == 1 else xs[j]
            if n_in == 1:
                fd = central_differences(f, x_ok)
                Jb = jacobian(net, x_ok)
                Jb = Jb[k][0] if isinstance(Jb, tuple) else Jb
            else:
                fd = central_differences(f, xs[j])
                Jb = J[k][j]
            assert_close(Jb.numpy(), fd, FD_SMOOTH_RTOL, f"output {k}, input {j}")
    if name == "unused-input":
        assert np.all(blocks[1] == 0)


def test_wrt_selects_inputs():
    net = network(**TOPOLOGIES["two-in-two-out"], seed=5)
    rng = np.random.default_rng(0)
    xs = [rng.normal(size=(10, r)) for r in net.input_sizes]
    full = jacobian(net, *xs)
    for mode in ("rev", "fwd", "analytic"):
        only = jacobian(net, *xs, wrt=1, mode=mode)
        assert len(only) == 2 and all(len(row) == 1 for row in only)
        for k in range(2):
            assert_close(only[k][0].numpy(), full[k][1].numpy(), MODES_RTOL, mode)
    with pytest.raises(Mat2GradError, match="wrt must name inputs"):
        jacobian(net, *xs, wrt=2)


@pytest.mark.parametrize(
    ("transfer", "n_value", "expected"),
    [
        ("poslin", 0.0, 0.0),  # relu'(0) = 0, torch's convention
        ("satlin", 0.0, 1.0),  # clamp passes the derivative at its corners
        ("satlin", 1.0, 1.0),
        ("satlins", -1.0, 1.0),
        ("tribas", 0.0, 0.0),  # abs'(0) = 0
        ("tribas", 1.0, -1.0),  # clamp(1-|n|, min=0) passes at the corner
        ("elliot2sig", 0.0, 0.0),
    ],
)
def test_kink_conventions(transfer, n_value, expected):
    """Exactly at a kink every mode returns the documented (torch) convention."""
    net = network((1,), ((1, transfer),), input_steps=[[]], output_steps=[[]], bias=False)
    with torch.no_grad():
        net.IW["1_1"].fill_(1.0)
    x = np.array([[n_value]])
    for mode in ("rev", "fwd", "analytic"):
        assert jacobian(net, x, mode=mode).item() == expected, mode


def test_chunking_does_not_change_results():
    net = network((4,), ((6, "tansig"), (2, "purelin")))
    x = np.random.default_rng(0).normal(size=(23, 4))
    for mode in ("rev", "analytic"):
        ref = jacobian(net, x, mode=mode, chunk_size=23).numpy()
        for c in (1, 5, 22):
            assert_close(jacobian(net, x, mode=mode, chunk_size=c).numpy(), ref, 1e-15, mode)


@pytest.mark.parametrize("kernels", ["torch", "numpy"])
def test_outputs_are_the_forward_pass(monkeypatch, kernels):
    """The outputs returned with the Jacobian are the forward pass: the closed form's are
    predict's bit for bit (predict runs the closed form's forward pass for static shallow
    networks); the autograd modes' are the module's bit for bit; and the two passes agree bit
    for bit with torch's kernels, within the derived float64 rounding bound of two
    evaluations with numpy's (NOTE: [Kernel backend])."""
    monkeypatch.setenv("MAT2GRAD_KERNELS", kernels)
    net = network((4,), ((6, "tansig"), (2, "purelin")))
    x = np.random.default_rng(0).normal(size=(30, 4))
    expected = mat2grad.predict(net, x).numpy()
    with torch.no_grad():
        module = net(torch.from_numpy(x)).numpy()
    _, y = jacobian(net, x, mode="analytic", return_outputs=True, chunk_size=30)
    np.testing.assert_array_equal(y.numpy(), expected)
    for mode in ("rev", "fwd"):
        _, y = jacobian(net, x, mode=mode, return_outputs=True, chunk_size=30)
        np.testing.assert_array_equal(y.numpy(), module)
    if kernels == "torch":
        np.testing.assert_array_equal(module, expected)
    else:
        (bound,) = rounding_bound(net, [x], U64)
        assert (np.abs(module - expected) <= 2 * bound).all()


def test_numpy_and_tensor_inputs_float32_and_single_sample():
    net = network((4,), ((6, "tansig"), (2, "purelin")))
    x = np.random.default_rng(0).normal(size=(12, 4))
    J = jacobian(net, x)
    assert J.dtype == torch.float64 and J.shape == (12, 2, 4)
    assert torch.equal(jacobian(net, torch.from_numpy(x)), J)
    J32 = jacobian(net, x, dtype=torch.float32)
    assert J32.dtype == torch.float32
    assert_close(J32.double().numpy(), J.numpy(), FLOAT32_RTOL, "float32")
    assert next(net.parameters()).dtype == torch.float64  # the model was not converted
    one = jacobian(net, x[0])
    assert one.shape == (1, 2, 4)
    assert_close(one.numpy(), J[:1].numpy(), 1e-15, "single sample")


def test_bad_arguments_are_clear_errors():
    net = network((4,), ((6, "tansig"), (2, "purelin")))
    x = np.zeros((3, 4))
    with pytest.raises(Mat2GradError, match="mode must be one of"):
        jacobian(net, x, mode="magic")
    with pytest.raises(Mat2GradError, match="takes 4 features"):
        jacobian(net, np.zeros((3, 5)))
    with pytest.raises(Mat2GradError, match="chunk_size"):
        jacobian(net, x, chunk_size=0)
    with pytest.raises(Mat2GradError, match="no samples"):
        jacobian(net, np.zeros((0, 4)))
    lvq = network((4,), ((5, "tansig"), (2, "purelin")), weight_fcn="dist")
    with pytest.raises(Mat2GradError, match="analytic.*not available.*dist"):
        jacobian(lvq, x, mode="analytic")


# --------------------------------------------------------------------------------------
# Models that are not MATLAB networks: the engine only needs the model contract
# --------------------------------------------------------------------------------------


class _Recurrent(nn.Module):
    """A small recurrent model over (Q, T, R) inputs: the Jacobian is through time."""

    def __init__(self, r=3, h=4, s=2):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.W = nn.Parameter(torch.randn(r, h, generator=g, dtype=torch.float64))
        self.U = nn.Parameter(0.5 * torch.randn(h, h, generator=g, dtype=torch.float64))
        self.V = nn.Parameter(torch.randn(h, s, generator=g, dtype=torch.float64))

    def forward(self, x):
        h = torch.zeros(x.shape[0], self.U.shape[0], dtype=x.dtype)
        for t in range(x.shape[1]):
            h = torch.tanh(x[:, t] @ self.W + h @ self.U)
        return h @ self.V


def test_generic_module_with_time_series_input():
    model = _Recurrent()
    x = torch.randn(9, 5, 3, dtype=torch.float64)
    J = jacobian(model, x)
    assert J.shape == (9, 2, 5, 3)  # (Q, S, T, R)
    assert jacobian_chunks(model, x).mode == "rev"
    assert_close(jacobian(model, x, mode="fwd").numpy(), J.numpy(), MODES_RTOL, "fwd")

    def f(flat):
        with torch.no_grad():
            return model(torch.from_numpy(flat).view(-1, 5, 3)).numpy()

    fd = central_differences(f, x.reshape(9, 15).numpy())
    assert_close(J.reshape(9, 2, 15).numpy(), fd, FD_SMOOTH_RTOL, "through time")
    # parameters were frozen only during the call, and no gradient was accumulated
    assert all(p.requires_grad and p.grad is None for p in model.parameters())


def test_train_mode_is_restored_and_dropout_is_off_during_the_call():
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Dropout(0.5), nn.Linear(8, 2)).double()
    model.train()
    x = torch.randn(20, 4, dtype=torch.float64)
    J1, J2 = jacobian(model, x), jacobian(model, x)
    assert torch.equal(J1, J2)  # eval mode: no dropout noise
    assert model.training


class _MixesSamples(nn.Module):
    def forward(self, x):
        return torch.tanh(x - x.mean(0))  # batch statistics: sample q sees the others


def test_models_that_mix_samples_are_refused():
    with pytest.raises(Mat2GradError, match="mixes samples"):
        jacobian(_MixesSamples(), torch.randn(6, 3, dtype=torch.float64))
    with pytest.raises(Mat2GradError, match="mixes samples"):
        hessian(_MixesSamples(), torch.randn(6, 3, dtype=torch.float64), output=0)


class _Swappable(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 2).double()
        self.inner = nn.Tanh()

    def forward(self, x):
        return self.inner(self.linear(x))


def test_independence_is_checked_once_per_model_state():
    """A model that passed is not checked again (the check evaluates sample 1 alone); a
    changed model is, and refused if it now mixes samples."""
    model = _Swappable()
    x = torch.randn(6, 3, dtype=torch.float64)
    sizes: list[int] = []
    model.register_forward_pre_hook(lambda m, args: sizes.append(args[0].shape[0]))

    def checked() -> bool:  # sample 1 alone after the chunk of 6
        found = 6 in sizes and 1 in sizes[sizes.index(6) :]
        sizes.clear()
        return found

    jacobian(model, x)
    assert checked()
    jacobian(model, x)
    assert not checked()
    jacobian(model, x.flip(0) * 2)  # other values, same shapes
    assert not checked()
    jacobian(model, x.float(), dtype=torch.float32)  # another dtype: checked again
    assert checked()
    model.inner = _MixesSamples()
    with pytest.raises(Mat2GradError, match="mixes samples"):
        jacobian(model, x)


def test_not_differentiable_models_raise_with_the_reason():
    model = nn.Linear(3, 2).double()
    model.not_differentiable = "ArgMax (node 'argmax_0') has no derivative"
    with pytest.raises(Mat2GradError, match="ArgMax"):
        jacobian(model, torch.zeros(2, 3, dtype=torch.float64))
    with pytest.raises(Mat2GradError, match="ArgMax"):
        vjp(model, torch.zeros(2, 3, dtype=torch.float64), torch.zeros(2, 2))


def test_zero_derivative_attribute_warns():
    model = nn.Linear(3, 2).double()
    model.zero_derivative = ("node 'sign'",)
    with pytest.warns(ZeroDerivativeWarning, match="node 'sign'"):
        jacobian(model, torch.zeros(2, 3, dtype=torch.float64))


# --------------------------------------------------------------------------------------
# vjp, jvp, hessian
# --------------------------------------------------------------------------------------


def test_vjp_and_jvp_are_contractions_of_the_jacobian():
    net = network(**TOPOLOGIES["two-in-two-out"], seed=1)
    rng = np.random.default_rng(0)
    xs = [rng.normal(size=(15, r)) for r in net.input_sizes]
    J = jacobian(net, *xs)
    vs = tuple(rng.normal(size=(15, s)) for s in net.output_sizes)
    ts = tuple(rng.normal(size=(15, r)) for r in net.input_sizes)
    g = vjp(net, tuple(xs), vs, chunk_size=4)
    t = jvp(net, tuple(xs), ts, chunk_size=4)
    for j in range(2):
        expected = sum(np.einsum("qs,qsr->qr", vs[k], J[k][j].numpy()) for k in range(2))
        assert_close(g[j].numpy(), expected, MODES_RTOL, f"vjp input {j}")
    for k in range(2):
        expected = sum(np.einsum("qsr,qr->qs", J[k][j].numpy(), ts[j]) for j in range(2))
        assert_close(t[k].numpy(), expected, MODES_RTOL, f"jvp output {k}")
    with pytest.raises(Mat2GradError, match="expected 2 array"):
        vjp(net, tuple(xs), vs[0])


def test_hessian_of_a_tanh_network_against_numpy_and_differences():
    """H_q = sum_h c_h f''(n_h) a_h a_h^T for y = c . tanh(A x + b) + d (raw units)."""
    net = network((4,), ((6, "tansig"), (2, "purelin")), seed=7)
    x = np.random.default_rng(0).normal(size=(10, 4))
    spec = net.spec
    s_in, s_out = spec.inputs[0].steps[0].settings, spec.outputs[0].steps[0].settings
    A = spec.input_weights[0].value * s_in["gain"]  # d n / d x_raw
    n = ((x - s_in["xoffset"]) * s_in["gain"] + s_in["ymin"]) @ spec.input_weights[0].value.T
    n = n + spec.biases[0]
    t = np.tanh(n)
    fpp = -2 * t * (1 - t * t)  # tanh''
    for k in range(2):
        c = spec.layer_weights[0].value[k] / s_out["gain"][k]
        H_np = np.einsum("h,qh,hr,ht->qrt", c, fpp, A, A)
        H = hessian(net, x, output=k, chunk_size=3)
        assert H.shape == (10, 4, 4)
        assert_close(H.numpy(), H_np, MODES_RTOL, f"hessian output {k}")
        # and against central differences of the Jacobian row k
        fd = central_differences(lambda z, k=k: jacobian(net, z).numpy()[:, k, :], x)
        assert_close(H.numpy(), fd, 1e-6, "hessian vs differences of J")
    H_all = hessian(net, x)
    assert H_all.shape == (10, 2, 4, 4)
    assert_close(H_all[:, 1].numpy(), hessian(net, x, output=1).numpy(), 1e-15, "all vs one")


def test_hessian_errors_and_linear_networks():
    net = network((3,), ((2, "purelin"),))
    H = hessian(net, np.ones((4, 3)), output=1)
    assert np.all(H.numpy() == 0)
    with pytest.raises(Mat2GradError, match="out of range"):
        hessian(net, np.ones((4, 3)), output=2)
    two = network(**TOPOLOGIES["two-in-two-out"])
    with pytest.raises(Mat2GradError, match="choose one with wrt"):
        hessian(two, np.ones((2, 5)), np.ones((2, 4)))
    H = hessian(two, np.ones((2, 5)), np.ones((2, 4)), output=(1, 0), wrt=1)
    assert H.shape == (2, 4, 4)


# --------------------------------------------------------------------------------------
# check: autograd against finite differences
# --------------------------------------------------------------------------------------


def test_check_passes_on_smooth_networks_without_skipping():
    net = network((5,), ((8, "tansig"), (3, "purelin")))
    result = check(net, np.random.default_rng(0).uniform(-3, 3, (30, 5)))
    assert result.passed and result.max_error < 1e-8
    assert result.skipped == (0,) and result.compared == (30 * 3 * 5,)
    assert "OK" in result.summary()


def test_check_skips_entries_at_kinks_and_says_so():
    net = network((1,), ((1, "poslin"),), input_steps=[[]], output_steps=[[]], bias=False)
    x = np.array([[0.0], [1e-9], [-1e-9], [0.5], [-0.5]])  # three within the step of 0
    result = check(net, x)
    assert result.skipped == (3,) and result.compared == (2,)
    assert result.passed
    assert "not smooth" in result.summary()


_WrongGradient = custom_sin(gradient_factor=1.01)  # 1% wrong


def test_check_fails_on_a_wrong_gradient():
    class Model(nn.Module):
        def forward(self, x):
            return _WrongGradient.apply(x)

    result = check(Model(), np.random.default_rng(0).normal(size=(5, 3)), mode="rev")
    assert not result.passed
    assert 0.005 < result.max_error < 0.02
    assert "FAILED" in result.summary()


def test_check_points_come_from_the_network():
    path = CORPUS / "shallow/saniavn_net1_v7.mat"
    if path.is_file():
        net = mat2grad.load(path)
        (pts,), source = check_points(net, max_samples=7)
        assert pts.shape == (7, 340) and "exampleInput" in source
    net = network((3,), ((4, "tansig"), (1, "purelin")))
    with pytest.raises(Mat2GradError, match="neither example inputs"):
        check_points(net)
    with pytest.raises(Mat2GradError, match="no example inputs"):
        check_points(nn.Linear(2, 2))


def test_closed_form_follows_changes_to_the_network():
    """The closed-form plan is kept on the model between calls; changing weights or
    processing settings in place must be seen by the next call."""
    net = network((4,), ((6, "tansig"), (2, "purelin")))
    x = np.random.default_rng(0).normal(size=(9, 4))
    before = jacobian(net, x).numpy()
    with torch.no_grad():
        net.IW["1_1"].mul_(2.0)
        net.input_processing[0].s0_gain.mul_(3.0)
        net.output_processing[0].s0_gain.mul_(0.5)
    after = jacobian(net, x).numpy()
    assert np.abs(after - before).max() > 1e-3
    assert_close(after, jacobian(net, x, mode="rev").numpy(), MODES_RTOL, "after the change")


def test_closed_form_keeps_only_small_work_buffers(monkeypatch):
    """Buffers of a small call stay for the next one (reused, not reallocated); those of a
    call over KEEP_BYTES are dropped when it ends, so memory does not stay high after it."""
    from mat2grad.shallow import jacobian as closed

    monkeypatch.setattr(closed, "KEEP_BYTES", 2**20)
    KEEP_BYTES, closed_form = closed.KEEP_BYTES, closed.closed_form

    net = network((4,), ((6, "tansig"), (2, "purelin")))
    plan, _ = closed_form(net, (0,))
    small = jacobian(net, np.ones((10, 4))).numpy()
    kept = dict(plan._ws)
    assert kept and sum(b.numel() * b.element_size() for b in kept.values()) <= KEEP_BYTES
    again = jacobian(net, np.ones((10, 4))).numpy()
    assert all(plan._ws[k].data_ptr() == b.data_ptr() for k, b in kept.items())
    np.testing.assert_array_equal(again, small)
    big = KEEP_BYTES // (8 * 6) + 1  # more samples than the cap holds for one layer alone
    jacobian(net, np.ones((big, 4)), chunk_size=big)
    assert closed_form(net, (0,))[0] is plan and not plan._ws


# --------------------------------------------------------------------------------------
# Every static synthetic fixture, against differences of the independent numpy reference
# --------------------------------------------------------------------------------------


def _fixture_cases():
    import tomllib

    from tests.support.helpers import FIXTURES

    path = FIXTURES / "MANIFEST.toml"
    if not path.is_file():
        return [pytest.param(None, marks=pytest.mark.skip(reason="no fixtures"), id="none")]
    with open(path, "rb") as fh:
        cases = tomllib.load(fh)["case"]
    return [
        pytest.param(c, id=c["file"].removesuffix(".mat")) for c in cases if not c.get("dynamic")
    ]


def _read_raw(path):
    try:
        return scipy_io.loadmat(path, squeeze_me=False, struct_as_record=True)
    except NotImplementedError:  # v7.3
        import matio

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return matio.load_from_mat(str(path))


@pytest.mark.parametrize("case", _fixture_cases())
def test_fixture_modes_agree_and_match_reference_differences(case):
    """rev == fwd (== the closed form) on every static fixture, and the Jacobian equals
    central differences of tests/support/reference.py's numpy simulation (which shares no code with
    mat2grad) wherever the network is smooth."""
    from tests.support import reference as ref
    from tests.support.helpers import FIXTURES

    path = FIXTURES / case["file"]
    raw = _read_raw(path)
    record = ref.resolve(raw, case["network"])
    value = raw[case["inputs"]]
    xs = (
        [np.asarray(v, dtype=np.float64) for v in value[:, 0]]
        if value.dtype == object
        else [np.asarray(value, dtype=np.float64)]
    )
    net = mat2grad.load(path, case["network"])
    batch = [x.T.copy()[:40] for x in xs]
    blocks = _modes_agree(net, *batch)
    transfers = {layer.transfer for layer in net.spec.layers}
    if transfers & ZERO_DERIVATIVE:
        assert all(np.all(b[np.isfinite(b)] == 0) for b in blocks)
        return
    n_out, n_in = len(net.output_sizes), len(batch)
    for j in range(n_in):
        keep = np.ones(len(batch[j]), dtype=bool)
        if n_in == 1 and all(w.fcn == "dotprod" for w in net.spec.weights):
            kept = _kink_free(net, batch[0], KINKS)
            keep = np.isin(batch[0], kept).all(1)

        def f(xj, j=j, keep=keep):
            args = [(xj if i == j else batch[i][keep]).T for i in range(n_in)]
            y = ref.sim(record, args if n_in > 1 else args[0])
            return [np.asarray(o).T for o in (y if isinstance(y, list) else [y])]

        for k in range(n_out):
            fd = central_differences(lambda z, k=k: f(z)[k], batch[j][keep])
            assert_close(blocks[k * n_in + j][keep], fd, FD_SMOOTH_RTOL, f"output {k}, input {j}")


def test_check_handles_a_near_constant_input_row():
    """A feature whose samples vary by 1e-15 (passed through with gain 1, as MATLAB's v7
    mapminmax rule does): a step from the spread would not move the outputs at all."""
    net = network((3,), ((4, "tansig"), (1, "purelin")), input_steps=[[]])
    x = np.random.default_rng(0).normal(size=(20, 3))
    x[:, 2] = 1e-15 * np.random.default_rng(1).normal(size=20)
    result = check(net, x)
    assert result.passed and result.skipped == (0,), result.summary()
    J = jacobian(net, x).numpy()
    assert_close(J, central_differences(_predict_fn(net), x), FD_SMOOTH_RTOL, "test helper")


def test_progress_bar_only_when_asked_or_on_a_terminal(capsys):
    net = network((4,), ((6, "tansig"), (2, "purelin")))
    x = np.zeros((50, 4))
    jacobian(net, x, chunk_size=10)  # default: not a terminal here, so no bar
    assert capsys.readouterr().err == ""
    jacobian(net, x, chunk_size=10, progress=True)
    assert "jacobian" in capsys.readouterr().err
