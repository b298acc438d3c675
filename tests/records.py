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
