"""An :class:`~mat2grad.onnx.model.OnnxNetwork` as one batched graph of plain ATen operations,
for the exporters behind ``mat2grad convert`` (``torch.export``, ``torch.jit.trace``, the
TorchScript-based ONNX exporter).

# NOTE: [Batch-generic graph]
# An OnnxNetwork runs every sample at batch 1 under ``torch.func.vmap`` (NOTE [Batch axes]
# in ``mat2grad.onnx.graph``), which is what makes files with batch 1 baked into Reshape
# constants work for any Q. None of the exporters can write that as it stands: the converted
# modules read shape-like arguments (Reshape's ``shape``, Slice's ``starts``, Pad's
# ``pads``, ...) from tensors, which ``torch.export`` sees as unknown data ("could not guard
# on data-dependent expression") and ``torch.jit.trace`` cannot follow through ``vmap``;
# and ``vmap``'s own batching rules (convolution's) read the batch size as a plain integer,
# which ``torch.export`` reports as specialising the batch dimension.
#
# So the network is turned into a graph the exporters take, in three steps:
#
# 1. Record. ``make_fx`` records the batched call as ATen operations on real tensors, at
#    Q = 2, 3 and 5 samples. Every shape-like value the converted modules read from a tensor
#    is then a concrete number baked into the recorded operations (``view(x, [5, 8])`` at
#    Q = 5), which is right only if the value depends on no input value. The call recorded:
#    a. the whole batch at once, where the file treats samples independently
#       (``batches_independently``: its graph ran at batch 2 at load time): the converted
#       graph runs on all Q samples with the batch where the file has it, as onnxruntime
#       would run it, and keeps its own operations (one convolution, one batch_norm: nodes
#       the ONNX exporter knows). Each value read (``_local_scalar_dense``) is traced back
#       through the recording and must not reach an input, and the recording must compute
#       what the per-sample network computes on the recorded batch (1e-10 relative in
#       float64, 1e-4 in float32); otherwise, b.
#    b. ``vmap`` over the per-sample graph, as the network itself runs (the files with
#       batch 1 baked in): reading a value that depends on the data is refused by ``vmap``
#       itself (".item() on a batched tensor"), since everything computed from the inputs is
#       batched while a value read from weights or a shape is not.
#    Operations with data-dependent output shapes (nonzero, ...) or randomness are refused.
#    ``make_fx`` refuses every value read in "real" mode unless told otherwise with the
#    keyword ``_error_on_data_dependent_ops=False`` (private to torch; torch is pinned at
#    2.13 by constraints.txt): the checks above are what make those reads safe.
# 2. Generalise. The three recordings must be the same graph, node for node, differing only
#    in integer arguments; each integer that differs is an exact affine function of the
#    batch size, ``k * Q + c``, checked at all three sizes, and becomes that expression of
#    ``x.size(0)`` in the generic graph. Anything else that differs (a tensor constant, a
#    float, an operator) is refused: the batch would be frozen.
# 3. A tracing variant: ``torch.jit.trace`` (used for ``.pt`` and by the ONNX exporter)
#    follows ``x.size(0)`` through arithmetic, but not into the integer-list arguments of an
#    ATen overload called directly; operations whose sizes depend on Q are therefore called
#    through the Python API (``view`` -> ``torch.reshape``, ``expand`` ->
#    ``Tensor.expand``, ...) in that variant, which the tracer records with dynamic sizes.
#
# The result is checked by ``mat2grad.convert``: the file written is loaded back and run at
# batch sizes 1 and 4 (recorded by none of the steps) against the OnnxNetwork itself.
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, fx, nn

from ..errors import Mat2GradError
from .model import OnnxNetwork

__all__ = ["PortableOnnxNetwork", "portable_network", "TRACE_BATCHES"]

#: batch sizes the network is recorded at (NOTE [Batch-generic graph]); three, so that an
#: integer argument must be affine in Q at a point not used to fit it
TRACE_BATCHES = (2, 3, 5)

_aten = torch.ops.aten

#: ATen overloads whose integer-list argument may carry the batch size -> the Python API
#: call that ``torch.jit.trace`` records with dynamic sizes (same arguments)
_DYNAMIC_SIZES: dict[Any, Callable[..., Any]] = {
    _aten.view.default: torch.reshape,
    _aten._unsafe_view.default: torch.reshape,
    _aten.reshape.default: torch.reshape,
    _aten.expand.default: torch.Tensor.expand,
    _aten.repeat.default: torch.Tensor.repeat,
    _aten.zeros.default: torch.zeros,
    _aten.ones.default: torch.ones,
    _aten.empty.memory_format: torch.empty,
    _aten.full.default: torch.full,
    _aten.new_zeros.default: torch.Tensor.new_zeros,
    _aten.new_ones.default: torch.Tensor.new_ones,
    _aten.new_empty.default: torch.Tensor.new_empty,
    _aten.new_full.default: torch.Tensor.new_full,
}


def _softmax(x: Tensor, dim: int, half_to_float: bool) -> Tensor:
    return torch.softmax(x, dim)


def _log_softmax(x: Tensor, dim: int, half_to_float: bool) -> Tensor:
    return torch.log_softmax(x, dim)


def _batch_norm(
    x: Tensor,
    weight: Tensor | None,
    bias: Tensor | None,
    mean: Tensor | None,
    var: Tensor | None,
    training: bool,
    momentum: float,
    eps: float,
) -> tuple[Tensor, None, None]:
    y = torch.nn.functional.batch_norm(x, mean, var, weight, bias, training, momentum, eps)
    return y, None, None


def _batch_norm_inference(
    x: Tensor,
    weight: Tensor | None,
    bias: Tensor | None,
    mean: Tensor,
    var: Tensor,
    momentum: float,
    eps: float,
) -> tuple[Tensor, None, None]:
    return _batch_norm(x, weight, bias, mean, var, False, momentum, eps)


def _pool_without_indices(pool: Callable[..., Tensor]) -> Callable[..., tuple[Tensor, None]]:
    def call(x: Tensor, *args: Any) -> tuple[Tensor, None]:
        return pool(x, *args), None

    return call


#: ATen overloads that the TorchScript-based ONNX exporter has no conversion for (the
#: recording is below the level it converts) -> the Python API call it converts (an ONNX
#: Softmax, BatchNormalization, MaxPool node); same arguments, same first output. The
#: tuple-returning ones are used where only their first output is
_EXPORTER_LEVEL: dict[Any, Callable[..., Any]] = {
    _aten._softmax.default: _softmax,
    _aten._log_softmax.default: _log_softmax,
    _aten.native_batch_norm.default: _batch_norm,
    _aten._native_batch_norm_legit_no_training.default: _batch_norm_inference,
    _aten.max_pool1d_with_indices.default: _pool_without_indices(torch.nn.functional.max_pool1d),
    _aten.max_pool2d_with_indices.default: _pool_without_indices(torch.nn.functional.max_pool2d),
    _aten.max_pool3d_with_indices.default: _pool_without_indices(torch.nn.functional.max_pool3d),
}
_MULTI_OUTPUT = {
    _aten.native_batch_norm.default,
    _aten._native_batch_norm_legit_no_training.default,
    _aten.max_pool1d_with_indices.default,
    _aten.max_pool2d_with_indices.default,
    _aten.max_pool3d_with_indices.default,
}


class PortableOnnxNetwork(nn.Module):
    """An OnnxNetwork as one batch-generic graph of ATen operations (NOTE [Batch-generic
    graph]): ``model(*inputs)`` maps ``(Q, *input_shapes[k])`` to ``(Q, *output_shapes[j])``
    (a tuple for several outputs) for any Q, like the network it was made from.

    Under ``torch.jit.trace`` (and the TorchScript-based ONNX exporter, which traces) it
    runs the tracing variant of the graph; elsewhere the graph of ATen overloads.

    Attributes:
        graph: the generic ``fx.GraphModule`` (weights as its constants).
        trace_graph: the tracing variant, or ``None`` with ``trace_problem`` saying which
            operation takes the batch size in an argument the tracer would freeze.
        recorded: ``"whole batch"`` or ``"per sample"`` (NOTE [Batch-generic graph], 1).
        input_names, output_names, input_shapes, output_shapes, zero_derivative,
        not_differentiable, source: those of the network (the model contract).
    """

    def __init__(
        self, net: OnnxNetwork, graph: fx.GraphModule, trace_graph: fx.GraphModule | None
    ) -> None:
        super().__init__()
        self.graph = graph
        self.trace_graph = trace_graph
        self.trace_problem: str | None = None
        self.recorded = ""
        self.input_names = net.input_names
        self.output_names = net.output_names
        self.input_shapes = net.input_shapes
        self.output_shapes = net.output_shapes
        self.zero_derivative = net.zero_derivative
        self.not_differentiable = net.not_differentiable
        self.source = net.source
        super().train(False)

    def train(self, mode: bool = True) -> PortableOnnxNetwork:
        """Stays in eval mode, as the network it was made from."""
        return super().train(False)

    def forward(self, *inputs: Tensor) -> Tensor | tuple[Tensor, ...]:
        """``(Q, *input_shape)`` per input -> ``(Q, *output_shape)`` (a tuple for several)."""
        graph = self.graph
        if torch.jit.is_tracing():
            if self.trace_graph is None:
                raise Mat2GradError(f"{self.source}: {self.trace_problem}")
            graph = self.trace_graph
        out = graph(*inputs)
        if isinstance(out, tuple | list):
            return out[0] if len(out) == 1 else tuple(out)
        return out


def portable_network(net: OnnxNetwork, where: str | None = None) -> PortableOnnxNetwork:
    """Build the batch-generic graph of ``net`` (NOTE [Batch-generic graph]).

    Args:
        net: a network loaded by :func:`mat2grad.onnx.load_onnx`, every per-sample
            dimension known.
        where: how error messages name the network (default: its file).

    Returns:
        a :class:`PortableOnnxNetwork` computing what ``net`` computes for any batch size.

    Raises:
        Mat2GradError: the network reads a value of its data to decide a shape or an index
            (named), draws random numbers, has outputs of data-dependent shape, or a part of
            the graph depends on the batch size in a way other than its size.
    """
    where = where or net.source or "the ONNX network"
    for name, shape in zip(net.input_names, net.input_shapes, strict=True):
        if any(d is None for d in shape):
            raise Mat2GradError(
                f"{where}: input '{name}' has a per-sample dimension the file leaves open "
                f"({shape}); a converted file fixes every size but the batch"
            )
    graph, recorded = None, "whole batch"
    if net.batches_independently and None not in net.output_batch_axes:
        try:
            traces = [_record(net, q, where, direct=True) for q in TRACE_BATCHES]
            graph = _generalise(traces, TRACE_BATCHES, where)
        except (_NotDirect, Mat2GradError):
            graph = None  # per sample, which decides (and names what fails)
    if graph is None:
        traces = [_record(net, q, where, direct=False) for q in TRACE_BATCHES]
        graph, recorded = _generalise(traces, TRACE_BATCHES, where), "per sample"
    trace_graph, problem = _tracing_variant(graph)
    portable = PortableOnnxNetwork(net, graph, trace_graph)
    portable.trace_problem = problem
    portable.recorded = recorded
    return portable


# --------------------------------------------------------------------------------------
# 1. Record
# --------------------------------------------------------------------------------------


def _examples(net: OnnxNetwork, q: int) -> tuple[Tensor, ...]:
    gen = torch.Generator().manual_seed(q)
    xs = []
    for shape, is_float in zip(net.input_shapes, net.input_float, strict=True):
        if is_float:
            xs.append(torch.rand((q, *shape), generator=gen, dtype=net.dtype) * 2 - 1)
        else:
            xs.append(torch.zeros((q, *shape), dtype=torch.int64))
    return tuple(xs)


def _record(net: OnnxNetwork, q: int, where: str, direct: bool) -> fx.GraphModule:
    """The batched call recorded as ATen operations at batch size ``q``: the converted graph
    run on the whole batch (``direct``), or the network's per-sample ``vmap``."""
    from torch.fx.experimental.proxy_tensor import make_fx

    def per_sample(*xs: Tensor) -> Any:
        return net(*xs)

    def whole_batch(*xs: Tensor) -> Any:
        args = [
            x if a == 0 else x.movedim(0, a) for x, a in zip(xs, net.input_batch_axes, strict=True)
        ]
        outs = net.run_graph(*args)
        ys = tuple(
            y if a == 0 else y.movedim(a, 0)
            for y, a in zip(outs, net.output_batch_axes, strict=True)
        )
        return ys[0] if len(ys) == 1 else ys

    try:
        # values read from tensors (``.tolist()`` of a Reshape's shape) are baked in as the
        # numbers they are, checked below (NOTE [Batch-generic graph], 1)
        tracer = make_fx(
            whole_batch if direct else per_sample,
            tracing_mode="real",
            _error_on_data_dependent_ops=False,
        )
        with torch.no_grad():
            gm = tracer(*_examples(net, q))
    except Mat2GradError:
        raise
    except Exception as exc:  # noqa: BLE001 - vmap and the converted modules raise anything
        if direct:
            raise _NotDirect(f"{type(exc).__name__}: {_first_line(exc)}") from None
        node = _failing_node(net, q)
        raise Mat2GradError(
            f"{where}: cannot be written as one batched graph"
            + (f"; the part that fails: {node}" if node else "")
            + f" ({type(exc).__name__}: {_first_line(exc)})"
        ) from None
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or not isinstance(node.target, torch._ops.OpOverload):
            continue
        tags = node.target.tags
        if node.target is _aten._local_scalar_dense.default:
            if node.users:
                raise Mat2GradError(
                    f"{where}: a value read from a tensor decides a size in the graph "
                    f"({_first_line(node.format_node())}); it cannot be written as a fixed graph"
                )
            if direct and _reaches_an_input(node):
                raise _NotDirect("a value read from the data decides a shape or an index")
            gm.graph.erase_node(node)
        elif torch.Tag.dynamic_output_shape in tags or torch.Tag.data_dependent_output in tags:
            raise Mat2GradError(
                f"{where}: the operation {node.target} has an output whose shape depends on "
                "the data; a converted file cannot express it"
            )
        elif torch.Tag.nondeterministic_seeded in tags:
            raise Mat2GradError(
                f"{where}: the operation {node.target} draws random numbers; a converted "
                "network must be deterministic"
            )
    gm.graph.eliminate_dead_code()
    gm.recompile()
    if direct and q == TRACE_BATCHES[-1]:
        _check_direct(net, gm, q)
    return gm


class _NotDirect(Exception):
    """The converted graph cannot be recorded on the whole batch at once."""


def _reaches_an_input(node: fx.Node) -> bool:
    seen, todo = set(), [node]
    while todo:
        n = todo.pop()
        if n.op == "placeholder":
            return True
        for m in n.all_input_nodes:
            if m not in seen:
                seen.add(m)
                todo.append(m)
    return False


def _check_direct(net: OnnxNetwork, gm: fx.GraphModule, q: int) -> None:
    """The whole-batch recording must compute what the per-sample network computes."""
    xs = _examples(net, q)
    with torch.no_grad():
        got, want = gm(*xs), net(*xs)
    got = got if isinstance(got, tuple | list) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    rtol = _DIRECT_RTOL[net.dtype]
    for y, e in zip(got, want, strict=True):
        if y.shape != e.shape:
            raise _NotDirect(f"output of shape {tuple(y.shape)}, expected {tuple(e.shape)}")
        nan = torch.isnan(e)
        if not torch.equal(nan, torch.isnan(y)):
            raise _NotDirect("NaN where the per-sample network has none, or the reverse")
        y, e = y[~nan], e[~nan]
        scale = float(e.abs().max()) if e.numel() else 0.0
        err = float((y - e).abs().max()) if e.numel() else 0.0
        if not err <= rtol * max(scale, 1e-300):
            raise _NotDirect(f"the whole batch differs from sample by sample by {err:.2g}")


#: agreement of the whole-batch recording with the per-sample network (max |difference| /
#: max |y|): the same operations, summed in another order at most
_DIRECT_RTOL = {torch.float64: 1e-10, torch.float32: 1e-4}


class _NamingInterpreter(fx.Interpreter):
    """Runs the converted graph node by node and names the ONNX node that raises."""

    failed: str | None = None

    def run_node(self, n: fx.Node) -> Any:  # noqa: D102
        try:
            return super().run_node(n)
        except Exception:
            if self.failed is None and n.op == "call_module":
                module = self.fetch_attr(n.target)
                mapping = getattr(module, "onnx_mapping", None)
                outs = [o for o in getattr(mapping, "outputs", ()) if o]
                label = f"'{outs[0]}'" if outs else f"'{n.target}'"
                self.failed = f"the node computing {label} ({type(module).__name__})"
            raise


def _failing_node(net: OnnxNetwork, q: int) -> str | None:
    """Which node of the converted graph fails under vmap, for the error message."""
    interp = _NamingInterpreter(net.graph_module)

    def one(*samples: Tensor) -> tuple[Tensor, ...]:
        args = [x.unsqueeze(a) for x, a in zip(samples, net.input_batch_axes, strict=True)]
        out = interp.run(*args)
        return tuple(out) if isinstance(out, tuple | list) else (out,)

    try:
        with torch.no_grad():
            torch.func.vmap(one)(*_examples(net, q))
    except Exception:  # noqa: BLE001 - the point is to see where it fails
        return interp.failed
    return None


# --------------------------------------------------------------------------------------
# 2. Generalise over the batch size
# --------------------------------------------------------------------------------------


class _Mismatch(Exception):
    pass


def _generalise(traces: Sequence[fx.GraphModule], qs: Sequence[int], where: str) -> fx.GraphModule:
    """One graph whose Q-dependent integers are expressions of the first input's size 0."""
    node_lists = [list(gm.graph.nodes) for gm in traces]
    if len({len(nodes) for nodes in node_lists}) != 1:
        raise Mat2GradError(
            f"{where}: the graph recorded at batch sizes {', '.join(map(str, qs))} is not the "
            "same graph each time (it depends on the batch size); it cannot be written with "
            "a dynamic batch"
        )
    index = [{node: k for k, node in enumerate(nodes)} for nodes in node_lists]
    graph = fx.Graph()
    env: dict[int, fx.Node] = {}
    state: dict[str, fx.Node] = {}

    def batch_size() -> fx.Node:
        return state["q"]

    def affine(values: list[int], label: str) -> Any:
        k, rest = divmod(values[1] - values[0], qs[1] - qs[0])
        c = values[0] - k * qs[0]
        if rest or any(v != k * q + c for v, q in zip(values, qs, strict=True)):
            raise _Mismatch(
                f"{label}: an integer argument takes the values {values} at batch sizes "
                f"{list(qs)}, not a multiple of the batch size"
            )
        node = batch_size()
        if k != 1:
            node = graph.call_function(operator.mul, (node, k))
        if c:
            node = graph.call_function(operator.add, (node, c))
        return node

    def merge(values: list[Any], label: str) -> Any:
        first = values[0]
        if isinstance(first, fx.Node):
            ks = {
                idx[v] if isinstance(v, fx.Node) else None
                for idx, v in zip(index, values, strict=True)
            }
            if len(ks) != 1 or None in ks:
                raise _Mismatch(f"{label}: different inputs")
            return env[ks.pop()]
        if isinstance(first, list | tuple):
            if any(type(v) is not type(first) or len(v) != len(first) for v in values):
                raise _Mismatch(f"{label}: arguments of different lengths")
            return type(first)(merge([v[i] for v in values], label) for i in range(len(first)))
        if isinstance(first, dict):
            if any(set(v) != set(first) for v in values):
                raise _Mismatch(f"{label}: different keyword arguments")
            return {key: merge([v[key] for v in values], label) for key in first}
        if isinstance(first, int) and not isinstance(first, bool):
            if all(type(v) is int and v == first for v in values):
                return first
            if all(type(v) is int for v in values):
                return affine(list(values), label)
        if isinstance(first, Tensor) or any(
            type(v) is not type(first) or v != first for v in values
        ):
            raise _Mismatch(f"{label}: arguments {values!r} change with the batch size")
        return first

    root = nn.Module()
    constants = 0
    try:
        for k, nodes in enumerate(zip(*node_lists, strict=True)):
            first = nodes[0]
            label = f"{first.target}" if first.op == "call_function" else first.name
            if any(n.op != first.op or n.target != first.target for n in nodes):
                raise _Mismatch(f"node {k}: {[str(n.target) for n in nodes]}")
            if first.op == "placeholder":
                env[k] = graph.placeholder(first.name)
                if "q" not in state:
                    state["q"] = graph.call_method("size", (env[k], 0))
            elif first.op == "get_attr":
                values = [getattr(gm, n.target) for gm, n in zip(traces, nodes, strict=True)]
                t0 = values[0]
                if isinstance(t0, Tensor) and not all(
                    v.shape == t0.shape and v.dtype == t0.dtype and torch.equal(v, t0)
                    for v in values[1:]
                ):
                    raise _Mismatch(f"{first.target}: a constant changes with the batch size")
                name = f"c{constants}"
                constants += 1
                if isinstance(t0, Tensor):
                    root.register_buffer(name, t0.detach().contiguous())
                else:
                    setattr(root, name, t0)
                env[k] = graph.get_attr(name)
            elif first.op == "output":
                graph.output(merge([n.args[0] for n in nodes], "output"))
            else:
                args = merge([n.args for n in nodes], label)
                kwargs = merge([n.kwargs for n in nodes], label)
                env[k] = graph.create_node(first.op, first.target, args, kwargs)
    except _Mismatch as exc:
        raise Mat2GradError(
            f"{where}: the graph depends on the batch size other than through its size "
            f"({exc}); it cannot be written with a dynamic batch"
        ) from None
    graph.eliminate_dead_code()
    gm = fx.GraphModule(root, graph)
    gm.eval()
    return gm


# --------------------------------------------------------------------------------------
# 3. The variant torch.jit.trace records with a dynamic batch
# --------------------------------------------------------------------------------------


def _depends_on_batch(value: Any, batch_nodes: set[fx.Node]) -> bool:
    if isinstance(value, fx.Node):
        return value in batch_nodes
    if isinstance(value, list | tuple):
        return any(_depends_on_batch(v, batch_nodes) for v in value)
    if isinstance(value, dict):
        return any(_depends_on_batch(v, batch_nodes) for v in value.values())
    return False


def _tracing_variant(graph: fx.GraphModule) -> tuple[fx.GraphModule | None, str | None]:
    """The graph with the calls ``torch.jit.trace`` records faithfully (NOTE [Batch-generic
    graph], 3), or ``None`` and the operation that prevents it."""
    gm = fx.GraphModule(graph, copy.deepcopy(graph.graph))
    batch_nodes: set[fx.Node] = set()
    for node in gm.graph.nodes:
        if node.op == "call_method" and node.target == "size":
            batch_nodes.add(node)
            continue
        if node.op != "call_function":
            continue
        depends = _depends_on_batch((node.args, node.kwargs), batch_nodes)
        if node.target in (operator.mul, operator.add):
            if depends:
                batch_nodes.add(node)
            continue
        if node.target in _EXPORTER_LEVEL and not (
            node.target in _MULTI_OUTPUT
            and any(u.target is not operator.getitem or u.args[1] != 0 for u in node.users)
        ):
            if depends:
                return None, (
                    f"the batch size enters the arguments of {node.target}, which "
                    "torch.jit.trace would freeze; the .pt2 format (torch.export) keeps it "
                    "dynamic"
                )
            node.target = _EXPORTER_LEVEL[node.target]
        elif depends:
            if node.target not in _DYNAMIC_SIZES:
                return None, (
                    f"the batch size enters the arguments of {node.target}, which "
                    "torch.jit.trace would freeze; the .pt2 format (torch.export) keeps it "
                    "dynamic"
                )
            node.target = _DYNAMIC_SIZES[node.target]
    gm.recompile()
    gm.eval()
    return gm, None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
