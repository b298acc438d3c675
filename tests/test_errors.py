"""Allocation failures anywhere in the public API arrive as one Mat2GradError that says how
much more memory was asked for and what to do; other errors pass through untouched."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

import mat2grad
from mat2grad import Mat2GradError
from mat2grad.errors import is_out_of_memory, refuse_out_of_memory

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

#: torch's own message when the CPU allocator fails (905974848 bytes = 864 MiB)
ALLOCATOR = (
    "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
    "memory: you tried to allocate 905974848 bytes. Error code 12 (Cannot allocate memory)"
)


class Hungry(nn.Module):
    """Linear, except that a batch larger than ``limit`` samples cannot be allocated."""

    def __init__(self, limit: int):
        super().__init__()
        self.lin = nn.Linear(3, 2).double()
        self.limit = limit
        self.input_shapes, self.output_shapes = [(3,)], [(2,)]

    def forward(self, x):
        if x.shape[0] > self.limit:
            raise RuntimeError(ALLOCATOR)
        return self.lin(x)


CALLS = {
    "predict": lambda net, x: mat2grad.predict(net, x),
    "jacobian": lambda net, x: mat2grad.jacobian(net, x),
    "jacobian_chunks": lambda net, x: list(mat2grad.jacobian_chunks(net, x)),
    "vjp": lambda net, x: mat2grad.vjp(net, x, torch.ones(len(x), 2, dtype=torch.float64)),
    "hessian": lambda net, x: mat2grad.hessian(net, x, output=0),
    "sensitivity": lambda net, x: mat2grad.sensitivity(net, x),
}

STEPS = {"sensitivity": "jacobian_chunks"}


@pytest.mark.parametrize("name", CALLS)
def test_allocation_failure_is_one_clear_error(name):
    x = torch.rand(50, 3, dtype=torch.float64)
    with pytest.raises(Mat2GradError) as info:
        CALLS[name](Hungry(limit=0), x)
    message = str(info.value)
    step = STEPS.get(name, name)  # the step that ran out of memory names itself
    assert message.startswith(f"{step}: out of memory (864 MiB more) (RuntimeError); ")
    assert "fewer samples" in message and "\n" not in message


def test_other_runtime_errors_pass_through():
    @refuse_out_of_memory
    def broken():
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)")

    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        broken()


def test_a_generator_stays_a_generator():
    @refuse_out_of_memory
    def numbers():
        yield 1
        raise MemoryError

    stream = numbers()
    assert next(stream) == 1
    with pytest.raises(Mat2GradError, match=r"^numbers: out of memory \(MemoryError\)"):
        next(stream)


@pytest.mark.parametrize(
    ("exc", "memory"),
    [
        (MemoryError(), True),
        (RuntimeError(ALLOCATOR), True),
        (RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), True),
        (RuntimeError("Expected all tensors to be on the same device"), False),
        (ValueError("can't allocate memory"), False),
    ],
)
def test_what_counts_as_out_of_memory(exc, memory):
    assert is_out_of_memory(exc) is memory


def test_a_file_whose_one_sample_needs_more_memory_than_the_process_may_use(tmp_path):
    # A Conv padded by 2**24 rows: each sample's activation is several GiB, far beyond the
    # 3 GiB of address space the child may use; loading refuses it without a traceback.
    script = textwrap.dedent(
        f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, resource.RLIM_INFINITY))
        import onnx, mat2grad
        model = onnx.load({str(FIXTURES / "onnx" / "matlab2024b_same_pad.onnx")!r})
        conv = next(n for n in model.graph.node if n.op_type == "Conv")
        next(a for a in conv.attribute if a.name == "pads").ints[0] = 1 << 24
        onnx.save(model, {str(tmp_path / "padded.onnx")!r})
        try:
            mat2grad.load({str(tmp_path / "padded.onnx")!r})
        except mat2grad.Mat2GradError as exc:
            print(exc)
            sys.exit(1)
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 1, run.stderr[-2000:]
    assert "one sample through the converted graph: out of memory (" in run.stdout
    assert re.search(r"out of memory \([\d.]+ [KMGT]iB more\) \(RuntimeError\)", run.stdout)
