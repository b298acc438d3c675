"""ONNX -> ONNX rewrites made before conversion, so that onnx2torch sees a graph it handles.

Every rewrite here keeps the graph's meaning; each one says why it exists. The result is
checked with ``onnx.checker.check_model(full_check=True)`` by the caller.

1. **Local functions** are inlined (``onnx.inliner``): onnx2torch converts plain nodes only.
2. **Initializers listed as graph inputs** (the IR < 4 convention of MATLAB 18.x/19.x and
   PyTorch <= 1.x exports) are removed from the inputs: they are weights, not data, and
   ``onnx.version_converter`` fails on IR-3 graphs that keep them ("Input ... is undefined").
3. **Declared output shapes and value_info are dropped**: old exporters declare wrong ones
   (MATLAB 18.2 declares ``[1,3,1,1]`` for a ``[1,3]`` Gemm result), and strict shape
   inference would reject the graph for them. Shapes are re-inferred from the inputs.
4. **Dropout becomes Identity** (its mask output, where used, a constant all-true tensor):
   mat2grad evaluates trained networks, and ONNX's inference semantics of Dropout is the
   identity (onnx2torch would otherwise build ``nn.Dropout``, random in training mode). A
   Dropout whose ``training_mode`` input is true, or not a constant, is refused.
5. **Gemm on a tensor of rank > 2 (opset < 7, MATLAB's 2018 exporter)**. MATLAB 18.2 applied
   ``Gemm`` straight to the ``[N,C,H,W]`` output of its input layer -- invalid ONNX that
   onnxruntime and ``onnx.checker`` reject, yet it is the file those users have. A
   ``Flatten(axis=1)`` is inserted before such a Gemm: the input is coerced to 2-D at axis 1
   (``[N, C*H*W]``, row-major), as Caffe2's FC did and as MATLAB's next exporter (18.2.5)
   writes explicitly (``Flatten(axis=1) -> MatMul``). For the ``1x1x1xC`` feature inputs of
   every real 18.2 file seen this is exact whatever the order; for an 18.2 *image* input
   with C > 1 the order is inferred, not verified against MATLAB. A rank-3 input is
   MATLAB's recurrent ``[T, N, H]`` sequence (a fully connected layer after an LSTM, per time
   step; seen in MathWorks' 2018 exporter source, not in a file): that Gemm is rewritten as
   ``MatMul`` with the (transposed) weight, then ``Add`` of the bias, on the last axis.
6. **Opset upgrade** to :data:`TARGET_OPSET` with ``onnx.version_converter`` when the graph is
   older (onnx2torch lacks many old versions: Flatten-1, Gemm-6, BatchNormalization-7,
   Dropout-7, ...); where the converter fails, the graph keeps its opset (and the note says
   why), and conversion names any operator version that then has no converter.
   Upsample and Resize-10 nodes keep their asymmetric coordinates (nearest: floor), which
   the converter's Resize 10 -> 11 adapter drops (the node would silently take Resize-11's
   ``half_pixel`` default). ``LSTM``/``GRU``/``RNN`` before opset 7 have no version
   adapter; they are set aside during the upgrade and put back as version 7 (which only
   dropped the ``output_sequence`` attribute: Y is computed either way).
7. **Unused optional outputs get names** (LSTM ``Y`` left empty when only ``Y_h`` is used):
   onnx2torch files the empty name ``""`` as an output of that node, so an empty optional
   *input* elsewhere (``sequence_lens``) is then taken for that node's output.
8. **Omitted Clip bounds become constants** (``-inf``/``+inf``, or the integer type's
   limits): onnx2torch's Clip converter looks the empty name up as a constant and fails
   (``torch.clamp(x, min=0)`` exports exactly that).
9. **``auto_pad`` SAME_UPPER / SAME_LOWER / VALID become explicit ``pads``** on Conv, MaxPool
   and AveragePool (onnx2torch implements only explicit padding; TensorFlow/Keras exports use
   ``auto_pad``), from the statically inferred input shape, with ONNX's formula: total
   padding ``max(0, (ceil(in/stride) - 1) * stride + (kernel - 1) * dilation + 1 - in)``,
   the odd element at the end (UPPER) or the beginning (LOWER).
10. **Pooling padding PyTorch cannot express becomes an explicit Pad**: asymmetric pads of
    AveragePool, and pads larger than half the kernel (PyTorch's limit) of MaxPool and
    AveragePool. MaxPool: ``Pad(-inf)`` then MaxPool without pads (padded cells never win).
    AveragePool counting pads: ``Pad(0)`` then AveragePool without pads. AveragePool not
    counting pads (the default): the padded average divided by the padded average of a
    tensor of ones, i.e. the sum over real cells divided by their number.
11. **ConvTranspose padding PyTorch cannot express** (asymmetric ``pads``, ``auto_pad``
    SAME, ``output_shape``) becomes ConvTranspose without pads followed by a Slice that crops
    ``pads`` from each end (ONNX's pads crop the full transposed-convolution output), the
    crop computed with ONNX's formula from ``output_shape`` where it is given.
12. **Every graph output gets its own Identity node**. onnx2torch returns the *whole tuple*
    of a multi-output node when one of its outputs is a graph output (LSTM ``Y_h``), merges
    graph outputs that come from the same node, and cannot return a graph input or an
    initializer as an output. An Identity per output gives it one single-output node each.

13. **Node names are made unique as onnx2torch sees them**: it names each module after its
    node with dots turned into slashes and leading slashes stripped, numbering repeats
    (``Constant``, ``Constant_1``, ...); a node literally named ``/Constant_1`` (PyTorch's
    exporter) then collides with the second unnamed Constant (``onnx.version_converter``
    adds unnamed ones) and one of the two nodes silently disappears. Unnamed and colliding
    nodes get fresh names.

A ``MaxPool`` whose ``Indices`` output is used is refused (integer indices, and onnx2torch
does not produce them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
import onnx.version_converter
from onnx import ModelProto, helper, numpy_helper

__all__ = ["MATLAB_PRODUCER", "TARGET_OPSET", "Normalized", "normalize", "default_opset"]

MATLAB_PRODUCER = "MATLAB Deep Learning Toolbox Converter for ONNX Model Format"
#: Opset every older graph is upgraded to before conversion.
TARGET_OPSET = 13

_OUT_SUFFIX = "__mat2grad_output"
_HIDDEN_DOMAIN = "mat2grad.hidden"
_RECURRENT = ("LSTM", "GRU", "RNN")


@dataclass
class Normalized:
    """A rewritten model ready for onnx2torch.

    Attributes:
        model: the rewritten ModelProto.
        outputs: original graph output name -> output name in ``model``.
        notes: one line per rewrite that changed something.
    """

    model: ModelProto
    outputs: dict[str, str]
    notes: list[str] = field(default_factory=list)


def default_opset(model: ModelProto) -> int:
    """The model's ``ai.onnx`` opset version (1 when it imports none)."""
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return 1


def normalize(model: ModelProto) -> Normalized:
    """Rewrite ``model`` (left untouched) into an equivalent graph onnx2torch converts.

    Raises:
        ValueError: a rewrite found something it cannot express (the message says what);
            ``onnx.version_converter`` errors propagate as they are.
    """
    m = ModelProto()
    m.CopyFrom(model)
    notes: list[str] = []
    if len(m.functions):
        from onnx import inliner

        m = inliner.inline_local_functions(m)
        notes.append("inlined the model's local functions")
    _drop_initializer_inputs(m, notes)
    declared_rank = {}
    for out in m.graph.output:
        if out.type.tensor_type.HasField("shape"):
            declared_rank[out.name] = len(out.type.tensor_type.shape.dim)
        out.type.tensor_type.ClearField("shape")
    del m.graph.value_info[:]
    _dropout_to_identity(m, notes)
    _refuse_maxpool_indices(m)
    if default_opset(m) < 7:
        _fix_gemm_rank(m, notes)
    _name_unused_outputs(m)
    if default_opset(m) < TARGET_OPSET:
        m = _upgrade(m, notes)
    _fill_clip_bounds(m, notes)
    _explicit_auto_pad(m, notes)
    _pool_padding(m, notes)
    _conv_transpose_padding(m, notes)
    outputs = _identity_outputs(m)
    _declare_output_types(m, {outputs[k]: r for k, r in declared_rank.items() if k in outputs})
    _unique_node_names(m)
    min_ir = helper.find_min_ir_version_for(list(m.opset_import), ignore_unknown=True)
    if m.ir_version < min_ir:
        m.ir_version = min_ir
    return Normalized(model=m, outputs=outputs, notes=notes)


def _drop_initializer_inputs(m: ModelProto, notes: list[str]) -> None:
    inits = {t.name for t in m.graph.initializer}
    keep = [v for v in m.graph.input if v.name not in inits]
    dropped = len(m.graph.input) - len(keep)
    if dropped:
        del m.graph.input[:]
        m.graph.input.extend(keep)
        notes.append(f"removed {dropped} initializers from the graph inputs (IR < 4 convention)")


def _constant_value(m: ModelProto, name: str):
    """The value of an initializer or Constant output, else None."""
    for init in m.graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    for node in m.graph.node:
        if node.op_type == "Constant" and name in node.output:
            for attr in node.attribute:
                if attr.name == "value":
                    return numpy_helper.to_array(attr.t)
                return helper.get_attribute_value(attr)
    return None


def _dropout_to_identity(m: ModelProto, notes: list[str]) -> None:
    used = {name for node in m.graph.node for name in node.input}
    used |= {o.name for o in m.graph.output}
    count = 0
    extra: list[onnx.NodeProto] = []
    for node in m.graph.node:
        if node.op_type != "Dropout" or node.domain not in ("", "ai.onnx"):
            continue
        label = node.name or node.output[0]
        if len(node.input) > 2 and node.input[2]:
            training = _constant_value(m, node.input[2])
            if training is None or bool(training):
                raise ValueError(
                    f"Dropout '{label}' runs in training mode (its training_mode input is "
                    f"{'true' if training is not None else 'not a constant'}); mat2grad "
                    "evaluates trained networks, where Dropout is the identity"
                )
        data, out = node.input[0], node.output[0]
        if len(node.output) > 1 and node.output[1] and node.output[1] in used:
            shape = f"{label}__mat2grad_shape"
            extra += [
                helper.make_node("Shape", [data], [shape], name=shape),
                helper.make_node(
                    "ConstantOfShape",
                    [shape],
                    [node.output[1]],
                    name=f"{label}__mat2grad_mask",
                    value=helper.make_tensor("value", onnx.TensorProto.BOOL, [1], [True]),
                ),
            ]
        node.ClearField("attribute")
        del node.input[:]
        del node.output[:]
        node.input.append(data)
        node.output.append(out)
        node.op_type = "Identity"
        count += 1
    if count:
        m.graph.node.extend(extra)
        _topological_sort(m)
        notes.append(f"replaced {count} Dropout node(s) by Identity (inference semantics)")


def _pool_padding(m: ModelProto, notes: list[str]) -> None:
    targets = []
    for node in m.graph.node:
        if node.op_type not in ("MaxPool", "AveragePool"):
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
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
    types = _elem_types(m)
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
                    "AveragePool", [ones[2]], [ones[3]], name=ones[3], **_pool_attrs(node)
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
    del m.graph.node[:]
    m.graph.node.extend(nodes)


def _conv_transpose_padding(m: ModelProto, notes: list[str]) -> None:
    todo = []
    for node in m.graph.node:
        if node.op_type != "ConvTranspose":
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        mode = attrs.get("auto_pad", b"NOTSET")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        pads = list(attrs.get("pads", []))
        half = len(pads) // 2
        if "output_shape" in attrs or mode not in ("NOTSET", "VALID") or pads[:half] != pads[half:]:
            todo.append((node, attrs, mode))
    if not todo:
        return
    shapes = _shapes(m)
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
        del m.graph.node[:]
        m.graph.node.extend(nodes)
        notes.append(f"ConvTranspose '{label}': padding {begin + end} applied by a Slice")


def _pool_attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _topological_sort(m: ModelProto) -> None:
    """Order nodes so that every input is produced before it is used (stable)."""
    ready = {v.name for v in m.graph.input} | {t.name for t in m.graph.initializer} | {""}
    pending = list(m.graph.node)
    ordered = []
    while pending:
        rest = []
        for node in pending:
            if all(i in ready for i in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            ordered += rest  # a cycle or an undefined input: leave it to the checker
            break
        pending = rest
    del m.graph.node[:]
    m.graph.node.extend(ordered)


def _refuse_maxpool_indices(m: ModelProto) -> None:
    used = {name for node in m.graph.node for name in node.input}
    used |= {o.name for o in m.graph.output}
    for node in m.graph.node:
        if node.op_type == "MaxPool" and len(node.output) > 1 and node.output[1] in used:
            raise ValueError(
                f"MaxPool '{node.name or node.output[0]}' returns its Indices output "
                f"'{node.output[1]}' (integer positions of the maxima), which mat2grad does "
                "not support"
            )


def _elem_types(m: ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(m, strict_mode=False)
    types = {}
    for vi in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output):
        types[vi.name] = vi.type.tensor_type.elem_type
    for init in m.graph.initializer:
        types[init.name] = init.data_type
    return types


def _fill_clip_bounds(m: ModelProto, notes: list[str]) -> None:
    clips = [n for n in m.graph.node if n.op_type == "Clip" and len(n.input) > 1]
    clips = [n for n in clips if any(not name for name in n.input[1:])]
    if not clips:
        return
    types = _elem_types(m)
    for node in clips:
        elem = types.get(node.input[0], onnx.TensorProto.FLOAT)
        dtype = helper.tensor_dtype_to_np_dtype(elem)
        info = np.finfo(dtype) if np.issubdtype(dtype, np.floating) else np.iinfo(dtype)
        low = -np.inf if np.issubdtype(dtype, np.floating) else info.min
        high = np.inf if np.issubdtype(dtype, np.floating) else info.max
        for k, bound in ((1, low), (2, high)):
            if k < len(node.input) and not node.input[k]:
                name = f"{node.name or node.output[0]}__mat2grad_bound{k}"
                m.graph.initializer.append(numpy_helper.from_array(np.array(bound, dtype), name))
                node.input[k] = name
    notes.append(f"filled omitted bounds of {len(clips)} Clip node(s)")


def _shapes(m: ModelProto) -> dict[str, list[int | None]]:
    inferred = onnx.shape_inference.infer_shapes(m, strict_mode=False)
    shapes = {}
    for vi in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output):
        t = vi.type.tensor_type
        if t.HasField("shape"):
            shapes[vi.name] = [
                d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim
            ]
    for init in m.graph.initializer:
        shapes[init.name] = list(init.dims)
    return shapes


def _explicit_auto_pad(m: ModelProto, notes: list[str]) -> None:
    ops = ("Conv", "MaxPool", "AveragePool", "LpPool")
    todo = []
    for node in m.graph.node:
        if node.op_type not in ops:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        mode = attrs.get("auto_pad", b"NOTSET")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if mode != "NOTSET":
            todo.append((node, attrs, mode))
    if not todo:
        return
    shapes = _shapes(m)
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


def _name_unused_outputs(m: ModelProto) -> None:
    """Drop trailing unused optional outputs and name the others (see the docstring, 8)."""
    taken = {name for node in m.graph.node for name in (*node.input, *node.output)}
    for node in m.graph.node:
        outs = list(node.output)
        while outs and not outs[-1]:
            outs.pop()
        for k, name in enumerate(outs):
            if not name:
                new = f"{node.name or node.op_type}__mat2grad_unused_{k}"
                while new in taken:
                    new += "_"
                taken.add(new)
                outs[k] = new
        if outs != list(node.output):
            del node.output[:]
            node.output.extend(outs)


def _ranks(m: ModelProto) -> dict[str, int]:
    """Ranks of the tensors that (non-strict) shape inference can work out."""
    inferred = onnx.shape_inference.infer_shapes(m, strict_mode=False)
    ranks = {}
    for vi in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output):
        t = vi.type.tensor_type
        if t.HasField("shape"):
            ranks[vi.name] = len(t.shape.dim)
    for init in m.graph.initializer:
        ranks[init.name] = len(init.dims)
    return ranks


def _fix_gemm_rank(m: ModelProto, notes: list[str]) -> None:
    """Rewrite opset < 7 Gemm nodes fed a tensor of rank > 2 (see the module docstring, 5).

    Gemm nodes are decided in graph order, re-inferring shapes after each rewrite: the rank
    of a later Gemm's input is only known once the earlier ones are valid.
    """
    gemms = [n.output[0] for n in m.graph.node if n.op_type == "Gemm"]
    for out_name in gemms:
        k, node = next((k, n) for k, n in enumerate(m.graph.node) if out_name in n.output)
        rank = _ranks(m).get(node.input[0])
        if rank is None or rank <= 2:
            continue
        label = node.name or out_name
        if rank == 3:
            new_nodes = _gemm_as_matmul(m, node)
            notes.append(
                f"Gemm '{label}' on a rank-3 (sequence) input: rewritten as MatMul + Add "
                "over the last axis"
            )
        else:
            flat = out_name + "__mat2grad_flat"
            flatten = helper.make_node("Flatten", [node.input[0]], [flat], name=flat, axis=1)
            node.input[0] = flat
            new_nodes = [flatten, node]
            notes.append(
                f"Gemm '{label}' applied to a rank-{rank} input (MATLAB 2018 export, invalid "
                "ONNX): inserted Flatten(axis=1) before it"
            )
        nodes = list(m.graph.node)
        nodes[k : k + 1] = new_nodes
        del m.graph.node[:]
        m.graph.node.extend(nodes)


def _gemm_as_matmul(m: ModelProto, node: onnx.NodeProto) -> list[onnx.NodeProto]:
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if attrs.get("transA", 0):
        raise ValueError(f"Gemm '{node.name}' on a rank-3 input with transA=1 is not supported")
    inits = {t.name: t for t in m.graph.initializer}
    if node.input[1] not in inits:
        raise ValueError(f"Gemm '{node.name}' on a rank-3 input needs its weight as an initializer")
    weight = numpy_helper.to_array(inits[node.input[1]])
    if attrs.get("transB", 0):
        weight = weight.T
    weight = weight * attrs.get("alpha", 1.0)
    base = node.output[0] + "__mat2grad"
    m.graph.initializer.append(numpy_helper.from_array(weight.astype(weight.dtype), base + "_W"))
    nodes = [helper.make_node("MatMul", [node.input[0], base + "_W"], [base + "_mm"], name=base)]
    if len(node.input) > 2 and node.input[2]:
        if node.input[2] not in inits:
            raise ValueError(
                f"Gemm '{node.name}' on a rank-3 input needs its bias as an initializer"
            )
        bias = numpy_helper.to_array(inits[node.input[2]]) * attrs.get("beta", 1.0)
        m.graph.initializer.append(numpy_helper.from_array(bias.reshape(-1), base + "_B"))
        # opset < 7: broadcasting needs broadcast=1 (the version converter then drops it)
        nodes.append(
            helper.make_node(
                "Add",
                [base + "_mm", base + "_B"],
                [node.output[0]],
                name=base + "_add",
                broadcast=1,
            )
        )
    else:
        nodes[0].output[0] = node.output[0]
    return nodes


def _upgrade(original: ModelProto, notes: list[str]) -> ModelProto:
    """Upgrade to TARGET_OPSET; when the version converter fails, keep the graph as it is
    (onnx2torch or mat2grad may still have converters for its versions) and say so."""
    m = ModelProto()
    m.CopyFrom(original)
    old = default_opset(m)
    hidden: list[str] = []
    if old < 7:
        # the version converter needs the shapes below a hidden node: declare its outputs'
        known = onnx.shape_inference.infer_shapes(m, strict_mode=False).graph.value_info
        hidden_outputs = {o for n in m.graph.node if n.op_type in _RECURRENT for o in n.output if o}
        m.graph.value_info.extend(vi for vi in known if vi.name in hidden_outputs)
        for node in m.graph.node:
            if node.op_type in _RECURRENT and node.domain in ("", "ai.onnx"):
                node.domain = _HIDDEN_DOMAIN
                kept = [a for a in node.attribute if a.name != "output_sequence"]
                del node.attribute[:]
                node.attribute.extend(kept)
                hidden.append(node.op_type)
        if hidden:
            m.opset_import.append(helper.make_opsetid(_HIDDEN_DOMAIN, 1))
    if m.ir_version < 4:
        m.ir_version = 4
    # Upsample and Resize-10 compute with asymmetric coordinates (nearest: floor); the
    # converter's Resize 10 -> 11 adapter omits those attributes, so the upgraded node would
    # take Resize-11's defaults (half_pixel, round_prefer_floor): a different result
    # (every Resize of an upgraded graph older than opset 11 is such a node)
    try:
        up = onnx.version_converter.convert_version(m, TARGET_OPSET)
    except Exception as exc:  # noqa: BLE001 - the converter raises RuntimeError/others
        text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        notes.append(f"opset {old} kept: onnx.version_converter failed ({text[:200]})")
        return original
    del up.graph.value_info[:]
    for node in up.graph.node:
        if node.op_type == "Resize" and old < 11:
            have = {a.name for a in node.attribute}
            if "coordinate_transformation_mode" not in have:
                node.attribute.append(
                    helper.make_attribute("coordinate_transformation_mode", "asymmetric")
                )
            if "nearest_mode" not in have:
                node.attribute.append(helper.make_attribute("nearest_mode", "floor"))
    if hidden:
        for node in up.graph.node:
            if node.domain == _HIDDEN_DOMAIN:
                node.domain = ""
        keep = [o for o in up.opset_import if o.domain != _HIDDEN_DOMAIN]
        del up.opset_import[:]
        up.opset_import.extend(keep)
        notes.append(
            f"{', '.join(sorted(set(hidden)))} (opset {old}) relabelled to version 7 "
            "(no version adapter exists; version 7 only dropped 'output_sequence')"
        )
    notes.append(f"upgraded opset {old} -> {TARGET_OPSET} with onnx.version_converter")
    return up


def _identity_outputs(m: ModelProto) -> dict[str, str]:
    mapping = {}
    taken = {name for node in m.graph.node for name in node.output}
    taken |= {v.name for v in m.graph.input} | {t.name for t in m.graph.initializer}
    for out in m.graph.output:
        new = out.name + _OUT_SUFFIX
        while new in taken:
            new += "_"
        taken.add(new)
        m.graph.node.append(helper.make_node("Identity", [out.name], [new], name=new))
        mapping[out.name] = new
        out.name = new
    return mapping


def _unique_node_names(m: ModelProto) -> None:
    def seen_as(node: onnx.NodeProto) -> str:  # onnx2torch's OnnxGraph.generate_node_name
        return (f"{node.domain}/" + (node.name.replace(".", "/") or node.op_type)).lstrip("/")

    counts: dict[str, int] = {}
    for node in m.graph.node:
        counts[seen_as(node)] = counts.get(seen_as(node), 0) + 1
    taken = set(counts)
    for k, node in enumerate(m.graph.node):
        if node.name and counts[seen_as(node)] == 1:
            continue
        counts[seen_as(node)] -= 1
        new = f"{node.op_type}__mat2grad_{k}"
        while new in taken:
            new += "_"
        taken.add(new)
        node.name = new


def _declare_output_types(m: ModelProto, declared_rank: dict[str, int]) -> None:
    """Give the graph outputs the types and shapes that shape inference finds for them; where
    it finds none, the rank the file declared, with every dimension unknown (the checker
    requires a shape on graph outputs)."""
    inferred = onnx.shape_inference.infer_shapes(m, strict_mode=False)
    known = {vi.name: vi for vi in inferred.graph.value_info}
    known.update({vi.name: vi for vi in inferred.graph.output})
    for out in m.graph.output:
        vi = known.get(out.name)
        if vi is not None and vi.type.tensor_type.HasField("shape"):
            out.type.CopyFrom(vi.type)
        elif out.name in declared_rank:
            shape = out.type.tensor_type.shape
            shape.SetInParent()
            for _ in range(declared_rank[out.name]):
                shape.dim.add()
