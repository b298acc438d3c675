"""The tables of mat2grad.onnx.ops: what each op family adds to onnx2torch and replaces."""

from __future__ import annotations

import importlib

import pytest

from mat2grad.onnx._onnx2torch import import_onnx2torch
from mat2grad.onnx.ops import CONVERTERS, FIXES
from mat2grad.onnx.ops.aliases import TYPE_ONLY_ALIASES, schema_signature


@pytest.mark.parametrize(("op_type", "version"), sorted(TYPE_ONLY_ALIASES))
def test_type_only_alias_has_the_signature_of_the_version_it_reuses(op_type, version):
    existing = TYPE_ONLY_ALIASES[(op_type, version)]
    assert schema_signature(op_type, version) == schema_signature(op_type, existing)


def test_each_converter_pair_is_added_once_and_none_is_an_alias():
    pairs = [(op_type, version) for op_type, version, _ in CONVERTERS]
    assert len(pairs) == len(set(pairs))
    assert not set(pairs) & set(TYPE_ONLY_ALIASES)


@pytest.mark.parametrize("qualified", sorted(FIXES))
def test_each_fix_names_a_class_that_exists(qualified):
    # a fix keyed on a class that was renamed upstream would silently stop applying
    import_onnx2torch()
    module_name, _, class_name = qualified.rpartition(".")
    assert isinstance(getattr(importlib.import_module(module_name), class_name), type)
