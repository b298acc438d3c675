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
