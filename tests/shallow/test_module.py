"""The shallow-network module reproduces MATLAB's own saved outputs (the real corpus)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mat2grad
from mat2grad import Mat2GradError, matfile
from mat2grad.shallow.module import ShallowNetwork
from mat2grad.shallow.record import parse_network
from tests.support.helpers import CORPUS, FORWARD_RTOL, assert_close, corpus_cases, requires_corpus


def _corpus_data(case, name):
    variables = matfile.read_mat(CORPUS / case["file"])
    arr = matfile.as_float(matfile.resolve(variables, case[name]))
    return arr.T if case.get("samples", "columns") == "columns" else arr


@pytest.mark.parametrize("case", corpus_cases("shallow/"))
def test_corpus_network_loads_and_evaluates(case):
    net = mat2grad.load(CORPUS / case["file"], case["network"])
    assert isinstance(net, ShallowNetwork)
    q = 5
    if "inputs" in case:
        x = torch.from_numpy(_corpus_data(case, "inputs")[:q].copy())
    else:
        x = torch.rand(q, net.input_sizes[0], dtype=torch.float64)
    y = net(x)
    assert y.shape == (q, net.output_sizes[0])
    assert y.dtype == torch.float64


@pytest.mark.parametrize("case", corpus_cases("shallow/", having=("expected",)))
def test_corpus_outputs_match_matlab(case):
    """sim(net, X) as MATLAB computed it, at the manifest's rtol (<= 1e-12)."""
    assert case["rtol"] <= FORWARD_RTOL
    net = mat2grad.load(CORPUS / case["file"], case["network"])
    x = _corpus_data(case, "inputs")
    expected = _corpus_data(case, "expected")
    y = mat2grad.predict(net, x).numpy()
    if expected.shape != y.shape:  # abj247_matlab stores its outputs transposed (manifest)
        expected = expected.T
    assert_close(y, expected, case["rtol"], case["file"])


@requires_corpus
@pytest.mark.parametrize(("indices", "perf"), [("trainInd", "best_perf"), ("valInd", "best_vperf")])
def test_mahmoudjumaa_training_record(indices, perf):
    """MATLAB's tr.best_perf / best_vperf: NaN-ignoring mse in original units over the
    training / validation samples (32 inputs are NaN)."""
    path = CORPUS / "shallow/mahmoudjumaa_net.mat"
    v = matfile.read_mat(path)
    net = mat2grad.load(path, "net")
    y = mat2grad.predict(net, matfile.as_float(v["Input_Training"])).numpy()
    t = matfile.as_float(v["Output_Training"])
    assert np.isnan(y).sum() > 0  # NaN inputs propagate like MATLAB's
    idx = matfile.as_float(v["tr"][indices]).astype(int).ravel() - 1
    err = (t[idx] - y[idx]).ravel()
    expected = matfile.as_float(v["tr"][perf]).item()
    assert abs(np.nanmean(err**2) - expected) / expected <= 1e-13


@requires_corpus
def test_mcos_v9_maps_sin_cos_to_degrees():
    net = mat2grad.load(CORPUS / "shallow/sudoarash_mcos_v9.mat")
    assert net.spec.version == "9"
    t = np.arange(14.0, 351.0)
    x = np.stack([np.sin(np.deg2rad(t)), np.cos(np.deg2rad(t))], axis=1)
    y = mat2grad.predict(net, x).numpy()[:, 0]
    assert np.max(np.abs(y - t)) < 0.01


@requires_corpus
def test_v7_rebuilds_mapminmax_gain_and_skips_no_change_steps():
    spec = mat2grad.loading.load_spec(CORPUS / "shallow/saniavn_net1_v7.mat")
    assert spec.version == "7"
    assert [s.fcn for s in spec.inputs[0].steps] == ["mapminmax"]  # fixunknowns, rcr: no_change
    step = spec.inputs[0].steps[0]
    # the file's settings: xmin 0, xmax 1, ymin -1, ymax 1 -> gain 2, xoffset 0
    np.testing.assert_array_equal(step.settings["gain"], np.full(340, 2.0))
    np.testing.assert_array_equal(step.settings["xoffset"], np.zeros(340))
    net = mat2grad.load(CORPUS / "shallow/saniavn_net1_v7.mat")
    x = matfile.as_float(spec.inputs[0].example[:, :50]).T
    y = mat2grad.predict(net, x).numpy()
    assert y.shape == (50, 3) and np.all(np.isfinite(y))


@requires_corpus
def test_removeconstantrows_input_sizes():
    net = mat2grad.load(CORPUS / "shallow/marakaido_network.mat")
    assert net.input_sizes == (768,)
    assert net.spec.inputs[0].processed_size == 627
    assert net.IW["1_1"].shape == (25, 627)


@requires_corpus
def test_float32_on_request():
    path = CORPUS / "shallow/abj247_ann.mat"
    n64 = mat2grad.load(path)
    n32 = mat2grad.load(path, dtype=torch.float32)
    x = torch.rand(7, 3, dtype=torch.float64)
    y32 = n32(x.float())
    assert y32.dtype == torch.float32
    assert_close(y32.double().numpy(), n64(x).numpy(), 1e-5, "float32")


@requires_corpus
def test_forward_works_per_sample_and_under_vmap():
    net = mat2grad.load(CORPUS / "shallow/marakaido_network.mat")
    x = torch.rand(4, 768, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    batch = net(x)
    single = torch.stack([net(xi) for xi in x])
    mapped = torch.func.vmap(net)(x)
    # same maths, different BLAS kernels (matvec vs matmul over 627 terms): round-off only
    assert_close(mapped.numpy(), batch.numpy(), 1e-14, "vmap")
    assert_close(single.numpy(), batch.numpy(), 1e-14, "per sample")


def test_parameters_are_named_like_matlab_cells():
    spec = parse_network(_tiny_record(), path="net")
    net = ShallowNetwork(spec)
    names = {n for n, _ in net.named_parameters()}
    assert names == {"IW.1_1", "LW.2_1", "b.1", "b.2"}
    assert not any(p.requires_grad for p in net.parameters())
    assert not net.training


def test_hand_computed_forward():
    """A 2-2-1 tansig/purelin net with mapminmax, computed by hand."""
    net = ShallowNetwork(parse_network(_tiny_record(), path="net"))
    x = np.array([[3.0, -1.0]])
    p = (x - np.array([1.0, -2.0])) * np.array([0.5, 0.25]) + (-1.0)  # mapminmax apply
    a1 = np.tanh(p @ np.array([[1.0, 2.0], [-1.0, 0.5]]).T + np.array([0.1, -0.2]))
    a2 = a1 @ np.array([[0.3, -0.7]]).T + 0.05
    y = (a2 - (-1.0)) / 0.1 + 4.0  # mapminmax reverse: (y - ymin) ./ gain + xoffset
    assert_close(mat2grad.predict(net, x).numpy(), y, 1e-15, "hand")


def test_wrong_feature_count_is_a_clear_error():
    net = ShallowNetwork(parse_network(_tiny_record(), path="net"))
    with pytest.raises(Mat2GradError, match=r"takes 2 features"):
        net(torch.zeros(3, 5, dtype=torch.float64))


def _tiny_record():
    from tests.support.records import tiny_record

    return tiny_record()


def test_a_layer_fed_by_its_bias_alone_has_the_batch_shape():
    """Biases broadcast over the samples; a layer with no weights still gets one row per
    sample (its bias, expanded), also under vmap."""
    from tests.support.records import tiny_record

    rec = tiny_record(inputConnect=np.array([[0], [0]], dtype=np.uint8))
    net = ShallowNetwork(parse_network(rec, path="net"))
    x = torch.rand(4, 2, dtype=torch.float64)
    a1 = np.tanh([0.1, -0.2])  # layer 1: tansig(b{1})
    y = (a1 @ np.array([0.3, -0.7]) + 0.05 + 1.0) / 0.1 + 4.0
    assert_close(net(x).numpy(), np.full((4, 1), y), 1e-15, "bias-only layer")
    assert torch.func.vmap(net)(x).shape == (4, 1)
    assert net(x[0]).shape == (1,)
