"""Reference outputs of an ONNX model from onnxruntime, for the Octave tests.

Usage: python m2g_onnx_reference.py MODEL.onnx DATA.mat OUT.mat
DATA.mat holds X (R x Q, MATLAB layout); OUT.mat gets Y (S x Q) from the model's first
output, computed by onnxruntime in float32 on X.T (batch first).
"""

import sys

import numpy as np
import onnxruntime
import scipy.io


def main(model: str, data: str, out: str) -> None:
    x = scipy.io.loadmat(data)["X"].astype(np.float32).T
    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    (y, *_) = session.run(None, {session.get_inputs()[0].name: x})
    scipy.io.savemat(out, {"Y": np.asarray(y, dtype=np.float64).reshape(x.shape[0], -1).T})


if __name__ == "__main__":
    main(*sys.argv[1:])
