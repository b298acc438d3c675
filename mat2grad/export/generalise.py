"""Steps 2 and 3 of the batch-generic graph: the recordings at several batch sizes become one
graph whose sizes are expressions of the batch size, and its variant for ``torch.jit.trace``.

See NOTE: [Batch-generic graph] in ``mat2grad.export.portable``.
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, fx, nn

from ..errors import Mat2GradError

__all__ = ["generalise", "tracing_variant"]

_aten = torch.ops.aten

# --------------------------------------------------------------------------------------
# 2. Generalise over the batch size
# --------------------------------------------------------------------------------------


class _Mismatch(Exception):
    pass


def generalise(traces: Sequence[fx.GraphModule], qs: Sequence[int], where: str) -> fx.GraphModule:
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


def _depends_on_batch(value: Any, batch_nodes: set[fx.Node]) -> bool:
    if isinstance(value, fx.Node):
        return value in batch_nodes
    if isinstance(value, list | tuple):
        return any(_depends_on_batch(v, batch_nodes) for v in value)
    if isinstance(value, dict):
        return any(_depends_on_batch(v, batch_nodes) for v in value.values())
    return False


def tracing_variant(graph: fx.GraphModule) -> tuple[fx.GraphModule | None, str | None]:
    """The graph with the calls ``torch.jit.trace`` records faithfully (See NOTE: [Batch-generic
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
                return None, _frozen(node.target)
            node.target = _EXPORTER_LEVEL[node.target]
        elif depends:
            if node.target not in _DYNAMIC_SIZES:
                return None, _frozen(node.target)
            node.target = _DYNAMIC_SIZES[node.target]
    gm.recompile()
    gm.eval()
    return gm, None


def _frozen(target: Any) -> str:
    return (
        f"the batch size enters the arguments of {target}, which torch.jit.trace would "
        "freeze; the .pt2 format (torch.export) keeps it dynamic"
    )
