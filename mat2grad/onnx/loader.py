"""``load_onnx``: the ONNX front door, step by step.

read (safely) -> scan (refuse what cannot be differentiated) -> normalise (ONNX -> ONNX) ->
``onnx.checker`` (strict) -> onnx2torch (+ mat2grad's converters) -> post-conversion fixes ->
eval mode, dtype, frozen weights -> find each output's batch axis by running the graph ->
differentiability analysis -> compare with onnxruntime.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from typing import Any

import onnx
import torch
from torch import fx

from ..errors import Mat2GradError, first_line, is_out_of_memory, out_of_memory
from ._onnx2torch import import_onnx2torch, torchvision_problem
from .check import check_against_onnxruntime, check_declared_sizes
from .fixes import apply_fixes
from .graph import (
    FLOAT_TYPES,
    RECURRENT_OPS,
    InputInfo,
    differentiability,
    graph_inputs,
    infer_layout,
)
from .model import OnnxNetwork
from .normalize import Normalized, default_opset, normalize
from .ops import register_converters
from .reader import elem_type_name, read_model, scan

__all__ = ["load_onnx", "onnx_to_torch"]


def load_onnx(
    path: str | os.PathLike[str],
    *,
    dtype: torch.dtype = torch.float64,
    check: bool = True,
    wrt: str | Sequence[str] | None = None,
) -> OnnxNetwork:
    """Load an ONNX file as a differentiable PyTorch module (mat2grad's model contract).

    Args:
        path: the ``.onnx`` file. External data must sit in the same folder.
        dtype: ``torch.float64`` (default) or ``torch.float32``; weights stored in float32
            are widened, and the whole graph is computed in this dtype.
        check: compare with onnxruntime on a random input after loading (skipped, with a
            note in ``model.check``, when onnxruntime is not installed).
        wrt: input name(s) to differentiate with respect to; default: every floating input.

    Returns:
        an :class:`~mat2grad.onnx.model.OnnxNetwork`: ``model(*xs)`` maps batch-first inputs
        ``(Q, *input_shapes[k])`` to ``(Q, *output_shapes[j])`` (a tuple for several outputs)
        for any ``Q >= 1``, in eval mode, weights frozen, also under ``torch.func`` transforms.

    Raises:
        Mat2GradError: unreadable or unsafe file, operators that cannot be converted or
            differentiated (named), or a mismatch with onnxruntime (first diverging node named).

    Example:
        >>> net = load_onnx("matlab_nnvmt_1L_abalone.onnx")  # doctest: +SKIP
        >>> net.input_shapes, net.input_layouts  # doctest: +SKIP
        (((1, 1, 8),), ('features',))
        >>> x = torch.rand(5, 1, 1, 8, dtype=torch.float64)  # doctest: +SKIP
        >>> jac = torch.func.vmap(torch.func.jacrev(lambda s: net(s[None])[0]))(x)  # doctest: +SKIP
        >>> assert jac.shape == (5, 1, 1, 1, 8)  # doctest: +SKIP
    """
    if dtype not in (torch.float32, torch.float64):
        raise Mat2GradError(f"{path}: dtype must be torch.float64 or torch.float32, got {dtype}")
    model = read_model(path)
    gm, norm, fixed = onnx_to_torch(model, path, dtype)
    infos = graph_inputs(norm.model)
    check_declared_sizes(infos, path)  # before anything is allocated at those sizes
    for info in infos:
        if info.batch_axis < 0:
            raise Mat2GradError(
                f"{path}: input '{info.name}' is a scalar (rank 0); mat2grad needs a batch axis"
            )

    out_names = [o.name for o in model.graph.output]
    out_axes, out_shapes, batch_ok = _output_axes(gm, infos, dtype, out_names, path)
    net = OnnxNetwork(
        gm,
        input_names=[i.name for i in infos],
        output_names=out_names,
        input_shapes=[i.sample_shape for i in infos],
        output_shapes=out_shapes,
        input_batch_axes=[i.batch_axis for i in infos],
        output_batch_axes=out_axes,
        input_float=[i.elem_type in FLOAT_TYPES for i in infos],
        dtype=dtype,
    )
    net.input_infos = tuple(infos)
    net.batches_independently = batch_ok
    net.source = str(path)
    net.producer = f"{model.producer_name} {model.producer_version}".strip()
    net.opset = default_opset(model)
    net.notes = tuple(
        norm.notes + ([f"replaced after conversion: {', '.join(fixed)}"] if fixed else [])
    )
    # a recurrent node, or a Loop reading a sequence input step by step (tf2onnx)
    recurrent = any(n.op_type in RECURRENT_OPS for n in norm.model.graph.node) or any(
        i.role == "sequence" for i in infos
    )
    net.input_layouts = tuple(
        infer_layout(i.sample_shape, producer=model.producer_name, role=i.role, recurrent=recurrent)
        for i in infos
    )
    volume = "volume" in net.input_layouts
    net.output_layouts = tuple(
        infer_layout(s, producer=model.producer_name, recurrent=recurrent, volume=volume)
        for s in out_shapes
    )
    net.wrt = _resolve_wrt(wrt, infos, path)
    zero, problem = differentiability(norm.model, net.wrt, [norm.outputs[o] for o in out_names])
    net.zero_derivative = zero
    if problem is not None:
        for original, renamed in norm.outputs.items():
            problem = problem.replace(f"'{renamed}'", f"'{original}'")
        net.not_differentiable = f"{path}: {problem}"
    if check:
        net.check = check_against_onnxruntime(net, model, norm.model)
        if "skipped" in net.check and net.check["skipped"] not in _WARNED:
            _WARNED.add(net.check["skipped"])
            warnings.warn(
                f"{path}: the converted model was not compared with onnxruntime: "
                f"{net.check['skipped']}",
                stacklevel=2,
            )
    else:
        net.check = {"skipped": "check=False"}
    return net


def onnx_to_torch(
    model: onnx.ModelProto, source: Any, dtype: torch.dtype = torch.float64
) -> tuple[fx.GraphModule, Normalized, list[str]]:
    """The conversion steps of :func:`load_onnx`, without the per-sample wrapper.

    scan -> normalise -> strict checker -> onnx2torch (+ mat2grad's converters) -> fixes ->
    eval mode, ``dtype``, frozen weights. The returned ``fx.GraphModule`` takes and returns
    tensors exactly as the (normalised) graph declares them, batch axes included.

    Returns:
        ``(graph_module, normalised, fixes_applied)``.
    """
    scan(model, source, torchvision_problem())
    norm = _normalise(model, source)
    gm, fixed = _convert(norm, source)
    gm.eval()
    gm.to(dtype)
    for param in gm.parameters():
        param.requires_grad_(False)
    return gm, norm, fixed


def _normalise(model: onnx.ModelProto, path: Any) -> Normalized:
    try:
        norm = normalize(model)
    except Exception as exc:  # noqa: BLE001 - version_converter raises RuntimeError/others
        raise Mat2GradError(
            f"{path}: the graph could not be prepared for conversion "
            f"(opset {default_opset(model)}): {first_line(exc, limit=400)}"
        ) from None
    try:
        onnx.checker.check_model(norm.model, full_check=True)
    except Exception as exc:  # noqa: BLE001 - checker and shape-inference errors
        raise Mat2GradError(
            f"{path}: onnx.checker (strict shape inference) rejects the graph: "
            f"{first_line(exc, limit=400)}"
        ) from None
    return norm


_WARNED: set[str] = set()  # each reason a check was skipped is warned about once
_MISSING = re.compile(r"operation_type='([^']*)', version=(\d+)")


def _convert(norm: Normalized, path: Any) -> tuple[fx.GraphModule, list[str]]:
    onnx2torch = import_onnx2torch()
    register_converters()
    try:
        with warnings.catch_warnings():
            # onnx2torch's Resize converter warns that its module may be wrong; that module
            # is replaced by mat2grad.onnx.fixes, so the warning would only mislead
            warnings.filterwarnings("ignore", module="onnx2torch.node_converters.resize")
            gm = onnx2torch.convert(norm.model, attach_onnx_mapping=True)
    except NotImplementedError as exc:
        match = _MISSING.search(str(exc))
        if match:
            op, version = match.group(1), match.group(2)
            nodes = [n.name or n.output[0] for n in norm.model.graph.node if n.op_type == op]
            kept = [n for n in norm.notes if n.startswith("opset ") and " kept" in n]
            raise Mat2GradError(
                f"{path}: operator {op} (version {version}, node(s) "
                f"{', '.join(repr(n) for n in nodes[:3])}) has no converter in onnx2torch or "
                "mat2grad; it cannot be loaded" + (f" ({kept[0]})" if kept else "")
            ) from None
        raise Mat2GradError(f"{path}: conversion failed: {first_line(exc, limit=400)}") from None
    except Exception as exc:  # noqa: BLE001 - converters raise ValueError, KeyError, ...
        raise Mat2GradError(
            f"{path}: onnx2torch could not convert the graph: {type(exc).__name__}: "
            f"{first_line(exc, limit=400)}"
        ) from None
    return gm, apply_fixes(gm, norm.model, default_opset(norm.model))


def _sample_args(
    infos: Sequence[InputInfo], batch: int, free: int, dtype: torch.dtype, seed: int
) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    args = []
    for info in infos:
        dims = [
            batch if k == info.batch_axis else (free if d is None else d)
            for k, d in enumerate(info.dims)
        ]
        if info.elem_type in FLOAT_TYPES:
            args.append(torch.rand(dims, generator=gen, dtype=dtype) * 2 - 1)
        else:
            args.append(torch.zeros(dims, dtype=torch.int64))
    return args


def _run(gm: fx.GraphModule, args: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    with torch.no_grad():
        out = gm(*args)
    return tuple(out) if isinstance(out, tuple | list) else (out,)


def _output_axes(
    gm: fx.GraphModule,
    infos: Sequence[InputInfo],
    dtype: torch.dtype,
    names: Sequence[str],
    path: Any,
) -> tuple[list[int | None], list[tuple[int | None, ...]], bool]:
    """Find each output's batch axis and per-sample shape by running the graph.

    The graph runs at batch 1 and, where it accepts it, at batch 2: the axis that grows from
    1 to 2 holds the batch. A graph that bakes batch 1 in (``Reshape(x, [1, -1])``) fails or
    changes shape oddly at batch 2; its outputs then take the first axis of size 1. Where an
    input has symbolic non-batch dimensions, a second batch-1 run with other sizes shows which
    output dimensions follow them (reported as ``None``).

    Returns:
        ``(axes, per-sample shapes, batches_independently)``, the last True when the graph
        also runs at batch 2 with every output growing along its batch axis.
    """
    try:
        one = _run(gm, _sample_args(infos, 1, 3, dtype, 0))
    except Exception as exc:  # noqa: BLE001
        if is_out_of_memory(exc):
            raise out_of_memory(
                f"{path}: one sample through the converted graph",
                exc,
                "the model needs more memory per sample than this machine (or the process's "
                "limit) allows; check the file's shapes and attributes",
            ) from None
        raise Mat2GradError(
            f"{path}: the converted graph fails on a batch of one sample "
            f"({type(exc).__name__}: {first_line(exc, limit=400)}); mat2grad evaluates one "
            "sample at a time, which fails when the file bakes a larger batch size into its shapes"
        ) from None
    if len(one) != len(names):
        raise Mat2GradError(
            f"{path}: the converted graph returns {len(one)} outputs, the file declares "
            f"{len(names)}"
        )
    try:
        two = _run(gm, _sample_args(infos, 2, 3, dtype, 1))
    except Exception:  # noqa: BLE001 - batch 1 baked in: expected for some files
        two = None
    free = None
    if any(d is None for i in infos for k, d in enumerate(i.dims) if k != i.batch_axis):
        try:
            free = _run(gm, _sample_args(infos, 1, 4, dtype, 2))
        except Exception:  # noqa: BLE001
            free = None
    axes: list[int | None] = []
    shapes: list[tuple[int | None, ...]] = []
    clean = two is not None
    for k, y in enumerate(one):
        s1 = tuple(y.shape)
        axis = None
        if two is not None and len(two[k].shape) == len(s1):
            s2 = tuple(two[k].shape)
            grown = [a for a in range(len(s1)) if s1[a] != s2[a]]
            if len(grown) == 1 and s1[grown[0]] == 1 and s2[grown[0]] == 2:
                axis = grown[0]
        clean = clean and axis is not None
        if axis is None:
            axis = next((a for a, d in enumerate(s1) if d == 1), None)
        shape: list[int | None] = [d for a, d in enumerate(s1) if a != axis]
        if free is not None and len(free[k].shape) == len(s1):
            sf = [d for a, d in enumerate(free[k].shape) if a != axis]
            shape = [None if a != b else a for a, b in zip(shape, sf, strict=True)]
        axes.append(axis)
        shapes.append(tuple(shape))
    return axes, shapes, clean


def _resolve_wrt(
    wrt: str | Sequence[str] | None, infos: Sequence[InputInfo], path: Any
) -> tuple[str, ...]:
    floats = [i.name for i in infos if i.elem_type in FLOAT_TYPES]
    if wrt is None:
        return tuple(floats)
    names = (wrt,) if isinstance(wrt, str) else tuple(wrt)
    known = {i.name: i for i in infos}
    for name in names:
        if name not in known:
            raise Mat2GradError(
                f"{path}: --wrt '{name}' is not an input of the model (inputs: {', '.join(known)})"
            )
        if name not in floats:
            raise Mat2GradError(
                f"{path}: input '{name}' has element type "
                f"{elem_type_name(known[name].elem_type)}; only floating inputs can be "
                f"differentiated (floating inputs: {', '.join(floats) or 'none'})"
            )
    return names
