"""MATLAB data in and out of ONNX models: what the CLI and the MATLAB helpers read and write.

Two layouts (``--layout``), see NOTE: [MATLAB layouts for ONNX models] in
:mod:`mat2grad.matfile.layout_kinds` for the array conversions themselves:

``matlab`` (default)
    the data as a MATLAB user holds it, per input by its layout kind
    (``model.input_layouts``): features ``C x N`` (also for the old exporters' ``1x1x1xC``
    inputs; their ``1 x C x 1 x N`` image form is accepted too), images ``H x W x C x N``,
    volumes ``H x W x D x C x N``, sequences ``C x N x T``, anything else ``d1 x ... x N``.
    Outputs come back the same way. A Jacobian block is ``S x R x N``, S and R the numbers
    of elements of one output and one input sample, each flattened in MATLAB's
    column-major order of its MATLAB per-sample array, so ``reshape(J(s, :, n), H, W, C)``
    is the gradient image of output element s for sample n. A Hessian is ``R x R x N``.
    With ``samples="rows"`` (feature inputs and outputs only) the sample index comes first
    instead: ``N x C``, ``N x S x R``.
``onnx``
    batch-first arrays in the file's own axis order: one ``(N, *per-sample shape)`` array per
    input (the per-sample shape ``mat2grad info`` prints: the file's shape without its batch
    axis, e.g. ``N x 1 x 28 x 28`` for a ``[N, 1, 28, 28]`` input, ``N x T x C`` for a
    time-major ``[T, N, C]`` one); results ``(N, *out)``, Jacobians ``(N, *out, *in)``,
    Hessians ``(N, *in, *in)`` (the Python API's shapes).

Several inputs: a cell with one array per input, in the model's input order. Inputs the
file declares as integers keep integer values (whole numbers are required).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import nn

from ..contract import contract_of
from ..errors import Mat2GradError
from .layout import SampleBlock, check_samples, float64_numpy
from .layout_kinds import (
    batch_to_matlab_samples,
    jacobian_to_matlab,
    matlab_block,
    matlab_element_order,
    matlab_to_batch,
    with_ndim,
)
from .tree import as_float, cell_elements, describe

__all__ = ["LAYOUTS", "inputs_from_mat", "ResultLayout", "matlab_size_text", "whole"]

#: The data layouts of ``--layout``.
LAYOUTS = ("matlab", "onnx")


def _check_layout(layout: str, samples: str) -> None:
    if layout not in LAYOUTS:
        raise Mat2GradError(f"layout must be 'matlab' or 'onnx', not '{layout}'")
    check_samples(samples)


def _refuse_rows(model: nn.Module, kinds: Sequence[tuple[str, str]]) -> None:
    """``samples="rows"`` is MATLAB's features-only convention (``N x C``)."""
    for name, kind in kinds:
        if kind != "features":
            raise Mat2GradError(
                f"{model.source}: samples in rows (N x C) apply to feature data, but "
                f"'{name}' is a '{kind}' array; use the MATLAB layout (one sample per "
                "column, or along the last or N axis) or --layout onnx (batch first)"
            )


def inputs_from_mat(
    model: nn.Module,
    value: Any,
    *,
    layout: str = "matlab",
    samples: str = "columns",
    what: str = "inputs",
) -> list[np.ndarray]:
    """Data read from a MAT-file -> one batch-first ``(N, *input_shapes[k])`` array per input.

    Args:
        model: an ONNX model (:class:`~mat2grad.onnx.model.OnnxNetwork`).
        value: one numeric array, or a cell (object array) with one per model input, in
            the model's input order.
        layout: ``"matlab"`` or ``"onnx"`` (module docstring).
        samples: ``"columns"`` or ``"rows"`` (``matlab`` layout, feature inputs only).
        what: names the data in messages (``"data.mat: 'X'"``).

    Returns:
        float64 arrays for floating inputs; integer arrays (the file's integer type) for
        the others.

    Raises:
        Mat2GradError: wrong number of arrays, sizes that do not fit the model (the message
            names the expected MATLAB size), different sample counts, non-numeric data.
    """
    _check_layout(layout, samples)
    names = tuple(model.input_names)
    parts = cell_elements(value)
    if len(parts) != len(names):
        raise Mat2GradError(
            f"{what}: the model has {len(names)} inputs ({', '.join(names)}), so it needs a "
            f"cell array with {len(names)} arrays, one per input in this order; found "
            f"{describe(value)}"
        )
    if layout == "matlab" and samples == "rows":
        _refuse_rows(model, list(zip(names, model.input_layouts, strict=True)))
    integer = contract_of(model).integer_inputs(len(names))
    infos = tuple(getattr(model, "input_infos", ()) or ())
    out = []
    for k, part in enumerate(parts):
        label = what if len(names) == 1 else f"{what}{{{k + 1}}}"
        label += f" (input '{names[k]}')"
        if isinstance(part, str) or not isinstance(part, np.ndarray) or part.dtype == object:
            raise Mat2GradError(f"{label}: expected a numeric array, found {describe(part)}")
        if part.dtype.kind not in "biuf":
            raise Mat2GradError(f"{label}: expected a real numeric array, found {part.dtype}")
        shape = tuple(model.input_shapes[k])
        if part.size == 0:
            raise Mat2GradError(f"{label}: no samples (the array is {describe(part)})")
        if layout == "matlab":
            kind = model.input_layouts[k]
            arr = part.T if samples == "rows" else part
            try:
                batch = matlab_to_batch(arr, kind, shape)
            except Mat2GradError as exc:
                raise Mat2GradError(
                    f"{label}: {exc}; expected {matlab_size_text(shape, kind, samples)}"
                ) from None
        else:
            batch = _onnx_batch(part, shape, label)
        if not integer[k]:
            batch = as_float(batch, label)
        else:
            batch = _integers(batch, infos[k].elem_type if k < len(infos) else None, label)
        if out and batch.shape[0] != out[0].shape[0]:
            raise Mat2GradError(
                f"{what}: every input needs the same number of samples; found "
                f"{out[0].shape[0]} and {batch.shape[0]}"
            )
        out.append(np.ascontiguousarray(batch))
    return out


def _onnx_batch(part: np.ndarray, shape: tuple[int | None, ...], label: str) -> np.ndarray:
    """A batch-first array as MATLAB saved it (trailing singleton dimensions dropped)."""
    x = with_ndim(part, len(shape) + 1)
    if x is None or any(d is not None and d != g for d, g in zip(shape, x.shape[1:], strict=True)):
        want = " x ".join(["N", *("?" if d is None else str(d) for d in shape)])
        raise Mat2GradError(
            f"{label}: batch-first (--layout onnx) data must be {want}; found {describe(part)}"
        )
    return x


def _integers(batch: np.ndarray, elem_type: int | None, label: str) -> np.ndarray:
    if batch.dtype.kind == "f" and not (
        np.all(np.isfinite(batch)) and np.array_equal(batch, np.round(batch))
    ):
        raise Mat2GradError(
            f"{label} is an integer input of the model, but holds values that are not whole numbers"
        )
    dtype = np.dtype(np.int64)
    if elem_type is not None:
        from onnx import helper  # deferred: cuts start-up time; only integer inputs need it

        try:
            dtype = np.dtype(helper.tensor_dtype_to_np_dtype(elem_type))
        except (KeyError, TypeError, ValueError):
            pass
    return batch.astype(dtype)


def matlab_size_text(shape: Sequence[int | None], kind: str, samples: str = "columns") -> str:
    """The MATLAB size of N samples of per-sample ``shape`` in layout ``kind``, as text
    (``'28x28x1xN (H x W x C x N)'``); ``?`` for symbolic dimensions."""
    known = tuple(1 if d is None else int(d) for d in shape)
    block = matlab_block(known, kind)
    dims = ["?" if d is None else str(d) for d in _matlab_dims(tuple(shape), kind)]
    if samples == "rows":
        dims.insert(0, "N")
    else:
        dims.insert(block.axis, "N")
    names = {
        "features": "C x N",
        "image": "H x W x C x N",
        "volume": "H x W x D x C x N",
        "sequence": "C x N x T",
    }
    hint = f" ({names[kind]})" if kind in names and samples == "columns" else ""
    return "x".join(dims) + hint


def _matlab_dims(shape: tuple[int | None, ...], kind: str) -> tuple[int | None, ...]:
    """One sample's MATLAB dimensions, keeping ``None`` for symbolic ones."""
    if kind == "features":
        known = [d for d in shape if d != 1]
        return (known[0],) if known else (1,)
    probe = tuple(range(2, len(shape) + 2))  # distinct sizes locate each axis
    moved = matlab_block(probe, kind).shape
    return tuple(shape[probe.index(d)] for d in moved)


class ResultLayout:
    """How the results of an ONNX model are laid out in the result file.

    Every result is produced batch-first by the library; for each kind of result this class
    gives the :class:`~mat2grad.matfile.SampleBlock` that :class:`~mat2grad.matfile.SampleWriter`
    writes, and converts a batch-first chunk to that block's per-sample order (memory: one
    chunk). ``k`` indexes the model's outputs, ``j`` its inputs.

    Args:
        model: the ONNX model.
        layout: ``"matlab"`` or ``"onnx"``.
        samples: ``"columns"`` or ``"rows"`` (``matlab`` layout, feature data only).
    """

    def __init__(self, model: nn.Module, layout: str = "matlab", samples: str = "columns"):
        _check_layout(layout, samples)
        self.model = model
        self.layout = layout
        self.samples = samples
        if layout == "matlab" and samples == "rows":
            _refuse_rows(model, list(zip(model.output_names, model.output_layouts, strict=True)))
        self._rows = layout == "onnx" or samples == "rows"

    def _out(self, k: int) -> str:
        return self.model.output_layouts[k]

    def _in(self, j: int) -> str:
        return self.model.input_layouts[j]

    # outputs --------------------------------------------------------------------------

    def output_block(self, k: int, shape: Sequence[int]) -> SampleBlock:
        """Output ``k`` with per-sample (batch-first) ``shape``."""
        if self.layout == "onnx":
            return SampleBlock(tuple(shape), 0)
        block = matlab_block(shape, self._out(k))
        return SampleBlock(block.shape, 0) if self._rows else block

    def output_chunk(self, k: int, y: Any) -> np.ndarray:
        """A batch-first chunk ``(c, *out_k)`` of output ``k`` -> ``(c, *block.shape)``."""
        y = float64_numpy(y)
        if self.layout == "onnx":
            return y
        return batch_to_matlab_samples(y, self._out(k))

    def output_array(self, k: int, y: Any) -> np.ndarray:
        """All samples of output ``k`` as the array the result file holds."""
        chunk = self.output_chunk(k, y)
        block = self.output_block(k, float64_numpy(y).shape[1:])
        return whole(block, chunk)

    # Jacobians ------------------------------------------------------------------------

    def jacobian_block(
        self, k: int, j: int, out_shape: Sequence[int], in_shape: Sequence[int]
    ) -> SampleBlock:
        """The Jacobian of output ``k`` with respect to input ``j``."""
        if self.layout == "onnx":
            return SampleBlock((*out_shape, *in_shape), 0)
        s, r = math.prod(out_shape), math.prod(in_shape)
        return SampleBlock((s, r), 0 if self._rows else 2)

    def jacobian_chunk(self, k: int, j: int, jac: Any, out_shape: Sequence[int]) -> np.ndarray:
        """A batch-first chunk ``(c, *out_k, *in_j)`` -> ``(c, *block.shape)``: in the
        MATLAB layout ``(c, S, R)``, S and R in MATLAB's column-major per-sample order."""
        jac = float64_numpy(jac)
        if self.layout == "onnx":
            return jac
        m = jacobian_to_matlab(jac, self._out(k), self._in(j), tuple(out_shape))
        return np.moveaxis(m, -1, 0)

    # Hessians -------------------------------------------------------------------------

    def hessian_array(self, j: int, h: Any) -> np.ndarray:
        """Batch-first Hessians ``(N, *in_j, *in_j)`` -> ``R x R x N`` (MATLAB layout;
        ``N x R x R`` for rows) or unchanged (``onnx``)."""
        h = float64_numpy(h)
        if self.layout == "onnx":
            return h
        in_shape = h.shape[1 : 1 + (h.ndim - 1) // 2]
        m = jacobian_to_matlab(h, self._in(j), self._in(j), tuple(in_shape))
        return np.ascontiguousarray(np.moveaxis(m, -1, 0)) if self._rows else m

    def element(self, k: int, shape: Sequence[int], index: int) -> int:
        """Element ``index`` (1-based) of one sample of output ``k`` in this layout's order
        (MATLAB: column-major order of the MATLAB per-sample array; onnx: C order) -> its
        flat C-order index in the batch-first sample."""
        n = math.prod(shape)
        if not 1 <= index <= n:
            raise Mat2GradError(
                f"--output-index {index} is out of range: output "
                f"'{self.model.output_names[k]}' has {n} elements per sample"
            )
        if self.layout == "onnx":
            return index - 1
        return int(matlab_element_order(shape, self._out(k))[index - 1])


def whole(block: SampleBlock, chunk: np.ndarray) -> np.ndarray:
    """A batch-first ``(N, *block.shape)`` array -> the MATLAB array ``block`` describes."""
    c = chunk.shape[0]
    return np.ascontiguousarray(
        np.moveaxis(chunk.reshape(c, *(block.shape or (1,))), 0, block.axis)
    )
