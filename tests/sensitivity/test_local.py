"""mat2grad.sensitivity: moment states, NeuralSens' local statistics, scales, bootstrap and
bad input. Statistics are checked against numpy formulas on an independently formed
Jacobian (central differences), against the Python package ``neuralsens`` itself, and
chunked accumulation against the one-shot formula."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

import mat2grad
from mat2grad.autodiff import ZeroDerivativeWarning
from mat2grad.errors import Mat2GradError
from mat2grad.sensitivity import moments as mom
from mat2grad.sensitivity import sensitivity
from mat2grad.sensitivity.bootstrap import Reservoir, poisson_weights
from mat2grad.sensitivity.network import recorded_ranges
from mat2grad.sensitivity.stream import accumulate
from tests.support.helpers import (
    CORPUS,
    FD_SMOOTH_RTOL,
    FIXTURES,
    central_differences,
    corpus_cases,
)

#: chunked moment merges vs the one-shot formula: round-off of a few dozen additions
CHUNK_RTOL = 1e-12
#: mat2grad vs neuralsens: two float64 evaluations of the same products (the issue's bound)
NEURALSENS_RTOL = 1e-10

STATIC = [
    "example_fitnet.mat",
    "deep3_tansig_logsig_poslin.mat",
    "cascadeforwardnet.mat",
    "multi_input.mat",
    "multi_output.mat",
    "mapstd_processpca.mat",
]


def _samples(net, q, seed=0):
    """Uniform samples in the network's recorded input ranges (one array per input)."""
    rng = np.random.default_rng(seed)
    out = []
    for spec_in in net.spec.inputs:
        lo, hi = spec_in.range[:, 0], spec_in.range[:, 1]
        out.append(lo + rng.random((q, len(lo))) * (hi - lo))
    return out


def _flat_jacobian(net, xs):
    J = mat2grad.jacobian(net, *xs)
    if isinstance(J, torch.Tensor):
        return J.numpy()
    return np.concatenate([np.concatenate([b.numpy() for b in row], axis=2) for row in J], axis=1)


def _numpy_stats(J, ddof=0):
    return {
        "mean": J.mean(0),
        "std": J.std(0, ddof=ddof),
        "rms": np.sqrt((J**2).mean(0)),
        "mean_abs": np.abs(J).mean(0),
    }


def _rel(a, b):
    scale = np.max(np.abs(b))
    return np.max(np.abs(a - b)) / (scale if scale > 0 else 1.0)


# -- moment states -------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 7, 50])
def test_moments_chunked_equal_one_shot(size):
    rng = np.random.default_rng(3)
    x = rng.normal(5.0, 2.0, size=(50, 3, 4))
    state = mom.empty((3, 4))
    for a in range(0, 50, size):
        state = mom.combine(state, mom.chunk(x[a : a + size]))
    mean, var = mom.aggregate(state, ddof=1)
    assert _rel(mean, x.mean(0)) <= CHUNK_RTOL
    assert _rel(var, x.var(0, ddof=1)) <= CHUNK_RTOL
    assert int(state.count) == 50


def test_weighted_moments_equal_repeated_samples():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(20, 5))
    w = poisson_weights(11, 0, 20, 6)
    state = mom.combine(mom.chunk(x[:9], w[:9]), mom.chunk(x[9:], w[9:]))
    mean, var = mom.aggregate(state, 0)
    for b in range(6):
        rep = np.repeat(x, w[:, b].astype(int), axis=0)
        assert _rel(mean[b], rep.mean(0)) <= CHUNK_RTOL
        assert _rel(var[b], rep.var(0)) <= CHUNK_RTOL


def test_poisson_weights_do_not_depend_on_chunking():
    whole = poisson_weights(5, 0, 100, 8)
    parts = np.concatenate([poisson_weights(5, a, min(a + 7, 100), 8) for a in range(0, 100, 7)])
    assert np.array_equal(whole, parts)
    assert abs(whole.mean() - 1.0) < 0.2  # Poisson(1): mean 1 (800 draws, sd 0.035)


def test_reservoir_merged_in_any_order_equals_one_stream():
    # Dask merges per-block reservoirs in a tree: the kept subset and its (sample) order
    # are those of one reservoir fed every sample in turn
    values = np.random.default_rng(1).normal(size=(100, 2, 3))
    whole = Reservoir(15, seed=4)
    for a in range(0, 100, 9):
        whole.add(a, values[a : a + 9])
    parts = []
    for a in range(0, 100, 13):
        part = Reservoir(15, seed=4)
        part.add(a, values[a : a + 13])
        parts.append(part)
    left = parts[0].merge(parts[1]).merge(parts[2])
    right = parts[3].merge(parts[4]).merge(parts[5].merge(parts[6])).merge(parts[7])
    tree = right.merge(left)
    assert np.array_equal(tree.index, whole.index)
    assert np.all(np.diff(tree.index) > 0)
    assert np.array_equal(tree.values, whole.values)


# -- local statistics ----------------------------------------------------------------


@pytest.mark.parametrize("name", STATIC)
def test_statistics_equal_numpy_on_independent_jacobian(name):
    net = mat2grad.load(FIXTURES / name)
    xs = _samples(net, 40)
    res = sensitivity(net, *xs)
    x_flat = np.concatenate(xs, axis=1)
    sizes = [x.shape[1] for x in xs]

    def fn(xf):
        parts = np.split(xf, np.cumsum(sizes)[:-1], axis=1)
        y = mat2grad.predict(net, *parts)
        ys = y if isinstance(y, tuple) else (y,)
        return np.concatenate([o.numpy() for o in ys], axis=1)

    J_fd = central_differences(fn, x_flat)
    # every statistic is 1-Lipschitz in the per-sample values (sup norm), so its error is at
    # most the largest finite-difference error, FD_SMOOTH_RTOL x max |J|
    bound = FD_SMOOTH_RTOL * np.max(np.abs(J_fd))
    for stat, expected in _numpy_stats(J_fd).items():
        assert np.max(np.abs(res[stat] - expected)) <= bound, stat
    # and exactly the one-shot formula on mat2grad's own Jacobian
    J = _flat_jacobian(net, xs)
    for stat, expected in _numpy_stats(J).items():
        assert _rel(res[stat], expected) <= CHUNK_RTOL, stat


@pytest.mark.parametrize("size", [1, 7, None])
def test_chunked_equal_one_shot(size):
    net = mat2grad.load(FIXTURES / "example_fitnet.mat")
    xs = _samples(net, 60)
    J = _flat_jacobian(net, xs)
    res = sensitivity(net, *xs, chunk_size=size or 60, ddof=1)
    for stat, expected in _numpy_stats(J, ddof=1).items():
        assert _rel(res[stat], expected) <= CHUNK_RTOL, stat
    assert res.settings["std"] == "sample"


def _folded_mlp(net):
    """The network's weights with the affine mapminmax steps folded in, in neuralsens' form
    (weights (n_in, n_out) per layer), for the removeconstantrows+mapminmax inputs and
    mapminmax outputs of a feedforwardnet."""
    spec = net.spec
    steps = spec.inputs[0].steps
    r = spec.inputs[0].size
    keep = np.arange(r)
    gain = np.ones(r)
    offset = np.zeros(r)  # processed = gain * (x - offset) + base, on the kept rows
    base = np.zeros(r)
    for st in steps:
        if st.fcn == "removeconstantrows":
            keep = keep[np.asarray(st.settings["keep"], dtype=int)]
        else:
            assert st.fcn == "mapminmax"
            g = np.asarray(st.settings["gain"]).ravel()
            gain, offset = g, np.asarray(st.settings["xoffset"]).ravel()
            base = np.asarray(st.settings["ymin"]).ravel() * np.ones_like(g)
    by_to = {w.to: w for w in spec.input_weights}
    lws = {(w.to, w.source): w for w in spec.layer_weights}
    layers = [layer.index for layer in spec.layers]
    weights, biases, acts = [], [], ["identity"]
    names = {"tansig": "tanh", "logsig": "logistic", "poslin": "relu", "purelin": "identity"}
    for i in layers:
        if i == 1:
            W = np.zeros((by_to[1].value.shape[0], r))
            W[:, keep] = by_to[1].value * gain
            b = spec.biases[0] + by_to[1].value @ (base - gain * offset)
        else:
            W = lws[(i, i - 1)].value
            b = spec.biases[i - 1]
        weights.append(np.array(W))
        biases.append(np.array(b).ravel())
        acts.append(names[spec.layers[i - 1].transfer])
    (out_step,) = spec.outputs[0].steps
    g = np.asarray(out_step.settings["gain"]).ravel()
    xo = np.asarray(out_step.settings["xoffset"]).ravel()
    ymin = np.asarray(out_step.settings["ymin"]).ravel() * np.ones_like(g)
    weights[-1] = weights[-1] / g[:, None]
    biases[-1] = (biases[-1] - ymin) / g + xo
    return [w.T for w in weights], biases, acts


@pytest.mark.parametrize("name", ["example_fitnet.mat", "deep3_tansig_logsig_poslin.mat"])
def test_against_neuralsens(name):
    ns = pytest.importorskip("neuralsens.partial_derivatives")
    import pandas as pd

    net = mat2grad.load(FIXTURES / name)
    (x,) = _samples(net, 50, seed=2)
    wts, bias, acts = _folded_mlp(net)
    y = mat2grad.predict(net, x).numpy()
    X = pd.DataFrame(x, columns=[f"x{i + 1}" for i in range(x.shape[1])])
    # neuralsens reads only names from y: its columns, or for several outputs y.name and
    # the levels y.unique() of a classification target
    levels = [f"out{k + 1}" for k in range(y.shape[1])]
    Y = SimpleNamespace(columns=pd.Index(["y"]), name="y", unique=lambda: levels)
    ref = ns.jacobian_mlp(wts, bias, acts, X, Y)
    res = sensitivity(net, x)
    for k in range(y.shape[1]):
        table = ref.sens[k]
        assert _rel(res["mean"][k], table["mean"].to_numpy()) <= NEURALSENS_RTOL
        assert _rel(res["std"][k], table["std"].to_numpy()) <= NEURALSENS_RTOL
        assert _rel(res["rms"][k], table["mean_squared"].to_numpy()) <= NEURALSENS_RTOL


@pytest.mark.parametrize("case", corpus_cases("shallow/", having=("inputs",)))
def test_corpus_networks_equal_numpy(case):
    net = mat2grad.load(CORPUS / case["file"], case["network"])
    if net.is_dynamic or net.spec.zero_derivative:
        pytest.skip("static differentiable networks only")
    xs = _samples(net, 12)
    if any(x.shape[1] > 50 for x in xs):
        xs = [x[:4] for x in xs]
    res = sensitivity(net, *xs, chunk_size=5)
    J = _flat_jacobian(net, xs)
    for stat, expected in _numpy_stats(J).items():
        assert _rel(res[stat], expected) <= CHUNK_RTOL, stat


def test_scales_equal_numpy():
    net = mat2grad.load(FIXTURES / "example_fitnet.mat")
    xs = _samples(net, 30)
    J = _flat_jacobian(net, xs)
    y = mat2grad.predict(net, *xs).numpy()
    x = xs[0]
    raw = _numpy_stats(J)
    by_std = sensitivity(net, *xs, scale="std")
    f = x.std(0)[None, :] / y.std(0)[:, None]
    rin, rout = recorded_ranges(net, "inputs"), recorded_ranges(net, "outputs")
    g = (rin[:, 1] - rin[:, 0])[None, :] / (rout[:, 1] - rout[:, 0])[:, None]
    by_range = sensitivity(net, *xs, scale="range")
    for stat in raw:
        assert _rel(by_std[stat], raw[stat] * f) <= CHUNK_RTOL, stat
        assert _rel(by_range[stat], raw[stat] * g) <= CHUNK_RTOL, stat
    assert by_std.settings["scale"] == "std"


def test_bootstrap_replicates_are_weighted_statistics():
    net = mat2grad.load(FIXTURES / "example_fitnet.mat")
    xs = _samples(net, 25)
    J = _flat_jacobian(net, xs)
    state = accumulate(net, xs, replicates=5, seed=9, chunk_size=7)
    w = poisson_weights(9, 0, 25, 5)
    for b in range(5):
        rep = np.repeat(J, w[:, b].astype(int), axis=0)
        assert _rel(state.boot["d"].mean[b], rep.mean(0)) <= CHUNK_RTOL
        assert _rel(state.boot["sq"].mean[b], (rep**2).mean(0)) <= CHUNK_RTOL
    res = sensitivity(net, *xs, bootstrap=40, seed=9)
    same = sensitivity(net, *xs, bootstrap=40, seed=9, chunk_size=3)
    for stat in ("mean", "std", "rms", "mean_abs"):
        assert np.all(res[f"{stat}_low"] <= res[f"{stat}_high"])
        assert _rel(same[f"{stat}_low"], res[f"{stat}_low"]) <= CHUNK_RTOL


def test_names_and_layout():
    net = mat2grad.load(FIXTURES / "multi_input.mat")
    res = sensitivity(net, *_samples(net, 5))
    assert res.inputs == ("x1_1", "x1_2", "x1_3", "x2_1", "x2_2")
    assert res["rms"].shape == (len(res.outputs), 5)
    named = sensitivity(net, *_samples(net, 5), input_names=list("abcde"))
    assert named.inputs == tuple("abcde")
    assert named.ranking()[0][0] in "abcde"


def test_generic_module_with_image_input():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 3, padding=1),
        torch.nn.Tanh(),
        torch.nn.Flatten(),
        torch.nn.Linear(2 * 4 * 5, 3),
    ).double()
    x = np.random.default_rng(0).random((6, 1, 4, 5))
    res = sensitivity(model, x)
    J = mat2grad.jacobian(model, x).numpy().reshape(6, 3, 20)
    assert res["mean_abs"].shape == (3, 20)
    assert _rel(res["mean_abs"], np.abs(J).mean(0)) <= CHUNK_RTOL
    assert res.input_shape == (1, 4, 5)


# -- bad input -----------------------------------------------------------------------


def _one_line(exc):
    assert "\n" not in str(exc.value)


def test_refuses_what_jacobian_refuses():
    net = mat2grad.load(FIXTURES / "example_fitnet.mat")
    net.not_differentiable = "layer 2 uses ArgMax"
    xs = _samples(net, 4)
    with pytest.raises(Mat2GradError) as jac:
        mat2grad.jacobian(net, *xs)
    with pytest.raises(Mat2GradError) as sens:
        sensitivity(net, *xs)
    assert str(sens.value) == str(jac.value)
    _one_line(sens)


def test_zero_derivative_warns_like_jacobian():
    net = mat2grad.load(FIXTURES / "transfer_hardlim.mat")
    x = np.random.default_rng(0).random((5, net.spec.inputs[0].size))
    with pytest.warns(ZeroDerivativeWarning):
        res = sensitivity(net, x)
    assert np.all(res["rms"] == 0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"bootstrap": 10}, "at least 2 samples"),
        ({"scale": "bogus"}, "scale must be"),
        ({"ddof": 3}, "ddof"),
        ({"bootstrap": 10, "conf_level": 1.5}, "conf_level"),
    ],
)
def test_bad_options(kwargs, match):
    net = mat2grad.load(FIXTURES / "example_fitnet.mat")
    n = 1 if kwargs.get("bootstrap") and "conf_level" not in kwargs else 4
    with pytest.raises(Mat2GradError, match=match) as exc:
        sensitivity(net, *_samples(net, n), **kwargs)
    _one_line(exc)


def test_scale_std_refuses_constant_outputs():
    net = mat2grad.load(FIXTURES / "example_fitnet.mat")
    (x,) = _samples(net, 1)
    with pytest.raises(Mat2GradError, match="do not vary") as exc:
        sensitivity(net, np.repeat(x, 3, axis=0), scale="std")
    _one_line(exc)
