"""mat2grad.predict evaluates in chunks sized by the working-set budget: the chunked result
equals the model on the whole batch, the chunk size depends on the model and not on Q (memory
flat in Q), and bad arguments are refused with Mat2GradError."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import mat2grad
from mat2grad import Mat2GradError
from mat2grad.budget import budget_chunk, forward_bytes_per_sample
from mat2grad.shallow.module import ShallowNetwork
from mat2grad.shallow.record import parse_network
from tests.support import dynamic_records as dr
from tests.support.helpers import MODES_RTOL, ONNX_FIXTURES, assert_close
from tests.support.records import network

# Chunked and whole-batch evaluation do the same operations per sample; only a GEMM's
# summation order may differ with the batch size (at most ~fan-in * eps relative, fan-in
# <= 20 here), far inside the modes' tolerance.
RTOL = MODES_RTOL


def _whole(model, *xs):
    with torch.no_grad():
        return model(*[torch.from_numpy(x) for x in xs])


@pytest.mark.parametrize("chunk", [1, 7, 999, 1000, None])
def test_chunked_equals_whole_batch_two_inputs_two_outputs(chunk):
    net = network(input_sizes=(3, 2), layers=((5, "tansig"), (2, "purelin")), output_layers=(1, 2))
    rng = np.random.default_rng(1)
    xs = (rng.normal(size=(1000, 3)), rng.normal(size=(1000, 2)))
    got = mat2grad.predict(net, *xs, chunk_size=chunk)
    want = _whole(net, *xs)
    assert isinstance(got, tuple) and len(got) == 2
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape
        assert_close(g.numpy(), w.numpy(), RTOL, f"chunk {chunk}")


def test_dynamic_network_sequences_are_chunked_along_samples():
    net = ShallowNetwork(parse_network(dr.timedelaynet(), path="tdnn"))
    x = np.random.default_rng(2).normal(size=(50, 9, 2))  # (Q, TS, R)
    got = mat2grad.predict(net, x, chunk_size=8)
    assert got.shape == (50, 9, 2)
    assert_close(got.numpy(), _whole(net, x).numpy(), RTOL, "tdnn")


class _Recording(nn.Module):
    """A small image model that records the batch sizes it is called with."""

    input_shapes = ((3, 32, 32),)

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, padding=1, dtype=torch.float64)
        self.head = nn.Linear(8 * 32 * 32, 4, dtype=torch.float64)
        self.calls: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(x.shape[0])
        return self.head(torch.tanh(self.conv(x)).flatten(1))


def test_image_model_memory_is_flat_in_the_number_of_samples():
    model = _Recording()
    rng = np.random.default_rng(3)
    per = forward_bytes_per_sample(model, [torch.zeros(8, 3, 32, 32, dtype=torch.float64)])
    # an activation of 8 x 32 x 32 doubles per sample at least: the estimate sees it
    assert per >= 8 * 32 * 32 * 8
    chunk = budget_chunk(per, 10**9)
    q = 2 * chunk + 5
    x = rng.normal(size=(q, 3, 32, 32))
    model.calls.clear()
    got = mat2grad.predict(model, x)
    assert max(model.calls) == chunk < q  # the chunk is set by the model, not by Q
    assert sum(model.calls) == q
    assert_close(got.numpy(), _whole(model, x).numpy(), RTOL, "image model")


@pytest.mark.parametrize("bad", [0, -3, 1.5, True, "8"])
def test_bad_chunk_size_is_refused(bad):
    net = network()
    with pytest.raises(Mat2GradError, match="chunk_size must be a whole number"):
        mat2grad.predict(net, np.zeros((10, 3)), chunk_size=bad)


class _NotBatchFirst(nn.Module):
    input_shapes = ((2,),)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(0)


def test_outputs_that_are_not_batch_first_are_refused():
    with pytest.raises(Mat2GradError, match="output 1 is not batch-first"):
        mat2grad.predict(_NotBatchFirst(), np.ones((10, 2)), chunk_size=4)


ONNX_CNN = str(ONNX_FIXTURES / "matlab2020a_conv_fc_dropout.onnx")
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="torch sees a CUDA device here")


def test_an_explicit_cpu_device_computes_as_the_default():
    net = network(input_sizes=(3,), layers=((5, "tansig"), (2, "purelin")), seed=2)
    x = np.random.default_rng(3).normal(size=(40, 3))
    for device in ("cpu", " CPU", torch.device("cpu")):
        assert torch.equal(mat2grad.predict(net, x, device=device), mat2grad.predict(net, x))
    loaded = mat2grad.load(ONNX_CNN, device=torch.device("cpu"))
    images = np.random.default_rng(4).uniform(size=(6, *loaded.input_shapes[0]))
    assert torch.equal(mat2grad.predict(loaded, images, device="cpu"), loaded(images))


@pytest.mark.parametrize(
    ("device", "why"),
    [
        pytest.param("cuda", "torch sees no CUDA device here", marks=NO_CUDA),
        pytest.param("cuda:0", "torch sees no CUDA device here", marks=NO_CUDA),
        ("gpu", "must be cpu, cuda, cuda:N or mps"),
        ("meta", "must be cpu, cuda, cuda:N or mps"),
        (3.5, "must be cpu, cuda, cuda:N or mps"),
    ],
)
def test_a_device_torch_cannot_compute_on_is_refused_before_any_work(device, why):
    net = network(input_sizes=(3,), layers=((5, "tansig"), (2, "purelin")), seed=2)
    x = np.zeros((4, 3))
    for call in (
        lambda: mat2grad.predict(net, x, device=device),
        lambda: mat2grad.jacobian(net, x, device=device),
        lambda: mat2grad.load(ONNX_CNN, device=device),
    ):
        with pytest.raises(Mat2GradError, match=why):
            call()


def test_on_device_moves_a_copy_and_never_the_callers_model():
    from mat2grad.contract import model_dtype_device, on_device

    net = network(input_sizes=(3,), layers=((5, "tansig"), (2, "purelin")), seed=2)
    assert on_device(net, None) is net
    assert on_device(net, torch.device("cpu"), torch.float64) is net
    single = on_device(net, None, torch.float32)
    assert single is not net
    assert model_dtype_device(single) == (torch.float32, torch.device("cpu"))
    assert model_dtype_device(net) == (torch.float64, torch.device("cpu"))
