"""The loaded ONNX network: an ``nn.Module`` that meets mat2grad's model contract."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import fx, nn

from ..errors import Mat2GradError

__all__ = ["OnnxNetwork"]


class OnnxNetwork(nn.Module):
    """An ONNX graph converted by onnx2torch, evaluated sample by sample.

    ``model(*inputs)`` takes one batch-first tensor per input, ``(Q, *input_shapes[k])``, for
    any ``Q >= 1``, and returns ``(Q, *output_shapes[0])`` for a single output, else a tuple.
    Internally every sample runs through the graph as a batch of one, with the batch axis
    where the file has it (see NOTE [Batch axes] in ``mat2grad.onnx.graph``), under
    ``torch.func.vmap`` over the samples; so files with batch 1 baked into their shapes work
    for any Q, samples are never mixed, and the call itself may be wrapped in
    ``vmap``/``jacrev``/``jacfwd``.

    Attributes (the model contract):
        input_names, output_names: ONNX names, in graph order.
        input_shapes, output_shapes: per-sample shapes (``None`` for a dimension the file
            leaves symbolic).
        input_layouts, output_layouts: MATLAB layout kinds (``features``, ``image``,
            ``volume``, ``sequence``, ``generic``; see ``mat2grad.matfile``).
        wrt: names of the inputs gradients are taken with respect to.
        zero_derivative: operators with zero derivative almost everywhere on a path from
            ``wrt`` to an output.
        not_differentiable: ``None``, or why gradients are meaningless.
        input_batch_axes, output_batch_axes: where the file keeps the batch (1 for
            time-major sequences; ``None`` for an output that does not depend on the batch).
        batches_independently: the graph also runs at batch 2, every output growing along
            its batch axis (False for files with batch 1 baked in).
        input_infos: the inputs as declared (:class:`mat2grad.onnx.graph.InputInfo`).
        source: the file path; producer: ``"name version"``; opset: the file's opset;
            notes: what mat2grad rewrote or fixed; check: the onnxruntime comparison.

    ``train(True)`` raises: the graph is a trained network, evaluated only.
    """

    def __init__(
        self,
        graph_module: fx.GraphModule,
        *,
        input_names: Sequence[str],
        output_names: Sequence[str],
        input_shapes: Sequence[tuple[int | None, ...]],
        output_shapes: Sequence[tuple[int | None, ...]],
        input_batch_axes: Sequence[int],
        output_batch_axes: Sequence[int | None],
        input_float: Sequence[bool],
        dtype: torch.dtype,
    ) -> None:
        super().__init__()
        self.graph_module = graph_module
        self.input_names = tuple(input_names)
        self.output_names = tuple(output_names)
        self.input_shapes = tuple(tuple(s) for s in input_shapes)
        self.output_shapes = tuple(tuple(s) for s in output_shapes)
        self.input_batch_axes = tuple(input_batch_axes)
        self.output_batch_axes = tuple(output_batch_axes)
        self.input_float = tuple(input_float)
        self.dtype = dtype
        self.input_layouts: tuple[str, ...] = ()
        self.output_layouts: tuple[str, ...] = ()
        self.wrt: tuple[str, ...] = ()
        self.zero_derivative: tuple[str, ...] = ()
        self.not_differentiable: str | None = None
        self.source = ""
        self.producer = ""
        self.opset = 0
        self.notes: tuple[str, ...] = ()
        self.check: dict | None = None
        self.batches_independently = False
        self.input_infos: tuple = ()
        super().train(False)

    def train(self, mode: bool = True) -> OnnxNetwork:
        """Stays in eval mode: the graph is a trained network (BatchNormalization uses its
        stored statistics, Dropout is the identity); ``train(True)`` is refused."""
        if mode:
            raise Mat2GradError(
                f"{self.source}: an ONNX network loaded by mat2grad is evaluated, never "
                "trained; it stays in eval mode"
            )
        return super().train(False)

    def extra_repr(self) -> str:  # noqa: D102
        ins = ", ".join(f"{n}{s}" for n, s in zip(self.input_names, self.input_shapes, strict=True))
        outs = ", ".join(
            f"{n}{s}" for n, s in zip(self.output_names, self.output_shapes, strict=True)
        )
        return f"source={self.source!r}, inputs=[{ins}], outputs=[{outs}], dtype={self.dtype}"

    def run_graph(self, *batch_one: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Run the converted graph on inputs laid out as the file declares them."""
        out = self.graph_module(*batch_one)
        return tuple(out) if isinstance(out, tuple | list) else (out,)

    def _one_sample(self, *samples: torch.Tensor) -> tuple[torch.Tensor, ...]:
        args = [x.unsqueeze(axis) for x, axis in zip(samples, self.input_batch_axes, strict=True)]
        outs = self.run_graph(*args)
        if len(outs) != len(self.output_names):
            raise Mat2GradError(
                f"{self.source}: the converted graph returned {len(outs)} outputs, expected "
                f"{len(self.output_names)} ({', '.join(self.output_names)})"
            )
        result = []
        for y, axis in zip(outs, self.output_batch_axes, strict=True):
            result.append(y if axis is None else y.squeeze(axis))
        return tuple(result)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """``(Q, *input_shape)`` per input -> ``(Q, *output_shape)`` (a tuple for several)."""
        if len(inputs) != len(self.input_names):
            raise Mat2GradError(
                f"{self.source}: the model takes {len(self.input_names)} input(s) "
                f"({', '.join(self.input_names)}), got {len(inputs)}"
            )
        prepared = []
        for x, name, shape, is_float in zip(
            inputs, self.input_names, self.input_shapes, self.input_float, strict=True
        ):
            if not isinstance(x, torch.Tensor):
                x = torch.as_tensor(x)
            if x.ndim != len(shape) + 1 or any(
                want is not None and got != want
                for got, want in zip(x.shape[1:], shape, strict=True)
            ):
                want = ", ".join("?" if d is None else str(d) for d in shape)
                raise Mat2GradError(
                    f"{self.source}: input '{name}' must be batch-first with shape "
                    f"(Q, {want}), got {tuple(x.shape)}"
                )
            if is_float and x.dtype != self.dtype:
                x = x.to(self.dtype)
            prepared.append(x)
        sizes = [x.shape[0] for x in prepared]
        if len(set(sizes)) > 1:
            listed = ", ".join(f"'{n}' {q}" for n, q in zip(self.input_names, sizes, strict=True))
            raise Mat2GradError(
                f"{self.source}: every input needs the same number of samples (batch size); "
                f"found {listed}"
            )
        try:
            outs = torch.func.vmap(self._one_sample)(*prepared)
        except RuntimeError as exc:
            if not any(d is None for shape in self.input_shapes for d in shape):
                raise
            # NOTE: [Symbolic input sizes]
            #   A size the file leaves symbolic cannot be checked before the graph runs; when
            #   the data's size is not the one the weights need (an LSTM's feature size), the
            #   graph fails inside an operator, which is the data's fault, not a bug.
            given = ", ".join(
                f"'{n}' {tuple(x.shape[1:])}"
                for n, x in zip(self.input_names, prepared, strict=True)
            )
            declared = ", ".join(
                f"'{n}' ({', '.join('?' if d is None else str(d) for d in shape)})"
                for n, shape in zip(self.input_names, self.input_shapes, strict=True)
            )
            raise Mat2GradError(
                f"{self.source}: the model cannot run on inputs of per-sample shape {given}: "
                f"the file leaves sizes symbolic ({declared}) and its graph needs others "
                f"({type(exc).__name__}: {exc}); give data of the sizes the network was "
                "built for ('mat2grad info FILE' lists them)"
            ) from None
        return outs[0] if len(outs) == 1 else outs
