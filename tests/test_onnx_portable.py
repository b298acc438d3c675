"""mat2grad.onnx.portable: an ONNX network as one batch-generic graph of ATen operations.

The end-to-end checks (every corpus and fixture ONNX file converted to each format and run
without mat2grad) are in ``tests/test_convert.py``; here, the parts: which recording is used,
that the generic graph computes the network at batch sizes it was not recorded at, and that
what cannot be made batch-generic is refused, never baked in.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from torch import fx, nn
from torch.fx.experimental.proxy_tensor import make_fx

from mat2grad.errors import Mat2GradError
from mat2grad.onnx import load_onnx
from mat2grad.onnx.model import OnnxNetwork
from mat2grad.export.generalise import generalise as _generalise
from mat2grad.export.generalise import tracing_variant as _tracing_variant
from mat2grad.export.portable import TRACE_BATCHES, portable_network
from mat2grad.export.record import NotDirect as _NotDirect
from mat2grad.export.record import record as _record
from tests.helpers import FORWARD_RTOL, ONNX_FIXTURES, assert_close


@functools.cache
def fixture_network(name: str) -> OnnxNetwork:
    return load_onnx(ONNX_FIXTURES / f"{name}.onnx", check=False)


def _inputs(net, q: int, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.rand((q, *s), generator=gen, dtype=torch.float64) * 2 - 1 for s in net.input_shapes
    ]


def _as_list(y) -> list[np.ndarray]:
    return [t.detach().numpy() for t in (y if isinstance(y, tuple | list) else (y,))]


#: fixture -> how it is recorded: whole batch where the file treats samples independently;
#: per sample (vmap) where it bakes batch 1 into a Reshape constant
RECORDED = {
    "pytorch_baked_batch1_reshape": "per sample",
    "matlab2018_gemm6_image": "whole batch",
    "matlab2024b_same_pad": "whole batch",
    "matlab2020a_conv_fc_dropout": "whole batch",
    "matlab_lstm_baked_states": "whole batch",
}


@pytest.mark.parametrize("name", RECORDED)
def test_the_generic_graph_is_the_network_at_unrecorded_batch_sizes(name):
    net = fixture_network(name)
    portable = portable_network(net)
    assert portable.recorded == RECORDED[name]
    assert portable.trace_problem is None
    for q in (1, 4, 9):
        assert q not in TRACE_BATCHES
        xs = _inputs(net, q, seed=q)
        with torch.no_grad():
            got, want = _as_list(portable(*xs)), _as_list(net(*xs))
            traced = _as_list(portable.trace_graph(*xs))
        for g, t, w in zip(got, traced, want, strict=True):
            assert g.shape == w.shape == (q, *g.shape[1:])
            assert_close(g, w, FORWARD_RTOL, f"{name} Q={q}")
            # the tracing variant calls Python-level equivalents of the same operations
            assert_close(t, g, FORWARD_RTOL, f"{name} tracing variant Q={q}")


def test_a_baked_reshape_becomes_a_function_of_the_batch_size():
    """Reshape(x, [1, -1]) of the file is, per sample under vmap, a view whose first size is
    now the batch size read from the input: no recorded batch size is left in the graph."""
    portable = portable_network(fixture_network("pytorch_baked_batch1_reshape"))
    nodes = list(portable.graph.graph.nodes)
    sizes = [n for n in nodes if n.op == "call_method" and n.target == "size"]
    assert len(sizes) == 1
    views = [n for n in nodes if n.target is torch.ops.aten.view.default]
    assert views and all(sizes[0] in n.args[1] for n in views)


def test_the_whole_batch_recording_keeps_the_graphs_own_operations():
    portable = portable_network(fixture_network("matlab2024b_same_pad"))
    targets = [n.target for n in portable.graph.graph.nodes if n.op == "call_function"]
    assert targets.count(torch.ops.aten.convolution.default) == 1
    assert torch.ops.aten.native_batch_norm.default in targets


# --------------------------------------------------------------------------------------
# What cannot be made batch-generic is refused
# --------------------------------------------------------------------------------------


def _network(module: nn.Module, independent: bool) -> OnnxNetwork:
    """An OnnxNetwork around one module: input (4,), output (4,), batch axis 0."""
    root = nn.Module()
    root.body = module
    graph = fx.Graph()
    graph.output(graph.call_module("body", (graph.placeholder("x"),)))
    net = OnnxNetwork(
        fx.GraphModule(root, graph),
        input_names=["x"],
        output_names=["y"],
        input_shapes=[(4,)],
        output_shapes=[(4,)],
        input_batch_axes=[0],
        output_batch_axes=[0],
        input_float=[True],
        dtype=torch.float64,
    )
    net.batches_independently = independent
    net.source = "made.onnx"
    return net


class _ScalesByCountOfPositives(nn.Module):
    """Reads a value of its input to decide a number: data-dependent."""

    def forward(self, x):
        return x * int((x > 0).sum())


class _ScalesByWeight(nn.Module):
    """Reads a value of its weights: the same for every input, safe to bake in."""

    def __init__(self):
        super().__init__()
        self.register_buffer("k", torch.tensor([3]))

    def forward(self, x):
        return x * int(self.k.sum())


class _Noisy(nn.Module):
    def forward(self, x):
        return x + torch.rand_like(x)


@pytest.mark.parametrize("independent", [True, False])
def test_a_value_read_from_the_data_is_refused_never_baked_in(independent):
    net = _network(_ScalesByCountOfPositives(), independent)
    with pytest.raises(Mat2GradError, match=r"made\.onnx: cannot be written as one batched graph"):
        portable_network(net)


def test_the_whole_batch_recording_traces_every_value_read_back_to_the_inputs():
    with pytest.raises(_NotDirect, match="a value read from the data"):
        _record(_network(_ScalesByCountOfPositives(), True), 2, "made.onnx", direct=True)
    weights = _network(_ScalesByWeight(), True)
    portable = portable_network(weights)
    assert portable.recorded == "whole batch"
    x = torch.rand(6, 4, dtype=torch.float64)
    assert torch.equal(portable(x), 3 * x)


@pytest.mark.parametrize("independent", [True, False])
def test_random_operations_are_refused(independent):
    with pytest.raises(Mat2GradError, match=r"made\.onnx: "):
        portable_network(_network(_Noisy(), independent))


def _recordings(fn, width: int = 4) -> list[fx.GraphModule]:
    return [make_fx(fn)(torch.rand(q, width, dtype=torch.float64)) for q in TRACE_BATCHES]


def test_an_integer_affine_in_the_batch_size_is_generalised():
    def fn(x):
        return torch.ones(2 * x.shape[0] + 1, dtype=x.dtype).sum() * x

    gm = _generalise(_recordings(fn), TRACE_BATCHES, "made")
    for q in (1, 7):
        x = torch.rand(q, 4, dtype=torch.float64)
        (y,) = _as_list(gm(x))
        assert_close(y, (2 * q + 1) * x.numpy(), FORWARD_RTOL, f"Q={q}")


@pytest.mark.parametrize(
    ("fn", "match"),
    [
        (
            lambda x: torch.ones(x.shape[0] ** 2, dtype=x.dtype).sum() * x,
            r"takes the values \[4, 9, 25\] at batch sizes \[2, 3, 5\], not a multiple",
        ),
        (
            lambda x: x * (0.5 * x.shape[0]),
            r"arguments .* change with the batch size",
        ),
    ],
    ids=["square", "float"],
)
def test_a_batch_dependence_other_than_the_size_is_refused(fn, match):
    with pytest.raises(
        Mat2GradError, match=r"made: the graph depends on the batch size .*" + match
    ):
        _generalise(_recordings(fn), TRACE_BATCHES, "made")


def test_an_operation_the_tracer_would_freeze_is_named():
    """The batch size as a slice bound: torch.export keeps it dynamic, torch.jit.trace would
    not; the tracing variant is withheld and .pt conversion says why."""
    gm = _generalise(_recordings(lambda x: x[: x.shape[0] - 1] * 2), TRACE_BATCHES, "made")
    assert _as_list(gm(torch.ones(4, 4, dtype=torch.float64)))[0].shape == (3, 4)
    trace_graph, problem = _tracing_variant(gm)
    assert trace_graph is None
    assert "aten.slice.Tensor" in problem and "torch.jit.trace would freeze" in problem


class _Sqrt(nn.Module):
    def forward(self, x):
        return torch.sqrt(x)


def test_nan_outputs_do_not_stop_the_whole_batch_recording():
    """Half the random samples recorded give NaN (sqrt of negatives); the whole-batch
    recording agrees with the per-sample network where both give NaN, and is kept."""
    portable = portable_network(_network(_Sqrt(), True))
    assert portable.recorded == "whole batch"
    x = torch.linspace(-1, 1, 24, dtype=torch.float64).reshape(6, 4)
    y = portable(x)
    assert torch.equal(torch.isnan(y), x < 0)
    assert torch.equal(y[x >= 0], torch.sqrt(x[x >= 0]))
