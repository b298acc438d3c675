"""Padding rewrites: what onnx2torch or PyTorch cannot express as the ONNX node writes it
(numbers in :mod:`mat2grad.onnx.normalize.pipeline`'s list).

``auto_pad`` as explicit ``pads`` (9), pooling padding as an explicit Pad (10), and
ConvTranspose padding as a cropping Slice (11).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import ModelProto, helper, numpy_helper

from ..proto import attributes, decoded, elem_types, set_nodes
from ..proto import shapes as inferred_shapes

__all__ = ["explicit_auto_pad", "pool_padding", "conv_transpose_padding"]


def explicit_auto_pad(m: ModelProto, notes: list[str]) -> None:
    """``auto_pad`` SAME_UPPER / SAME_LOWER / VALID become explicit ``pads`` (9)."""
    ops = ("Conv", "MaxPool", "AveragePool", "LpPool")
    todo = []
    for node in m.graph.node:
        if node.op_type not in ops:
            continue
        attrs = attributes(node)
        mode = decoded(attrs.get("auto_pad", b"NOTSET"))
        if mode != "NOTSET":
            todo.append((node, attrs, mode))
    if not todo:
        return
    shapes = inferred_shapes(m)
    for node, attrs, mode in todo:
        dims = shapes.get(node.input[0])
        kernel = attrs.get("kernel_shape")
        if kernel is None and node.op_type == "Conv" and node.input[1] in shapes:
            kernel = shapes[node.input[1]][2:]
        if dims is None or kernel is None or any(d is None for d in dims[2:]):
            continue  # unknown spatial size: onnx2torch then reports auto_pad unsupported
        rank = len(dims) - 2
        strides = attrs.get("strides", [1] * rank)
        dilations = attrs.get("dilations", [1] * rank)
        begin, end = [], []
        for size, k, s, d in zip(dims[2:], kernel, strides, dilations, strict=True):
            if mode == "VALID":
                total = 0
            else:
                out = -(-size // s)
                total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
            small, large = total // 2, total - total // 2
            begin.append(small if mode != "SAME_LOWER" else large)
            end.append(large if mode != "SAME_LOWER" else small)
        kept = [a for a in node.attribute if a.name not in ("auto_pad", "pads")]
        del node.attribute[:]
        node.attribute.extend(kept)
        node.attribute.append(helper.make_attribute("pads", begin + end))
        notes.append(
            f"{node.op_type} '{node.name or node.output[0]}': auto_pad {mode} written as "
            f"pads {begin + end}"
        )


def pool_padding(m: ModelProto, notes: list[str]) -> None:
    """Pooling pads PyTorch cannot express become an explicit Pad before the pool (10)."""
    targets = []
    for node in m.graph.node:
        if node.op_type not in ("MaxPool", "AveragePool"):
            continue
        attrs = attributes(node)
        pads = list(attrs.get("pads", []))
        kernel = list(attrs.get("kernel_shape", []))
        if not pads or not kernel or not any(pads):
            continue
        rank = len(kernel)
        large = any(p > k // 2 for p, k in zip(pads, kernel + kernel, strict=True))
        asymmetric = pads[:rank] != pads[rank:]
        if not (large or (asymmetric and node.op_type == "AveragePool")):
            continue
        if node.op_type == "AveragePool" and attrs.get("ceil_mode", 0):
            continue  # left to onnx2torch, which refuses it clearly
        targets.append((node, attrs, pads, rank))
    if not targets:
        return
    types = elem_types(m)
    new_nodes: dict[int, list[onnx.NodeProto]] = {}
    for node, attrs, pads, rank in targets:
        label = node.name or node.output[0]
        base = f"{label}__mat2grad_pad"
        dtype = helper.tensor_dtype_to_np_dtype(types.get(node.input[0], onnx.TensorProto.FLOAT))
        full = [0, 0] + pads[:rank] + [0, 0] + pads[rank:]
        m.graph.initializer.append(
            numpy_helper.from_array(np.array(full, np.int64), base + "_pads")
        )
        fill = -np.inf if node.op_type == "MaxPool" else 0.0
        m.graph.initializer.append(numpy_helper.from_array(np.array(fill, dtype), base + "_value"))
        kept = [a for a in node.attribute if a.name not in ("pads", "count_include_pad")]
        del node.attribute[:]
        node.attribute.extend(kept)
        x = node.input[0]
        padded = base + "_x"
        added = [
            helper.make_node("Pad", [x, base + "_pads", base + "_value"], [padded], name=padded)
        ]
        if node.op_type == "AveragePool" and not attrs.get("count_include_pad", 0):
            ones = [base + "_shape", base + "_ones", base + "_ones_padded", base + "_count"]
            out = node.output[0]
            node.output[0] = base + "_sum"
            added += [
                helper.make_node("Shape", [x], [ones[0]], name=ones[0]),
                helper.make_node(
                    "ConstantOfShape",
                    [ones[0]],
                    [ones[1]],
                    name=ones[1],
                    value=numpy_helper.from_array(np.ones(1, dtype), "value"),
                ),
                helper.make_node(
                    "Pad", [ones[1], base + "_pads", base + "_value"], [ones[2]], name=ones[2]
                ),
                helper.make_node(
                    "AveragePool", [ones[2]], [ones[3]], name=ones[3], **attributes(node)
                ),
            ]
            after = [helper.make_node("Div", [base + "_sum", ones[3]], [out], name=base + "_div")]
        else:
            after = []
        node.input[0] = padded
        new_nodes[id(node)] = (added, after)
        notes.append(f"{node.op_type} '{label}': pads {pads} applied by an explicit Pad")
    nodes = []
    for node in m.graph.node:
        before, after = new_nodes.get(id(node), ([], []))
        nodes += [*before, node, *after]
    set_nodes(m, nodes)


def conv_transpose_padding(m: ModelProto, notes: list[str]) -> None:
    """ConvTranspose padding PyTorch cannot express becomes a cropping Slice after it (11)."""
    todo = []
    for node in m.graph.node:
        if node.op_type != "ConvTranspose":
            continue
        attrs = attributes(node)
        mode = decoded(attrs.get("auto_pad", b"NOTSET"))
        pads = list(attrs.get("pads", []))
        half = len(pads) // 2
        if "output_shape" in attrs or mode not in ("NOTSET", "VALID") or pads[:half] != pads[half:]:
            todo.append((node, attrs, mode))
    if not todo:
        return
    shapes = inferred_shapes(m)
    for node, attrs, mode in todo:
        label = node.name or node.output[0]
        dims, weight = shapes.get(node.input[0]), shapes.get(node.input[1])
        if weight is None:
            continue
        rank = len(weight) - 2
        kernel = list(attrs.get("kernel_shape", weight[2:]))
        strides = list(attrs.get("strides", [1] * rank))
        dilations = list(attrs.get("dilations", [1] * rank))
        extra = list(attrs.get("output_padding", [0] * rank))
        if "output_shape" in attrs or mode in ("SAME_UPPER", "SAME_LOWER"):
            if dims is None or any(d is None for d in dims[2:]):
                continue  # unknown input size: left to onnx2torch, which refuses it
            wanted = list(attrs.get("output_shape", []))[-rank:] or [
                d * st for d, st in zip(dims[2:], strides, strict=True)
            ]
            begin, end = [], []
            for k in range(rank):
                full = strides[k] * (dims[2 + k] - 1) + extra[k] + (kernel[k] - 1) * dilations[k]
                total = full + 1 - wanted[k]
                if total < 0:
                    raise ValueError(
                        f"ConvTranspose '{label}': output_shape {wanted} is larger than the "
                        "full transposed convolution; not supported"
                    )
                small, large = total // 2, total - total // 2
                upper = mode == "SAME_UPPER"
                begin.append(small if upper else large)
                end.append(large if upper else small)
        else:
            pads = list(attrs["pads"])
            begin, end = pads[:rank], pads[rank:]
        kept = [a for a in node.attribute if a.name not in ("auto_pad", "pads", "output_shape")]
        del node.attribute[:]
        node.attribute.extend(kept)
        out = node.output[0]
        full_name = f"{label}__mat2grad_full"
        node.output[0] = full_name
        base = f"{label}__mat2grad_crop"
        big = np.iinfo(np.int64).max
        consts = {
            "_starts": begin,
            "_ends": [-e if e else big for e in end],
            "_axes": list(range(2, 2 + rank)),
        }
        for suffix, values in consts.items():
            m.graph.initializer.append(
                numpy_helper.from_array(np.array(values, np.int64), base + suffix)
            )
        crop = helper.make_node(
            "Slice",
            [full_name, base + "_starts", base + "_ends", base + "_axes"],
            [out],
            name=base,
        )
        nodes = list(m.graph.node)
        nodes.insert(nodes.index(node) + 1, crop)
        set_nodes(m, nodes)
        notes.append(f"ConvTranspose '{label}': padding {begin + end} applied by a Slice")
