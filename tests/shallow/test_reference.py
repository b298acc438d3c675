"""The independent numpy reference (tests/support/reference.py) checked on its own: against
MATLAB's saved outputs in the corpus, against hand-computed values of every MATLAB function, and
against the delay, recurrence and feedback rules of MATLAB's time-series networks.

The reference computes the expected outputs of the synthetic fixtures, so it must be right
independently of mat2grad; nothing here imports mat2grad.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.io

from fixtures.matlab_layout import (
    Layer,
    Net,
    Weight,
    build_record,
    cell,
    make_port,
    mat_bytes,
    network_object,
    read_back,
    struct_,
)
from tests.support import reference as ref
from tests.support.helpers import (
    CORPUS,
    FIXTURES,
    assert_close,
    corpus_cases,
    max_rel_err,
    requires_corpus,
)

# --------------------------------------------------------------------------------------
# Against MATLAB's own outputs
# --------------------------------------------------------------------------------------


def _load(path):
    return scipy.io.loadmat(path, squeeze_me=False, struct_as_record=True)


@pytest.mark.parametrize("case", corpus_cases("shallow/", having=("expected",)))
def test_reference_reproduces_matlab_outputs(case):
    variables = _load(CORPUS / case["file"])
    net = ref.resolve(variables, case["network"])
    x = ref.num(variables[case["inputs"]])
    expected = ref.num(variables[case["expected"]])
    if case["samples"] == "rows":
        x, expected = x.T, expected.T
    y = ref.sim(net, x)
    if expected.shape != y.shape:  # abj247 network1_outputs is stored samples x outputs
        expected = expected.T
    assert_close(y, expected, case["rtol"], f"{case['file']} {case['network']}")


@requires_corpus
def test_reference_reproduces_matlab_training_performance():
    """MahmoudJumaa: NaN-ignoring mse over tr.trainInd / tr.valInd equals tr.best_perf /
    tr.best_vperf (MATLAB's own numbers, targets in original units)."""
    variables = _load(CORPUS / "shallow" / "mahmoudjumaa_net.mat")
    net, tr = variables["net"], variables["tr"]
    y = ref.sim(net, ref.num(variables["Input_Training"]).T)
    t = ref.num(variables["Output_Training"]).T
    for index, best in (("trainInd", "best_perf"), ("valInd", "best_vperf")):
        cols = ref.indices(ref.field(tr, index))
        mse = np.nanmean((t[:, cols] - y[:, cols]) ** 2)
        assert_close(mse, ref.scalar(ref.field(tr, best)), 1e-13, index)


# --------------------------------------------------------------------------------------
# Every function, hand-computed
# --------------------------------------------------------------------------------------

E1 = math.exp(-1.0)

TRANSFER_CASES = [
    ("tansig", [[-2.0], [0.0], [0.5]], [[math.tanh(-2.0)], [0.0], [math.tanh(0.5)]]),
    ("logsig", [[0.0], [2.0]], [[0.5], [1 / (1 + math.exp(-2.0))]]),
    ("purelin", [[-3.5], [2.0]], [[-3.5], [2.0]]),
    ("poslin", [[-1.0], [0.0], [2.0]], [[0.0], [0.0], [2.0]]),
    ("satlin", [[-0.5], [0.25], [1.5]], [[0.0], [0.25], [1.0]]),
    ("satlins", [[-2.0], [-0.5], [3.0]], [[-1.0], [-0.5], [1.0]]),
    ("radbas", [[0.0], [1.0], [-1.0]], [[1.0], [E1], [E1]]),
    ("radbasn", [[0.0, 1.0], [1.0, 1.0]], [[1 / (1 + E1), 0.5], [E1 / (1 + E1), 0.5]]),
    ("tribas", [[-2.0], [-0.25], [0.5], [1.0]], [[0.0], [0.75], [0.5], [0.0]]),
    (
        "softmax",
        [[0.0, 5.0], [math.log(2.0), 5.0], [math.log(3.0), 5.0]],
        [[1 / 6, 1 / 3], [2 / 6, 1 / 3], [3 / 6, 1 / 3]],
    ),
    ("elliotsig", [[-1.0], [3.0]], [[-0.5], [0.75]]),
    ("elliot2sig", [[-2.0], [1.0], [0.0]], [[-0.8], [0.5], [0.0]]),
    ("hardlim", [[-1e-300], [0.0], [2.0]], [[0.0], [1.0], [1.0]]),
    ("hardlims", [[-0.1], [0.0], [5.0]], [[-1.0], [1.0], [1.0]]),
    (
        "compet",
        [[1.0, 0.0], [3.0, 0.0], [3.0, -1.0], [2.0, 0.0]],
        [[0.0, 1.0], [1.0, 0.0], [0.0, 0.0], [0.0, 0.0]],
    ),
    ("netinv", [[4.0], [-0.5]], [[0.25], [-2.0]]),
]


def test_every_documented_transfer_function_has_a_case():
    assert sorted(name for name, _, _ in TRANSFER_CASES) == sorted(ref.TRANSFER)


@pytest.mark.parametrize(("name", "n", "a"), TRANSFER_CASES, ids=[c[0] for c in TRANSFER_CASES])
def test_transfer_function(name, n, a):
    got = ref.TRANSFER[name](np.array(n))
    assert_close(got, np.array(a), 1e-15, name)


W2 = np.array([[0.0, 0.0], [1.0, 1.0]])
P1 = np.array([[3.0], [4.0]])

WEIGHT_CASES = [
    ("dotprod", W2, P1, [[0.0], [7.0]]),
    ("dist", W2, P1, [[5.0], [math.sqrt(13.0)]]),
    ("negdist", W2, P1, [[-5.0], [-math.sqrt(13.0)]]),
    ("mandist", W2, P1, [[7.0], [5.0]]),
    ("normprod", W2, P1, [[0.0], [1.0]]),
    ("normprod", W2, np.array([[-1.0, 0.0], [3.0, 0.0]]), [[0.0, 0.0], [0.5, 0.0]]),
]


@pytest.mark.parametrize(("name", "w", "p", "z"), WEIGHT_CASES, ids=[c[0] for c in WEIGHT_CASES])
def test_weight_function(name, w, p, z):
    assert_close(ref.WEIGHT[name](w, p), np.array(z), 1e-15, name)


def test_net_input_functions():
    z = [np.array([[1.0], [2.0]]), np.array([[3.0], [4.0]]), np.array([[5.0], [6.0]])]
    assert np.array_equal(ref.NET_INPUT["netsum"](z), [[9.0], [12.0]])
    assert np.array_equal(ref.NET_INPUT["netprod"](z), [[15.0], [48.0]])


def _port(fcn, settings):
    return struct_(processFcns=cell([fcn]), processSettings=cell([settings]))


def _col(*v):
    return np.array(v, dtype=np.float64).reshape(-1, 1)


PROCESS_CASES = [
    # mapminmax with stored gain/xoffset (format 8): y = (x - xoffset) * gain + ymin
    (
        "mapminmax",
        struct_(gain=_col(2.0), xoffset=_col(1.0), ymin=_col(-1.0), no_change=_col(0)),
        [[1.0, 2.0, 1.5]],
        [[-1.0, 1.0, 0.0]],
    ),
    # format 7: no gain/xoffset; MATLAB's rule: row 2 has zero range, row 3 |gain| = 2e15 > 1e14
    (
        "mapminmax",
        struct_(
            xmin=_col(0.0, 5.0, 0.0),
            xmax=_col(2.0, 5.0, 1e-15),
            ymin=_col(-1.0),
            ymax=_col(1.0),
            no_change=_col(0),
        ),
        [[1.0], [7.0], [3.0]],
        [[0.0], [7.0], [3.0]],
    ),
    (
        "mapstd",
        struct_(
            xmean=_col(2.0), xstd=_col(4.0), ymean=_col(0.0), ystd=_col(1.0), no_change=_col(0)
        ),
        [[6.0, 2.0]],
        [[1.0, 0.0]],
    ),
    (
        "mapstd",
        struct_(gain=_col(0.5), xoffset=_col(1.0), ymean=_col(3.0), no_change=_col(0)),
        [[5.0]],
        [[5.0]],
    ),
    (
        "removeconstantrows",
        struct_(
            keep=np.array([[1.0, 3.0]]),
            remove=np.array([[2.0]]),
            value=_col(7.0),
            xrows=_col(3),
            no_change=_col(0),
        ),
        [[1.0, 4.0], [7.0, 7.0], [2.0, 5.0]],
        [[1.0, 4.0], [2.0, 5.0]],
    ),
    (
        "processpca",
        struct_(
            transform=np.array([[1.0, 1.0]]) / math.sqrt(2.0),
            inverseTransform=np.array([[1.0], [1.0]]) / math.sqrt(2.0),
            no_change=_col(0),
        ),
        [[1.0], [1.0]],
        [[math.sqrt(2.0)]],
    ),
    # fixunknowns: row 2 had NaN in training -> a value row (NaN -> mean) and a known flag;
    # a NaN in a row without a flag is replaced by that row's mean too
    (
        "fixunknowns",
        struct_(
            xrows=_col(3),
            yrows=_col(4),
            unknown=np.array([[2.0]]),
            shift=np.array([[0.0, 0.0, 1.0]]),
            xmeans=_col(10.0, 20.0, 30.0),
            no_change=_col(0),
        ),
        [[1.0, np.nan], [np.nan, 5.0], [3.0, 3.0]],
        [[1.0, 10.0], [20.0, 5.0], [0.0, 1.0], [3.0, 3.0]],
    ),
    ("lvqoutputs", struct_(no_change=_col(1)), [[0.0, 1.0], [1.0, 0.0]], [[0.0, 1.0], [1.0, 0.0]]),
]


@pytest.mark.parametrize(
    ("fcn", "settings", "x", "y"),
    PROCESS_CASES,
    ids=[f"{c[0]}-{k}" for k, c in enumerate(PROCESS_CASES)],
)
def test_processing_apply(fcn, settings, x, y):
    assert_close(ref.process_apply(_port(fcn, settings), np.array(x)), np.array(y), 1e-15, fcn)


@pytest.mark.parametrize(
    ("fcn", "settings", "x", "y"),
    [c for c in PROCESS_CASES if c[0] != "fixunknowns"],
    ids=[f"{c[0]}-{k}" for k, c in enumerate(PROCESS_CASES) if c[0] != "fixunknowns"],
)
def test_processing_reverse_undoes_apply(fcn, settings, x, y):
    x = np.array(x)
    back = ref.process_reverse(_port(fcn, settings), ref.process_apply(_port(fcn, settings), x))
    if fcn == "removeconstantrows":  # removed rows come back as the stored constants
        x = x.copy()
        x[1, :] = 7.0
    assert_close(back, x, 1e-15, fcn)


def test_no_change_is_the_identity():
    bogus = struct_(gain=_col(1e6), xoffset=_col(-3.0), ymin=_col(-1.0), no_change=_col(1))
    x = np.array([[0.5, 2.0]])
    assert np.array_equal(ref.process_apply(_port("mapminmax", bogus), x), x)
    assert np.array_equal(ref.process_reverse(_port("mapminmax", bogus), x), x)


# --------------------------------------------------------------------------------------
# Delays, recurrence, feedback (hand-built networks)
# --------------------------------------------------------------------------------------


def _record(net: Net):
    """What scipy reads back from the network written in MATLAB's layout."""
    return read_back(
        mat_bytes({"net": network_object(build_record(net, np.random.default_rng(0)))})
    )["net"]


def test_tapped_delays_stack_delay_major():
    """delays [1 2] on a 2-row input: the weight sees [x(t-1); x(t-2)], not the rows
    interleaved; W = [w_d1 | w_d2]."""
    data = np.arange(8.0).reshape(2, 4)
    w = np.array([[1.0, 10.0, 100.0, 1000.0]])
    net = Net(
        "toy",
        [make_port("x", data, [])],
        [Layer(1, "purelin", name="Output")],
        {0: make_port("y", np.zeros((1, 4)), [])},
        {(0, 0): Weight(w, (1, 2))},
    )
    record = _record(net)
    xi = [[np.array([[1.0], [2.0]]), np.array([[3.0], [4.0]])]]  # x(-2), x(-1)
    x = [[np.array([[5.0], [6.0]]), np.array([[7.0], [8.0]]), np.array([[9.0], [10.0]])]]
    y, xf, _ = ref.simulate(record, x, xi)
    seq = [*xi[0], *x[0]]
    expected = [w[:, :2] @ seq[t + 1] + w[:, 2:] @ seq[t] for t in range(3)]
    interleaved = [
        w @ np.array([seq[t + 1][0], seq[t][0], seq[t + 1][1], seq[t][1]]) for t in range(3)
    ]
    for t in range(3):
        assert_close(y[0][t], expected[t], 0.0, f"t={t}")
        assert max_rel_err(y[0][t], interleaved[t]) > 1e-3  # the test can tell the two apart
    assert [a.tolist() for a in xf[0]] == [[[7.0], [8.0]], [[9.0], [10.0]]]


def test_layer_delays_use_previous_layer_outputs():
    """a(t) = x(t) + 0.5 a(t-1) through LW{1,1} with delay 1, from Ai."""
    net = Net(
        "toy",
        [make_port("x", np.ones((1, 3)), [])],
        [Layer(1, "purelin", name="Output")],
        {0: make_port("y", np.zeros((1, 3)), [])},
        {(0, 0): Weight(np.array([[1.0]]))},
        {(0, 0): Weight(np.array([[0.5]]), (1,))},
    )
    record = _record(net)
    x = [[np.array([[1.0, 0.0]]), np.array([[2.0, 0.0]]), np.array([[-1.0, 0.0]])]]
    y, _, af = ref.simulate(record, x, None, [[np.array([[2.0, 8.0]])]])
    a, expected = np.array([2.0, 8.0]), []
    for t in range(3):
        a = x[0][t][0] + 0.5 * a
        expected.append(a.copy())
    for t in range(3):
        assert_close(y[0][t], expected[t].reshape(1, 2), 1e-15, f"t={t}")
    assert_close(af[0][0], expected[-1].reshape(1, 2), 1e-15, "final layer state")


def test_closed_loop_feeds_back_the_activation_before_reverse_processing():
    """Output processing mapminmax maps targets [0, 10] to [-1, 1] (gain 0.2). The fed-back
    value is the layer's activation a(t-1), not the raw output y(t-1) = (a + 1) / 0.2."""
    t_train = np.array([[0.0, 10.0, 5.0]])
    out = make_port("y", t_train, ["mapminmax"], feedback_mode="closed")
    net = Net(
        "toy",
        [make_port("x", np.ones((1, 3)), [])],
        [Layer(1, "purelin", name="Output")],
        {0: out},
        {(0, 0): Weight(np.array([[1.0]]))},
        {(0, 0): Weight(np.array([[0.5]]), (1,))},
    )
    record = _record(net)
    xs = [[np.array([[0.1]]), np.array([[0.2]]), np.array([[-0.3]])]]
    a, expected = 0.4, []  # Ai: processed target 7 -> 7 * 0.2 - 1 = 0.4
    for t in range(3):
        a = xs[0][t][0, 0] + 0.5 * a
        expected.append((a + 1.0) / 0.2)
    _, xi, ai, _ = ref.preparets(
        record, [[np.array([[0.0]])] + xs[0]], [[np.array([[7.0]])] + [np.array([[0.0]])] * 3]
    )
    assert_close(ai[0][0], np.array([[0.4]]), 1e-15, "Ai is the processed target")
    y, _, _ = ref.simulate(record, xs, xi, ai)
    assert_close(np.hstack([v for v in y[0]]), np.array([expected]), 1e-14, "closed loop")


def _fixture(name):
    return _load(FIXTURES / name)


def _cells(c):
    return [[c[i, j] for j in range(c.shape[1])] for i in range(c.shape[0])]


def test_closed_loop_equals_open_loop_fed_its_own_predictions():
    """narx_closed and narx_open hold the same weights. Running the open-loop net with the
    closed loop's initial states and its predictions as the feedback input reproduces the
    closed loop's predictions."""
    closed, opened = _fixture("narx_closed.mat"), _fixture("narx_open.mat")
    x, xi, ai = _cells(closed["X"]), _cells(closed["Xi"]), _cells(closed["Ai"])
    y_closed, _, _ = ref.simulate(closed["net"], x, xi, ai)
    # The open loop's feedback input takes raw outputs: first the raw targets that the closed
    # loop's initial states came from, then the closed loop's own predictions. Its output at
    # t sees y(t-1), y(t-2) through the feedback delays [1 2].
    feedback = [*_cells(closed["Tseries"])[0][:2], *y_closed[0]]
    y_open, _, _ = ref.simulate(opened["net"], [x[0], feedback[2:]], [xi[0], feedback[:2]])
    assert_close(np.hstack(y_open[0]), np.hstack(y_closed[0]), 1e-13, "open vs closed")


def test_preparets_feeds_targets_to_the_open_loop_feedback_input():
    opened = _fixture("narx_open.mat")
    x_series, t_series = _cells(opened["Xseries"]), _cells(opened["Tseries"])
    xs, xi, ai, ts = ref.preparets(opened["net"], x_series, t_series)
    assert [len(v) for v in xi] == [2, 2] and ai == [[], []]
    assert all(np.array_equal(a, b) for a, b in zip(xi[1], t_series[0][:2], strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(xs[1], t_series[0][2:], strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(xs[0], x_series[0][2:], strict=True))
    assert len(ts[0]) == len(t_series[0]) - 2
