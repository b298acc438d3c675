"""MATLAB's performance functions and the gradient of performance with respect to the weights.

Values are checked against MATLAB's own records (tr.best_perf, a saved perform() result)
and against an independent numpy transcription of the documented formulas; gradients
against central finite differences of the performance, a chain rule worked by hand,
MATLAB's recorded gradient norm, and the error Jacobian; the getwb order against the
indices MATLAB itself stored in a network file.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import subprocess
import warnings

import numpy as np
import pytest
import scipy.io
import torch

import mat2grad
from mat2grad import Mat2GradError, matfile
from mat2grad.cli import main
from mat2grad.performance import (
    EPS,
    error_jacobian,
    getwb,
    performance,
    wb_layout,
    weight_gradient,
)
from mat2grad.shallow.functions import ZERO_DERIVATIVE
from mat2grad.shallow.module import ShallowNetwork
from mat2grad.shallow.record import parse_network
from tests.support.helpers import (
    CORPUS,
    GRAD_EXACT_RTOL,
    GRAD_FD_RTOL,
    PERF_RTOL,
    assert_close,
    corpus_cases,
    max_rel_err,
    requires_corpus,
)
from tests.support.records import build_record, to_mat

CASCADE = dict(
    input_sizes=(2, 3),
    layers=((4, "tansig"), (3, "logsig"), (2, "purelin")),
    input_connect=np.ones((3, 2)),
    layer_connect=np.tril(np.ones((3, 3)), -1),
    output_connect=[[0, 1, 1]],
)
PATTERNNET = dict(input_sizes=(4,), layers=((5, "tansig"), (3, "softmax")), process_outputs=False)


def built(**kw) -> ShallowNetwork:
    return ShallowNetwork(parse_network(build_record(**kw), path="net"))


def synthetic(net, q=25, seed=1, classes=False, nan_targets=0):
    """Inputs ``(Q, R_j)`` and targets ``(Q, S_k)`` (singletons unwrapped): targets are the
    outputs plus noise, or random classes (one-hot; 0/1 for one output row)."""
    rng = np.random.default_rng(seed)
    xs = [rng.normal(0.0, 1.5, (q, r)) for r in net.input_sizes]
    with torch.no_grad():
        y = net(*[torch.from_numpy(x) for x in xs])
    ys = [yk.numpy() for yk in (y if isinstance(y, tuple) else (y,))]
    ts = []
    for yk in ys:
        s = yk.shape[1]
        if classes:
            tk = (
                rng.integers(0, 2, (q, 1)).astype(float)
                if s == 1
                else np.eye(s)[rng.integers(0, s, q)]
            )
        else:
            tk = yk + rng.normal(0.0, 0.5, yk.shape) * (1.0 + np.abs(yk))
        if nan_targets:
            tk.flat[rng.choice(tk.size, nan_targets, replace=False)] = np.nan
        ts.append(tk)
    return (xs[0] if len(xs) == 1 else xs), (ts[0] if len(ts) == 1 else ts)


# --------------------------------------------------------------------------------------
# Finite differences of performance() over the weights (5-point stencil)
# --------------------------------------------------------------------------------------


@contextlib.contextmanager
def nudged(net, name, index, delta):
    p = dict(net.named_parameters())[name]
    old = p.detach()[index].clone()
    with torch.no_grad():
        p[index] += delta
    try:
        yield
    finally:
        with torch.no_grad():
            p[index] = old


def fd_entry(net, x, t, entry, k, h, **kw):
    """d perf / d (the k-th element of ``entry``, column-major like W(:))."""
    index = (k % entry.shape[0], k // entry.shape[0]) if len(entry.shape) == 2 else (k,)
    w = float(dict(net.named_parameters())[entry.param][index])
    step = h * max(1.0, abs(w))
    f = []
    for m in (2, 1, -1, -2):
        with nudged(net, entry.param, index, m * step):
            f.append(performance(net, x, t, **kw))
    return (-f[0] + 8 * f[1] - 8 * f[2] + f[3]) / (12 * step)


def before_step_layers(spec) -> set[int]:
    """Layers at or upstream of a zero-derivative transfer function (hardlim, compet)."""
    before = {layer.index for layer in spec.layers if layer.transfer in ZERO_DERIVATIVE}
    changed = True
    while changed:
        changed = False
        for w in spec.layer_weights:
            if w.to in before and w.source not in before:
                before.add(w.source)
                changed = True
    return before


def check_against_fd(net, x, t, g, *, per_block=4, h=1e-5, seed=0, **kw):
    """Max relative error of g.dwb against finite differences on a seeded sample of
    entries of every block; entries before step layers must be exactly zero."""
    rng = np.random.default_rng(seed)
    skip = before_step_layers(net.spec)
    fd, an = [], []
    for entry in wb_layout(net.spec, g.wb_order):
        block = g.dwb[entry.start : entry.start + entry.size]
        if entry.to in skip:
            assert not block.any(), f"{entry.label}: zero-derivative layer, nonzero gradient"
            continue
        for k in rng.choice(entry.size, size=min(per_block, entry.size), replace=False):
            fd.append(fd_entry(net, x, t, entry, int(k), h, **kw))
            an.append(float(block[k]))
    return max_rel_err(np.array(an), np.array(fd)) if an else 0.0


# --------------------------------------------------------------------------------------
# An independent numpy transcription of MATLAB's formulas (mse.html, crossentropy.html, ...)
# --------------------------------------------------------------------------------------


def numpy_perform(net, x, t, fcn, normalization="none", ew=None, reg=0.0):
    xs = x if isinstance(x, list) else [x]
    ts = t if isinstance(t, list) else [t]
    with torch.no_grad():
        y = net(*[torch.from_numpy(np.asarray(v, dtype=float)) for v in xs])
    ys = [v.numpy() for v in (y if isinstance(y, tuple) else (y,))]
    total, count = 0.0, 0
    for k, (yk, tk) in enumerate(zip(ys, ts, strict=True)):
        e = tk - yk
        if normalization != "none":
            rng = net.spec.outputs[k].range
            e = e * ((2.0 if normalization == "standard" else 1.0) / (rng[:, 1] - rng[:, 0]))
        if fcn in ("mse", "sse"):
            perfs = e**2
        elif fcn in ("mae", "sae"):
            perfs = np.abs(e)
        else:
            yc = np.minimum(np.maximum(yk, EPS), 1 - EPS)
            tc = np.minimum(np.maximum(tk, 0), 1)
            perfs = -tc * np.log(yc)
            if yk.shape[1] == 1:
                perfs = perfs - (1 - tc) * np.log(1 - yc)
        if ew is not None:
            perfs = perfs * ew
        ok = ~np.isnan(e)
        total += perfs[ok].sum()
        count += ok.sum()
    mean = fcn in ("mse", "mae", "crossentropy")
    perf = total / count if mean else total
    if reg:
        wb = getwb(net).numpy()
        term = np.abs(wb).sum() if fcn in ("mae", "sae") else (wb**2).sum()
        perf = (1 - reg) * perf + reg * (term / wb.size if mean else term)
    return perf


# --------------------------------------------------------------------------------------
# MATLAB's own numbers (the corpus)
# --------------------------------------------------------------------------------------


def _mahmoudjumaa():
    path = CORPUS / "shallow/mahmoudjumaa_net.mat"
    v = matfile.read_mat(path)
    net = mat2grad.load(path, "net")
    x = matfile.as_float(v["Input_Training"])  # stored one sample per row
    t = matfile.as_float(v["Output_Training"])
    return net, x, t, v["tr"]


def _indices(tr, name):
    return matfile.as_float(tr[name]).astype(int).ravel() - 1


@requires_corpus
@pytest.mark.parametrize(
    ("indices", "recorded"), [("trainInd", "best_perf"), ("valInd", "best_vperf")]
)
def test_mahmoudjumaa_performance_is_matlabs_training_record(indices, recorded):
    """performance() over tr.trainInd / tr.valInd is tr.best_perf / best_vperf (two
    training samples have NaN inputs: their errors are ignored, as MATLAB ignores them)."""
    net, x, t, tr = _mahmoudjumaa()
    idx = _indices(tr, indices)
    assert np.isnan(x[idx]).any() == (indices == "trainInd")
    perf = performance(net, x[idx], t[idx])
    assert_close(perf, float(tr[recorded][0, 0]), PERF_RTOL, recorded)


@requires_corpus
def test_mahmoudjumaa_gradient_norm_is_trainlms_record():
    """trainlm records tr.gradient = 2*norm(J'*e/N) at every epoch; at tr.best_epoch the
    weights are the saved ones, so the norm of mat2grad's gradient must equal it."""
    net, x, t, tr = _mahmoudjumaa()
    g = weight_gradient(net, x[_indices(tr, "trainInd")], t[_indices(tr, "trainInd")])
    recorded = float(tr["gradient"][0, int(tr["best_epoch"][0, 0])])
    assert torch.isfinite(g.dwb).all()
    assert_close(float(torch.linalg.norm(g.dwb)), recorded, GRAD_EXACT_RTOL, "tr.gradient")
    assert g.count == len(_indices(tr, "trainInd")) - 2  # two training samples have NaN inputs


@requires_corpus
def test_nan_inputs_add_nothing_to_the_gradient():
    """Samples whose inputs are NaN are ignored: the gradient equals the gradient over the
    other samples (computed without any NaN in sight)."""
    net, x, t, tr = _mahmoudjumaa()
    idx = _indices(tr, "trainInd")
    clean = idx[~np.isnan(x[idx]).any(axis=1)]
    assert len(clean) < len(idx)
    g_all = weight_gradient(net, x[idx], t[idx])
    g_clean = weight_gradient(net, x[clean], t[clean])
    assert g_all.count == g_clean.count
    assert_close(g_all.dwb.numpy(), g_clean.dwb.numpy(), GRAD_EXACT_RTOL, "dwb")
    assert_close(g_all.perf, g_clean.perf, PERF_RTOL, "perf")


@requires_corpus
def test_marakaido_performance_is_the_saved_perform_result():
    """The file's `perf` is perform(net, t, net(x)) over all 20 samples. (Its `tr` belongs to
    another training run: tr.best_perf matches no subset of this network's errors.)"""
    path = CORPUS / "shallow/marakaido_network.mat"
    v = matfile.read_mat(path)
    net = mat2grad.load(path, "net")
    perf = performance(net, matfile.as_float(v["x"]).T, matfile.as_float(v["t"]).T)
    assert_close(perf, float(v["perf"][0, 0]), PERF_RTOL, "perf")


# Targets saved beside the inputs, per file; other networks get synthetic targets.
CORPUS_TARGETS = {
    "shallow/abj247_ann.mat": "t",
    "shallow/abj247_matlab.mat": "t",
    "shallow/marakaido_network.mat": "t",
    "shallow/juanpovedapl_net1.mat": "t",
    "shallow/kudvaakshay_net1.mat": "Y",
    "shallow/mahmoudjumaa_net.mat": "Output_Training",
}


def corpus_problem(case, q=120):
    net = mat2grad.load(CORPUS / case["file"], case["network"])
    rows = case.get("samples", "columns") == "rows"
    v = matfile.read_mat(CORPUS / case["file"])
    rng = np.random.default_rng(0)
    if case["file"] == "shallow/mahmoudjumaa_net.mat":
        q = None  # every sample, the two with NaN inputs included
    if "inputs" in case:
        x = matfile.as_float(matfile.resolve(v, case["inputs"]))
        x = (x if rows else x.T)[:q]
    else:
        inp = net.spec.inputs[0]
        if inp.example is not None:
            x = matfile.as_float(inp.example[:, :q]).T
        elif inp.range is not None:
            lo, hi = inp.range[:, 0], inp.range[:, 1]
            x = lo + (hi - lo) * rng.random((q, inp.size))
        else:
            x = rng.normal(size=(q, inp.size))
    if case["file"] in CORPUS_TARGETS:
        t = matfile.as_float(v[CORPUS_TARGETS[case["file"]]])
        t = (t if rows else t.T)[: x.shape[0]]
    else:
        y = mat2grad.predict(net, x).numpy()
        if net.spec.perform_fcn == "crossentropy":
            t = np.eye(y.shape[1])[rng.integers(0, y.shape[1], y.shape[0])]
        else:
            t = y + rng.normal(0, 0.2, y.shape) * (1 + np.abs(y))
    return net, x, t


@pytest.mark.parametrize("case", corpus_cases("shallow/"))
def test_corpus_gradient_matches_finite_differences(case):
    net, x, t = corpus_problem(case)
    assert net.spec.perform_fcn in ("mse", "mae", "crossentropy")
    if net.zero_derivative:
        with pytest.warns(UserWarning, match="zero almost everywhere"):
            g = weight_gradient(net, x, t)
    else:
        g = weight_gradient(net, x, t)
    assert g.dwb.shape == getwb(net).shape
    assert torch.isfinite(g.dwb).all()
    err = check_against_fd(net, x, t, g)
    assert err <= GRAD_FD_RTOL, f"{case['file']}: finite differences differ by {err:.2e}"


# --------------------------------------------------------------------------------------
# Hand-made networks: every function and option
# --------------------------------------------------------------------------------------

GRADIENT_CASES = {
    "chain-mse": (dict(), dict(), {}),
    "cascade-mse": (CASCADE, dict(), {}),
    "cascade-sse": (CASCADE, dict(), {"performance": "sse"}),
    "cascade-mae": (CASCADE, dict(), {"performance": "mae"}),
    "cascade-sae": (CASCADE, dict(), {"performance": "sae"}),
    "standard-mse": (CASCADE, dict(), {"normalization": "standard"}),
    "percent-mae": (CASCADE, dict(), {"performance": "mae", "normalization": "percent"}),
    "percent-sse-net-param": (
        dict(CASCADE, normalization="percent", perform_fcn="sse"),
        dict(),
        {},
    ),
    "regularized-mse": (CASCADE, dict(), {"regularization": 0.3}),
    "regularized-sae": (CASCADE, dict(), {"performance": "sae", "regularization": 0.2}),
    "regularized-net-param": (dict(CASCADE, regularization=0.5, perform_fcn="sse"), dict(), {}),
    "nan-targets": (CASCADE, dict(nan_targets=5), {}),
    "no-first-bias": (dict(CASCADE, bias_connect=[0, 1, 1]), dict(), {}),
    "learn-false": (dict(CASCADE, learn={"b1": False, "IW2_2": False, "LW3_1": False}), dict(), {}),
    "patternnet": (dict(PATTERNNET, perform_fcn="crossentropy"), dict(classes=True), {}),
    "binary-crossentropy": (
        dict(input_sizes=(3,), layers=((4, "tansig"), (1, "logsig")), process_outputs=False),
        dict(classes=True),
        {"performance": "crossentropy"},
    ),
    "crossentropy-standard": (
        dict(PATTERNNET, perform_fcn="crossentropy"),
        dict(classes=True),
        {"normalization": "standard"},
    ),
}


@pytest.mark.parametrize("name", list(GRADIENT_CASES))
def test_gradient_matches_finite_differences(name):
    net_kw, data_kw, perf_kw = GRADIENT_CASES[name]
    net = built(**net_kw)
    x, t = synthetic(net, **data_kw)
    g = weight_gradient(net, x, t, **perf_kw)
    err = check_against_fd(net, x, t, g, per_block=6, **perf_kw)
    assert err <= GRAD_FD_RTOL, f"{name}: finite differences differ by {err:.2e}"
    # the value is MATLAB's formula (independent transcription)
    fcn = perf_kw.get("performance", net.spec.perform_fcn)
    norm = perf_kw.get("normalization", net.spec.perform_param["normalization"])
    reg = perf_kw.get("regularization", net.spec.perform_param["regularization"])
    expected = numpy_perform(net, x, t, fcn, norm, reg=reg)
    assert_close(g.perf, expected, PERF_RTOL, "perf")
    assert_close(performance(net, x, t, **perf_kw), expected, PERF_RTOL, "performance()")


@pytest.mark.parametrize(
    ("label", "ew"),
    [
        ("per-sample", lambda q, s: np.linspace(0.2, 2.0, q)),
        ("per-row", lambda q, s: np.linspace(0.5, 1.5, s).reshape(1, s)),
        ("full", lambda q, s: np.random.default_rng(3).random((q, s))),
        ("scalar", lambda q, s: 0.7),
    ],
)
@pytest.mark.parametrize("fcn", ["mse", "sae"])
def test_error_weights(label, ew, fcn):
    net = built(**CASCADE)
    x, t = synthetic(net)
    q = x[0].shape[0]
    weights = [ew(q, s) for s in net.output_sizes]
    g = weight_gradient(net, x, t, performance=fcn, ew=weights)
    assert check_against_fd(net, x, t, g, performance=fcn, ew=weights) <= GRAD_FD_RTOL
    full = [
        np.broadcast_to(np.reshape(w, (q, 1)) if np.ndim(w) == 1 else w, (q, s))
        for w, s in zip(weights, net.output_sizes, strict=True)
    ]
    expected = sum(numpy_perform_single(net, x, t, fcn, k, full[k]) for k in range(len(full))) / (
        sum(np.size(tk) for tk in t) if fcn == "mse" else 1
    )
    assert_close(g.perf, expected, PERF_RTOL, label)


def numpy_perform_single(net, x, t, fcn, k, w):
    """Weighted sum of one output's element performances (helper for the EW test)."""
    with torch.no_grad():
        y = net(*[torch.from_numpy(v) for v in x])[k].numpy()
    e = t[k] - y
    return ((e**2 if fcn == "mse" else np.abs(e)) * w).sum()


def test_regularized_crossentropy_warns_that_its_weight_term_is_inferred():
    net = built(**PATTERNNET, perform_fcn="crossentropy")
    x, t = synthetic(net, classes=True)
    with pytest.warns(UserWarning, match="was not found"):
        g = weight_gradient(net, x, t, regularization=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        assert check_against_fd(net, x, t, g, regularization=0.1) <= GRAD_FD_RTOL


# --------------------------------------------------------------------------------------
# The backpropagation lesson, by hand
# --------------------------------------------------------------------------------------


def _sigma(z):
    return 1.0 / (1.0 + math.exp(-z))


def test_backprop_lesson_single_weight_by_hand():
    """2 -> [2 logsig] -> [1 logsig], one sample, squared error C0 = (a_L - y)^2.

    The lesson's chain rule for the weight from neuron 2 of layer L-1 to neuron 1 of L:
        dC0/dw12 = dz/dw12 * da/dz * dC0/da = a2_(L-1) * sigma'(z_L) * 2 (a_L - y)
    and one layer further back, for w12 of layer 1 (input 2 -> hidden neuron 1):
        dC0/dw12_(1) = x2 * sigma'(z1_(1)) * w11_(L) * sigma'(z_L) * 2 (a_L - y).
    """
    W1, b1 = [[0.15, 0.20], [0.25, 0.30]], [0.35, 0.35]
    W2, b2 = [[0.40, 0.45]], [0.60]
    x, y = [0.05, 0.10], 0.01
    # forward, by hand
    z1 = [W1[j][0] * x[0] + W1[j][1] * x[1] + b1[j] for j in range(2)]  # 0.3775, 0.3925
    a1 = [_sigma(z) for z in z1]  # 0.593269992, 0.596884378
    zL = W2[0][0] * a1[0] + W2[0][1] * a1[1] + b2[0]  # 1.105905967
    aL = _sigma(zL)  # 0.751365070
    C0 = (aL - y) ** 2  # 0.5496222
    dC_da = 2 * (aL - y)
    da_dz = aL * (1 - aL)  # sigma'(z) = sigma(z) (1 - sigma(z))
    dC_dw12_L = a1[1] * da_dz * dC_da
    dC_dw12_1 = x[1] * a1[0] * (1 - a1[0]) * W2[0][0] * da_dz * dC_da
    assert dC_dw12_L == pytest.approx(0.1653353, abs=1e-7)  # the numbers, by hand
    assert dC_dw12_1 == pytest.approx(0.0026736, abs=1e-7)

    rec = build_record(
        (2,),
        ((2, "logsig"), (1, "logsig")),
        process_inputs=False,
        process_outputs=False,
        perform_fcn="sse",
    )
    rec.fields["IW"][0, 0] = np.array(W1)
    rec.fields["LW"][1, 0] = np.array(W2)
    rec.fields["b"][0, 0] = np.array(b1).reshape(2, 1)
    rec.fields["b"][1, 0] = np.array(b2).reshape(1, 1)
    net = ShallowNetwork(parse_network(rec))
    g = weight_gradient(net, np.array([x]), np.array([[y]]))
    assert g.perf == pytest.approx(C0, rel=1e-15)
    assert float(g.dLW[2, 1][0, 1]) == pytest.approx(dC_dw12_L, rel=1e-14)
    assert float(g.dIW[1, 1][0, 1]) == pytest.approx(dC_dw12_1, rel=1e-14)
    # MATLAB's dperf_dwb is the negative; with mse over 2 samples, 1/N averages them
    gm = weight_gradient(net, np.array([x]), np.array([[y]]), convention="matlab")
    assert float(gm.dLW[2, 1][0, 1]) == pytest.approx(-dC_dw12_L, rel=1e-14)
    g2 = weight_gradient(net, np.array([x, x]), np.array([[y], [y]]), performance="mse")
    assert float(g2.dLW[2, 1][0, 1]) == pytest.approx(dC_dw12_L, rel=1e-14)


# --------------------------------------------------------------------------------------
# Conventions
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cascade-mse", "percent-mae", "patternnet", "regularized-mse"])
def test_matlab_convention_is_the_negative_gradient(name):
    net_kw, data_kw, perf_kw = GRADIENT_CASES[name]
    net = built(**net_kw)
    x, t = synthetic(net, **data_kw)
    g = weight_gradient(net, x, t, **perf_kw)
    gm = weight_gradient(net, x, t, convention="matlab", **perf_kw)
    assert torch.equal(gm.dwb, -g.dwb)
    assert gm.perf == g.perf


def test_matlab_crossentropy_gradient_carries_the_normalization_factor():
    """crossentropy's value ignores normalization (it uses t and y, not e), but MATLAB's
    backpropagation multiplies dperf/dy by the factor anyway (2/(rmax-rmin) = 2 here)."""
    net = built(**PATTERNNET, perform_fcn="crossentropy")
    x, t = synthetic(net, classes=True)
    g = weight_gradient(net, x, t)
    gs = weight_gradient(net, x, t, normalization="standard")
    gm = weight_gradient(net, x, t, normalization="standard", convention="matlab")
    assert gs.perf == g.perf and torch.equal(gs.dwb, g.dwb)
    assert_close(gm.dwb.numpy(), -2 * g.dwb.numpy(), GRAD_EXACT_RTOL, "dwb")


def test_matlab_crossentropy_rule_at_clipped_outputs():
    """+crossentropy/backprop.m evaluates -t./y at y clipped to [eps, 1-eps]: where the
    target class's output is below eps, MATLAB's dperf_dwb is not zero although the clipped
    value does not change (the mathematical gradient, zero)."""
    rec = build_record(
        (2,),
        ((3, "softmax"),),
        process_inputs=False,
        process_outputs=False,
        perform_fcn="crossentropy",
    )
    n3 = math.log(1e-16 * 2)  # softmax([0, 0, n3])[2] ~ 1e-16 < eps
    rec.fields["IW"][0, 0] = np.array([[0.0, 0.0], [0.0, 0.0], [n3, 0.0]])
    rec.fields["b"][0, 0] = np.zeros((3, 1))
    net = ShallowNetwork(parse_network(rec))
    x, t = np.array([[1.0, 0.5]]), np.array([[0.0, 0.0, 1.0]])
    n = np.array([0.0, 0.0, n3])
    y = np.exp(n) / np.exp(n).sum()
    assert y[2] < EPS
    g = weight_gradient(net, x, t)
    gm = weight_gradient(net, x, t, convention="matlab")
    assert not g.dwb.any()
    # MATLAB: dperf/dy = -t./max(y,eps) / N (N = 3 elements), through softmax's Jacobian
    dperf_dy = -t[0] / np.clip(y, EPS, 1 - EPS) / 3
    dperf_dn = (np.diag(y) - np.outer(y, y)) @ dperf_dy
    expected_iw = -np.outer(dperf_dn, x[0])
    assert_close(gm.dIW[1, 1].numpy(), expected_iw, GRAD_EXACT_RTOL, "dIW")
    assert_close(gm.db[1].numpy(), -dperf_dn, GRAD_EXACT_RTOL, "db")


# --------------------------------------------------------------------------------------
# getwb order
# --------------------------------------------------------------------------------------


@requires_corpus
def test_bias_last_order_is_matlab_r2012a_getwb():
    """A network saved by MATLAB R2012a (format '7') stores getwb's positions of every
    block in net.hint: inputWeightInd, layerWeightInd, biasInd (1-based)."""
    path = CORPUS / "shallow/saniavn_net1_v7.mat"
    rec = matfile.read_mat(path)["net1"]
    hint = rec["hint"]
    net = mat2grad.load(path, "net1")
    layout = {(e.kind, e.to, e.source): e for e in wb_layout(net.spec, "bias-last")}
    seen = 0
    for kind, cells in (("IW", "inputWeightInd"), ("LW", "layerWeightInd"), ("b", "biasInd")):
        for idx, ind in np.ndenumerate(hint[cells]):
            key = (kind, idx[1] + 1, 0) if kind == "b" else (kind, idx[0] + 1, idx[1] + 1)
            if not np.size(ind):
                assert key not in layout
                continue
            entry = layout[key]
            positions = matfile.as_float(ind).ravel().astype(int) - 1
            np.testing.assert_array_equal(
                positions, np.arange(entry.start, entry.start + entry.size)
            )
            seen += 1
    assert seen == len(layout) == 4
    assert sum(e.size for e in layout.values()) == int(matfile.as_float(hint["xLen"])[0, 0])
    # and the values sit there column-major, W(:)
    wb = getwb(net, wb_order="bias-last").numpy()
    ind = matfile.as_float(hint["inputWeightInd"][0, 0]).ravel().astype(int) - 1
    np.testing.assert_array_equal(wb[ind], matfile.as_float(rec["IW"][0, 0]).ravel(order="F"))
    ind = matfile.as_float(hint["biasInd"][0, 1]).ravel().astype(int) - 1
    np.testing.assert_array_equal(wb[ind], matfile.as_float(rec["b"][1, 0]).ravel())


def test_bias_first_order_is_the_setwb_documentation_example():
    """setwb.html (current documentation): after ``net = feedforwardnet(3); net =
    configure(net,x,t); net = setwb(net,rand(10,1))`` MATLAB shows ``net.IW{1,1} =
    [0.1576; 0.9706; 0.9572]`` and ``net.b{1} = [0.5469; 0.9575; 0.9649]``: draws 11-13
    and 8-10 of MATLAB's default random stream (Mersenne Twister seeded 5489, which numpy's
    RandomState reproduces), so in the vector b{1} comes right before IW{1,1}."""
    stream = np.random.RandomState(5489).rand(20)
    doc_b1, doc_iw = [0.5469, 0.9575, 0.9649], [0.1576, 0.9706, 0.9572]
    np.testing.assert_allclose(stream[7:10], doc_b1, atol=5e-5)
    np.testing.assert_allclose(stream[10:13], doc_iw, atol=5e-5)
    wb = torch.from_numpy(stream[7:17])  # the doc's rand(10,1), configure drew 7 before it
    net = built(input_sizes=(1,), layers=((3, "tansig"), (1, "purelin")))
    blocks = {e.label: e for e in wb_layout(net.spec, "bias-first")}
    assert sum(e.size for e in blocks.values()) == 10
    b1, iw = blocks["b{1}"], blocks["IW{1,1}"]
    np.testing.assert_allclose(wb[b1.start : b1.start + 3], doc_b1, atol=5e-5)
    np.testing.assert_allclose(wb[iw.start : iw.start + 3], doc_iw, atol=5e-5)
    last = {e.label: e for e in wb_layout(net.spec, "bias-last")}
    assert last["IW{1,1}"].start < last["b{1}"].start  # R2012a's order cannot give the doc


# (kind, layer, source, start, size) for CASCADE: inputs of 2 and 3 rows, layers of 4, 3, 2
CASCADE_BIAS_FIRST = [
    ("b", 1, 0, 0, 4), ("IW", 1, 1, 4, 8), ("IW", 1, 2, 12, 12),
    ("b", 2, 0, 24, 3), ("IW", 2, 1, 27, 6), ("IW", 2, 2, 33, 9), ("LW", 2, 1, 42, 12),
    ("b", 3, 0, 54, 2), ("IW", 3, 1, 56, 4), ("IW", 3, 2, 60, 6), ("LW", 3, 1, 66, 8),
    ("LW", 3, 2, 74, 6),
]  # fmt: skip
CASCADE_BIAS_LAST = [
    ("IW", 1, 1, 0, 8), ("IW", 1, 2, 8, 12), ("b", 1, 0, 20, 4),
    ("IW", 2, 1, 24, 6), ("IW", 2, 2, 30, 9), ("LW", 2, 1, 39, 12), ("b", 2, 0, 51, 3),
    ("IW", 3, 1, 54, 4), ("IW", 3, 2, 58, 6), ("LW", 3, 1, 64, 8), ("LW", 3, 2, 72, 6),
    ("b", 3, 0, 78, 2),
]  # fmt: skip


@pytest.mark.parametrize(
    ("order", "expected"), [("bias-first", CASCADE_BIAS_FIRST), ("bias-last", CASCADE_BIAS_LAST)]
)
def test_getwb_order_of_a_cascade_with_two_inputs(order, expected):
    """Layer by layer; within a layer the bias, the input weights by input, the layer
    weights by source layer (+nn/wb_indices.m, R2012b on); R2012a put the bias last."""
    net = built(**CASCADE)
    layout = wb_layout(net.spec, order)
    assert [(e.kind, e.to, e.source, e.start, e.size) for e in layout] == expected
    wb = getwb(net, wb_order=order)
    lw32 = dict(net.named_parameters())["LW.3_2"].detach()
    start = [e for e in layout if e.label == "LW{3,2}"][0].start
    assert torch.equal(wb[start : start + 6], lw32.t().reshape(-1))  # LW{3,2}(:)


def test_getwb_skips_weights_that_do_not_learn():
    net = built(**CASCADE, learn={"b1": False, "IW2_2": False})
    labels = [e.label for e in wb_layout(net.spec)]
    assert "b{1}" not in labels and "IW{2,2}" not in labels
    x, t = synthetic(net)
    g = weight_gradient(net, x, t)
    assert g.dwb.shape == (80 - 4 - 9,)
    assert (1) in g.db and (2, 2) in g.dIW  # the pieces still cover every weight


def test_gradient_pieces_are_the_dwb_blocks():
    net = built(**CASCADE)
    x, t = synthetic(net)
    g = weight_gradient(net, x, t, wb_order="bias-last")
    assert set(g.dIW) == {(i, j) for i in (1, 2, 3) for j in (1, 2)}
    assert set(g.dLW) == {(2, 1), (3, 1), (3, 2)} and set(g.db) == {1, 2, 3}
    for e in wb_layout(net.spec, "bias-last"):
        piece = g.db[e.to] if e.kind == "b" else getattr(g, f"d{e.kind}")[e.to, e.source]
        assert tuple(piece.shape) == e.shape
        assert torch.equal(
            g.dwb[e.start : e.start + e.size], piece.t().reshape(-1) if piece.ndim == 2 else piece
        )


# --------------------------------------------------------------------------------------
# The error Jacobian
# --------------------------------------------------------------------------------------


def test_error_jacobian_gives_the_mse_gradient_and_matches_finite_differences():
    net = built(**CASCADE)
    x, t = synthetic(net, nan_targets=4)
    ew = [np.linspace(0.5, 2.0, 25), 0.5]
    jac = error_jacobian(net, x, t, ew=ew, normalization="standard", chunk_size=7)
    q, s, p = jac.J.shape
    assert (q, s, p) == (25, 5, getwb(net).numel())
    assert int((~jac.mask).sum()) == 8 and not jac.J[~jac.mask].any()
    g = weight_gradient(net, x, t, ew=ew, normalization="standard")
    n = int(jac.mask.sum())
    assert g.count == n
    assert_close(float((jac.e**2).sum()) / n, g.perf, PERF_RTOL, "sum(e^2)/N")
    assert_close(
        (2 * torch.einsum("qsp,qs->p", jac.J, jac.e) / n).numpy(),
        g.dwb.numpy(),
        GRAD_EXACT_RTOL,
        "2 J'e / N",
    )
    # finite differences of the errors themselves for a few weights
    layout = wb_layout(net.spec)
    for entry, k in [(layout[1], 3), (layout[6], 5), (layout[-1], 0)]:
        index = (k % entry.shape[0], k // entry.shape[0]) if len(entry.shape) == 2 else (k,)
        h = 1e-5
        es = []
        for m in (1, -1):
            with nudged(net, entry.param, index, m * h):
                es.append(error_jacobian(net, x, t, ew=ew, normalization="standard").e)
        fd = ((es[0] - es[1]) / (2 * h)).numpy()
        assert max_rel_err(jac.J[:, :, entry.start + k].numpy(), fd) <= 1e-8


# --------------------------------------------------------------------------------------
# Errors and warnings
# --------------------------------------------------------------------------------------


def test_zero_derivative_networks_warn():
    net = built(input_sizes=(3,), layers=((2, "hardlim"),), process_outputs=False)
    x, t = synthetic(net)
    with pytest.warns(UserWarning, match=r"layer 1 \(hardlim\)"):
        g = weight_gradient(net, x, t)
    assert not g.dwb.any()


@pytest.mark.parametrize(
    ("call", "pattern"),
    [
        (
            lambda n, x, t: performance(n, x, t, performance="msesparse"),
            "not supported.*crossentropy",
        ),
        (lambda n, x, t: performance(n, x, t, normalization="max"), "normalization must be"),
        (lambda n, x, t: performance(n, x, t, regularization=1.5), r"\[0, 1\]"),
        (lambda n, x, t: weight_gradient(n, x, t, convention="mathworks"), "convention"),
        (lambda n, x, t: weight_gradient(n, x, t, wb_order="random"), "wb_order"),
        (lambda n, x, t: performance(n, x, t[:, :1]), r"\(25, 2\)"),
        (lambda n, x, t: performance(n, x, t.T), "pass the transpose"),
        (lambda n, x, t: performance(n, x, np.full_like(t, np.nan)), "every error is NaN"),
        (lambda n, x, t: performance(n, x, t, ew=-np.ones(25)), ">= 0"),
        (lambda n, x, t: performance(n, [x, x], t), "1 input"),
        (lambda n, x, t: performance(torch.nn.Linear(2, 2), x, t), "shallow networks"),
    ],
)
def test_bad_arguments_are_clear_errors(call, pattern):
    net = built(layers=((3, "tansig"), (2, "purelin")))
    x, t = synthetic(net)
    with pytest.raises(Mat2GradError, match=pattern):
        call(net, x, t)


def test_normalization_needs_the_target_range():
    rec = build_record()
    rec.fields["outputs"][0, 1].fields.pop("range")
    net = ShallowNetwork(parse_network(rec))
    x, t = synthetic(net)
    with pytest.raises(Mat2GradError, match=r"outputs\{2\}.range"):
        performance(net, x, t, normalization="standard")


def test_dynamic_networks_are_refused():
    rec = build_record()
    rec.fields["inputWeights"][0, 0].fields["delays"] = np.array([[0, 1]])
    rec.fields["IW"][0, 0] = np.ones((3, 4))
    net = ShallowNetwork(parse_network(rec))
    with pytest.raises(Mat2GradError, match="dynamic network"):
        weight_gradient(net, np.zeros((3, 2)), np.zeros((3, 1)))


def test_the_network_is_left_as_it_was():
    net = built(**CASCADE)
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    x, t = synthetic(net)
    weight_gradient(net, x, t)
    error_jacobian(net, x, t)
    for n, p in net.named_parameters():
        assert not p.requires_grad and p.grad is None
        assert torch.equal(p.detach(), before[n])


# --------------------------------------------------------------------------------------
# The CLI
# --------------------------------------------------------------------------------------


def _column_cell(items):
    arr = np.empty((len(items), 1), dtype=object)
    for k, item in enumerate(items):
        arr[k, 0] = item
    return arr


@pytest.fixture
def cascade_files(tmp_path):
    rec = build_record(**CASCADE)
    net = ShallowNetwork(parse_network(rec))
    x, t = synthetic(net, nan_targets=3)
    matfile.write_mat(tmp_path / "net.mat", {"net": to_mat(rec)})
    matfile.write_mat(
        tmp_path / "data.mat",
        {
            "X": _column_cell([xj.T for xj in x]),
            "T": _column_cell([tk.T for tk in t]),
            "EW": np.linspace(0.5, 1.5, 25).reshape(1, 25),
        },
    )
    return tmp_path, net, x, t


def test_cli_grad_writes_matlab_shaped_cells(cascade_files, capsys):
    folder, net, x, t = cascade_files
    out = folder / "G.mat"
    argv = ["grad", folder / "net.mat", "--inputs", folder / "data.mat", "--ew-var", "EW"]
    code = main([str(a) for a in [*argv, "-o", out]])
    assert code == 0, capsys.readouterr().err
    got = scipy.io.loadmat(out)
    ew = [np.linspace(0.5, 1.5, 25)] * 2
    g = weight_gradient(net, x, t, ew=ew)
    assert got["perf"].shape == (1, 1) and got["perf"][0, 0] == g.perf
    assert got["db"].shape == (3, 1) and got["dIW"].shape == (3, 2) and got["dLW"].shape == (3, 3)
    assert got["db"][1, 0].shape == (3, 1)
    assert got["dIW"][2, 1].shape == (2, 3)
    assert got["dLW"][2, 1].shape == (2, 3)
    for i, j in [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]:
        assert got["dLW"][i, j].shape == (0, 0)  # [] where nothing is connected
    np.testing.assert_array_equal(got["dLW"][2, 0], g.dLW[3, 1].numpy())
    assert got["dwb"].shape == (80, 1)
    np.testing.assert_array_equal(got["dwb"][:, 0], g.dwb.numpy())
    # MATLAB's convention and the R2012a order
    out2 = folder / "G2.mat"
    extra = ["--convention", "matlab", "--wb-order", "bias-last"]
    assert main([str(a) for a in [*argv, *extra, "-o", out2]]) == 0
    g2 = weight_gradient(net, x, t, ew=ew, convention="matlab", wb_order="bias-last")
    np.testing.assert_array_equal(scipy.io.loadmat(out2)["dwb"][:, 0], g2.dwb.numpy())


@requires_corpus
def test_cli_grad_on_a_matlab_workspace(tmp_path, capsys):
    src = CORPUS / "shallow/marakaido_network.mat"
    out = tmp_path / "G.mat"
    code = main(["grad", str(src), "--inputs", str(src), "--inputs-var", "x", "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    got = scipy.io.loadmat(out)
    assert_close(got["perf"][0, 0], float(scipy.io.loadmat(src)["perf"][0, 0]), PERF_RTOL, "perf")
    assert got["dIW"].shape == (2, 1) and got["dIW"][0, 0].shape == (25, 627)
    assert got["dIW"][1, 0].shape == (0, 0)
    assert got["dwb"].shape == (25 + 25 * 627 + 4 + 4 * 25, 1)


def test_cli_grad_errors_are_one_line(cascade_files, capsys):
    folder, *_ = cascade_files
    matfile.write_mat(folder / "bad.mat", {"T": np.zeros((2, 25))})
    code = main(
        ["grad", str(folder / "net.mat"), "--inputs", str(folder / "data.mat"),
         "--targets", str(folder / "bad.mat"), "-o", str(folder / "G.mat")]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "2 outputs" in err or "needs a cell" in err
    assert not (folder / "G.mat").exists()


@pytest.mark.skipif(shutil.which("octave-cli") is None, reason="GNU Octave is not installed")
def test_octave_reads_the_cells(cascade_files):
    folder, *_ = cascade_files
    out = folder / "G.mat"
    assert (
        main(
            ["grad", str(folder / "net.mat"), "--inputs", str(folder / "data.mat"), "-o", str(out)]
        )
        == 0
    )
    script = (
        f"S = load('{out}'); "
        "assert(iscell(S.dIW) && isequal(size(S.dIW), [3 2])); "
        "assert(iscell(S.dLW) && isequal(size(S.dLW), [3 3]) && isempty(S.dLW{1,2})); "
        "assert(isequal(size(S.db), [3 1]) && isequal(size(S.db{2}), [3 1])); "
        "assert(isequal(size(S.dLW{3,2}), [2 3]) && isequal(size(S.dwb), [80 1])); "
        "disp('ok')"
    )
    res = subprocess.run(
        ["octave-cli", "--no-gui", "--no-history", "--norc", "--quiet", "--eval", script],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr
