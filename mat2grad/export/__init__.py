"""``mat2grad.export``: write a loaded network as a portable file that plain PyTorch or any ONNX
runtime can run without mat2grad.

The suffix of the output picks the format (``FORMATS``):

* ``.pt2`` -- a ``torch.export`` ExportedProgram with a dynamic batch dimension, loaded with
  ``torch.export.load(f).module()``;
* ``.pt`` -- a traced TorchScript module (``torch.jit.trace``), loaded with ``torch.jit.load``;
* ``.onnx`` -- an ONNX model at a chosen opset, float64 or float32, dynamic batch, named inputs
  and outputs, and a docstring saying where the network came from.

The package follows one export through: ``prepare`` (a private copy of the network, example
inputs), ``convertible`` (what no format can hold, and which part an exporter failed on),
``portable`` with ``record`` and ``generalise`` (the modules the exporters are given; an ONNX
network's batch-generic graph), ``describe`` (what the file records about itself),
``writers`` (network -> bytes), ``verify`` (the bytes, loaded back, against the network) and
``matlab_layout`` (the ``R x Q`` layout of ``matlab_layout=True``).

Nothing here pickles a Python object: ``.pt2`` is written by ``torch.export.save``, ``.pt`` by
``torch.jit.save`` and ``.onnx`` by protobuf, and each file carries its description as JSON
(``mat2grad.json``; ONNX ``metadata_props``). Before a file is written, its bytes are loaded
back the way a user would load them (``torch.export.load``, ``torch.jit.load``, onnxruntime
when installed, or onnx's reference evaluator for a float64 graph with operators onnxruntime
runs in float32 only) and run on batches of 1 and 4 samples against the network (the export
traced 3): a file that fails or disagrees is never written. Files are written atomically.

ONNX networks are not exported as they run in mat2grad (each sample at batch 1 under
``torch.func.vmap``, which no exporter can write with a dynamic batch), but as the
batch-generic graph of plain ATen operations that ``mat2grad.export.portable`` records from
them (See NOTE: [Batch-generic graph] there); the file written is still compared with the network
itself. So an ``.onnx`` file can be exported to ``.onnx``: re-exported at a chosen opset and
precision, valid (MATLAB 2018's ``Gemm`` on a 4-D tensor, which onnxruntime and
``onnx.checker`` reject, comes out as a valid graph), with a dynamic batch even where the
source baked batch 1 into its Reshape constants.

What the formats' consumers expect:

* MATLAB ``importNetworkFromPyTorch`` (mathworks.com/help/deeplearning/ref/
  importnetworkfrompytorch.html, R2026b page): "The PyTorch model must be a exported program or
  a traced model. Exported program models are recommended"; its recipe is ``model.eval()``,
  ``model.to("cpu")``, ``torch.export.export(model, (X,))``, ``torch.export.save(.., '.pt2')``,
  and for traced models ``torch.jit.trace(model.forward, X)``, ``traced.save('.pt')``; it asks
  for PyTorch 2.8 for ``.pt2``. Exported programs are supported from R2026a; traced models
  need ``PyTorchInputSizes`` at import.
* MATLAB ``importNetworkFromONNX`` (mathworks.com/help/deeplearning/ref/
  importnetworkfromonnx.html, since R2023b, returns an initialized ``dlnetwork``). The input
  layout it assumes: ONNX dimensions are batch-first; a 2-D ONNX input ``[N, C]`` is data format
  ``"BC"`` (MathWorks' guide to importing external models, "InputDataFormats"), which is the
  default layout written here; a ``matlab_layout`` file is ``[C, N]``, format ``"CB"``.
  ``DEFAULT_OPSET`` is 14, the highest opset MATLAB's own exporter writes
  (``SupportedOpsetsForExport = 6:14`` in MathWorks' 2024 exporter), which the importer is
  therefore expected to read (inferred: MATLAB is not available to verify it).
* torch.onnx (docs.pytorch.org/docs/stable/onnx.html, onnx_dynamo.html): torch 2.13 has two
  exporters; the torch.export-based one (``dynamo=True``, the default since 2.9) needs the extra
  package ``onnxscript``, which mat2grad does not depend on. The TorchScript-based exporter
  (``dynamo=False``, opsets 7-20 in torch 2.13, deprecated but shipped) needs nothing more and
  supports ``dynamic_axes``; it is used here.
* torch.export (docs.pytorch.org/docs/stable/export.html): ``export(mod, args,
  dynamic_shapes=...)`` with ``torch.export.Dim`` for the batch dimension; ``torch.export.save``
  / ``load`` with ``extra_files``.
"""

# NOTE: [Converted-file layout]
# A converted file maps raw inputs to raw outputs exactly like MATLAB's ``sim``: the
# processing functions (mapminmax, removeconstantrows, ...) and the reverse output processing
# are operations of the graph. Tensors are batch-first with features last: one ``(Q, R_j)``
# tensor per input, one ``(Q, S_k)`` tensor per output (a tuple for several), ``Q`` any batch
# size >= 1. ``.onnx`` with ``matlab_layout=True`` instead takes MATLAB's own layout, ``R_j x
# Q`` in and ``S_k x Q`` out (one sample per column, as ``sim(net, X)``); the transposes are
# the functions of ``mat2grad.export.matlab_layout``, applied by ``portable.Portable``.

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
from .prepare import example_inputs, exportable, onnx_file_dtype, private_copy, probe, where_of
from .verify import verify
from .writers import DEFAULT_OPSET, FORMATS, ONNX_OPSETS, exporter_output_silenced

__all__ = ["convert", "FORMATS", "DEFAULT_OPSET", "ONNX_OPSETS"]


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
    _write_atomically(out, data)
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


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path`` and move it into place."""
    matfile.write_bytes_atomically(path, data)
