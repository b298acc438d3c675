"""Hand-made network records in the neutral tree form (what mat2grad.matfile returns), for
unit tests that need a specific record without a file."""

from __future__ import annotations

import numpy as np

from mat2grad.matfile import MatStruct


def cell(*items, shape=None):
    arr = np.empty(shape or (len(items), 1), dtype=object)
    for k, item in enumerate(items):
        arr[np.unravel_index(k, arr.shape, order="F")] = item
    return arr


def to_mat(value):
    """A record tree -> what mat2grad.matfile.write_mat writes (structs as dicts), so a
    hand-made network can be saved as the struct Octave or struct(net) would give."""
    if isinstance(value, MatStruct):
        return {k: to_mat(v) for k, v in value.fields.items()}
    if isinstance(value, np.ndarray) and value.dtype == object:
        out = np.empty(value.shape, dtype=object)
        for idx, item in np.ndenumerate(value):
            out[idx] = to_mat(item)
        return out
    return value


def empty():
    return np.zeros((1, 0))


def mapminmax(xoffset, gain, ymin=-1.0):
    n = len(xoffset)
    return MatStruct(
        {
            "xrows": np.array([[n]]),
            "yrows": np.array([[n]]),
            "gain": np.array(gain, dtype=float).reshape(n, 1),
            "xoffset": np.array(xoffset, dtype=float).reshape(n, 1),
            "ymin": np.array([[ymin]]),
            "no_change": np.array([[0]]),
        }
    )


def tiny_record(**overrides):
    """2 -> [2 tansig] -> [1 purelin] -> 1 with mapminmax on both ends."""
    fields = {
        "version": "8",
        "name": "tiny",
        "numInputs": np.array([[1]]),
        "numLayers": np.array([[2]]),
        "numOutputs": np.array([[1]]),
        "biasConnect": np.array([[1], [1]], dtype=np.uint8),
        "inputConnect": np.array([[1], [0]], dtype=np.uint8),
        "layerConnect": np.array([[0, 0], [1, 0]], dtype=np.uint8),
        "outputConnect": np.array([[0, 1]], dtype=np.uint8),
        "inputs": cell(
            MatStruct(
                {
                    "name": "Input",
                    "size": np.array([[2]]),
                    "processedSize": np.array([[2]]),
                    "processFcns": cell("mapminmax", shape=(1, 1)),
                    "processSettings": cell(mapminmax([1.0, -2.0], [0.5, 0.25]), shape=(1, 1)),
                    "feedbackOutput": np.zeros((0, 0)),
                }
            )
        ),
        "layers": cell(
            MatStruct(
                {
                    "name": "Hidden",
                    "size": np.array([[2]]),
                    "transferFcn": "tansig",
                    "netInputFcn": "netsum",
                }
            ),
            MatStruct(
                {
                    "name": "Output",
                    "size": np.array([[1]]),
                    "transferFcn": "purelin",
                    "netInputFcn": "netsum",
                }
            ),
        ),
        "outputs": cell(
            empty(),
            MatStruct(
                {
                    "name": "Output",
                    "size": np.array([[1]]),
                    "processFcns": cell("mapminmax", shape=(1, 1)),
                    "processSettings": cell(mapminmax([4.0], [0.1]), shape=(1, 1)),
                    "feedbackMode": "none",
                }
            ),
            shape=(1, 2),
        ),
        "inputWeights": cell(
            MatStruct({"weightFcn": "dotprod", "delays": np.array([[0]])}), empty()
        ),
        "layerWeights": cell(
            empty(),
            MatStruct({"weightFcn": "dotprod", "delays": np.array([[0]])}),
            empty(),
            empty(),
            shape=(2, 2),
        ),
        "IW": cell(np.array([[1.0, 2.0], [-1.0, 0.5]]), empty()),
        "LW": cell(empty(), np.array([[0.3, -0.7]]), empty(), empty(), shape=(2, 2)),
        "b": cell(np.array([[0.1], [-0.2]]), np.array([[0.05]])),
        "performFcn": "mse",
        "performParam": MatStruct({"normalization": "none", "regularization": np.array([[0]])}),
    }
    fields.update(overrides)
    return MatStruct(fields, classname="network")


def build_record(
    input_sizes=(2,),
    layers=((3, "tansig"), (1, "purelin")),
    *,
    input_connect=None,
    layer_connect=None,
    bias_connect=None,
    output_connect=None,
    perform_fcn="mse",
    normalization="none",
    regularization=0.0,
    process_inputs=True,
    process_outputs=True,
    learn=None,
    seed=0,
):
    """A static network record of any connection pattern, with seeded random weights.

    ``layers`` is a sequence of ``(size, transferFcn)``. Connections default to a chain
    (input 1 -> layer 1 -> layer 2 -> ...; every layer has a bias; the last layer is the
    output). ``process_inputs``/``process_outputs`` put mapminmax on every input/output;
    each output's ``range`` is the target range that mapminmax was configured with.
    ``learn`` maps 'b1', 'IW1_1', 'LW2_1', ... to False to exclude them from getwb.
    """
    rng = np.random.default_rng(seed)
    n_in, n_layers = len(input_sizes), len(layers)
    sizes = [s for s, _ in layers]
    ic = np.zeros((n_layers, n_in), dtype=np.uint8)
    ic[0, :] = 1
    lc = np.zeros((n_layers, n_layers), dtype=np.uint8)
    for i in range(1, n_layers):
        lc[i, i - 1] = 1
    ic = np.asarray(input_connect if input_connect is not None else ic, dtype=np.uint8)
    lc = np.asarray(layer_connect if layer_connect is not None else lc, dtype=np.uint8)
    bc = np.asarray(
        bias_connect if bias_connect is not None else np.ones((n_layers, 1)), dtype=np.uint8
    ).reshape(n_layers, 1)
    oc = np.zeros((1, n_layers), dtype=np.uint8)
    oc[0, -1] = 1
    oc = np.asarray(output_connect if output_connect is not None else oc, dtype=np.uint8)
    oc = oc.reshape(1, n_layers)
    learn = learn or {}

    def learn_flag(key):
        return np.array([[0 if learn.get(key, True) is False else 1]], dtype=np.uint8)

    inputs = []
    for j, r in enumerate(input_sizes):
        steps = {"processFcns": cell(shape=(1, 0)), "processSettings": cell(shape=(1, 0))}
        if process_inputs:
            xmin = rng.uniform(-3, 1, r)
            gain = 2.0 / rng.uniform(1, 4, r)
            steps = {
                "processFcns": cell("mapminmax", shape=(1, 1)),
                "processSettings": cell(mapminmax(xmin, gain), shape=(1, 1)),
            }
        inputs.append(
            MatStruct(
                {
                    "name": f"Input{j + 1}",
                    "size": np.array([[r]]),
                    "processedSize": np.array([[r]]),
                    "feedbackOutput": np.zeros((0, 0)),
                    **steps,
                }
            )
        )
    layer_cells = [
        MatStruct(
            {
                "name": f"Layer{i + 1}",
                "size": np.array([[s]]),
                "transferFcn": f,
                "netInputFcn": "netsum",
            }
        )
        for i, (s, f) in enumerate(layers)
    ]
    outputs = []
    for i in range(n_layers):
        if not oc[0, i]:
            outputs.append(empty())
            continue
        s = sizes[i]
        tmin = rng.uniform(-5, 5, s)
        width = rng.uniform(0.5, 10, s)
        fields = {
            "name": f"Output{i + 1}",
            "size": np.array([[s]]),
            "processFcns": cell(shape=(1, 0)),
            "processSettings": cell(shape=(1, 0)),
            "feedbackMode": "none",
            "range": np.column_stack([tmin, tmin + width]),
        }
        if process_outputs:
            fields["processFcns"] = cell("mapminmax", shape=(1, 1))
            fields["processSettings"] = cell(mapminmax(tmin, 2.0 / width), shape=(1, 1))
        else:
            fields["range"] = np.column_stack([np.zeros(s), np.ones(s)])
        outputs.append(MatStruct(fields))

    def weight_props(connect, key):
        arr = np.empty(connect.shape, dtype=object)
        for idx in np.ndindex(connect.shape):
            arr[idx] = (
                MatStruct(
                    {
                        "weightFcn": "dotprod",
                        "delays": np.array([[0]]),
                        "learn": learn_flag(f"{key}{idx[0] + 1}_{idx[1] + 1}"),
                    }
                )
                if connect[idx]
                else empty()
            )
        return arr

    iw = np.empty((n_layers, n_in), dtype=object)
    for idx in np.ndindex(iw.shape):
        i, j = idx
        iw[idx] = rng.normal(0, 0.8, (sizes[i], input_sizes[j])) if ic[idx] else empty()
    lw = np.empty((n_layers, n_layers), dtype=object)
    for idx in np.ndindex(lw.shape):
        i, j = idx
        lw[idx] = rng.normal(0, 0.8, (sizes[i], sizes[j])) if lc[idx] else empty()
    b = cell(*[rng.normal(0, 0.5, (s, 1)) if bc[i, 0] else empty() for i, s in enumerate(sizes)])
    biases = cell(
        *[
            MatStruct({"learn": learn_flag(f"b{i + 1}")}) if bc[i, 0] else empty()
            for i in range(n_layers)
        ]
    )
    fields = {
        "version": "8",
        "name": "built",
        "numInputs": np.array([[n_in]]),
        "numLayers": np.array([[n_layers]]),
        "numOutputs": np.array([[int(oc.sum())]]),
        "biasConnect": bc,
        "inputConnect": ic,
        "layerConnect": lc,
        "outputConnect": oc,
        "inputs": cell(*inputs),
        "layers": cell(*layer_cells),
        "outputs": cell(*outputs, shape=(1, n_layers)),
        "biases": biases,
        "inputWeights": weight_props(ic, "IW"),
        "layerWeights": weight_props(lc, "LW"),
        "IW": iw,
        "LW": lw,
        "b": b,
        "performFcn": perform_fcn,
        "performParam": MatStruct(
            {"normalization": normalization, "regularization": np.array([[regularization]])}
        ),
    }
    return MatStruct(fields, classname="network")


# --------------------------------------------------------------------------------------
# A general builder: any static topology, random weights, chosen processing functions
# --------------------------------------------------------------------------------------


def _settings(fcn, rows, rng):
    """(settings struct, rows after the step) for one processing function on `rows` rows.

    ``fcn`` is a name, or ``("removeconstantrows", [1-based rows to remove])``.
    """
    if isinstance(fcn, tuple):
        name, remove = fcn
        remove = np.asarray(remove, dtype=float)
        keep = np.array([r for r in range(1, rows + 1) if r not in set(remove)], dtype=float)
        constants = rng.uniform(-3, 3, remove.size)
        s = MatStruct(
            {
                "xrows": np.array([[rows]]),
                "yrows": np.array([[keep.size]]),
                "keep": keep.reshape(1, -1),
                "remove": remove.reshape(1, -1),
                "constants": constants.reshape(-1, 1),
                "value": constants.reshape(-1, 1),
                "no_change": np.array([[0]]),
            }
        )
        return name, s, int(keep.size)
    if fcn == "mapminmax":
        return fcn, mapminmax(rng.uniform(-2, 2, rows), rng.uniform(0.2, 3.0, rows)), rows
    if fcn == "mapstd":
        s = MatStruct(
            {
                "xrows": np.array([[rows]]),
                "yrows": np.array([[rows]]),
                "gain": rng.uniform(0.2, 3.0, (rows, 1)),
                "xoffset": rng.uniform(-2, 2, (rows, 1)),
                "ymean": np.array([[0.0]]),
                "no_change": np.array([[0]]),
            }
        )
        return fcn, s, rows
    if fcn == "processpca":
        out = max(1, rows - 1)
        transform = rng.standard_normal((out, rows))
        s = MatStruct(
            {
                "xrows": np.array([[rows]]),
                "yrows": np.array([[out]]),
                "transform": transform,
                "inverseTransform": np.linalg.pinv(transform),
                "no_change": np.array([[0]]),
            }
        )
        return fcn, s, out
    raise ValueError(fcn)


def network_record(
    input_sizes=(3,),
    layers=((4, "tansig"), (2, "purelin")),
    *,
    input_connect=None,
    layer_connect=None,
    output_layers=None,
    input_steps=None,
    output_steps=None,
    weight_fcn="dotprod",
    net_input="netsum",
    bias=True,
    seed=0,
    scale=1.0,
):
    """A static network record with random weights.

    Defaults: every input feeds layer 1, layer k feeds layer k+1, the last layer is the
    output, mapminmax on every input and output. ``input_connect`` / ``layer_connect`` are
    sets of 1-based ``(to, from)`` pairs; ``output_layers`` 1-based layer numbers;
    ``input_steps`` / ``output_steps`` one list of processing functions per input/output
    (processFcns order; see :func:`_settings`).
    """
    rng = np.random.default_rng(seed)
    n_in, n_layers = len(input_sizes), len(layers)
    if input_connect is None:
        input_connect = {(1, j) for j in range(1, n_in + 1)}
    if layer_connect is None:
        layer_connect = {(k + 1, k) for k in range(1, n_layers)}
    if output_layers is None:
        output_layers = (n_layers,)
    if input_steps is None:
        input_steps = [["mapminmax"]] * n_in
    if output_steps is None:
        output_steps = [["mapminmax"]] * len(output_layers)

    inputs, processed = [], []
    for j, size in enumerate(input_sizes):
        fcns, sets, rows = [], [], size
        for fcn in input_steps[j]:
            name, s, rows = _settings(fcn, rows, rng)
            fcns.append(name)
            sets.append(s)
        processed.append(rows)
        inputs.append(
            MatStruct(
                {
                    "name": f"in{j + 1}",
                    "size": np.array([[size]]),
                    "processedSize": np.array([[rows]]),
                    "processFcns": cell(*fcns, shape=(1, len(fcns))),
                    "processSettings": cell(*sets, shape=(1, len(sets))),
                    "feedbackOutput": np.zeros((0, 0)),
                }
            )
        )

    outputs = cell(*([empty()] * n_layers), shape=(1, n_layers))
    for k, layer in enumerate(output_layers):
        size = layers[layer - 1][0]
        fcns, sets = [], []
        # settings are built processed side first: the raw side may be larger (rcr)
        raw = size  # the raw side is larger after removeconstantrows and processpca
        for fcn in reversed(output_steps[k]):
            if isinstance(fcn, tuple):
                raw += len(fcn[1])
            elif fcn == "processpca":
                raw += 1
        rows = raw
        for fcn in output_steps[k]:
            name, s, rows = _settings(fcn, rows, rng)
            fcns.append(name)
            sets.append(s)
        assert rows == size, "output processing must end at the layer size"
        outputs[0, layer - 1] = MatStruct(
            {
                "name": f"out{layer}",
                "size": np.array([[raw]]),
                "processFcns": cell(*fcns, shape=(1, len(fcns))),
                "processSettings": cell(*sets, shape=(1, len(sets))),
                "feedbackMode": "none",
            }
        )

    iw = np.empty((n_layers, n_in), dtype=object)
    iw_props = np.empty((n_layers, n_in), dtype=object)
    lw = np.empty((n_layers, n_layers), dtype=object)
    lw_props = np.empty((n_layers, n_layers), dtype=object)
    for arr in (iw, iw_props, lw, lw_props):
        for idx in np.ndindex(arr.shape):
            arr[idx] = empty()
    prop = MatStruct({"weightFcn": weight_fcn, "delays": np.array([[0]])})
    for to, src in sorted(input_connect):
        iw[to - 1, src - 1] = scale * rng.standard_normal((layers[to - 1][0], processed[src - 1]))
        iw_props[to - 1, src - 1] = prop
    for to, src in sorted(layer_connect):
        lw[to - 1, src - 1] = scale * rng.standard_normal((layers[to - 1][0], layers[src - 1][0]))
        lw_props[to - 1, src - 1] = prop
    b = cell(*[rng.standard_normal((size, 1)) if bias else empty() for size, _ in layers])

    connect = np.zeros((n_layers, n_in), dtype=np.uint8)
    for to, src in input_connect:
        connect[to - 1, src - 1] = 1
    lconnect = np.zeros((n_layers, n_layers), dtype=np.uint8)
    for to, src in layer_connect:
        lconnect[to - 1, src - 1] = 1
    oconnect = np.zeros((1, n_layers), dtype=np.uint8)
    for layer in output_layers:
        oconnect[0, layer - 1] = 1
    fields = {
        "version": "8",
        "name": "synthetic",
        "numInputs": np.array([[n_in]]),
        "numLayers": np.array([[n_layers]]),
        "numOutputs": np.array([[len(output_layers)]]),
        "biasConnect": np.full((n_layers, 1), 1 if bias else 0, dtype=np.uint8),
        "inputConnect": connect,
        "layerConnect": lconnect,
        "outputConnect": oconnect,
        "inputs": cell(*inputs),
        "layers": cell(
            *[
                MatStruct(
                    {
                        "name": f"layer{k + 1}",
                        "size": np.array([[size]]),
                        "transferFcn": transfer,
                        "netInputFcn": net_input,
                    }
                )
                for k, (size, transfer) in enumerate(layers)
            ]
        ),
        "outputs": outputs,
        "inputWeights": iw_props,
        "layerWeights": lw_props,
        "IW": iw,
        "LW": lw,
        "b": b,
        "performFcn": "mse",
        "performParam": MatStruct({"normalization": "none", "regularization": np.array([[0]])}),
    }
    return MatStruct(fields, classname="network")


def network(*args, dtype=None, **kwargs):
    """:func:`network_record` parsed and built as a ShallowNetwork."""
    import torch

    from mat2grad.shallow.module import ShallowNetwork
    from mat2grad.shallow.record import parse_network

    spec = parse_network(network_record(*args, **kwargs), path="synthetic")
    return ShallowNetwork(spec, dtype=dtype or torch.float64)


def save_network(path, record, **data):
    """A hand-made record saved as a plain struct ``net`` (what Octave or struct(net)
    gives), with ``data`` as further variables."""
    import scipy.io

    scipy.io.savemat(path, {"net": to_mat(record), **data}, long_field_names=True)
