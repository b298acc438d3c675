"""Rewrites for graphs that MATLAB's 2018 exporter wrote (number 5 of
:mod:`mat2grad.onnx.normalize.pipeline`'s list): ``Gemm`` applied to a tensor of rank > 2.

MATLAB 18.2 applied ``Gemm`` straight to the ``[N,C,H,W]`` output of its input layer --
invalid ONNX that onnxruntime and ``onnx.checker`` reject, yet it is the file those users
have. A rank-4 input gets a ``Flatten(axis=1)`` before the Gemm; a rank-3 input (MATLAB's
recurrent ``[T, N, H]`` sequence) makes the Gemm a ``MatMul`` + ``Add`` over the last axis.
"""

from __future__ import annotations

import onnx
from onnx import ModelProto, helper, numpy_helper

from ..proto import attributes, ranks, set_nodes

__all__ = ["fix_gemm_rank"]


def fix_gemm_rank(m: ModelProto, notes: list[str]) -> None:
    """Rewrite opset < 7 Gemm nodes fed a tensor of rank > 2 (see the pipeline's list, 5).

    Gemm nodes are decided in graph order, re-inferring shapes after each rewrite: the rank
    of a later Gemm's input is only known once the earlier ones are valid.
    """
    gemms = [n.output[0] for n in m.graph.node if n.op_type == "Gemm"]
    for out_name in gemms:
        k, node = next((k, n) for k, n in enumerate(m.graph.node) if out_name in n.output)
        rank = ranks(m).get(node.input[0])
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
        set_nodes(m, nodes)


def _gemm_as_matmul(m: ModelProto, node: onnx.NodeProto) -> list[onnx.NodeProto]:
    attrs = attributes(node)
    if attrs.get("transA", 0):
        raise ValueError(f"Gemm '{node.name}' on a rank-3 input with transA=1 is not supported")
    inits = {t.name: t for t in m.graph.initializer}
    if node.input[1] not in inits:
        raise ValueError(f"Gemm '{node.name}' on a rank-3 input needs its weight as an initializer")
    weight = numpy_helper.to_array(inits[node.input[1]])
    if attrs.get("transB", 0):
        weight = weight.T  # not MATLAB layout: Gemm transB, the weight of x @ W
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
