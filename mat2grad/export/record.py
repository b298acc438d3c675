"""Step 1 of the batch-generic graph: record an ONNX network's batched call as ATen operations.

See NOTE: [Batch-generic graph] in ``mat2grad.export.portable``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, fx
from torch.fx.experimental.proxy_tensor import make_fx

from ..errors import Mat2GradError, first_line

if TYPE_CHECKING:  # annotations only: importing mat2grad.onnx loads onnx and onnx2torch
    from ..onnx.model import OnnxNetwork

__all__ = ["TRACE_BATCHES", "NotDirect", "examples", "failing_node", "record"]

#: batch sizes the network is recorded at (See NOTE: [Batch-generic graph]); three, so that
#: an integer argument must be affine in Q at a point not used to fit it
TRACE_BATCHES = (2, 3, 5)

#: agreement of the whole-batch recording with the per-sample network (max |difference| /
#: max |y|): the same operations, summed in another order at most
_DIRECT_RTOL = {torch.float64: 1e-10, torch.float32: 1e-4}

#: how long a foreign library's message may be in one of ours
_MESSAGE_LIMIT = 300

_aten = torch.ops.aten


class NotDirect(Exception):
    """The converted graph cannot be recorded on the whole batch at once."""


def examples(net: OnnxNetwork, q: int) -> tuple[Tensor, ...]:
    """Inputs of ``q`` samples, uniform in [-1, 1) (zeros for integer inputs), seeded by ``q``."""
    gen = torch.Generator().manual_seed(q)
    xs = []
    for shape, is_float in zip(net.input_shapes, net.input_float, strict=True):
        if is_float:
            xs.append(torch.rand((q, *shape), generator=gen, dtype=net.dtype) * 2 - 1)
        else:
            xs.append(torch.zeros((q, *shape), dtype=torch.int64))
    return tuple(xs)


def record(net: OnnxNetwork, q: int, where: str, direct: bool) -> fx.GraphModule:
    """The batched call recorded as ATen operations at batch size ``q``: the converted graph
    run on the whole batch (``direct``), or the network's per-sample ``vmap``."""

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
        # numbers they are, checked below (See NOTE: [Batch-generic graph], 1)
        tracer = make_fx(
            whole_batch if direct else per_sample,
            tracing_mode="real",
            _error_on_data_dependent_ops=False,
        )
        with torch.no_grad():
            gm = tracer(*examples(net, q))
    except Mat2GradError:
        raise
    except Exception as exc:  # noqa: BLE001 - vmap and the converted modules raise anything
        if direct:
            raise NotDirect(f"{type(exc).__name__}: {first_line(exc, _MESSAGE_LIMIT)}") from None
        node = failing_node(net, q)
        raise Mat2GradError(
            f"{where}: cannot be written as one batched graph"
            + (f"; the part that fails: {node}" if node else "")
            + f" ({type(exc).__name__}: {first_line(exc, _MESSAGE_LIMIT)})"
        ) from None
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or not isinstance(node.target, torch._ops.OpOverload):
            continue
        tags = node.target.tags
        if node.target is _aten._local_scalar_dense.default:
            if node.users:
                raise Mat2GradError(
                    f"{where}: a value read from a tensor decides a size in the graph "
                    f"({first_line(node.format_node(), _MESSAGE_LIMIT)}); it cannot be written "
                    "as a fixed graph"
                )
            if direct and _reaches_an_input(node):
                raise NotDirect("a value read from the data decides a shape or an index")
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
    xs = examples(net, q)
    with torch.no_grad():
        got, want = gm(*xs), net(*xs)
    got = got if isinstance(got, tuple | list) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    rtol = _DIRECT_RTOL[net.dtype]
    for y, e in zip(got, want, strict=True):
        if y.shape != e.shape:
            raise NotDirect(f"output of shape {tuple(y.shape)}, expected {tuple(e.shape)}")
        nan = torch.isnan(e)
        if not torch.equal(nan, torch.isnan(y)):
            raise NotDirect("NaN where the per-sample network has none, or the reverse")
        y, e = y[~nan], e[~nan]
        scale = float(e.abs().max()) if e.numel() else 0.0
        err = float((y - e).abs().max()) if e.numel() else 0.0
        if not err <= rtol * max(scale, 1e-300):
            raise NotDirect(f"the whole batch differs from sample by sample by {err:.2g}")


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


def failing_node(net: OnnxNetwork, q: int) -> str | None:
    """Which node of the converted graph fails under vmap, for the error message."""
    interp = _NamingInterpreter(net.graph_module)

    def one(*samples: Tensor) -> tuple[Tensor, ...]:
        args = [x.unsqueeze(a) for x, a in zip(samples, net.input_batch_axes, strict=True)]
        out = interp.run(*args)
        return tuple(out) if isinstance(out, tuple | list) else (out,)

    try:
        with torch.no_grad():
            torch.func.vmap(one)(*examples(net, q))
    except Exception:  # noqa: BLE001 - the point is to see where it fails
        return interp.failed
    return None
