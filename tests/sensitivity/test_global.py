"""mat2grad.sensitivity: DGSM against SALib itself, salib_model, interactions against
numpy and central differences, lag importance of dynamic networks, committees, Garson/Olden."""

from __future__ import annotations

import numpy as np
import pytest

import mat2grad
from mat2grad.autodiff.sequence import step_sensitivity
from mat2grad.errors import Mat2GradError
from mat2grad.sensitivity import (
    committee,
    dgsm,
    garson,
    interactions,
    lag_importance,
    olden,
    salib_model,
    salib_problem,
    sensitivity,
)
from tests.sensitivity.test_local import CHUNK_RTOL, _rel, _samples
from tests.support.helpers import FD_SMOOTH_RTOL, FIXTURES, central_differences


def _fitnet():
    return mat2grad.load(FIXTURES / "example_fitnet.mat")


def _bounds(net):
    b = net.spec.inputs[0].range.copy()
    flat = b[:, 0] == b[:, 1]
    b[flat] += [-0.5, 0.5]  # the constant input gets a width so SALib can perturb it
    return b


# -- DGSM ----------------------------------------------------------------------------


def test_dgsm_against_salib():
    sample = pytest.importorskip("SALib.sample.finite_diff")
    analyze = pytest.importorskip("SALib.analyze.dgsm")
    net = _fitnet()
    b = _bounds(net)
    problem = salib_problem(net, bounds=b)
    d = problem["num_vars"]
    X = sample.sample(problem, 64, seed=1)
    base = X[:: d + 1]
    res = dgsm(net, data=base, bounds=b, bootstrap=0)
    J = mat2grad.jacobian(net, base).numpy()
    for k in range(3):
        Y = salib_model(net, output=k)(X)
        Si = analyze.analyze(problem, X, Y, num_resamples=10, seed=1)
        # SALib's vi is the mean squared forward difference (checked to round-off) ...
        fd = np.stack(
            [
                (Y[i + 1 :: d + 1] - Y[:: d + 1]) / (X[i + 1 :: d + 1, i] - X[:: d + 1, i])
                for i in range(d)
            ],
            axis=1,
        )
        assert _rel(Si["vi"], (fd**2).mean(0)) <= CHUNK_RTOL
        # ... so |mean(fd^2) - mean(D^2)| <= mean(|fd - D| |fd + D|), exactly
        D = J[:, k, :]
        bound = np.mean(np.abs(fd - D) * np.abs(fd + D), axis=0)
        assert np.all(np.abs(res["nu"][k] - Si["vi"]) <= bound * (1 + 1e-9) + 1e-300)
        # the index divides both by the same Var(y) at the base points
        width2 = (b[:, 1] - b[:, 0]) ** 2
        var_y = np.var(Y[:: d + 1])
        assert _rel(res["var_y"][k], var_y) <= CHUNK_RTOL
        idx_bound = bound * width2 / (np.pi**2 * var_y)
        assert np.all(np.abs(res["dgsm"][k] - Si["dgsm"]) <= idx_bound * (1 + 1e-9) + 1e-300)
        # and exactly SALib's formulas applied to exact derivatives
        assert _rel(res["nu_std"][k], np.std(D**2, axis=0)) <= CHUNK_RTOL


def test_dgsm_uniform_sampling_and_bootstrap():
    net = _fitnet()
    res = dgsm(net, 300, bootstrap=30, seed=4, chunk_size=64)
    again = dgsm(net, 300, bootstrap=30, seed=4, chunk_size=7)
    for name in ("nu", "dgsm", "dgsm_low", "dgsm_high", "dgsm_conf", "nu_conf"):
        assert _rel(again[name], res[name]) <= CHUNK_RTOL, name
    assert res["dgsm"].shape == (3, 10)
    assert np.all(res["dgsm"][:, 6] == 0)  # the input the network saw constant
    assert np.all(res["dgsm_low"] <= res["dgsm_high"])
    assert res.num_samples == 300


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"bounds": np.tile([1.0, 1.0], (10, 1))}, "lower 1 >= upper 1"),
        ({"bounds": np.zeros((3, 2))}, "R x 2"),
        ({"n": 1}, "n must be"),
    ],
)
def test_dgsm_bad_input(kwargs, match):
    with pytest.raises(Mat2GradError, match=match) as exc:
        dgsm(_fitnet(), **kwargs)
    assert "\n" not in str(exc.value)


def test_dgsm_refuses_constant_output():
    net = _fitnet()
    (x,) = _samples(net, 1)
    with pytest.raises(Mat2GradError, match="do not vary") as exc:
        dgsm(net, data=np.repeat(x, 4, axis=0), bootstrap=0)
    assert "\n" not in str(exc.value)


def test_salib_model_matches_predict():
    net = _fitnet()
    (x,) = _samples(net, 7)
    y = mat2grad.predict(net, x).numpy()
    assert np.array_equal(salib_model(net)(x), y)
    assert np.array_equal(salib_model(net, output=2)(x), y[:, 2])
    p = salib_problem(net)
    assert p["num_vars"] == 10 and len(p["bounds"]) == 10
    assert all(lo < hi for lo, hi in p["bounds"])


# -- interactions --------------------------------------------------------------------


def test_interactions_equal_numpy():
    # (neuralsens 0.0.26's hessian_mlp cannot serve as a reference: its numpy second
    # derivative of tanh computes 1 - fx ^ 2 with a bitwise xor, and its torch path runs in
    # float32; the Hessians are checked against central differences below instead)
    net = _fitnet()
    (x,) = _samples(net, 20, seed=5)
    H = mat2grad.hessian(net, x).numpy()  # (Q, S, R, R)
    for size in (1, 7, 20):
        res = interactions(net, x, chunk_size=size)
        assert _rel(res["mean_abs"], np.abs(H).mean(0)) <= CHUNK_RTOL
        assert _rel(res["mean"], H.mean(0)) <= CHUNK_RTOL
        assert _rel(res["std"], H.std(0)) <= CHUNK_RTOL
        assert _rel(res["rms"], np.sqrt((H**2).mean(0))) <= CHUNK_RTOL
    assert res["mean_abs"].shape == (3, 10, 10)


def test_interactions_against_central_differences():
    net = mat2grad.load(FIXTURES / "deep3_tansig_logsig_poslin.mat")
    (x,) = _samples(net, 6, seed=1)
    res = interactions(net, x)
    # the Hessian of output k as central differences of its (independently checked)
    # gradient: each row of H is d(grad y_k)/dx
    for k in range(2):

        def grad(z, k=k):
            return mat2grad.jacobian(net, z).numpy()[:, k, :]

        H_fd = central_differences(grad, x)
        bound = FD_SMOOTH_RTOL * np.max(np.abs(H_fd))
        assert np.max(np.abs(res["mean"][k] - H_fd.mean(0))) <= bound


# -- time series ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["timedelaynet.mat", "narx_open.mat", "layrecnet.mat"])
def test_lag_importance_equals_numpy(name):
    net = mat2grad.load(FIXTURES / name)
    rng = np.random.default_rng(0)
    xs = [rng.random((3, 9, n)) for n in net.input_sizes]
    res = lag_importance(net, *xs, chunk_size=2)
    full = step_sensitivity(net, *xs)
    rows = [[full]] if not isinstance(full, tuple) else [list(r) for r in full]
    band = np.concatenate([np.concatenate([b.numpy() for b in r], axis=4) for r in rows], axis=2)
    lags = band.shape[3]
    for d in range(lags):
        v = band[:, d:, :, d, :].reshape(-1, band.shape[2], band.shape[4])
        assert _rel(res["rms"][..., d], np.sqrt((v**2).mean(0))) <= CHUNK_RTOL
        assert _rel(res["mean"][..., d], v.mean(0)) <= CHUNK_RTOL
        assert _rel(res["std"][..., d], v.std(0)) <= CHUNK_RTOL
    assert res["rms_total"].shape == res["rms"].shape[:2]
    assert sensitivity(net, *xs).kind == "lags"  # the entry point dispatches


def test_lag_importance_against_central_differences():
    net = mat2grad.load(FIXTURES / "timedelaynet.mat")
    r = net.input_sizes[0]
    ts = 8
    x = np.random.default_rng(2).random((2, ts, r))

    def fn(flat):
        y = mat2grad.predict(net, flat.reshape(len(flat), ts, r)).numpy()
        return y.reshape(len(flat), -1)

    J = central_differences(fn, x.reshape(2, -1))  # (Q, TS*S, TS*R)
    s = J.shape[1] // ts
    J = J.reshape(2, ts, s, ts, r)
    res = lag_importance(net, x)
    bound = FD_SMOOTH_RTOL * np.max(np.abs(J))
    for d in range(res["rms"].shape[-1]):
        v = np.stack([J[:, t, :, t - d, :] for t in range(d, ts)], axis=1).reshape(-1, s, r)
        assert np.max(np.abs(res["mean"][..., d] - v.mean(0))) <= bound


# -- committees and weights ----------------------------------------------------------


def test_committee_pools_and_spreads():
    a, b = _fitnet(), _fitnet()
    with __import__("torch").no_grad():
        next(b.parameters()).mul_(1.1)
    (x,) = _samples(a, 15)
    res = committee([a, b], x)
    ra, rb = sensitivity(a, x), sensitivity(b, x)
    assert _rel(res["mean"], (ra["mean"] + rb["mean"]) / 2) <= CHUNK_RTOL
    Ja, Jb = mat2grad.jacobian(a, x).numpy(), mat2grad.jacobian(b, x).numpy()
    assert _rel(res["std"], np.concatenate([Ja, Jb]).std(0)) <= CHUNK_RTOL
    spread = np.std(np.stack([ra["rms"], rb["rms"]], -1), axis=-1, ddof=1)
    assert _rel(res["rms_spread"], spread) <= CHUNK_RTOL
    assert res["rms_networks"].shape == (3, 10, 2)
    with pytest.raises(Mat2GradError, match="at least 2 networks"):
        committee([a], x)


def test_garson_and_olden_equal_their_formulas():
    net = _fitnet()
    spec = net.spec
    iw, lw = spec.input_weights[0].value, spec.layer_weights[0].value
    keep = np.asarray(spec.inputs[0].steps[0].settings["keep"], dtype=int)
    share = np.abs(iw) / np.abs(iw).sum(1, keepdims=True)
    g = np.zeros((3, 10))
    for k in range(3):
        contrib = (np.abs(lw[k])[:, None] * share).sum(0)
        g[k, keep] = contrib / contrib.sum()
    o = np.zeros((3, 10))
    o[:, keep] = lw @ iw
    assert _rel(garson(net)["garson"], g) <= CHUNK_RTOL
    assert _rel(olden(net)["olden"], o) <= CHUNK_RTOL
    assert np.allclose(garson(net)["garson"].sum(1), 1.0, rtol=0, atol=1e-14)
    assert garson(net).kind == "weights"
    with pytest.raises(Mat2GradError, match="one hidden layer"):
        garson(mat2grad.load(FIXTURES / "deep3_tansig_logsig_poslin.mat"))
