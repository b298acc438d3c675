"""The network to export: a private copy in the chosen precision, example inputs, one probe
evaluation, and what the exporters are given."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..contract import contract_of, parse_dtype
from ..errors import Mat2GradError
from ..loading import is_onnx, load
from .portable import portable_network

__all__ = [
    "EXAMPLE_BATCH",
    "example_inputs",
    "exportable",
    "onnx_file_dtype",
    "private_copy",
    "probe",
    "where_of",
]

#: example batch size used to trace and export; > 1 so the batch dimension stays symbolic
EXAMPLE_BATCH = 3


def _dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    """:func:`~mat2grad.contract.parse_dtype`, with the message this API has always given."""
    try:
        return parse_dtype(dtype)
    except Mat2GradError:
        raise Mat2GradError(f"dtype must be float64 or float32, not {dtype!r}") from None


def onnx_file_dtype(source: str | os.PathLike[str]) -> torch.dtype | None:
    """The precision of an ONNX file's floating inputs (float64 for DOUBLE, else float32), or
    None for another kind of file. An ``.onnx`` written from an ``.onnx`` keeps it by default:
    onnxruntime's CPU kernels for Conv and pooling are float32 only, so widening a float32
    file to float64 would give a file most users could not run."""
    if not is_onnx(source) or not Path(source).is_file():
        return None
    import onnx  # local: onnx is a heavy import, needed only for ONNX files (start-up time)

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


def private_copy(
    source: str | os.PathLike[str] | nn.Module, network: str | None, dtype: Any
) -> tuple[nn.Module, str | None]:
    """The module to export (a private copy in ``dtype``) and the source file's name."""
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
        contract = contract_of(source)
        spec = contract.spec
        origin = spec.source if spec is not None else contract.source
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


def where_of(model: nn.Module, source_name: str | None) -> str:
    """How messages name the network: its place in the MAT-file, its file, or its type."""
    spec = contract_of(model).spec
    if spec is not None:
        return spec.where
    return source_name or type(model).__name__


def example_inputs(
    model: nn.Module, dtype: torch.dtype, batch: int = EXAMPLE_BATCH, seed: int = 0
) -> tuple[Tensor, ...]:
    """Random inputs, ``(batch, *input_shape)``; zeros for the integer inputs of an ONNX
    network (``input_float``)."""
    gen = torch.Generator().manual_seed(seed)
    contract = contract_of(model)
    shapes = contract.input_shapes or ()
    integer = contract.integer_inputs(len(shapes))
    return tuple(
        torch.zeros(batch, *map(int, shape), dtype=torch.int64)
        if is_integer
        else torch.randn(batch, *map(int, shape), generator=gen, dtype=dtype)
        for shape, is_integer in zip(shapes, integer, strict=True)
    )


def probe(model: nn.Module, example: tuple[Tensor, ...], where: str) -> None:
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


def exportable(model: nn.Module, where: str) -> nn.Module:
    """What the exporters are given: the network itself, or for an ONNX network (which runs
    each sample under ``vmap``) its batch-generic graph (See NOTE: [Batch-generic graph] in
    ``mat2grad.export.portable``)."""
    # local: importing mat2grad.onnx loads onnx and onnx2torch (start-up time)
    from ..onnx.model import OnnxNetwork

    if not isinstance(model, OnnxNetwork):
        return model
    return portable_network(model, where)
