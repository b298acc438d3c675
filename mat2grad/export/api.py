"""``convert``: a network -> a portable file, through the steps of the package (see
:mod:`mat2grad.export`)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from .. import matfile
from ..contract import model_dtype
from ..errors import Mat2GradError, first_line, refuse_out_of_memory
from .convertible import check_convertible, unexportable_part
from .describe import FORMAT_NAMES, description
from .opsets import DEFAULT_OPSET, ONNX_OPSETS
from .prepare import example_inputs, exportable, onnx_file_dtype, private_copy, probe, where_of
from .verify import verify
from .writers import FORMATS, exporter_output_silenced

__all__ = ["convert"]


@refuse_out_of_memory
def convert(
    source: str | os.PathLike[str] | nn.Module,
    out: str | os.PathLike[str],
    *,
    network: str | None = None,
    dtype: torch.dtype | str | None = None,
    opset: int | None = None,
    matlab_layout: bool = False,
) -> Path:
    """Write a network as a portable ``.pt2``, ``.pt`` or ``.onnx`` file.

    Args:
        source: a MAT-file with a MATLAB network, an ``.onnx`` file, or a network already
            loaded with :func:`mat2grad.load` (any module following mat2grad's model
            contract: ``input_shapes``, ``input_names``, ``output_names``).
        out: the file to write; its suffix picks the format (``.pt2``, ``.pt``, ``.onnx``).
        network: MATLAB-style path of the network inside the MAT-file, when it holds several.
        dtype: ``torch.float64`` or ``torch.float32`` (also ``"float64"`` / ``"float32"``):
            the precision of the weights and of the graph. Default: float64 for a file,
            except ``.onnx`` written from an ``.onnx`` file, which keeps that file's own
            precision (float32 for nearly every exporter; onnxruntime runs Conv and pooling
            in float32 only); the module's own precision for a loaded module.
        opset: ONNX opset (``.onnx`` only; default :data:`DEFAULT_OPSET`).
        matlab_layout: ``.onnx`` only: inputs ``R x Q`` and outputs ``S x Q`` (one sample per
            column, as MATLAB's ``sim``) instead of batch-first ``(Q, R)`` / ``(Q, S)``.

    Returns:
        The path written.

    The file maps raw inputs to raw outputs exactly like ``sim``: the processing functions are
    part of the graph (See NOTE: [Converted-file layout]). Gradients flow through ``.pt2`` and
    ``.pt`` files; where the network has step functions (hardlim, hardlims, compet) they are
    zero almost everywhere, as in mat2grad.

    Raises:
        Mat2GradError: unknown suffix, options that do not apply to the format, a network
            that cannot be evaluated or exported (dynamic networks; an operation the format
            cannot express, named with the part of the network that uses it), or a written
            file that, loaded back, does not reproduce the network (a graph that fixes the
            batch size).

    Example:
        >>> mat2grad.convert("net.mat", "net.onnx", opset=14)          # doctest: +SKIP
        >>> import onnxruntime                                          # doctest: +SKIP
        >>> y = onnxruntime.InferenceSession("net.onnx").run(None, {"Input": x})[0]
        >>> assert y.shape == (x.shape[0], 1)                           # (Q, R) -> (Q, S)
    """
    out = Path(out)
    suffix = out.suffix.lower()
    opset = _checked_options(out, suffix, opset, matlab_layout)
    if dtype is None and suffix == ".onnx" and not isinstance(source, nn.Module):
        dtype = onnx_file_dtype(source)
    model, source_name = private_copy(source, network, dtype)
    dtype = model_dtype(model)
    where = where_of(model, source_name)
    check_convertible(model, where)
    example = example_inputs(model, dtype)
    probe(model, example, where)
    portable = exportable(model, where)
    info = description(model, source_name, suffix, dtype, opset, matlab_layout)
    try:
        with exporter_output_silenced():
            data = FORMATS[suffix](portable, example, info, opset, matlab_layout)
    except Mat2GradError:
        raise
    except Exception as exc:  # the exporters' own errors, at the API boundary
        with exporter_output_silenced():
            part = unexportable_part(model, suffix, opset, dtype)
        raise Mat2GradError(
            f"{where}: cannot be written as {FORMAT_NAMES[suffix]}"
            + (f" at opset {opset}" if suffix == ".onnx" else "")
            + (f"; the part that fails: {part}" if part else "")
            + f" ({type(exc).__name__}: {first_line(str(exc)).rstrip('.')})"
            + (". Try another opset (--opset), or .pt2" if suffix == ".onnx" else "")
        ) from exc
    with exporter_output_silenced():
        verify(suffix, data, model, dtype, matlab_layout, where)
    matfile.write_bytes_atomically(out, data)
    return out


def _checked_options(out: Path, suffix: str, opset: int | None, matlab_layout: bool) -> int | None:
    """Refuse an unknown suffix, options of another format, an opset the exporter cannot
    write, a missing folder; return the opset to write (``.onnx`` only)."""
    if suffix not in FORMATS:
        raise Mat2GradError(
            f"{out}: unknown output format '{out.suffix}'; the suffix picks the format: "
            f"{', '.join(FORMATS)}"
        )
    if suffix != ".onnx":
        if opset is not None:
            raise Mat2GradError(f"{out}: an opset applies to .onnx output only")
        if matlab_layout:
            raise Mat2GradError(
                f"{out}: the MATLAB layout applies to .onnx output only; .pt2 and .pt files "
                "are batch-first (Q, R)"
            )
    elif opset is None:
        opset = DEFAULT_OPSET
    elif opset not in ONNX_OPSETS:
        raise Mat2GradError(
            f"{out}: ONNX opset {opset} cannot be written (supported: "
            f"{ONNX_OPSETS.start} to {ONNX_OPSETS.stop - 1}; the default, {DEFAULT_OPSET}, "
            "suits MATLAB's importNetworkFromONNX)"
        )
    if not (out.parent if str(out.parent) else Path(".")).is_dir():
        raise Mat2GradError(f"{out}: the folder {out.parent} does not exist")
    return opset
