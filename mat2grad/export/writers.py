"""Writers: a network -> the bytes of a ``.pt2``, ``.pt`` or ``.onnx`` file (``FORMATS``), and
the ONNX graph's post-processing (final names, declared sizes, description)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from .._version import __version__
from ..errors import Mat2GradError
from ..matfile.export_layout import (
    batch_axis,
    check_vector_inputs,
    dims_with_batch,
    example_to_matlab,
)
from .describe import docstring, io_names
from .opsets import DEFAULT_OPSET, ONNX_OPSETS
from .portable import Portable

__all__ = [
    "DEFAULT_OPSET",
    "FORMATS",
    "ONNX_OPSETS",
    "Writer",
    "exporter_output_silenced",
]


#: the name under which ``.pt2`` and ``.pt`` archives hold the description
_DESCRIPTION_FILE = "mat2grad.json"


def _extra_files(info: dict) -> dict[str, str]:
    return {_DESCRIPTION_FILE: json.dumps(info, indent=1)}


def _write_pt2(
    model: nn.Module, example: tuple[Tensor, ...], info: dict, opset: int | None, ml: bool
) -> bytes:
    """A ``torch.export`` ExportedProgram with a dynamic batch dimension."""
    batch = torch.export.Dim("Q", min=1)
    # forward(*x): the dynamic shapes mirror the one variadic argument, a tuple of inputs
    dynamic = (tuple({0: batch} for _ in example),)
    program = torch.export.export(Portable(model), example, dynamic_shapes=dynamic, strict=False)
    buf = io.BytesIO()
    torch.export.save(program, buf, extra_files=_extra_files(info))
    return buf.getvalue()


def _write_torchscript(
    model: nn.Module, example: tuple[Tensor, ...], info: dict, opset: int | None, ml: bool
) -> bytes:
    """A traced TorchScript module."""
    with warnings.catch_warnings():
        # torch 2.13 deprecates TorchScript (trace and save) in favour of torch.export; .pt is
        # written for consumers that take traced models only (importNetworkFromPyTorch before
        # R2026a). The tracer also warns about reading shapes: the batch size stays symbolic in
        # the trace (the tests run every file at other batch sizes).
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(Portable(model), example, check_trace=False)
        buf = io.BytesIO()
        torch.jit.save(traced, buf, _extra_files=_extra_files(info))
    return buf.getvalue()


def _write_onnx(
    model: nn.Module, example: tuple[Tensor, ...], info: dict, opset: int | None, ml: bool
) -> bytes:
    """An ONNX model at ``opset``, dynamic batch, named inputs and outputs, described."""
    try:
        import onnx  # local: onnx is a heavy import, needed only for .onnx (start-up time)
    except ImportError:
        raise Mat2GradError(
            "writing .onnx needs the Python package onnx (pip install onnx)"
        ) from None

    in_names, out_names = io_names(model)
    shapes = list(model.input_shapes) + list(model.output_shapes)
    if ml:
        check_vector_inputs(model.input_shapes)
        example = tuple(example_to_matlab(x) for x in example)
    # the exporter takes names of its own making and renames to the final ones afterwards:
    # it refuses names such as '15', which its internal values use (ONNX files from PyTorch
    # name their inputs and outputs so)
    tmp_in = [f"mat2grad_input_{j}" for j in range(len(in_names))]
    tmp_out = [f"mat2grad_output_{k}" for k in range(len(out_names))]
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # torch 2.13 deprecates the TorchScript-based exporter in favour of one that needs
        # onnxscript (see the package docstring); its other warnings concern its own passes
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Portable(model, matlab_layout=ml),
            example,
            buf,
            dynamo=False,
            opset_version=opset,
            input_names=tmp_in,
            output_names=tmp_out,
            dynamic_axes={n: {batch_axis(ml): "Q"} for n in tmp_in + tmp_out},
            do_constant_folding=True,
            verbose=False,
        )
    proto = onnx.load_from_string(buf.getvalue())
    _rename_values(proto.graph, dict(zip(tmp_in + tmp_out, in_names + out_names, strict=True)))
    _declare_sizes(proto.graph, dict(zip(in_names + out_names, shapes, strict=True)), ml)
    _describe(proto, info)
    onnx.checker.check_model(proto, full_check=True)  # includes strict shape inference
    return proto.SerializeToString()


def _declare_sizes(graph: Any, declared: dict[str, Any], ml: bool) -> None:
    """Declare every size of the graph's inputs and outputs (``declared``: name -> per-sample
    shape), so importers see (Q, R) -> (Q, S): the exporter may leave a feature size symbolic
    (an output of size 1 after a broadcast); the checker verifies them."""
    for value in [*graph.input, *graph.output]:
        if value.name not in declared:
            continue  # below opset 9 the weights are graph inputs too
        shape = declared[value.name]
        dims = value.type.tensor_type.shape.dim
        del dims[:]
        for k, size in enumerate(dims_with_batch(shape, ml)):
            dim = dims.add()
            if isinstance(size, str):
                dim.dim_param = size
            elif size is None:  # an output size the model leaves open
                dim.dim_param = f"{value.name}_dim{k}"
            else:
                dim.dim_value = size


def _describe(proto: Any, info: dict[str, Any]) -> None:
    """Producer, docstring, graph name and ``metadata_props`` of an ONNX model."""
    proto.producer_name = "mat2grad"
    proto.producer_version = __version__
    proto.doc_string = docstring(info)
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


Writer = Callable[[nn.Module, tuple[Tensor, ...], dict, "int | None", bool], bytes]

#: output suffix -> writer
FORMATS: dict[str, Writer] = {
    ".pt2": _write_pt2,
    ".pt": _write_torchscript,
    ".onnx": _write_onnx,
}


@contextlib.contextmanager
def exporter_output_silenced() -> Iterator[None]:
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
