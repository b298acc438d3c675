"""Hand-made dynamic network records (timedelaynet, distdelaynet, narxnet open and closed,
narnet, layrecnet) in the neutral tree form, with seeded random weights, and an independent
plain-numpy simulator that reads those records directly (not mat2grad's spec) for the rule
checks of MATLAB's delay, recurrence and feedback semantics."""

from __future__ import annotations

import numpy as np

from mat2grad.matfile import MatStruct
from tests.support.records import cell, empty, mapminmax


def _mm(rng, n):
    """Random mapminmax settings for n rows (xoffset, gain)."""
    return mapminmax(rng.uniform(-2, 2, n), rng.uniform(0.2, 1.5, n))


def dynamic_record(
    *,
    input_sizes,
    layers,
    iw,
    lw,
    outputs,
    seed=0,
    feedback_inputs=None,
    input_processing=None,
    output_processing=None,
):
    """A network record.

    input_sizes: raw rows per input; layers: [(size, transfer)]; iw: {(i, j): delays};
    lw: {(i, k): delays}; outputs: {layer: (feedbackMode, feedbackInput, feedbackDelay)};
    feedback_inputs: {input: output layer} (inputs{j}.feedbackOutput);
    input_processing / output_processing: {index: settings MatStruct} for mapminmax (a
    missing index gets random settings; None means no processing at all).
    """
    rng = np.random.default_rng(seed)
    ni, nl = len(input_sizes), len(layers)
    feedback_inputs = feedback_inputs or {}
    inputs = []
    for j, size in enumerate(input_sizes, start=1):
        if input_processing is None:
            fcns, sets = cell(shape=(1, 0)), cell(shape=(1, 0))
        else:
            settings = input_processing.get(j) or _mm(rng, size)
            fcns, sets = cell("mapminmax", shape=(1, 1)), cell(settings, shape=(1, 1))
        fb = feedback_inputs.get(j)
        inputs.append(
            MatStruct(
                {
                    "name": f"in{j}",
                    "size": np.array([[size]]),
                    "processFcns": fcns,
                    "processSettings": sets,
                    "feedbackOutput": np.array([[fb]]) if fb else np.zeros((0, 0)),
                }
            )
        )
    layer_structs = [
        MatStruct({"name": f"L{i}", "size": np.array([[s]]), "transferFcn": t})
        for i, (s, t) in enumerate(layers, start=1)
    ]
    out_cells = []
    for i in range(1, nl + 1):
        if i not in outputs:
            out_cells.append(empty())
            continue
        mode, fb_in, fb_delay = outputs[i]
        size = layers[i - 1][0]
        if output_processing is None:
            fcns, sets = cell(shape=(1, 0)), cell(shape=(1, 0))
        else:
            settings = output_processing.get(i) or _mm(rng, size)
            fcns, sets = cell("mapminmax", shape=(1, 1)), cell(settings, shape=(1, 1))
        out_cells.append(
            MatStruct(
                {
                    "name": f"out{i}",
                    "size": np.array([[size]]),
                    "processFcns": fcns,
                    "processSettings": sets,
                    "feedbackMode": mode,
                    "feedbackInput": np.array([[fb_in]]) if fb_in else np.zeros((0, 0)),
                    "feedbackDelay": np.array([[fb_delay]]),
                }
            )
        )
    iw_props, iw_vals = np.empty((nl, ni), dtype=object), np.empty((nl, ni), dtype=object)
    lw_props, lw_vals = np.empty((nl, nl), dtype=object), np.empty((nl, nl), dtype=object)
    for arr in (iw_props, iw_vals, lw_props, lw_vals):
        for idx in np.ndindex(arr.shape):
            arr[idx] = empty()
    input_connect = np.zeros((nl, ni), dtype=np.uint8)
    layer_connect = np.zeros((nl, nl), dtype=np.uint8)
    for (i, j), delays in iw.items():
        input_connect[i - 1, j - 1] = 1
        iw_props[i - 1, j - 1] = MatStruct(
            {"weightFcn": "dotprod", "delays": np.array([list(delays)], dtype=float)}
        )
        iw_vals[i - 1, j - 1] = rng.normal(
            0, 0.6, (layers[i - 1][0], len(delays) * input_sizes[j - 1])
        )
    for (i, k), delays in lw.items():
        layer_connect[i - 1, k - 1] = 1
        lw_props[i - 1, k - 1] = MatStruct(
            {"weightFcn": "dotprod", "delays": np.array([list(delays)], dtype=float)}
        )
        lw_vals[i - 1, k - 1] = rng.normal(
            0, 0.6, (layers[i - 1][0], len(delays) * layers[k - 1][0])
        )
    out_connect = np.zeros((1, nl), dtype=np.uint8)
    for i in outputs:
        out_connect[0, i - 1] = 1
    fields = {
        "version": "8",
        "name": "dynamic",
        "numInputs": np.array([[ni]]),
        "numLayers": np.array([[nl]]),
        "numOutputs": np.array([[len(outputs)]]),
        "biasConnect": np.ones((nl, 1), dtype=np.uint8),
        "inputConnect": input_connect,
        "layerConnect": layer_connect,
        "outputConnect": out_connect,
        "inputs": cell(*inputs) if inputs else np.empty((0, 1), dtype=object),
        "layers": cell(*layer_structs),
        "outputs": cell(*out_cells, shape=(1, nl)),
        "inputWeights": iw_props,
        "layerWeights": lw_props,
        "IW": iw_vals,
        "LW": lw_vals,
        "b": cell(*[rng.normal(0, 0.3, (s, 1)) for s, _ in layers]),
        "performFcn": "mse",
    }
    return MatStruct(fields, classname="network")


def narx_open(seed=0, input_delays=(1, 2), feedback_delays=(1, 2), hidden=3, r=2, s=1, fd=0):
    """narxnet(input_delays, feedback_delays, hidden) in open-loop form: input 2 is the
    feedback input of output 2 and shares its mapminmax settings (as MATLAB configures)."""
    rng = np.random.default_rng(seed + 1000)
    out_settings = _mm(rng, s)
    return dynamic_record(
        input_sizes=[r, s],
        layers=[(hidden, "tansig"), (s, "purelin")],
        iw={(1, 1): input_delays, (1, 2): feedback_delays},
        lw={(2, 1): (0,)},
        outputs={2: ("open", 2, fd)},
        feedback_inputs={2: 2},
        input_processing={2: out_settings},
        output_processing={2: out_settings},
        seed=seed,
    )


def narx_closed(seed=0, input_delays=(1, 2), feedback_delays=(1, 2), hidden=3, r=2, s=1):
    """The closed-loop narxnet as MATLAB saves it: one input, LW{1,2} from the output."""
    return dynamic_record(
        input_sizes=[r],
        layers=[(hidden, "tansig"), (s, "purelin")],
        iw={(1, 1): input_delays},
        lw={(1, 2): feedback_delays, (2, 1): (0,)},
        outputs={2: ("closed", None, 0)},
        input_processing={},
        output_processing={},
        seed=seed,
    )


def narnet_open(seed=0, feedback_delays=(1, 2, 3), hidden=4):
    rng = np.random.default_rng(seed + 1000)
    out_settings = _mm(rng, 1)
    return dynamic_record(
        input_sizes=[1],
        layers=[(hidden, "tansig"), (1, "purelin")],
        iw={(1, 1): feedback_delays},
        lw={(2, 1): (0,)},
        outputs={2: ("open", 1, 0)},
        feedback_inputs={1: 2},
        input_processing={1: out_settings},
        output_processing={2: out_settings},
        seed=seed,
    )


def timedelaynet(seed=0, delays=(0, 1, 2), hidden=4, r=2, s=2):
    return dynamic_record(
        input_sizes=[r],
        layers=[(hidden, "tansig"), (s, "purelin")],
        iw={(1, 1): delays},
        lw={(2, 1): (0,)},
        outputs={2: ("none", None, 0)},
        input_processing={},
        output_processing={},
        seed=seed,
    )


def distdelaynet(seed=0, delays1=(0, 2), delays2=(0, 1, 3), hidden=3, r=2, s=1):
    return dynamic_record(
        input_sizes=[r],
        layers=[(hidden, "logsig"), (s, "purelin")],
        iw={(1, 1): delays1},
        lw={(2, 1): delays2},
        outputs={2: ("none", None, 0)},
        input_processing={},
        output_processing={},
        seed=seed,
    )


def layrecnet(seed=0, layer_delays=(1, 2), hidden=4, r=2, s=1):
    return dynamic_record(
        input_sizes=[r],
        layers=[(hidden, "tansig"), (s, "purelin")],
        iw={(1, 1): (0,)},
        lw={(1, 1): layer_delays, (2, 1): (0,)},
        outputs={2: ("none", None, 0)},
        input_processing={},
        output_processing={},
        seed=seed,
    )


# --------------------------------------------------------------------------------------
# An independent simulator: plain numpy, one series and one time step at a time, reading
# the record's cells directly.
# --------------------------------------------------------------------------------------

_TRANSFER = {"tansig": np.tanh, "logsig": lambda n: 1 / (1 + np.exp(-n)), "purelin": lambda n: n}


def _settings(struct):
    fcns = list(struct["processFcns"].reshape(-1, order="F"))
    sets = list(struct["processSettings"].reshape(-1, order="F"))
    assert all(f == "mapminmax" for f in fcns)
    return [
        (s["xoffset"].reshape(-1), s["gain"].reshape(-1), float(s["ymin"].reshape(-1)[0]))
        for s in sets
    ]


def _apply(settings, v):
    for xoffset, gain, ymin in settings:
        v = (v - xoffset) * gain + ymin
    return v


def _reverse(settings, v):
    for xoffset, gain, ymin in reversed(settings):
        v = (v - ymin) / gain + xoffset
    return v


def reference_sim(rec, x, xi=None, ai=None, element_major=False, steps=None):
    """Simulate one series: x is a list of (TS, R_j) arrays (raw), xi a list of (ID, R_j)
    raw states, ai a list of (LD, S_i) layer states; returns a list of (TS, S) outputs.

    Delay-major tapped delays ([x(t-d1); x(t-d2); ...]) unless element_major=True (the
    wrong rule, kept to show the check can fail)."""
    nl = int(rec["numLayers"][0, 0])
    ni = int(rec["numInputs"][0, 0])
    inputs = list(rec["inputs"].reshape(-1, order="F"))
    layers = list(rec["layers"].reshape(-1, order="F"))
    outputs = list(rec["outputs"].reshape(-1, order="F"))
    ic, lc, oc = rec["inputConnect"], rec["layerConnect"], rec["outputConnect"]
    delays = {}
    for i in range(nl):
        for j in range(ni):
            if ic[i, j]:
                delays[("IW", i, j)] = [int(d) for d in rec["inputWeights"][i, j]["delays"].ravel()]
        for k in range(nl):
            if lc[i, k]:
                delays[("LW", i, k)] = [int(d) for d in rec["layerWeights"][i, k]["delays"].ravel()]
    nid = max([max(v) for k, v in delays.items() if k[0] == "IW"], default=0)
    nld = max([max(v) for k, v in delays.items() if k[0] == "LW"], default=0)
    ts = x[0].shape[0] if x else steps
    sizes = [int(layer["size"][0, 0]) for layer in layers]
    # processed combined inputs, indexed by time t (t = 1 - nid .. TS)
    p = []
    for j in range(ni):
        r = int(inputs[j]["size"][0, 0])
        s_j = np.zeros((nid, r)) if xi is None or xi[j] is None else xi[j]
        c = np.concatenate([s_j, x[j]], axis=0)
        p.append(np.stack([_apply(_settings(inputs[j]), row) for row in c]))
    a = {}  # (layer, t) -> vector
    for i in range(nl):
        for m in range(nld):
            a[(i, m + 1 - nld)] = np.zeros(sizes[i]) if ai is None or ai[i] is None else ai[i][m]

    def tap(values_at, ds):
        if element_major:
            return np.stack([values_at(d) for d in ds], axis=1).reshape(-1)
        return np.concatenate([values_at(d) for d in ds])

    # zero-delay topological order
    order, done = [], set()
    while len(order) < nl:
        for i in range(nl):
            if i in done:
                continue
            deps = {k for k in range(nl) if lc[i, k] and 0 in delays[("LW", i, k)]}
            if deps <= done:
                order.append(i)
                done.add(i)
                break
    ys = {i: [] for i in range(nl) if oc[0, i]}
    for t in range(1, ts + 1):
        for i in order:
            n = rec["b"][i, 0].ravel().copy()
            for j in range(ni):
                if ic[i, j]:
                    v = tap(lambda d, j=j, t=t: p[j][nid + t - 1 - d], delays[("IW", i, j)])
                    n = n + rec["IW"][i, j] @ v
            for k in range(nl):
                if lc[i, k]:
                    v = tap(lambda d, k=k, t=t: a[(k, t - d)], delays[("LW", i, k)])
                    n = n + rec["LW"][i, k] @ v
            a[(i, t)] = _TRANSFER[layers[i]["transferFcn"]](n)
        for i in ys:
            ys[i].append(_reverse(_settings(outputs[i]), a[(i, t)]))
    return [np.stack(ys[i]) for i in sorted(ys)]
