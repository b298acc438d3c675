"""Reference outputs of an ONNX model from onnxruntime, for the Octave tests.

Usage: python m2g_onnx_reference.py MODEL.onnx DATA.mat OUT.mat [LAYOUT]
DATA.mat holds X in MATLAB layout: R x Q features (LAYOUT 'features', the default; each
sample is reshaped to the input the file declares, e.g. [1, 1, 1, R] for MATLAB's old
exporters) or H x W x C x N images (LAYOUT 'image', fed as N x C x H x W). OUT.mat gets Y
(S x Q) from the model's first output, computed by onnxruntime in float32, one sample at a
time: files that fix the batch at 1 (PyTorch exports without dynamic axes) refuse more.
The layout conversion is written here by hand, independently of mat2grad.
"""

import os
import sys

import numpy as np
import scipy.io

# onnxruntime writes a telemetry file (.ses) into TMPDIR on import unless told not to
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
import onnxruntime  # noqa: E402


def main(model: str, data: str, out: str, layout: str = "features") -> None:
    x = scipy.io.loadmat(data)["X"].astype(np.float32)
    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    declared = session.get_inputs()[0]
    if layout == "image":
        x = x.reshape(x.shape + (1,) * (4 - x.ndim))  # MATLAB drops trailing C = 1, N = 1
        batch = x.transpose(3, 2, 0, 1)  # H x W x C x N -> N x C x H x W
    elif layout == "features":
        per_sample = [d if isinstance(d, int) else -1 for d in declared.shape[1:]]
        batch = x.T.reshape(x.shape[1], *per_sample)
    else:
        raise SystemExit(f"unknown layout {layout!r}")
    ys = [session.run(None, {declared.name: batch[q : q + 1]})[0] for q in range(batch.shape[0])]
    y = np.concatenate([np.asarray(v, dtype=np.float64).reshape(1, -1) for v in ys])
    scipy.io.savemat(out, {"Y": y.T})


if __name__ == "__main__":
    main(*sys.argv[1:])
