"""Mutations of ONNX files: raw bytes, and inside protobuf fields (dims, data types,
raw_data lengths, strings, attributes, opsets)."""

from __future__ import annotations

import random

import onnx

from .mutate_mat import bit_flips, overwrite, truncate

__all__ = ["mutate_onnx"]

_DIMS = (0, 1, 2, 3, 7, -1, -5, 1 << 20, 1 << 31, 1 << 40, (1 << 62) + 1)


def _value_infos(model: onnx.ModelProto) -> list:
    g = model.graph
    return [*g.input, *g.output, *g.value_info]


def _mutate_dims(model: onnx.ModelProto, rng: random.Random) -> None:
    infos = [v for v in _value_infos(model) if v.type.tensor_type.shape.dim]
    if not infos:
        return
    dim = rng.choice(rng.choice(infos).type.tensor_type.shape.dim)
    if rng.random() < 0.8:
        dim.dim_value = rng.choice(_DIMS)
    else:
        dim.dim_param = rng.choice(("N", "", "batch", "\u00e9"))


def _mutate_types(model: onnx.ModelProto, rng: random.Random) -> None:
    pool = [v.type.tensor_type for v in _value_infos(model)] + list(model.graph.initializer)
    target = rng.choice(pool)
    if hasattr(target, "elem_type"):
        target.elem_type = rng.randrange(0, 27)
    else:
        target.data_type = rng.randrange(0, 27)


def _mutate_initializer(model: onnx.ModelProto, rng: random.Random) -> None:
    inits = list(model.graph.initializer)
    if not inits:
        return
    t = rng.choice(inits)
    roll = rng.random()
    if roll < 0.4 and t.dims:
        t.dims[rng.randrange(len(t.dims))] = rng.choice(_DIMS[:8])
    elif roll < 0.7 and t.raw_data:
        cut = rng.randrange(len(t.raw_data) + 1)
        t.raw_data = t.raw_data[:cut] if rng.random() < 0.5 else t.raw_data + t.raw_data[:cut]
    elif roll < 0.85:
        t.dims.append(rng.choice((1, 2, 3)))
    else:
        del t.dims[:]


def _mutate_strings(model: onnx.ModelProto, rng: random.Random) -> None:
    nodes = list(model.graph.node)
    if not nodes:
        return
    node = rng.choice(nodes)
    roll = rng.random()
    new = rng.choice(("", "x", "Relu", "MatMul", "Conv", "Foo", "\u00e9\u00e9", "a" * 300))
    if roll < 0.3:
        node.op_type = new
    elif roll < 0.6 and node.input:
        node.input[rng.randrange(len(node.input))] = new
    elif roll < 0.8 and node.output:
        node.output[rng.randrange(len(node.output))] = new
    else:
        node.domain = rng.choice(("", "ai.onnx.ml", "com.microsoft", "x"))


def _mutate_attribute(model: onnx.ModelProto, rng: random.Random) -> None:
    attrs = [a for n in model.graph.node for a in n.attribute]
    if not attrs:
        return
    a = rng.choice(attrs)
    if a.ints:
        a.ints[rng.randrange(len(a.ints))] = rng.choice(_DIMS[:9])
    elif a.type == onnx.AttributeProto.INT:
        a.i = rng.choice(_DIMS[:9])
    elif a.type == onnx.AttributeProto.FLOAT:
        a.f = rng.choice((0.0, -1.0, 1e30, float("nan")))
    else:
        a.type = rng.randrange(0, 15)


def _mutate_graph(model: onnx.ModelProto, rng: random.Random) -> None:
    g = model.graph
    roll = rng.random()
    if roll < 0.35 and g.node:
        del g.node[rng.randrange(len(g.node))]
    elif roll < 0.6 and g.initializer:
        del g.initializer[rng.randrange(len(g.initializer))]
    elif roll < 0.8 and model.opset_import:
        model.opset_import[0].version = rng.choice((1, 6, 7, 9, 11, 13, 17, 21, 99, 1000))
    else:
        model.ir_version = rng.choice((0, 1, 3, 7, 9, 10, 99))


_FIELD_MUTATIONS = {
    "dims": _mutate_dims,
    "types": _mutate_types,
    "initializer": _mutate_initializer,
    "strings": _mutate_strings,
    "attribute": _mutate_attribute,
    "graph": _mutate_graph,
}


def _invalid_utf8(data: bytes, model: onnx.ModelProto, rng: random.Random) -> bytes:
    """Replace one byte of a node or value name in the serialized file by 0xFF."""
    names = [n.encode() for n in (*(v.name for v in _value_infos(model)),
                                  *(n.name for n in model.graph.node)) if n]  # fmt: skip
    if not names:
        return data
    name = rng.choice(names)
    at = data.find(name)
    if at < 0:
        return data
    k = at + rng.randrange(len(name))
    return data[:k] + b"\xff" + data[k + 1 :]


def mutate_onnx(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """One mutation of an ONNX file's bytes: ``(kind, mutated bytes)``."""
    roll = rng.random()
    if roll < 0.65:
        model = onnx.load_from_string(data)
        if roll < 0.05:
            return "utf8", _invalid_utf8(data, model, rng)
        kind = rng.choice(sorted(_FIELD_MUTATIONS))
        _FIELD_MUTATIONS[kind](model, rng)
        return kind, model.SerializeToString()
    if roll < 0.8:
        return "flip", bit_flips(data, rng)
    if roll < 0.92:
        return "overwrite", overwrite(data, rng)
    return "truncate", truncate(data, rng)
