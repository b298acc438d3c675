"""The networks the Dask tests run: static, several inputs, dynamic, ONNX; and inputs in
uneven blocks whose last block holds 1 sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"

#: name -> network file
NETWORKS = {
    "static": FIXTURES / "example_fitnet.mat",
    "two_inputs": FIXTURES / "multi_input.mat",
    "dynamic": FIXTURES / "timedelaynet.mat",
    "onnx_features": FIXTURES / "onnx" / "matlab2018_gemm6_features.onnx",
    "onnx_conv": FIXTURES / "onnx" / "matlab2020a_conv_fc_dropout.onnx",
}

#: uneven blocks, the last of one sample
BLOCKS = (7, 3, 12, 5, 1)

#: time steps of a dynamic network's sequences
STEPS = 6


def inputs(model, q: int = sum(BLOCKS), seed: int = 0) -> list[np.ndarray]:
    """Batch-first random inputs for ``model`` (sequences of STEPS for a dynamic one)."""
    rng = np.random.default_rng(seed)
    shapes = [tuple(STEPS if n is None else n for n in s) for s in model.input_shapes]
    return [rng.uniform(-1.0, 1.0, (q, *s)) for s in shapes]
