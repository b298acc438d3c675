"""Reference outputs of an ONNX model from onnxruntime, for the Octave tests.

Usage: python m2g_onnx_reference.py MODEL.onnx DATA.mat OUT.mat
DATA.mat holds X (R x Q, MATLAB layout); OUT.mat gets Y (S x Q) from the model's first
output, computed by onnxruntime in float32 on X.T (batch first), one sample at a time:
files that fix the batch at 1 (PyTorch exports without dynamic axes) refuse more.
"""

import os
import sys

import numpy as np
import scipy.io

# onnxruntime writes a telemetry file (.ses) into TMPDIR on import unless told not to
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
import onnxruntime  # noqa: E402


def main(model: str, data: str, out: str) -> None:
    x = scipy.io.loadmat(data)["X"].astype(np.float32).T
    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    ys = [session.run(None, {name: x[q : q + 1]})[0] for q in range(x.shape[0])]
    y = np.concatenate([np.asarray(v, dtype=np.float64).reshape(1, -1) for v in ys])
    scipy.io.savemat(out, {"Y": y.T})


if __name__ == "__main__":
    main(*sys.argv[1:])
