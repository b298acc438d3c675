"""``mat2grad.convert``: write a loaded network as a portable file that plain PyTorch or any ONNX
runtime can run without mat2grad.

The suffix of the output picks the format (``FORMATS``):

* ``.pt2`` -- a ``torch.export`` ExportedProgram with a dynamic batch dimension, loaded with
  ``torch.export.load(f).module()``;
* ``.pt`` -- a traced TorchScript module (``torch.jit.trace``), loaded with ``torch.jit.load``;
* ``.onnx`` -- an ONNX model at a chosen opset, float64 or float32, dynamic batch, named inputs
  and outputs, and a docstring saying where the network came from.

NOTE: [Converted-file layout]
    A converted file maps raw inputs to raw outputs exactly like MATLAB's ``sim``: the
    processing functions (mapminmax, removeconstantrows, ...) and the reverse output
    processing are operations of the graph. Tensors are batch-first with features last:
    one ``(Q, R_j)`` tensor per input, one ``(Q, S_k)`` tensor per output (a tuple for
    several), ``Q`` any batch size >= 1. ``.onnx`` with ``matlab_layout=True`` instead takes
    MATLAB's own layout, ``R_j x Q`` in and ``S_k x Q`` out (one sample per column, as
    ``sim(net, X)``); see ``_Portable``.

Nothing here pickles a Python object: ``.pt2`` is written by ``torch.export.save``, ``.pt`` by
``torch.jit.save`` and ``.onnx`` by protobuf, and each file carries its description as JSON
(``mat2grad.json``; ONNX ``metadata_props``). Before a file is written, its bytes are loaded
back the way a user would load them (``torch.export.load``, ``torch.jit.load``, onnxruntime
when installed, or onnx's reference evaluator for a float64 graph with operators onnxruntime
runs in float32 only) and run on batches of 1 and 4 samples against the network (the export
traced 3): a file that fails or disagrees is never written. Files are written atomically.

ONNX networks are not exported as they run in mat2grad (each sample at batch 1 under
``torch.func.vmap``, which no exporter can write with a dynamic batch), but as the
batch-generic graph of plain ATen operations that ``mat2grad.onnx.portable`` records from
them (NOTE [Batch-generic graph] there); the file written is still compared with the network
itself. So an ``.onnx`` file can be converted to ``.onnx``: re-exported at a chosen opset and
precision, valid (MATLAB 2018's ``Gemm`` on a 4-D tensor, which onnxruntime and
``onnx.checker`` reject, comes out as a valid graph), with a dynamic batch even where the
source baked batch 1 into its Reshape constants.

Sources (consulted with the workplace's ``search`` tool):

* MATLAB ``importNetworkFromPyTorch`` (mathworks.com/help/deeplearning/ref/
  importnetworkfrompytorch.html, R2026b page): "The PyTorch model must be a exported program or
  a traced model. Exported program models are recommended"; its recipe is ``model.eval()``,
  ``model.to("cpu")``, ``torch.export.export(model, (X,))``, ``torch.export.save(.., '.pt2')``,
  and for traced models ``torch.jit.trace(model.forward, X)``, ``traced.save('.pt')``; it asks
  for PyTorch 2.8 for ``.pt2``. The converter's File Exchange page (111925) says exported
  programs are supported from R2026a and traced models need ``PyTorchInputSizes`` at import.
* MATLAB ``importNetworkFromONNX`` (mathworks.com/help/deeplearning/ref/
  importnetworkfromonnx.html, since R2023b, returns an initialized ``dlnetwork``). The input
  layout it assumes: ONNX dimensions are batch-first; a 2-D ONNX input ``[N, C]`` is data format
  ``"BC"`` (MathWorks' own import guide, matlab/matlab-agentic-toolkit
  ``skills-catalog/ai-and-statistics/matlab-import-external-ai-model/SKILL.md``, table
  "InputDataFormats Reference"), which is the default layout written here; a
  ``matlab_layout`` file is ``[C, N]``, format ``"CB"``. The highest opset the importer's
  documentation supports could not be retrieved; ``DEFAULT_OPSET`` is 14, the highest opset
  MATLAB's own exporter writes (``SupportedOpsetsForExport = 6:14`` in MathWorks' 2024 exporter
  code, research/onnx.md section 1.1), which the importer is therefore expected to read
  (inferred: MATLAB is not available to verify it).
* torch.onnx (docs.pytorch.org/docs/stable/onnx.html, onnx_dynamo.html): torch 2.13 has two
  exporters; the torch.export-based one (``dynamo=True``, the default since 2.9) needs the extra
  package ``onnxscript``, which mat2grad does not depend on. The TorchScript-based exporter
  (``dynamo=False``, opsets 7-20 in torch 2.13, deprecated but shipped) needs nothing more and
  supports ``dynamic_axes``; it is used here.
* torch.export (docs.pytorch.org/docs/stable/export.html): ``export(mod, args,
  dynamic_shapes=...)`` with ``torch.export.Dim`` for the batch dimension; ``torch.export.save``
  / ``load`` with ``extra_files``.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from . import matfile
from .errors import Mat2GradError

__all__ = ["convert", "FORMATS", "DEFAULT_OPSET", "ONNX_OPSETS"]

#: ONNX opset written by default: the highest MATLAB's own exporter writes (see the module
#: docstring), so the one importNetworkFromONNX is most likely to read.
DEFAULT_OPSET = 14
#: the opsets the TorchScript-based ONNX exporter of torch 2.13 writes; below 9 some MATLAB
#: functions have no ONNX form (hardlim, compet, dist, elliot2sig, fixunknowns; normprod
#: below 11) and converting them fails naming the function
ONNX_OPSETS = range(7, 21)
#: example batch size used to trace and export; > 1 so the batch dimension stays symbolic
_EXAMPLE_BATCH = 3

_DTYPES = {"float64": torch.float64, "float32": torch.float32}


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
    part of the graph (NOTE: [Converted-file layout]). Gradients flow through ``.pt2`` and
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

    if dtype is None and suffix == ".onnx" and not isinstance(source, nn.Module):
        dtype = _onnx_file_dtype(source)
    model, source_name = _model(source, network, dtype)
    dtype = _model_dtype(model)
    where = _where(model, source_name)
    _check_convertible(model, where)
    example = _example_inputs(model, dtype)
    _probe(model, example, where)
    exportable = _exportable(model, where)
    info = _description(model, source_name, suffix, dtype, opset, matlab_layout)
    try:
        with _exporter_output_silenced():
            data = FORMATS[suffix](exportable, example, info, opset, matlab_layout)
    except Mat2GradError:
        raise
    except Exception as exc:  # the exporters' own errors, at the API boundary
        with _exporter_output_silenced():
            part = _unexportable_part(model, suffix, opset, dtype)
        raise Mat2GradError(
            f"{where}: cannot be written as {_FORMAT_NAMES[suffix]}"
            + (f" at opset {opset}" if suffix == ".onnx" else "")
            + (f"; the part that fails: {part}" if part else "")
            + f" ({type(exc).__name__}: {_first_line(str(exc)).rstrip('.')})"
            + (". Try another opset (--opset), or .pt2" if suffix == ".onnx" else "")
        ) from exc
    with _exporter_output_silenced():
        _verify(suffix, data, model, dtype, matlab_layout, where)
    _write_atomically(out, data)
    return out


# --------------------------------------------------------------------------------------
# The model to convert
# --------------------------------------------------------------------------------------


def _dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    if dtype is None:
        return None
    if isinstance(dtype, str):
        if dtype not in _DTYPES:
            raise Mat2GradError(f"dtype must be float64 or float32, not '{dtype}'")
        return _DTYPES[dtype]
    if dtype not in _DTYPES.values():
        raise Mat2GradError(f"dtype must be torch.float64 or torch.float32, not {dtype}")
    return dtype


def _onnx_file_dtype(source: str | os.PathLike[str]) -> torch.dtype | None:
    """The precision of an ONNX file's floating inputs (float64 for DOUBLE, else float32), or
    None for another kind of file. An ``.onnx`` written from an ``.onnx`` keeps it by default:
    onnxruntime's CPU kernels for Conv and pooling are float32 only, so widening a float32
    file to float64 would give a file most users could not run."""
    from .loading import is_onnx

    if not is_onnx(source) or not Path(source).is_file():
        return None
    import onnx

    try:
        model = onnx.load(os.fspath(source), load_external_data=False)
    except Exception:  # noqa: BLE001 - load() reports unreadable files with its own message
        return None
    inits = {t.name for t in model.graph.initializer}
    for value in model.graph.input:
        elem = value.type.tensor_type.elem_type
        if value.name in inits:
            continue
        if elem == onnx.TensorProto.DOUBLE:
            return torch.float64
        if elem in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16):
            return torch.float32
    return None


def _model_dtype(model: nn.Module) -> torch.dtype:
    for t in [*model.parameters(), *model.buffers()]:
        if t.is_floating_point():
            return t.dtype
    return torch.float64


def _model(
    source: str | os.PathLike[str] | nn.Module, network: str | None, dtype: Any
) -> tuple[nn.Module, str | None]:
    """The module to convert (a private copy in ``dtype``) and the source file's name."""
    dtype = _dtype(dtype)
    if isinstance(source, nn.Module):
        if network is not None:
            raise Mat2GradError("network= applies to a file, not to a loaded module")
        for attr in ("input_shapes", "input_names", "output_names"):
            if not hasattr(source, attr):
                raise Mat2GradError(
                    f"{type(source).__name__} has no '{attr}': convert takes a network "
                    "loaded with mat2grad.load (or a file)"
                )
        spec = getattr(source, "spec", None)
        origin = spec.source if spec is not None else getattr(source, "source", None)
        name = Path(origin).name if isinstance(origin, str) and origin else None
        # a private copy (the caller's module keeps its dtype); the spec is immutable and may
        # hold megabytes of example inputs: shared, not copied
        memo = {id(spec): spec} if spec is not None else {}
        model = copy.deepcopy(source, memo)
        if dtype is not None:
            model = model.to(dtype)
            if isinstance(getattr(model, "dtype", None), torch.dtype):
                model.dtype = dtype  # an ONNX network converts its inputs to it
    else:
        from .loading import load

        name = Path(source).name
        model = load(source, network, dtype=dtype or torch.float64)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
        p.data = p.data.contiguous()
    # MAT-files store column-major arrays; torch.export's archive warns about buffers that
    # do not cover their storage, so every tensor of the (private) copy is made contiguous
    for qualified, buf in list(model.named_buffers()):
        owner, _, leaf = qualified.rpartition(".")
        setattr(model.get_submodule(owner), leaf, buf.contiguous())
    return model, name


def _where(model: nn.Module, source_name: str | None) -> str:
    spec = getattr(model, "spec", None)
    if spec is not None:
        return spec.where
    return source_name or type(model).__name__


def _check_convertible(model: nn.Module, where: str) -> None:
    spec = getattr(model, "spec", None)
    if spec is not None and spec.is_dynamic:
        delays = [w.label for w in spec.weights if w.delays != (0,)]
        feedback = [f"output {o.layer}" for o in spec.outputs if o.feedback_mode != "none"]
        parts = ", ".join(
            ([f"tapped delays on {', '.join(delays)}"] if delays else [])
            + ([f"feedback from {', '.join(feedback)}"] if feedback else [])
        )
        raise Mat2GradError(
            f"{where} is a dynamic network ({parts}); converting dynamic networks is not "
            "supported: their simulation steps through time with delay states, which a traced "
            "file would fix to one sequence length; use mat2grad itself (predict, jacobian)"
        )
    for name, shape in zip(model.input_names, model.input_shapes, strict=True):
        if any(n is None for n in shape):
            dims = ", ".join("?" if n is None else str(n) for n in shape)
            raise Mat2GradError(
                f"{where}: input '{name}' has per-sample shape ({dims}), with a size the "
                "model leaves open; a converted file fixes every size but the batch"
            )
        if any(int(n) < 1 for n in shape):
            raise Mat2GradError(f"{where}: input '{name}' has an empty shape {tuple(shape)}")


def _example_inputs(
    model: nn.Module, dtype: torch.dtype, batch: int = _EXAMPLE_BATCH, seed: int = 0
) -> tuple[Tensor, ...]:
    """Random inputs, ``(batch, *input_shape)``; zeros for the integer inputs of an ONNX
    network (``input_float``)."""
    gen = torch.Generator().manual_seed(seed)
    floats = getattr(model, "input_float", None) or (True,) * len(model.input_shapes)
    return tuple(
        torch.randn(batch, *map(int, shape), generator=gen, dtype=dtype)
        if is_float
        else torch.zeros(batch, *map(int, shape), dtype=torch.int64)
        for shape, is_float in zip(model.input_shapes, floats, strict=True)
    )


def _probe(model: nn.Module, example: tuple[Tensor, ...], where: str) -> None:
    """Evaluate once, so that a network mat2grad cannot evaluate fails with its own message."""
    try:
        with torch.no_grad():
            y = model(*example)
    except Mat2GradError as exc:
        raise Mat2GradError(f"cannot convert: {exc}") from None
    outs = y if isinstance(y, tuple) else (y,)
    if len(outs) != len(model.output_names):
        raise Mat2GradError(
            f"{where}: the network returned {len(outs)} outputs but names "
            f"{len(model.output_names)} (output_names); it does not follow mat2grad's model "
            "contract"
        )


def _exportable(model: nn.Module, where: str) -> nn.Module:
    """What the exporters are given: the network itself, or for an ONNX network (which runs
    each sample under ``vmap``) its batch-generic graph (NOTE [Batch-generic graph] in
    ``mat2grad.onnx.portable``)."""
    from .onnx.model import OnnxNetwork

    if not isinstance(model, OnnxNetwork):
        return model
    from .onnx.portable import portable_network

    return portable_network(model, where)


# --------------------------------------------------------------------------------------
# What the file records about itself
# --------------------------------------------------------------------------------------


def _description(
    model: nn.Module,
    source_name: str | None,
    suffix: str,
    dtype: torch.dtype,
    opset: int | None,
    matlab_layout: bool,
) -> dict[str, Any]:
    spec = getattr(model, "spec", None)
    in_names, out_names = _io_names(model)
    inputs = []
    for j, (name, shape) in enumerate(zip(in_names, model.input_shapes, strict=True)):
        steps = [s.fcn for s in spec.inputs[j].steps] if spec is not None else []
        dims = _dims(shape, matlab_layout)
        inputs.append({"name": name, "shape": dims, "processing": steps})
    outputs = []
    for k, name in enumerate(out_names):
        shape = tuple(model.output_shapes[k]) if hasattr(model, "output_shapes") else ()
        steps = [s.fcn for s in reversed(spec.outputs[k].steps)] if spec is not None else []
        dims = _dims(shape, matlab_layout)
        outputs.append({"name": name, "shape": dims, "reverse_processing": steps})
    layout = (
        "MATLAB layout: each input R x Q and each output S x Q, one sample per column "
        "(as sim(net, X))"
        if matlab_layout
        else "batch-first, features last: each input (Q, R), each output (Q, S), one sample per row"
    )
    info: dict[str, Any] = {
        "producer": f"mat2grad {_version()}",
        "format": _FORMAT_NAMES[suffix],
        "source_file": source_name,
        "network_path": spec.path if spec is not None else None,
        "network_name": spec.name if spec is not None else None,
        "dtype": str(dtype).removeprefix("torch."),
        "layout": layout,
        "inputs": inputs,
        "outputs": outputs,
        "processing": "the processing functions are part of the graph: raw inputs in, raw "
        "outputs out, as MATLAB's sim",
        "zero_derivative": list(getattr(model, "zero_derivative", ())),
    }
    if getattr(model, "producer", None) is not None and hasattr(model, "notes"):
        # an ONNX network: what wrote the source, and what mat2grad rewrote in it (the
        # MATLAB 2018 exporter's Gemm on a 4-D tensor, old opsets, Dropout, ...)
        info["source_producer"] = model.producer
        info["source_opset"] = getattr(model, "opset", None)
        info["rewrites"] = list(model.notes)
    if opset is not None:
        info["opset"] = opset
        if spec is not None or not hasattr(model, "input_layouts"):
            fmt = "CB" if matlab_layout else "BC"
            info["matlab"] = (
                f'net = importNetworkFromONNX(file, InputDataFormats="{fmt}", '
                f'OutputDataFormats="{fmt}"); Y = extractdata(predict(net, dlarray(X, "CB"))) '
                "with X R x Q, as sim(net, X) (not verified here: MATLAB is not available to "
                "mat2grad's tests)"
            )
        else:
            ins = _matlab_formats(model.input_shapes, model.input_layouts, matlab_layout)
            outs = _matlab_formats(model.output_shapes, model.output_layouts, matlab_layout)
            if ins is not None and outs is not None:
                info["matlab"] = (
                    f"net = importNetworkFromONNX(file, InputDataFormats={ins}, "
                    f"OutputDataFormats={outs}) (not verified here: MATLAB is not available "
                    "to mat2grad's tests)"
                )
    return info


def _matlab_formats(
    shapes: Sequence[tuple], layouts: Sequence[str], matlab_layout: bool
) -> str | None:
    """MATLAB data formats of a converted ONNX network's batch-first tensors ("BC" for
    (Q, C), "BCSS" for (Q, C, H, W), "BTC" for a (Q, T, C) sequence), as a MATLAB string or
    string array; None where a tensor has none of these forms."""
    formats = []
    for shape, layout in zip(shapes, layouts, strict=True):
        if len(shape) == 1:
            formats.append("CB" if matlab_layout else "BC")
        elif len(shape) == 2 and layout == "sequence":
            formats.append("BTC")
        elif len(shape) in (3, 4) and layout != "sequence":
            formats.append("BC" + "S" * (len(shape) - 1))
        else:
            return None
    quoted = [f'"{f}"' for f in formats]
    return quoted[0] if len(quoted) == 1 else f"[{', '.join(quoted)}]"


def _dims(shape: tuple, matlab_layout: bool) -> list[int | str | None]:
    """A per-sample shape with the batch dimension ``"Q"`` added where the file has it."""
    sizes = [None if n is None else int(n) for n in shape]
    return [*sizes, "Q"] if matlab_layout else ["Q", *sizes]


def _docstring(info: dict[str, Any]) -> str:
    where = info["source_file"] or "a loaded model"
    if info["network_path"]:
        where = f"network '{info['network_path']}' of {where}"
    lines = [f"{info['producer']}: {where}, as {info['format']} ({info['dtype']})."]
    lines.append(f"Layout: {info['layout']}; Q, the batch, is dynamic.")
    if "source_producer" in info:
        who = info["source_producer"] or "an unknown producer"
        lines.append(f"Source: ONNX by {who}, opset {info['source_opset']}.")
        lines += [f"Rewritten on loading: {note}." for note in info["rewrites"]]
    for i in info["inputs"]:
        proc = ", ".join(i["processing"]) or "none"
        lines.append(f"Input '{i['name']}' {i['shape']}: processing folded in: {proc}.")
    for o in info["outputs"]:
        proc = ", ".join(o["reverse_processing"]) or "none"
        lines.append(f"Output '{o['name']}' {o['shape']}: reverse processing folded in: {proc}.")
    if info["zero_derivative"]:
        lines.append(
            f"Derivatives are zero almost everywhere through {', '.join(info['zero_derivative'])}."
        )
    if "matlab" in info:
        lines.append(f"MATLAB: {info['matlab']}.")
    return "\n".join(lines)


def _io_names(model: nn.Module) -> tuple[list[str], list[str]]:
    """Input and output names, distinct across both (ONNX values share one namespace)."""
    ins = [str(n) for n in model.input_names]
    outs = []
    for n in map(str, model.output_names):
        name, k = n, 1
        while name in ins or name in outs:
            k += 1
            name = f"{n}_{k}"
        outs.append(name)
    return ins, outs


# --------------------------------------------------------------------------------------
# Writers: model -> bytes
# --------------------------------------------------------------------------------------


def _write_pt2(
    model: nn.Module, example: tuple[Tensor, ...], info: dict, opset: int | None, ml: bool
) -> bytes:
    batch = torch.export.Dim("Q", min=1)
    # forward(*x): the dynamic shapes mirror the one variadic argument, a tuple of inputs
    dynamic = (tuple({0: batch} for _ in example),)
    program = torch.export.export(_Portable(model), example, dynamic_shapes=dynamic, strict=False)
    buf = io.BytesIO()
    torch.export.save(program, buf, extra_files={"mat2grad.json": json.dumps(info, indent=1)})
    return buf.getvalue()


def _write_torchscript(
    model: nn.Module, example: tuple[Tensor, ...], info: dict, opset: int | None, ml: bool
) -> bytes:
    with warnings.catch_warnings():
        # torch 2.13 deprecates TorchScript (trace and save) in favour of torch.export; .pt is
        # written for consumers that take traced models only (importNetworkFromPyTorch before
        # R2026a). The tracer also warns about reading shapes: the batch size stays symbolic in
        # the trace (the tests run every file at other batch sizes).
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(_Portable(model), example, check_trace=False)
        buf = io.BytesIO()
        torch.jit.save(traced, buf, _extra_files={"mat2grad.json": json.dumps(info, indent=1)})
    return buf.getvalue()


def _write_onnx(
    model: nn.Module, example: tuple[Tensor, ...], info: dict, opset: int | None, ml: bool
) -> bytes:
    try:
        import onnx
    except ImportError:
        raise Mat2GradError(
            "writing .onnx needs the Python package onnx (pip install onnx)"
        ) from None

    in_names, out_names = _io_names(model)
    shapes = list(model.input_shapes) + list(model.output_shapes)
    axis = 1 if ml else 0
    if ml:
        for j, shape in enumerate(model.input_shapes):
            if len(shape) != 1:
                raise Mat2GradError(
                    f"input {j + 1} has per-sample shape {tuple(shape)}; the MATLAB layout "
                    "(features x samples) applies to vector inputs only"
                )
        example = tuple(x.T.contiguous() for x in example)
    # the exporter takes names of its own making and renames to the final ones afterwards:
    # it refuses names such as '15', which its internal values use (ONNX files from PyTorch
    # name their inputs and outputs so)
    tmp_in = [f"mat2grad_input_{j}" for j in range(len(in_names))]
    tmp_out = [f"mat2grad_output_{k}" for k in range(len(out_names))]
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # torch 2.13 deprecates the TorchScript-based exporter in favour of one that needs
        # onnxscript (see the module docstring); its other warnings concern its own passes
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Portable(model, matlab_layout=ml),
            example,
            buf,
            dynamo=False,
            opset_version=opset,
            input_names=tmp_in,
            output_names=tmp_out,
            dynamic_axes={n: {axis: "Q"} for n in tmp_in + tmp_out},
            do_constant_folding=True,
            verbose=False,
        )
    proto = onnx.load_from_string(buf.getvalue())
    _rename_values(proto.graph, dict(zip(tmp_in + tmp_out, in_names + out_names, strict=True)))
    # the exporter may leave a feature size symbolic (an output of size 1 after a broadcast):
    # declare every size, so importers see (Q, R) -> (Q, S); the checker below verifies them
    declared = dict(zip(in_names + out_names, shapes, strict=True))
    for value in [*proto.graph.input, *proto.graph.output]:
        if value.name not in declared:
            continue  # below opset 9 the weights are graph inputs too
        shape = declared[value.name]
        dims = value.type.tensor_type.shape.dim
        del dims[:]
        for k, size in enumerate(_dims(shape, ml)):
            dim = dims.add()
            if isinstance(size, str):
                dim.dim_param = size
            elif size is None:  # an output size the model leaves open
                dim.dim_param = f"{value.name}_dim{k}"
            else:
                dim.dim_value = size
    proto.producer_name = "mat2grad"
    proto.producer_version = _version()
    proto.doc_string = _docstring(info)
    proto.graph.name = info["network_name"] or info["network_path"] or "network"
    proto.graph.doc_string = proto.doc_string
    del proto.metadata_props[:]
    entries = {
        "mat2grad": json.dumps(info),
        "source_file": info["source_file"] or "",
        "network_path": info["network_path"] or "",
        "layout": info["layout"],
    }
    for key, value in entries.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto, full_check=True)  # includes strict shape inference
    return proto.SerializeToString()


def _rename_values(graph: Any, renames: dict[str, str]) -> None:
    """Rename values of an ONNX graph (``old -> new``); an internal value that already has
    one of the new names is renamed out of the way first."""
    used = {t.name for t in graph.initializer}
    used |= {v.name for v in [*graph.input, *graph.output, *graph.value_info]}
    for node in graph.node:
        used.update(node.input)
        used.update(node.output)
    mapping: dict[str, str] = {}
    for new in renames.values():
        if new in used and new not in renames:
            fresh, k = f"{new}_internal", 1
            while fresh in used or fresh in renames.values():
                k += 1
                fresh = f"{new}_internal{k}"
            used.add(fresh)
            mapping[new] = fresh
    mapping.update(renames)

    def rename(name: str) -> str:
        return mapping.get(name, name)

    for node in graph.node:
        node.input[:] = [rename(n) for n in node.input]
        node.output[:] = [rename(n) for n in node.output]
    for item in [*graph.initializer, *graph.input, *graph.output, *graph.value_info]:
        item.name = rename(item.name)


class _Portable(nn.Module):
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
        y = self.model(*(xj.transpose(0, 1) for xj in x))
        if isinstance(y, tuple):
            return tuple(yk.transpose(0, 1) for yk in y)
        return y.transpose(0, 1)


Writer = Callable[[nn.Module, tuple[Tensor, ...], dict, "int | None", bool], bytes]

#: output suffix -> writer
FORMATS: dict[str, Writer] = {
    ".pt2": _write_pt2,
    ".pt": _write_torchscript,
    ".onnx": _write_onnx,
}
_FORMAT_NAMES = {
    ".pt2": "torch.export ExportedProgram (.pt2)",
    ".pt": "TorchScript, traced (.pt)",
    ".onnx": "ONNX (.onnx)",
}


# --------------------------------------------------------------------------------------
# Verification: the written bytes, reloaded, reproduce the network at other batch sizes
# --------------------------------------------------------------------------------------

#: relative agreement demanded of a reloaded file (max |difference| / max |y|): loose enough
#: for another runtime's round-off, tight enough for any structural error (a batch size baked
#: into the graph, a wrong layout) to show
_VERIFY_RTOL = {torch.float64: 1e-10, torch.float32: 1e-4}
#: batch sizes a reloaded file is run at: 1, and one that no export or recording used
#: (the exporters trace 3 samples; ONNX networks are recorded at 2, 3 and 5)
_VERIFY_BATCHES = (1, 4)


def _verify(
    suffix: str, data: bytes, model: nn.Module, dtype: torch.dtype, ml: bool, where: str
) -> None:
    """Reload ``data`` as a user would and compare it with ``model`` on batches of
    :data:`_VERIFY_BATCHES` samples. ``.onnx`` is run by onnxruntime when it is installed
    (by onnx's reference evaluator where onnxruntime has no float64 kernel)."""
    name = _FORMAT_NAMES[suffix]
    try:
        run = _LOADERS[suffix](data, ml)
    except Exception as exc:
        raise Mat2GradError(
            f"{where}: the written {name} cannot be loaded back ({type(exc).__name__}: "
            f"{_first_line(str(exc))})"
        ) from exc
    if run is None:
        return
    for q in _VERIFY_BATCHES:
        xs = _example_inputs(model, dtype, q, seed=q)
        with torch.no_grad():
            expected = _outputs(model(*xs))
        try:
            got = run(xs)
        except Exception as exc:
            raise Mat2GradError(
                f"{where}: the written {name} fails on a batch of {q} sample(s) "
                f"({type(exc).__name__}: {_first_line(str(exc))}); the network's graph "
                "probably fixes the batch size"
            ) from exc
        for k, (y, e) in enumerate(zip(got, expected, strict=True)):
            if tuple(y.shape) != tuple(e.shape):
                raise Mat2GradError(
                    f"{where}: the written {name} returns output {k + 1} of shape "
                    f"{tuple(y.shape)} for a batch of {q}, expected {tuple(e.shape)}"
                )
            if dtype == torch.float32 and getattr(model, "zero_derivative", ()):
                continue  # a step function may flip where two float32 runtimes round apart
            err = _relative_error(y, e)
            if not err <= _VERIFY_RTOL[dtype]:
                raise Mat2GradError(
                    f"{where}: the written {name} does not reproduce the network: output "
                    f"{k + 1} differs by {err:.1e} (relative) on a batch of {q}"
                )


def _outputs(y: Any) -> list[np.ndarray]:
    outs = y if isinstance(y, tuple | list) else (y,)
    return [np.asarray(o.detach().numpy() if isinstance(o, Tensor) else o) for o in outs]


def _relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """max |a - e| / max |e| over finite entries; inf where non-finite entries differ."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    finite = np.isfinite(e)
    same_nonfinite = np.array_equal(a[~finite], e[~finite], equal_nan=True)
    if not same_nonfinite or not np.all(np.isfinite(a[finite])):
        return float("inf")
    scale = np.max(np.abs(e[finite]), initial=0.0)
    diff = np.max(np.abs(a[finite] - e[finite]), initial=0.0)
    return float(diff / scale) if scale > 0 else float(diff)


def _load_pt2(data: bytes, ml: bool) -> Callable[[tuple[Tensor, ...]], list[np.ndarray]]:
    module = torch.export.load(io.BytesIO(data)).module()
    return lambda xs: _outputs(module(*xs))


def _load_torchscript(data: bytes, ml: bool) -> Callable[[tuple[Tensor, ...]], list[np.ndarray]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # see _write_torchscript
        module = torch.jit.load(io.BytesIO(data))
    return lambda xs: _outputs(module(*xs))


def _load_onnx(data: bytes, ml: bool) -> Callable[[tuple[Tensor, ...]], list[np.ndarray]] | None:
    try:
        import onnxruntime
    except ImportError:  # not a dependency of mat2grad: the checker's verdict stands alone
        return None
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 4  # fatal only: a failing run raises, and is reported
    try:
        session = onnxruntime.InferenceSession(
            data, sess_options=options, providers=["CPUExecutionProvider"]
        )
        names = [i.name for i in session.get_inputs()]
    except Exception as exc:
        if type(exc).__name__ != "NotImplemented":
            raise
        # onnxruntime's CPU kernels for Conv, ConvTranspose and pooling are float32 only
        # ("Could not find an implementation for Conv(11)"): a float64 file is valid ONNX
        # (the checker passed), and it is verified with onnx's own reference evaluator
        from onnx import load_from_string
        from onnx.reference import ReferenceEvaluator

        proto = load_from_string(data)
        weights = {t.name for t in proto.graph.initializer}  # graph inputs below opset 9
        session = ReferenceEvaluator(proto)
        names = [i.name for i in proto.graph.input if i.name not in weights]

    def run(xs: tuple[Tensor, ...]) -> list[np.ndarray]:
        arrays = [x.numpy().T.copy() if ml else x.numpy() for x in xs]
        outs = session.run(None, dict(zip(names, arrays, strict=True)))
        return [o.T if ml else o for o in outs]

    return run


_LOADERS = {".pt2": _load_pt2, ".pt": _load_torchscript, ".onnx": _load_onnx}


# --------------------------------------------------------------------------------------
# Which part of a shallow network an exporter cannot express
# --------------------------------------------------------------------------------------


def _unexportable_part(
    model: nn.Module, suffix: str, opset: int | None, dtype: torch.dtype
) -> str | None:
    """Export each MATLAB function of a shallow network alone with the same writer; return
    the first part that fails ("layer 2 transfer function 'compet'"), or None."""
    spec = getattr(model, "spec", None)
    if spec is None:
        return None
    from .shallow.functions import NET_INPUT, TRANSFER, WEIGHT
    from .shallow.module import ProcessingChain

    processing = [
        (f"input {i.index} processing", step, "apply", step.in_size)
        for i in spec.inputs
        for step in i.steps
    ] + [
        (f"output {o.layer} reverse processing", step, "reverse", step.out_size)
        for o in spec.outputs
        for step in o.steps
    ]
    parts: list[tuple[str, nn.Module, list[int]]] = [
        (f"{label} function '{step.fcn}'", _Apply(ProcessingChain([step], dtype), method), [n])
        for label, step, method, n in processing
    ]
    for w in spec.weights:
        weights = (model.IW if w.kind == "IW" else model.LW)[f"{w.to}_{w.source}"]
        parts.append(
            (
                f"weight {w.label} function '{w.fcn}'",
                _Fn(lambda p, f=WEIGHT[w.fcn], W=weights: f(W, p)),
                [weights.shape[1]],
            )
        )
    for layer in spec.layers:
        parts.append(
            (
                f"layer {layer.index} net input function '{layer.net_input}'",
                _Fn(lambda a, b, f=NET_INPUT[layer.net_input]: f([a, b])),
                [layer.size, layer.size],
            )
        )
        parts.append(
            (
                f"layer {layer.index} transfer function '{layer.transfer}'",
                _Fn(TRANSFER[layer.transfer].apply),
                [layer.size],
            )
        )
    for label, module, sizes in parts:
        module.input_shapes = tuple((n,) for n in sizes)
        module.input_names = tuple(f"x{k}" for k in range(len(sizes)))
        module.output_names = ("y",)
        example = _example_inputs(module, dtype)
        with torch.no_grad():
            module.output_shapes = ((int(module(*example).shape[-1]),),)
        try:
            FORMATS[suffix](module, example, _PART_INFO, opset, False)
        except Exception:
            return label
    return None


_PART_INFO: dict[str, Any] = {
    "producer": "",
    "format": "",
    "source_file": None,
    "network_path": None,
    "network_name": "part",
    "dtype": "",
    "layout": "",
    "inputs": [],
    "outputs": [],
    "zero_derivative": [],
}


class _Fn(nn.Module):
    def __init__(self, fn: Callable[..., Tensor]):
        super().__init__()
        self.fn = fn

    def forward(self, *x: Tensor) -> Tensor:
        return self.fn(*x)


class _Apply(nn.Module):
    def __init__(self, chain: nn.Module, method: str):
        super().__init__()
        self.chain = chain
        self.method = method

    def forward(self, x: Tensor) -> Tensor:
        return getattr(self.chain, self.method)(x)


# --------------------------------------------------------------------------------------


@contextlib.contextmanager
def _exporter_output_silenced() -> Iterator[None]:
    """Discard what the exporters and runtimes print to file descriptors 1 and 2 meanwhile.

    Failures are raised and reported in one line, but on the way the TorchScript-based ONNX
    exporter of torch 2.13 prints its whole IR graph from C++ (``torch/onnx/_internal/
    torchscript_exporter/utils.py`` tests the function ``_C._jit_is_onnx_log_enabled`` for
    truth instead of calling it, so its log is always on), torch.export logs the traced graph,
    and onnxruntime logs the failing node.
    """
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = []
    try:
        with tempfile.TemporaryFile() as sink:
            for fd in (1, 2):
                try:
                    saved.append((fd, os.dup(fd)))
                except OSError:  # no such descriptor (a detached process): nothing to hide
                    continue
                os.dup2(sink.fileno(), fd)
            yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        for fd, copy_fd in saved:
            os.dup2(copy_fd, fd)
            os.close(copy_fd)


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = matfile.temporary_beside(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _version() -> str:
    from ._version import __version__

    return __version__


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else ""
