"""Parsing and validating network records: every quirk handled, every defect a clear error."""

from __future__ import annotations

import numpy as np
import pytest

from mat2grad import Mat2GradError
from mat2grad.matfile import MatStruct
from mat2grad.shallow.functions import TRANSFER
from mat2grad.shallow.record import network_record, parse_network
from tests.support.records import cell, empty, tiny_record


def _layer(size, transfer, net_input="netsum"):
    return MatStruct(
        {"name": "L", "size": np.array([[size]]), "transferFcn": transfer, "netInputFcn": net_input}
    )


def test_tiny_record_parses():
    spec = parse_network(tiny_record(), source="t.mat", path="net")
    assert spec.order == (1, 2)
    assert [w.label for w in spec.weights] == ["IW{1,1}", "LW{2,1}"]
    assert spec.outputs[0].layer == 2
    assert not spec.is_dynamic
    assert spec.perform_fcn == "mse" and spec.perform_param["normalization"] == "none"


def test_plain_struct_is_a_network_too():
    rec = tiny_record()
    plain = MatStruct(dict(rec.fields))  # what Octave sends: no class
    assert network_record(plain) is not None
    assert parse_network(plain).layers[0].transfer == "tansig"


def test_unsupported_transfer_function_lists_the_supported_ones():
    rec = tiny_record(layers=cell(_layer(2, "mysig"), _layer(1, "purelin")))
    with pytest.raises(Mat2GradError) as info:
        parse_network(rec, source="net.mat", path="net")
    msg = str(info.value)
    assert msg.startswith("net.mat: network 'net', layers{1}: transfer function 'mysig'")
    assert ", ".join(sorted(TRANSFER)) in msg


def test_unsupported_processing_function():
    rec = tiny_record()
    inp = rec["inputs"][0, 0]
    inp.fields["processFcns"] = cell("mapfoo", shape=(1, 1))
    with pytest.raises(
        Mat2GradError,
        match=r"inputs\{1\}.processFcns\{1\}: processing function 'mapfoo'.*mapminmax",
    ):
        parse_network(rec)


def test_weight_size_mismatch_names_the_weight():
    rec = tiny_record(IW=cell(np.ones((2, 3)), empty()))
    with pytest.raises(Mat2GradError, match=r"IW\{1,1\}: expected 2x2 .* found 2x3"):
        parse_network(rec)


def test_bias_size_mismatch():
    rec = tiny_record(b=cell(np.ones((3, 1)), np.ones((1, 1))))
    with pytest.raises(Mat2GradError, match=r"b\{1\}: expected a 2x1 bias"):
        parse_network(rec)


def test_zero_delay_loop_is_refused():
    rec = tiny_record(
        layerConnect=np.array([[0, 1], [1, 0]], dtype=np.uint8),
        layerWeights=cell(
            empty(),
            MatStruct({"weightFcn": "dotprod", "delays": np.array([[0]])}),
            MatStruct({"weightFcn": "dotprod", "delays": np.array([[0]])}),
            empty(),
            shape=(2, 2),
        ),
        LW=cell(empty(), np.array([[0.3, -0.7]]), np.ones((2, 1)), empty(), shape=(2, 2)),
    )
    with pytest.raises(Mat2GradError, match="zero-delay loop"):
        parse_network(rec)


def test_delayed_loop_is_dynamic_not_an_error():
    rec = tiny_record(
        layerConnect=np.array([[0, 1], [1, 0]], dtype=np.uint8),
        layerWeights=cell(
            empty(),
            MatStruct({"weightFcn": "dotprod", "delays": np.array([[0]])}),
            MatStruct({"weightFcn": "dotprod", "delays": np.array([[1, 2]])}),
            empty(),
            shape=(2, 2),
        ),
        LW=cell(empty(), np.array([[0.3, -0.7]]), np.ones((2, 2)), empty(), shape=(2, 2)),
    )
    spec = parse_network(rec)
    assert spec.is_dynamic and spec.num_layer_delays == 2


def test_not_a_network():
    with pytest.raises(Mat2GradError, match="'x' is a 1x1 struct, not a MATLAB network"):
        parse_network(MatStruct({"a": 1}), path="x")


def test_processing_sizes_are_checked():
    rec = tiny_record()
    rec["inputs"][0, 0].fields["processedSize"] = np.array([[3]])
    with pytest.raises(Mat2GradError, match="processing maps 2 rows to 2, but processedSize is 3"):
        parse_network(rec)


def test_v7_mapminmax_rule_rebuilds_gain_and_xoffset():
    settings = MatStruct(
        {
            "xrows": np.array([[3]]),
            "xmin": np.array([[0.0], [5.0], [1.0]]),
            "xmax": np.array([[2.0], [5.0], [np.inf]]),
            "ymin": np.array([[-1.0]]),
            "ymax": np.array([[1.0]]),
            "no_change": np.array([[0]]),
        }
    )
    rec = tiny_record()
    inp = rec["inputs"][0, 0]
    inp.fields["size"] = np.array([[3]])
    inp.fields["processedSize"] = np.array([[3]])
    inp.fields["processSettings"] = cell(settings, shape=(1, 1))
    rec.fields["IW"] = cell(np.ones((2, 3)), empty())
    step = parse_network(rec).inputs[0].steps[0]
    # row 1: gain 2/2 = 1, xoffset 0; row 2: zero range -> gain 1, xoffset ymin;
    # row 3: infinite range -> gain 1, xoffset ymin
    np.testing.assert_array_equal(step.settings["gain"], [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(step.settings["xoffset"], [0.0, -1.0, -1.0])


def test_removeconstantrows_order_reinserts_constants():
    settings = MatStruct(
        {
            "xrows": np.array([[4]]),
            "yrows": np.array([[2]]),
            "keep": np.array([[1, 3]]),
            "remove": np.array([[2, 4]]),
            "constants": np.array([[7.0], [9.0]]),
            "value": np.array([[7.0], [9.0]]),
            "no_change": np.array([[0]]),
        }
    )
    rec = tiny_record()
    inp = rec["inputs"][0, 0]
    inp.fields.update(
        size=np.array([[4]]),
        processedSize=np.array([[2]]),
        processFcns=cell("removeconstantrows", shape=(1, 1)),
        processSettings=cell(settings, shape=(1, 1)),
    )
    step = parse_network(rec).inputs[0].steps[0]
    np.testing.assert_array_equal(step.settings["keep"], [0, 2])
    np.testing.assert_array_equal(step.settings["order"], [0, 2, 1, 3])
