"""ONNX -> ONNX rewrites made before conversion, so that onnx2torch sees a graph it handles.

Every rewrite here keeps the graph's meaning; each one says why it exists. The result is
checked with ``onnx.checker.check_model(full_check=True)`` by the caller. :func:`normalize`
runs them in this order: 1-3 itself, the others from :mod:`.hygiene` (4, 7, 8, 12, 13),
:mod:`.matlab` (5), :mod:`.opset` (6) and :mod:`.padding` (9-11).

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

from onnx import ModelProto, helper, inliner

from ..proto import drop_initializer_inputs
from .hygiene import (
    declare_output_types,
    dropout_to_identity,
    fill_clip_bounds,
    identity_outputs,
    name_unused_outputs,
    refuse_maxpool_indices,
    unique_node_names,
)
from .matlab import fix_gemm_rank
from .opset import TARGET_OPSET, default_opset, upgrade
from .padding import conv_transpose_padding, explicit_auto_pad, pool_padding

__all__ = ["Normalized", "normalize"]


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
        m = inliner.inline_local_functions(m)
        notes.append("inlined the model's local functions")
    dropped = drop_initializer_inputs(m)
    if dropped:
        notes.append(f"removed {dropped} initializers from the graph inputs (IR < 4 convention)")
    declared_rank = {}
    for out in m.graph.output:
        if out.type.tensor_type.HasField("shape"):
            declared_rank[out.name] = len(out.type.tensor_type.shape.dim)
        out.type.tensor_type.ClearField("shape")
    del m.graph.value_info[:]
    dropout_to_identity(m, notes)
    refuse_maxpool_indices(m)
    if default_opset(m) < 7:
        fix_gemm_rank(m, notes)
    name_unused_outputs(m)
    if default_opset(m) < TARGET_OPSET:
        m = upgrade(m, notes)
    fill_clip_bounds(m, notes)
    explicit_auto_pad(m, notes)
    pool_padding(m, notes)
    conv_transpose_padding(m, notes)
    outputs = identity_outputs(m)
    declare_output_types(m, {outputs[k]: r for k, r in declared_rank.items() if k in outputs})
    unique_node_names(m)
    min_ir = helper.find_min_ir_version_for(list(m.opset_import), ignore_unknown=True)
    if m.ir_version < min_ir:
        m.ir_version = min_ir
    return Normalized(model=m, outputs=outputs, notes=notes)
