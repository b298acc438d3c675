"""Gradients through time (full Jacobian, one-step sensitivities, VJP of a scalar of the
whole sequence), each checked an independent way, and dynamic prediction from MAT-files
through the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
import torch

from mat2grad import Mat2GradError, matfile
from mat2grad import dynamic as D
from mat2grad.autodiff import sequence as seq
from mat2grad.cli import main
from mat2grad.shallow import loops
from mat2grad.shallow import simulate as sim
from mat2grad.shallow.preparets import preparets
from tests.shallow.test_simulate import KINDS, build, random_case, reference, tensors
from tests.support import dynamic_records as dr
from tests.support.helpers import FORWARD_RTOL, assert_close
from tests.support.records import to_mat

#: central differences in float64 with step 1e-6: truncation + round-off
FD_RTOL = 1e-7
#: the same derivative by two exact methods (modes, reductions): round-off
EXACT_RTOL = 1e-13

GRAD_KINDS = sorted(k for k in KINDS if k != "narnet_open") + ["narx_closed_multi"]


def build_grad(kind):
    if kind == "narx_closed_multi":  # 2 outputs rows, 3 input rows
        rec = dr.narx_closed(seed=4, r=3, s=2, hidden=4)
        from mat2grad.shallow.module import ShallowNetwork
        from mat2grad.shallow.record import parse_network

        return rec, ShallowNetwork(parse_network(rec, path=kind))
    return build(kind)


def blocks(j):
    return j if isinstance(j, tuple) else ((j,),)


def finite_differences(net, x, xi, ai, j, eps=1e-6):
    """(Q, TS, S, TS, R) for output 1 and input j by central differences."""
    xs = tensors(x)
    q, ts, r = xs[j].shape
    y0 = net(*xs, xi=tensors(xi), ai=tensors(ai))
    y0 = y0[0] if isinstance(y0, tuple) else y0
    out = torch.zeros(q, ts, y0.shape[-1], ts, r, dtype=torch.float64)
    for u in range(ts):
        for k in range(r):
            plus = [v.clone() for v in xs]
            minus = [v.clone() for v in xs]
            plus[j][:, u, k] += eps
            minus[j][:, u, k] -= eps
            yp = net(*plus, xi=tensors(xi), ai=tensors(ai))
            ym = net(*minus, xi=tensors(xi), ai=tensors(ai))
            yp, ym = (yp[0], ym[0]) if isinstance(yp, tuple) else (yp, ym)
            out[:, :, :, u, k] = (yp - ym) / (2 * eps)
    return out


@pytest.mark.parametrize("kind", GRAD_KINDS)
def test_full_jacobian_matches_finite_differences_and_both_modes(kind):
    _, net = build_grad(kind)
    x, xi, ai = random_case(net, q=2, ts=6, seed=11)
    rev = blocks(seq.sequence_jacobian(net, *tensors(x), xi=xi, ai=ai, mode="rev"))
    fwd = blocks(seq.sequence_jacobian(net, *tensors(x), xi=xi, ai=ai, mode="fwd"))
    for j in range(len(x)):
        assert rev[0][j].shape == (2, 6, net.output_sizes[0], 6, net.input_sizes[j])
        assert_close(fwd[0][j].numpy(), rev[0][j].numpy(), EXACT_RTOL, f"fwd vs rev, input {j}")
        fd = finite_differences(net, x, xi, ai, j)
        assert_close(rev[0][j].numpy(), fd.numpy(), FD_RTOL, f"vs finite differences, input {j}")


@pytest.mark.parametrize("kind", GRAD_KINDS)
def test_jacobian_is_causal(kind):
    """dy(t)/dx(u) is exactly zero for u > t, and not identically zero below."""
    _, net = build_grad(kind)
    x, xi, ai = random_case(net, q=2, ts=7, seed=12)
    for row in blocks(seq.sequence_jacobian(net, *tensors(x), xi=xi, ai=ai)):
        for block in row:
            per_pair = block.abs().amax(dim=(0, 2, 4))  # (TS out, TS in)
            above = torch.triu(torch.ones(7, 7, dtype=torch.bool), diagonal=1)
            assert torch.all(per_pair[above] == 0)
            assert per_pair[~above].max() > 0


def test_recurrence_reaches_beyond_the_tapped_delays():
    """Closed loop / layer delays: dy(t)/dx(u) is nonzero far below the diagonal; a pure
    tapped delay line (timedelaynet 0:2) is banded."""
    for kind, banded in (("narx_closed", False), ("layrecnet", False), ("timedelaynet", True)):
        _, net = build(kind)
        x, xi, ai = random_case(net, q=1, ts=8, seed=3)
        j = seq.sequence_jacobian(net, *tensors(x), xi=xi, ai=ai)
        far = j[0, 7, :, 0, :].abs().max()  # dy(8)/dx(1)
        assert (far == 0) if banded else (far > 1e-8), kind


@pytest.mark.parametrize("kind", GRAD_KINDS)
def test_step_sensitivity_is_the_jacobians_bands(kind):
    _, net = build_grad(kind)
    x, xi, ai = random_case(net, q=2, ts=7, seed=13)
    full = blocks(seq.sequence_jacobian(net, *tensors(x), xi=xi, ai=ai))
    step = blocks(seq.step_sensitivity(net, *tensors(x), xi=xi, ai=ai, max_lag=4))
    for k, row in enumerate(full):
        for j, block in enumerate(row):
            band = step[k][j]
            assert band.shape == (2, 7, block.shape[2], 5, block.shape[4])
            for t in range(7):
                for d in range(5):
                    expected = (
                        block[:, t, :, t - d, :]
                        if t - d >= 0
                        else torch.zeros_like(block[:, t, :, 0, :])
                    )
                    assert_close(band[:, t, :, d, :].numpy(), expected.numpy(), EXACT_RTOL, kind)


def test_step_sensitivity_default_lags_are_the_input_delays():
    _, net = build("narx_open")  # delays 1:2: lag 0 is exactly zero
    x, xi, ai = random_case(net, q=1, ts=5)
    s = blocks(seq.step_sensitivity(net, *tensors(x), xi=xi, ai=ai))
    assert s[0][0].shape == (1, 5, 1, 3, 2)
    assert torch.all(s[0][0][:, :, :, 0, :] == 0) and s[0][0][:, 2:, :, 1:, :].abs().min() > 0


@pytest.mark.parametrize("kind", GRAD_KINDS)
def test_sequence_gradient_is_the_vjp_of_the_full_jacobian(kind):
    _, net = build_grad(kind)
    x, xi, ai = random_case(net, q=2, ts=6, seed=14)
    full = blocks(seq.sequence_jacobian(net, *tensors(x), xi=xi, ai=ai))
    w = np.random.default_rng(1).normal(size=(2, 6, net.output_sizes[0]))
    grads = seq.sequence_gradient(net, *tensors(x), xi=xi, ai=ai, weights=w)
    grads = grads if isinstance(grads, tuple) else (grads,)
    for j, g in enumerate(grads):
        expected = torch.einsum("qts,qtsur->qur", torch.from_numpy(w), full[0][j])
        assert g.shape == tensors(x)[j].shape
        assert_close(g.numpy(), expected.numpy(), EXACT_RTOL, f"VJP input {j}")


def test_sequence_gradient_with_a_loss_matches_finite_differences():
    _, net = build("narx_closed")
    x, xi, ai = random_case(net, q=1, ts=8, seed=15)
    target = torch.from_numpy(np.random.default_rng(2).normal(size=(1, 8, 1)))

    def mse(y):
        return ((y - target) ** 2).mean()

    g = seq.sequence_gradient(net, *tensors(x), xi=xi, ai=ai, loss=mse)
    eps = 1e-6
    for u, r in [(0, 0), (3, 1), (7, 0)]:
        plus, minus = tensors(x), tensors(x)
        plus[0] = plus[0].clone()
        minus[0] = minus[0].clone()
        plus[0][0, u, r] += eps
        minus[0][0, u, r] -= eps
        fd = (
            mse(net(*plus, xi=tensors(xi), ai=tensors(ai)))
            - mse(net(*minus, xi=tensors(xi), ai=tensors(ai)))
        ) / (2 * eps)
        assert abs(g[0, u, r].item() - fd.item()) <= 1e-7 * max(1.0, abs(fd.item()))


def test_long_sequence_gradient_runs_through_time():
    """VJP over 2000 steps of a closed loop: one backward pass, finite result, and the
    last input step only affects the last output step (checked against the full rows)."""
    _, net = build("narx_closed")
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(2, 2000, 2)))
    g = seq.sequence_gradient(net, x)
    assert g.shape == x.shape and torch.isfinite(g).all()
    w = torch.zeros(2, 2000, 1, dtype=torch.float64)
    w[:, -1] = 1.0
    g_last = seq.sequence_gradient(net, x, weights=w)
    assert torch.all(g_last[:, -1] == 0)  # delays 1:2: y(T) does not depend on x(T)
    assert torch.all(g_last[:, -3:-1].abs().amax(dim=-1) > 0)  # the tapped delays
    assert g_last[:, :-3].abs().max() > 0  # and the past, through the fed-back outputs


def test_chunks_do_not_change_the_answer():
    _, net = build("layrecnet")
    x, xi, ai = random_case(net, q=5, ts=5, seed=16)
    whole = seq.sequence_jacobian(net, *tensors(x), xi=xi, ai=ai)
    chunked = seq.sequence_jacobian(net, *tensors(x), xi=xi, ai=ai, chunk_size=2)
    assert_close(chunked.numpy(), whole.numpy(), 1e-14, "chunked")


def test_gradients_refuse_static_networks():
    from mat2grad.shallow.module import ShallowNetwork
    from mat2grad.shallow.record import parse_network
    from tests.support.records import tiny_record

    net = ShallowNetwork(parse_network(tiny_record(), path="net"))
    with pytest.raises(Mat2GradError, match="static"):
        seq.sequence_jacobian(net, torch.zeros(1, 3, 2, dtype=torch.float64))


# --------------------------------------------------------------------------------------
# predict_series: MATLAB's ways of running a dynamic network
# --------------------------------------------------------------------------------------


def test_predict_series_with_targets_is_preparets_then_sim():
    rec, net = build("narx_open")
    x, t = (
        np.random.default_rng(4).normal(size=(2, 12, 2)),
        np.random.default_rng(5).normal(size=(2, 12, 1)),
    )
    run, sim = D.predict_series(net, [x], targets=[t])
    assert run.net is net and run.prepared.shift == 2
    expected = reference(
        rec, [x[:, 2:], t[:, 2:]], [x[:, :2], t[:, :2]], [np.zeros((2, 0, 3)), np.zeros((2, 0, 1))]
    )[0]
    assert_close(sim.outputs[0].numpy(), expected, FORWARD_RTOL, "open loop")


def test_predict_series_closed_loop_needs_a_loop():
    _, net = build("timedelaynet")
    with pytest.raises(Mat2GradError, match="no loop to close"):
        D.predict_series(net, [np.zeros((1, 5, 2))], closed_loop=True)


# --------------------------------------------------------------------------------------
# Through the CLI, with MATLAB-layout MAT-files
# --------------------------------------------------------------------------------------


def _write_case(tmp_path, kind="narx_open", ts=14, q=1, seed=6):
    rec, net = build(kind)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(q, ts, 2))
    t = rng.normal(size=(q, ts, 1))
    x2 = rng.normal(size=(q, 5, 2))
    matfile.write_mat(tmp_path / "net.mat", {"net": to_mat(rec)})
    matfile.write_mat(
        tmp_path / "data.mat",
        {
            "X": matfile.sequences_to_matlab([x], matrix=(q == 1)),
            "T": matfile.sequences_to_matlab([t], matrix=(q == 1)),
            "X2": matfile.sequences_to_matlab([x2], matrix=(q == 1)),
            "Xcell": matfile.sequences_to_matlab([x]),
            "Xi": matfile.sequences_to_matlab([x[:, :2], t[:, :2]]),
        },
    )
    return rec, net, x, t, x2


def _cli(capsys, *argv):
    code = main([str(a) for a in argv])
    _, err = capsys.readouterr()
    return code, err


def test_cli_predict_open_loop_with_targets(capsys, tmp_path):
    rec, net, x, t, _ = _write_case(tmp_path)
    out = tmp_path / "Y.mat"
    args = ("predict", tmp_path / "net.mat", "--inputs", tmp_path / "data.mat")
    code, err = _cli(capsys, *args, "--targets-var", "T", "-o", out)
    assert code == 0, err
    v = scipy.io.loadmat(out)
    assert v["Y"].shape == (1, 12)  # one plain series in, a plain 1 x TS matrix out
    expected = reference(
        rec, [x[:, 2:], t[:, 2:]], [x[:, :2], t[:, :2]], [np.zeros((1, 0, 3)), np.zeros((1, 0, 1))]
    )[0]
    assert_close(v["Y"].T[None], expected, FORWARD_RTOL, "cli open loop")
    assert v["Xf"].shape == (2, 2)  # numInputs x numInputDelays cell
    np.testing.assert_array_equal(v["Xf"][1, 1], t[0, -1:].T)


def test_cli_predict_closed_loop_and_known_sequence(capsys, tmp_path):
    _, net, x, t, x2 = _write_case(tmp_path)
    base = ("predict", tmp_path / "net.mat", "--inputs", tmp_path / "data.mat")
    code, err = _cli(capsys, *base, "--targets-var", "T", "--closed-loop", "-o", tmp_path / "c.mat")
    assert code == 0, err
    netc = loops.closeloop(net)
    p = preparets(netc, [x], [], [t])
    expected = netc(*p.x, xi=p.xi, ai=p.ai).numpy()
    assert_close(scipy.io.loadmat(tmp_path / "c.mat")["Y"].T[None], expected, 1e-14, "closed")

    code, err = _cli(
        capsys, *base, "--known-inputs-var", "X", "--known-targets-var", "T",
        "--inputs-var", "X2", "-o", tmp_path / "k.mat",
    )  # fmt: skip
    assert code == 0, err
    expected = loops.predict_ahead(net, [x], [t], [x2]).outputs[0].numpy()
    assert_close(scipy.io.loadmat(tmp_path / "k.mat")["Y"].T[None], expected, 1e-14, "known")


def test_cli_predict_cells_with_states(capsys, tmp_path):
    rec, net = build("layrecnet")
    x, xi, ai = random_case(net, q=3, ts=6)
    matfile.write_mat(tmp_path / "net.mat", {"net": to_mat(rec)})
    matfile.write_mat(
        tmp_path / "d.mat",
        {
            "X": matfile.sequences_to_matlab(x),
            "Ai": matfile.sequences_to_matlab(ai),
        },
    )
    code, err = _cli(
        capsys, "predict", tmp_path / "net.mat", "--inputs", tmp_path / "d.mat",
        "--ai-var", "Ai", "-o", tmp_path / "Y.mat",
    )  # fmt: skip
    assert code == 0, err
    y = scipy.io.loadmat(tmp_path / "Y.mat")["Y"]
    assert y.shape == (1, 6) and y[0, 0].shape == (1, 3)  # 1 x TS cell of S x Q
    got, _, _ = matfile.sequences_from_matlab(y, (1,))
    expected = reference(rec, x, [np.zeros((3, 0, 2))], ai)[0]
    assert_close(got[0], expected, FORWARD_RTOL, "cells")


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (("--inputs-var", "Xcell"), r"takes 2 signal\(s\).*give only the other inputs"),
        (("--targets-var", "T", "--xi-var", "Xi"), "do not also give xi/ai"),
        (("--known-targets-var", "T"), "needs --known-inputs-var"),
    ],
)
def test_cli_dynamic_errors_are_one_line(capsys, tmp_path, extra, match):
    _write_case(tmp_path)
    code, err = _cli(
        capsys, "predict", tmp_path / "net.mat", "--inputs", tmp_path / "data.mat", *extra,
        "-o", tmp_path / "Y.mat",
    )  # fmt: skip
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert match in err or __import__("re").search(match, err), err
    assert not (tmp_path / "Y.mat").exists()


def test_cli_refuses_dynamic_options_for_static_networks(capsys, tmp_path):
    from tests.support.records import tiny_record

    matfile.write_mat(tmp_path / "net.mat", {"net": to_mat(tiny_record())})
    matfile.write_mat(tmp_path / "d.mat", {"X": np.zeros((2, 3))})
    code, err = _cli(
        capsys, "predict", tmp_path / "net.mat", "--inputs", tmp_path / "d.mat",
        "--closed-loop", "-o", tmp_path / "Y.mat",
    )  # fmt: skip
    assert code == 1 and "--closed-loop apply to dynamic networks" in err


def test_public_predict_takes_sequences():
    import mat2grad

    rec, net = build("timedelaynet")
    x = np.random.default_rng(0).normal(size=(3, 7, 2))
    y = mat2grad.predict(net, x)
    assert y.shape == (3, 7, 2)
    assert mat2grad.predict(net, x[0]).shape == (1, 7, 2)  # one series
    zeros = [np.zeros((3, 2, 2))], [np.zeros((3, 0, 4)), np.zeros((3, 0, 2))]
    assert_close(y.numpy(), reference(rec, [x], *zeros)[0], FORWARD_RTOL, "predict")
    with pytest.raises(Mat2GradError, match=r"takes \(Q, TS, 2\)"):
        mat2grad.predict(net, x[..., :1])


# --------------------------------------------------------------------------------------
# gradient_series: the same runs, differentiated, and written in MATLAB's layout
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", seq.FORMS)
def test_gradient_series_after_preparets_in_matlab_layout(form):
    _, net = build("narx_open")
    rng = np.random.default_rng(9)
    x, t = rng.normal(size=(2, 10, 2)), rng.normal(size=(2, 10, 1))
    run, result = D.gradient_series(net, [x], targets=[t], form=form, max_lag=2)
    p = run.prepared
    if form == "full":
        expected = seq.sequence_jacobian(net, *p.x, xi=p.xi, ai=p.ai)
    elif form == "step":
        expected = seq.step_sensitivity(net, *p.x, xi=p.xi, ai=p.ai, max_lag=2)
    else:
        expected = seq.sequence_gradient(net, *p.x, xi=p.xi, ai=p.ai)
    for a, b in zip(blocks(result)[0], blocks(expected)[0], strict=True):  # wrt x and t
        assert_close(a.numpy(), b.numpy(), 0.0, form)
    m = matfile.series_gradient_to_matlab(result, form)
    if form == "sum":  # inputs' layout: numInputs x TS cell of R x Q
        assert m.shape == (2, 8) and m[0, 3].shape == (2, 2) and m[1, 3].shape == (1, 2)
        np.testing.assert_array_equal(m[1, 3], result[1][:, 3, :].numpy().T)
    else:  # 1 x 2 cell (one output, two inputs) of S x R x TS x T2 x Q
        t2 = 8 if form == "full" else 3
        assert m.shape == (1, 2) and m[0, 0].shape == (1, 2, 8, t2, 2)
        np.testing.assert_array_equal(m[0, 0][:, :, 5, 1, 1], result[0][0][1, 5, :, 1, :].numpy())


def test_gradient_series_after_a_known_sequence_is_wrt_the_future_inputs():
    _, net = build("narx_open")
    rng = np.random.default_rng(10)
    x1, t1, x2 = (
        rng.normal(size=(1, 12, 2)),
        rng.normal(size=(1, 12, 1)),
        rng.normal(size=(1, 6, 2)),
    )
    run, jac = D.gradient_series(net, [x2], known_inputs=[x1], known_targets=[t1])
    assert jac.shape == (1, 6, 1, 6, 2)
    netc, xic, aic = loops.closed_loop_after(net, [torch.from_numpy(x1)], [torch.from_numpy(t1)])
    fd = finite_differences(netc, [x2], [v.numpy() for v in xic], [v.numpy() for v in aic], 0)
    assert_close(jac.numpy(), fd.numpy(), FD_RTOL, "multistep Jacobian")


def test_gradient_series_refuses_a_network_without_inputs():
    _, net = build("narnet_open")
    t1 = np.random.default_rng(2).normal(size=(1, 10, 1))
    with pytest.raises(Mat2GradError, match="no inputs to differentiate"):
        D.gradient_series(net, [], known_inputs=[], known_targets=[t1], steps=4)
    with pytest.raises(Mat2GradError, match="form must be one of"):
        D.gradient_series(net, [], form="diag")


# --------------------------------------------------------------------------------------
# The committed dynamic fixtures (fixtures/generate.py): gradients through time at their
# stored inputs and initial states
# --------------------------------------------------------------------------------------


def _fixture_cases():
    import tomllib

    from tests.support.helpers import FIXTURES

    with open(FIXTURES / "MANIFEST.toml", "rb") as fh:
        cases = [c for c in tomllib.load(fh)["case"] if c.get("dynamic")]
    return [pytest.param(c, id=c["file"]) for c in cases]


@pytest.mark.parametrize("case", _fixture_cases())
def test_fixture_jacobians_through_time(case):
    from tests.shallow.test_fixtures import _dynamic_case

    net, _, x, xi, ai, _ = _dynamic_case(case)
    x = [a[:, :6] for a in x]  # a few steps keep the finite differences fast
    rev = blocks(seq.sequence_jacobian(net, *tensors(x), xi=xi, ai=ai, mode="rev"))
    fwd = blocks(seq.sequence_jacobian(net, *tensors(x), xi=xi, ai=ai, mode="fwd"))
    assert xi is not None and ai is not None  # stored (depth 0: empty arrays)
    for j in range(len(x)):
        assert_close(fwd[0][j].numpy(), rev[0][j].numpy(), EXACT_RTOL, "fwd vs rev")
        fd = finite_differences(net, x, xi, ai, j)
        assert_close(rev[0][j].numpy(), fd.numpy(), FD_RTOL, f"{case['file']} input {j + 1}")
        above = torch.triu(torch.ones(6, 6, dtype=torch.bool), diagonal=1)
        assert torch.all(rev[0][j].abs().amax(dim=(0, 2, 4))[above] == 0)


def test_cli_commands_for_static_networks_refuse_dynamic_ones_clearly(capsys, tmp_path):
    _write_case(tmp_path)
    code, err = _cli(
        capsys, "grad", tmp_path / "net.mat", "--inputs", tmp_path / "data.mat",
        "--targets", tmp_path / "data.mat", "-o", tmp_path / "G.mat",
    )  # fmt: skip
    assert code == 1 and "is dynamic" in err and "internal error" not in err, err


@pytest.mark.parametrize("form", [None, "step", "sum"])
def test_cli_jacobian_handler_writes_matlab_layout(tmp_path, form):
    from mat2grad.cli import main

    _, net, x, t, _ = _write_case(tmp_path)
    extra = ("--form", form) if form else ()
    argv = [
        "jacobian", tmp_path / "net.mat", "--inputs", tmp_path / "data.mat", "--targets-var", "T",
        "-o", tmp_path / "J.mat", *extra,
    ]  # fmt: skip
    assert main([str(a) for a in argv]) == 0
    v = scipy.io.loadmat(tmp_path / "J.mat")
    p = preparets(net, [x], [], [t])
    if form == "sum":
        g = seq.sequence_gradient(net, *p.x, xi=p.xi, ai=p.ai)
        assert v["dX"].shape == (2, 12)  # numInputs x TS cell (x and the feedback input)
        np.testing.assert_array_equal(v["dX"][1, 4], g[1][:, 4, :].numpy().T)
    else:
        fn = seq.sequence_jacobian if form is None else seq.step_sensitivity
        j = fn(net, *p.x, xi=p.xi, ai=p.ai)
        t2 = 12 if form is None else 3
        # S x R x TS x T2 x Q (MATLAB drops the trailing Q = 1 when it loads the file)
        assert v["J"].shape == (1, 2) and v["J"][0, 0].shape == (1, 2, 12, t2, 1)
        np.testing.assert_array_equal(v["J"][0, 1][:, :, 7, 2, 0], j[0][1][0, 7, :, 2, :].numpy())
    assert v["Y"].shape == (1, 12)


def test_derivative_with_respect_to_initial_states_through_with_states():
    """WithStates makes the states inputs: dY/dAi of a closed loop by reverse mode per
    series agrees with central differences."""
    _, net = build("narx_closed")
    m = sim.WithStates(net)
    x, xi, ai = random_case(net, q=2, ts=5, seed=21)
    args = tensors(x) + tensors(xi) + tensors(ai)

    def f(*a):
        return m(*[t.unsqueeze(0) for t in a])[0]

    jac = torch.func.vmap(torch.func.jacrev(f, argnums=3))(*args)  # w.r.t. ai of layer 2
    assert jac.shape == (2, 5, 1, 2, 1)
    eps = 1e-6
    for d in range(2):
        plus, minus = [a.clone() for a in args], [a.clone() for a in args]
        plus[3][:, d, 0] += eps
        minus[3][:, d, 0] -= eps
        fd = (m(*plus) - m(*minus)) / (2 * eps)
        assert_close(jac[:, :, :, d, 0].numpy(), fd.numpy(), FD_RTOL, f"dY/dAi{{2,{d + 1}}}")
