"""The modules the exporters are given: a network as a converted file runs it.

* :class:`Portable` wraps any network: tensors in, tensors out, nothing else (and MATLAB's
  layout at the graph's edges where asked);
* :class:`PortableOnnxNetwork` is an :class:`~mat2grad.onnx.model.OnnxNetwork` as one batched
  graph of plain ATen operations (See NOTE: [Batch-generic graph]), built by
  :func:`portable_network`;
* :class:`Fn` and :class:`Apply` hold one MATLAB function of a shallow network alone, to find
  the part an exporter cannot express.
"""

# NOTE: [Batch-generic graph]
# An OnnxNetwork runs every sample at batch 1 under ``torch.func.vmap`` (See NOTE: [Batch axes]
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
# 1. Record (``mat2grad.export.record``). ``make_fx`` records the batched call as ATen
#    operations on real tensors, at Q = 2, 3 and 5 samples. Every shape-like value the
#    converted modules read from a tensor is then a concrete number baked into the recorded
#    operations (``view(x, [5, 8])`` at Q = 5), which is right only if the value depends on no
#    input value. The call recorded:
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
# 2. Generalise (``mat2grad.export.generalise``). The three recordings must be the same graph,
#    node for node, differing only in integer arguments; each integer that differs is an exact
#    affine function of the batch size, ``k * Q + c``, checked at all three sizes, and becomes
#    that expression of ``x.size(0)`` in the generic graph. Anything else that differs (a
#    tensor constant, a float, an operator) is refused: the batch would be frozen.
# 3. A tracing variant (``mat2grad.export.generalise``): ``torch.jit.trace`` (used for ``.pt``
#    and by the ONNX exporter) follows ``x.size(0)`` through arithmetic, but not into the
#    integer-list arguments of an ATen overload called directly; operations whose sizes
#    depend on Q are therefore called through the Python API (``view`` -> ``torch.reshape``,
#    ``expand`` -> ``Tensor.expand``, ...) in that variant, which the tracer records with
#    dynamic sizes.
#
# The result is checked by ``mat2grad.export``: the file written is loaded back and run at
# batch sizes 1 and 4 (recorded by none of the steps) against the OnnxNetwork itself.

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import Tensor, fx, nn

from ..contract import describe_like
from ..errors import Mat2GradError
from ..matfile.export_layout import from_matlab, to_matlab
from .generalise import generalise, tracing_variant
from .record import TRACE_BATCHES, NotDirect, record

if TYPE_CHECKING:  # annotations only: importing mat2grad.onnx loads onnx and onnx2torch
    from ..onnx.model import OnnxNetwork

__all__ = ["TRACE_BATCHES", "Apply", "Fn", "Portable", "PortableOnnxNetwork", "portable_network"]


class Portable(nn.Module):
    """The network as a converted file runs it: tensors in, tensors out, nothing else.

    The exporters bind the example inputs to ``forward``'s signature and pass every other
    parameter (``ShallowNetwork``'s keyword-only ``xi``, ``ai``, ``steps``) as an extra input;
    this ``forward`` takes the inputs alone. With ``matlab_layout`` it also transposes at the
    graph's edges: ``R x Q`` inputs, ``S x Q`` outputs around the batch-first network.
    """

    def __init__(self, model: nn.Module, matlab_layout: bool = False):
        super().__init__()
        self.model = model
        self.matlab_layout = matlab_layout
        # a new module starts in training mode, and exporters restore the mode they found:
        # the network must never be switched to training (some refuse it)
        self.eval()

    def forward(self, *x: Tensor) -> Tensor | tuple[Tensor, ...]:
        if not self.matlab_layout:
            return self.model(*x)
        y = self.model(*(from_matlab(xj) for xj in x))
        if isinstance(y, tuple):
            return tuple(to_matlab(yk) for yk in y)
        return to_matlab(y)


class Fn(nn.Module):
    """A function of tensors as a module (one weight, net input or transfer function)."""

    def __init__(self, fn: Callable[..., Tensor]):
        super().__init__()
        self.fn = fn

    def forward(self, *x: Tensor) -> Tensor:
        return self.fn(*x)


class Apply(nn.Module):
    """One method (``apply`` or ``reverse``) of a processing chain as a module."""

    def __init__(self, chain: nn.Module, method: str):
        super().__init__()
        self.chain = chain
        self.method = method

    def forward(self, x: Tensor) -> Tensor:
        return getattr(self.chain, self.method)(x)


class PortableOnnxNetwork(nn.Module):
    """An OnnxNetwork as one batch-generic graph of ATen operations (See NOTE: [Batch-generic
    graph]): ``model(*inputs)`` maps ``(Q, *input_shapes[k])`` to ``(Q, *output_shapes[j])``
    (a tuple for several outputs) for any Q, like the network it was made from.

    Under ``torch.jit.trace`` (and the TorchScript-based ONNX exporter, which traces) it
    runs the tracing variant of the graph; elsewhere the graph of ATen overloads.

    Attributes:
        graph: the generic ``fx.GraphModule`` (weights as its constants).
        trace_graph: the tracing variant, or ``None`` with ``trace_problem`` saying which
            operation takes the batch size in an argument the tracer would freeze.
        recorded: ``"whole batch"`` or ``"per sample"`` (See NOTE: [Batch-generic graph], 1).
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
        describe_like(self, net)
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
    """Build the batch-generic graph of ``net`` (See NOTE: [Batch-generic graph]).

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
            traces = [record(net, q, where, direct=True) for q in TRACE_BATCHES]
            graph = generalise(traces, TRACE_BATCHES, where)
        except (NotDirect, Mat2GradError):
            graph = None  # per sample, which decides (and names what fails)
    if graph is None:
        traces = [record(net, q, where, direct=False) for q in TRACE_BATCHES]
        graph, recorded = generalise(traces, TRACE_BATCHES, where), "per sample"
    trace_graph, problem = tracing_variant(graph)
    portable = PortableOnnxNetwork(net, graph, trace_graph)
    portable.trace_problem = problem
    portable.recorded = recorded
    return portable
