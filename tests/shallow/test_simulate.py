"""Dynamic networks simulate like MATLAB's sim(net, X, Xi, Ai): MATLAB's
simulation rules checked against an independent per-step numpy simulator
(tests/support/dynamic_records.py),
plus preparets, closeloop/openloop and multistep prediction as MATLAB documents them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mat2grad import Mat2GradError
from mat2grad.shallow import loops
from mat2grad.shallow import simulate as sim
from mat2grad.shallow.module import ShallowNetwork
from mat2grad.shallow.preparets import preparets
from mat2grad.shallow.record import parse_network
from tests.support import dynamic_records as dr
from tests.support.helpers import FORWARD_RTOL, assert_close

KINDS = {
    "timedelaynet": dr.timedelaynet,
    "distdelaynet": dr.distdelaynet,
    "narx_open": dr.narx_open,
    "narx_closed": dr.narx_closed,
    "narnet_open": dr.narnet_open,
    "layrecnet": dr.layrecnet,
}


def build(kind, **kw):
    rec = KINDS[kind](**kw)
    return rec, ShallowNetwork(parse_network(rec, path=kind))


def random_case(net, q=3, ts=9, seed=0):
    rng = np.random.default_rng(seed)
    spec = net.spec
    x = [rng.normal(size=(q, ts, n)) for n in net.input_sizes]
    xi = [rng.normal(size=(q, spec.num_input_delays, n)) for n in net.input_sizes]
    ai = [rng.normal(size=(q, spec.num_layer_delays, layer.size)) for layer in spec.layers]
    return x, xi, ai


def tensors(arrays):
    return [torch.from_numpy(a) for a in arrays]


def reference(rec, x, xi, ai, **kw):
    q = x[0].shape[0] if x else ai[0].shape[0]
    per = [
        dr.reference_sim(rec, [v[k] for v in x], [v[k] for v in xi], [v[k] for v in ai], **kw)
        for k in range(q)
    ]
    return [np.stack([p[o] for p in per]) for o in range(len(per[0]))]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_matches_independent_per_step_simulation(kind):
    """Delay-major taps, layer delays, Xi raw / Ai processed, closed-loop feedback of the
    activation before reverse processing: every rule at once, at round-off."""
    rec, net = build(kind)
    x, xi, ai = random_case(net)
    y = net(*tensors(x), xi=tensors(xi), ai=tensors(ai))
    expected = reference(rec, x, xi, ai)[0]
    assert y.shape == expected.shape
    assert_close(y.numpy(), expected, FORWARD_RTOL, kind)


@pytest.mark.parametrize("kind", ["timedelaynet", "narx_open", "layrecnet", "narx_closed"])
def test_element_major_stacking_would_be_detected(kind):
    """The rule check can fail: element-major taps ([x1(t-1); x1(t-2); x2(t-1); ...]) give
    different outputs, and mat2grad agrees with delay-major only."""
    rec, net = build(kind)
    x, xi, ai = random_case(net)
    y = net(*tensors(x), xi=tensors(xi), ai=tensors(ai)).numpy()
    wrong = reference(rec, x, xi, ai, element_major=True)[0]
    assert np.max(np.abs(y - wrong)) > 1e-3


def test_closed_loop_feeds_back_before_reverse_processing():
    """Closed-loop NARX: the layer weight reads the output layer's activation (processed
    units). Feeding back the reverse-processed output instead changes the answer."""
    rec, net = build("narx_closed")
    spec = net.spec
    assert spec.outputs[0].steps  # the output has mapminmax, so the two rules differ
    x, xi, ai = random_case(net, q=1, ts=6)
    y = net(*tensors(x), xi=tensors(xi), ai=tensors(ai))[0].numpy()  # (TS, 1)
    # by hand: tansig hidden, purelin output, mapminmax on the input and the output
    iw, lw12, lw21 = rec["IW"][0, 0], rec["LW"][0, 1], rec["LW"][1, 0]
    b1, b2 = rec["b"][0, 0].ravel(), rec["b"][1, 0].ravel()
    s_in = rec["inputs"][0, 0]["processSettings"][0, 0]
    s_out = rec["outputs"][0, 1]["processSettings"][0, 0]

    def mm(settings, v):
        return (v - settings["xoffset"].ravel()) * settings["gain"].ravel() - 1.0

    def unmm(settings, v):
        return (v + 1.0) / settings["gain"].ravel() + settings["xoffset"].ravel()

    for fed_back_raw in (False, True):
        p = [mm(s_in, r) for r in np.concatenate([xi[0][0], x[0][0]])]
        a2 = list(ai[1][0])  # processed initial feedback states, times -1, 0
        ys = []
        for t in range(6):
            taps_x = np.concatenate([p[t + 2 - 1], p[t + 2 - 2]])  # x(t-1); x(t-2)
            prev = [a2[t + 2 - 1], a2[t + 2 - 2]]
            if fed_back_raw:
                prev = [unmm(s_out, v) for v in prev]
            a1 = np.tanh(iw @ taps_x + lw12 @ np.concatenate(prev) + b1)
            a2.append(lw21 @ a1 + b2)
            ys.append(unmm(s_out, a2[-1]))
        if fed_back_raw:
            assert np.max(np.abs(np.stack(ys) - y)) > 1e-3
        else:
            assert_close(y, np.stack(ys), FORWARD_RTOL, "closed loop by hand")


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_one_series_batch_and_vmap_agree(kind):
    _, net = build(kind)
    x, xi, ai = random_case(net, q=3)
    batch = net(*tensors(x), xi=tensors(xi), ai=tensors(ai))
    single = torch.stack(
        [
            net(
                *[v[k] for v in tensors(x)],
                xi=[v[k] for v in tensors(xi)],
                ai=[v[k] for v in tensors(ai)],
            )
            for k in range(3)
        ]
    )
    mapped = torch.func.vmap(lambda xs, xis, ais: net(*xs, xi=xis, ai=ais))(
        tensors(x), tensors(xi), tensors(ai)
    )
    assert_close(single.numpy(), batch.numpy(), 1e-14, "one series at a time")
    assert_close(mapped.numpy(), batch.numpy(), 1e-14, "vmap")


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_final_states_continue_the_simulation(kind):
    """[Y1, Xf, Af] = net(X(1:k), Xi, Ai); net(X(k+1:end), Xf, Af) == the rest of Y."""
    _, net = build(kind)
    x, xi, ai = random_case(net, q=2, ts=10)
    whole = sim.simulate(net, tensors(x), tensors(xi), tensors(ai))
    first = sim.simulate(net, [v[:, :4] for v in tensors(x)], tensors(xi), tensors(ai))
    rest = sim.simulate(net, [v[:, 4:] for v in tensors(x)], first.xf, first.af)
    y = torch.cat([first.outputs[0], rest.outputs[0]], dim=1)
    assert_close(y.numpy(), whole.outputs[0].numpy(), 1e-14, "continued")
    for a, b in zip(rest.xf, whole.xf, strict=True):
        assert_close(a.numpy(), b.numpy(), 0.0, "xf")
    for a, b in zip(rest.af, whole.af, strict=True):
        assert_close(a.numpy(), b.numpy(), 1e-14, "af")


def test_default_states_are_zeros_in_raw_units():
    """MATLAB's default Xi and Ai are zeros; Xi is raw, so it is processed like X."""
    rec, net = build("narx_open")
    x, xi, ai = random_case(net, q=2)
    zeros_xi = [np.zeros_like(v) for v in xi]
    zeros_ai = [np.zeros_like(v) for v in ai]
    y = net(*tensors(x))
    assert_close(y.numpy(), reference(rec, x, zeros_xi, zeros_ai)[0], FORWARD_RTOL, "zeros")


def test_shared_states_broadcast_over_series():
    _, net = build("layrecnet")
    x, xi, ai = random_case(net, q=3)
    shared = [v[0] for v in tensors(ai)]  # (LD, S): the same initial state for every series
    y = net(*tensors(x), ai=shared)
    expected = net(*tensors(x), ai=[s.expand(3, *s.shape) for s in shared])
    assert_close(y.numpy(), expected.numpy(), 0.0, "broadcast")


def test_static_network_keeps_its_fast_path_and_refuses_states():
    from tests.support.records import tiny_record

    net = ShallowNetwork(parse_network(tiny_record(), path="net"))
    assert not net.is_dynamic and net.input_shapes == ((2,),)
    with pytest.raises(Mat2GradError, match="static network"):
        net(torch.zeros(1, 2, dtype=torch.float64), xi=[None])


def test_dynamic_shapes_have_a_free_time_dimension():
    _, net = build("narx_open")
    assert net.is_dynamic
    assert net.input_shapes == ((None, 2), (None, 1))
    assert net.output_shapes == ((None, 1),)
    assert (net.num_input_delays, net.num_layer_delays) == (2, 0)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda net: net(torch.zeros(2, 5, 2, dtype=torch.float64)), r"has 2 input\(s\)"),
        (
            lambda net: net(torch.zeros(2, 5, 3), torch.zeros(2, 5, 1)),
            r"takes sequences of 2 features",
        ),
        (
            lambda net: net(torch.zeros(2, 5, 2), torch.zeros(2, 4, 1)),
            "same number of time steps",
        ),
        (
            lambda net: net(
                torch.zeros(2, 5, 2), torch.zeros(2, 5, 1), xi=[torch.zeros(2, 3, 2), None]
            ),
            r"expected \(Q, 2, 2\)",
        ),
        (
            lambda net: net(
                torch.zeros(2, 5, 2), torch.zeros(2, 5, 1), xi=[torch.zeros(3, 2, 2), None]
            ),
            "do not agree",
        ),
        (lambda net: net(torch.zeros(2, 5, 2), torch.zeros(2, 5, 1), ai=[None]), "2 entries"),
    ],
)
def test_wrong_shapes_are_clear_errors(call, match):
    _, net = build("narx_open")
    with pytest.raises(Mat2GradError, match=match):
        call(net.double())


def test_network_without_inputs_needs_steps():
    _, net = build("narnet_open")
    netc = loops.closeloop(net)
    assert netc.spec.inputs == ()
    with pytest.raises(Mat2GradError, match="steps"):
        netc()
    ai = [None, torch.tensor([[[0.1], [0.3], [-0.2]]], dtype=torch.float64)]
    y = netc(ai=ai, steps=7)
    assert y.shape == (1, 7, 1)


# --------------------------------------------------------------------------------------
# closeloop / openloop
# --------------------------------------------------------------------------------------


def test_closeloop_rewires_like_matlab():
    """closeloop: the feedback input and its input weight become a layer weight from the
    output, delays + feedbackDelay; the input is deleted; feedbackMode 'closed'."""
    _, net = build("narx_open", fd=0)
    closed = loops.closeloop_spec(net.spec)
    assert [i.index for i in closed.inputs] == [1]
    assert [(w.label, w.delays) for w in closed.weights] == [
        ("IW{1,1}", (1, 2)),
        ("LW{1,2}", (1, 2)),
        ("LW{2,1}", (0,)),
    ]
    out = closed.outputs[0]
    assert (out.feedback_mode, out.feedback_input) == ("closed", None)
    np.testing.assert_array_equal(closed.layer_weights[0].value, net.spec.input_weights[1].value)
    assert closed.num_layer_delays == 2 and closed.order == (1, 2)


def test_closeloop_adds_the_feedback_delay():
    _, net = build("narx_open", input_delays=(0, 1), feedback_delays=(0, 1), fd=1)
    closed = loops.closeloop_spec(net.spec)
    assert closed.layer_weights[0].delays == (1, 2)  # removedelay'd narx: [0 1] + 1
    reopened = loops.openloop_spec(closed)
    assert reopened.input_weights[1].delays == (0, 1)


def test_closeloop_with_zero_total_delay_is_a_zero_delay_loop():
    _, net = build("narx_open", input_delays=(0, 1), feedback_delays=(0, 1), fd=0)
    with pytest.raises(Mat2GradError, match="zero-delay loop"):
        loops.closeloop(net)


def test_closed_loop_equals_open_loop_fed_its_own_outputs():
    """The closed loop is the open loop whose feedback input receives the network's own
    outputs (raw) - exactly, since the feedback input's processing is the output's."""
    _, net = build("narx_open")
    netc = loops.closeloop(net)
    x, xi, ai = random_case(netc, q=2, ts=8)
    yc = netc(*tensors(x), xi=tensors(xi), ai=tensors(ai))
    prev = net.output_processing[0].reverse(tensors(ai)[1])  # raw feedback, times -1, 0
    yo = net(tensors(x)[0], yc, xi=[tensors(xi)[0], prev])
    assert_close(yo.numpy(), yc.numpy(), 1e-14, "teacher forcing with own outputs")


def test_openloop_undoes_closeloop():
    _, net = build("narx_closed")
    neto = loops.openloop(net)
    assert neto.spec.inputs[-1].feedback_output == 2
    assert neto.spec.outputs[0].feedback_mode == "open"
    again = loops.closeloop(neto)
    x, xi, ai = random_case(net)
    y1 = net(*tensors(x), xi=tensors(xi), ai=tensors(ai))
    y2 = again(*tensors(x), xi=tensors(xi), ai=tensors(ai))
    assert_close(y2.numpy(), y1.numpy(), 0.0, "closeloop(openloop(net))")


def test_closeloop_of_a_network_without_feedback_is_the_network():
    _, net = build("timedelaynet")
    assert loops.closeloop(net) is net and loops.openloop(net) is net


# --------------------------------------------------------------------------------------
# preparets (MATLAB's documented example: narxnet(1:2,1:2) on TS steps gives Xs = X(3:end)
# and T(3:end) as the feedback input, Xi = X(1:2), T(1:2), Ts = T(3:end); closed loop:
# Xs = X(3:end), Xi = X(1:2), Ai{2,:} = processed T(1:2), Ai{1,:} = 0)
# --------------------------------------------------------------------------------------


def _series(q=2, ts=12, seed=3):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(q, ts, 2)), rng.normal(size=(q, ts, 1))


def test_preparets_open_loop_narx():
    _, net = build("narx_open")
    x, t = _series()
    p = preparets(net, [x], [], [t])
    assert p.shift == 2
    np.testing.assert_array_equal(p.x[0].numpy(), x[:, 2:])
    np.testing.assert_array_equal(p.x[1].numpy(), t[:, 2:])  # targets copied into input 2
    np.testing.assert_array_equal(p.xi[0].numpy(), x[:, :2])
    np.testing.assert_array_equal(p.xi[1].numpy(), t[:, :2])
    np.testing.assert_array_equal(p.t[0].numpy(), t[:, 2:])
    assert [a.shape for a in p.ai] == [(2, 0, 3), (2, 0, 1)]


def test_preparets_closed_loop_narx_states_are_processed_targets():
    _, net = build("narx_closed")
    x, t = _series()
    p = preparets(net, [x], [], [t])
    assert p.shift == 2 and len(p.x) == 1
    np.testing.assert_array_equal(p.x[0].numpy(), x[:, 2:])
    np.testing.assert_array_equal(p.xi[0].numpy(), x[:, :2])
    np.testing.assert_array_equal(p.ai[0].numpy(), np.zeros((2, 2, 3)))
    processed = net.output_processing[0].apply(torch.from_numpy(t[:, :2]))
    assert_close(p.ai[1].numpy(), processed.numpy(), 0.0, "Ai{2,:}")


def test_first_closed_loop_step_equals_the_open_loop_step():
    """With preparets' states, step 1 of the closed loop sees the same (processed) targets
    as the open loop: the outputs agree there and diverge later."""
    _, net = build("narx_open")
    netc = loops.closeloop(net)
    x, t = _series(q=1, ts=10)
    po = preparets(net, [x], [], [t])
    pc = preparets(netc, [x], [], [t])
    yo = net(*po.x, xi=po.xi, ai=po.ai)
    yc = netc(*pc.x, xi=pc.xi, ai=pc.ai)
    assert_close(yc[:, :1].numpy(), yo[:, :1].numpy(), 1e-14, "first step")
    assert np.max(np.abs(yc[:, 3:].numpy() - yo[:, 3:].numpy())) > 1e-6


def test_preparets_after_removedelay_predicts_one_step_ahead():
    """removedelay'd narx (delays 0:1, feedbackDelay 1): Xs = X(2:end), T(2:end) as the
    feedback input, Xi = X(1), T(1); Ts = T(3:end) then NaN (the step not yet seen)."""
    _, net = build("narx_open", input_delays=(0, 1), feedback_delays=(0, 1), fd=1)
    x, t = _series(q=1, ts=8)
    p = preparets(net, [x], [], [t])
    assert p.shift == 1
    np.testing.assert_array_equal(p.x[0].numpy(), x[:, 1:])
    np.testing.assert_array_equal(p.x[1].numpy(), t[:, 1:])
    np.testing.assert_array_equal(p.xi[1].numpy(), t[:, :1])
    np.testing.assert_array_equal(p.t[0][:, :-1].numpy(), t[:, 2:])
    assert torch.isnan(p.t[0][:, -1]).all()


def test_preparets_layer_delays_shift_too():
    _, net = build("layrecnet")  # input delay 0, layer delays 1:2
    x, t = _series(ts=9)
    p = preparets(net, [x], [t], [])
    assert p.shift == 2 and p.xi[0].shape == (2, 0, 2)
    np.testing.assert_array_equal(p.x[0].numpy(), x[:, 2:])
    np.testing.assert_array_equal(p.ai[0].numpy(), np.zeros((2, 2, 4)))


@pytest.mark.parametrize(
    ("kind", "args", "match"),
    [
        ("narx_open", lambda x, t: ([x], [], []), "pass their target series as feedback"),
        ("narx_open", lambda x, t: ([], [], [t]), "1 non-feedback input"),
        ("timedelaynet", lambda x, t: ([x[:, :2]], [], []), "2 time steps, but 2 are needed"),
        ("narx_open", lambda x, t: ([x], [], [t[:, :5]]), "same number of series"),
    ],
)
def test_preparets_errors(kind, args, match):
    _, net = build(kind)
    x, t = _series()
    with pytest.raises(Mat2GradError, match=match):
        preparets(net, *args(x, t))


# --------------------------------------------------------------------------------------
# Multistep prediction following a known sequence (MATLAB's recipe, the one real users
# run: preparets, open-loop sim for the final states, closeloop(net, xf, af), netc(X2))
# --------------------------------------------------------------------------------------


def test_closeloop_states_move_feedback_inputs_into_the_output_layer():
    _, net = build("narx_open")
    rng = np.random.default_rng(5)
    xf = [
        torch.from_numpy(rng.normal(size=(2, 2, 2))),
        torch.from_numpy(rng.normal(size=(2, 2, 1))),
    ]
    af = [torch.zeros(2, 0, 3, dtype=torch.float64), torch.zeros(2, 0, 1, dtype=torch.float64)]
    xic, aic = loops.closeloop_states(net, xf, af)
    assert len(xic) == 1 and torch.equal(xic[0], xf[0])
    assert torch.equal(aic[0], torch.zeros(2, 2, 3, dtype=torch.float64))
    assert_close(aic[1].numpy(), net.input_processing[1].apply(xf[1]).numpy(), 0.0, "aic")


def test_closeloop_states_refuse_a_positive_feedback_delay():
    _, net = build("narx_open", input_delays=(0, 1), feedback_delays=(0, 1), fd=1)
    with pytest.raises(Mat2GradError, match="feedbackDelay 1"):
        loops.closeloop_states(net, None, None)


@pytest.mark.parametrize("saved", ["open", "closed"])
def test_predict_ahead_is_matlabs_recipe(saved):
    rec_open, net_open = build("narx_open")
    net = net_open if saved == "open" else loops.closeloop(net_open)
    x1, t1 = _series(q=2, ts=12, seed=7)
    x2 = np.random.default_rng(8).normal(size=(2, 6, 2))
    sim = loops.predict_ahead(net, [x1], [t1], [x2])
    # by the recipe, step by step, with the independent simulator for the closed part
    p = preparets(net_open, [x1], [], [t1])
    xf = [np.concatenate([p.xi[j].numpy(), p.x[j].numpy()], axis=1)[:, -2:] for j in range(2)]
    assert np.array_equal(xf[1], t1[:, -2:])  # the open loop's final feedback states
    rec_closed = dr.narx_closed()  # same layout; rebuild with the open net's weights
    rec_closed.fields["IW"][0, 0] = rec_open["IW"][0, 0]
    rec_closed.fields["LW"][0, 1] = rec_open["IW"][0, 1]
    rec_closed.fields["LW"][1, 0] = rec_open["LW"][1, 0]
    rec_closed.fields["b"] = rec_open["b"]
    rec_closed.fields["inputs"][0, 0] = rec_open["inputs"][0, 0]
    rec_closed.fields["outputs"][0, 1] = rec_open["outputs"][0, 1]
    processed = net_open.input_processing[1].apply(torch.from_numpy(xf[1])).numpy()
    ai = [np.zeros((2, 2, 3)), processed]
    expected = reference(rec_closed, [x2], [xf[0]], ai)[0]
    assert_close(sim.outputs[0].numpy(), expected, FORWARD_RTOL, "predict ahead")


def test_predict_ahead_for_narnet_needs_steps():
    _, net = build("narnet_open")
    t1 = np.random.default_rng(2).normal(size=(1, 10, 1))
    sim = loops.predict_ahead(net, [], [t1], steps=5)
    assert sim.outputs[0].shape == (1, 5, 1)
    with pytest.raises(Mat2GradError, match="no feedback output"):
        loops.predict_ahead(build("timedelaynet")[1], [], [t1], steps=5)


@pytest.mark.parametrize("kind", ["narx_open", "layrecnet", "narx_closed"])
def test_states_as_inputs_follow_the_model_contract(kind):
    """WithStates(net)(x..., xi..., ai...) == net(x..., xi=..., ai=...), per sample too, so
    an engine that chunks samples keeps each series with its states."""
    _, net = build(kind)
    m = sim.WithStates(net)
    x, xi, ai = random_case(net, q=3)
    args = tensors(x) + tensors(xi) + tensors(ai)
    y = m(*args)
    assert_close(y.numpy(), net(*tensors(x), xi=tensors(xi), ai=tensors(ai)).numpy(), 0.0, "")
    assert len(m.input_shapes) == len(args) and m.input_shapes[len(x)] == xi[0].shape[1:]
    per_sample = torch.cat([m(*[a[k : k + 1] for a in args]) for k in range(3)])
    assert_close(per_sample.numpy(), y.numpy(), 1e-14, "chunks of one")
    with pytest.raises(Mat2GradError, match="tensors"):
        m(*tensors(x))
