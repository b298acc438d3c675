"""Run converted files the way a user without mat2grad would: plain torch or onnxruntime.

The verification behind ``tests/export/test_export.py``, run there in a fresh interpreter
(``python -I``) where ``import mat2grad`` is made to fail, so a converted file that still needed
mat2grad (a pickled class, a custom op) fails here. One run checks many files of one kind:

    python -I portable_check.py KIND MANIFEST.json RESULTS.npz

KIND is ``pt2``, ``pt`` or ``onnx``. MANIFEST.json lists the cases (see
``tests/export/test_export.py::Converted``); an ``.onnx`` file that onnxruntime cannot run (float64
Conv) is run by onnx's reference evaluator. RESULTS.npz receives, per case, the outputs for the
whole batch (``ID|FILE|y{k}``), for the first sample alone (``ID|FILE|q1_y{k}``) and, for
``.pt2`` and ``.pt``, the per-sample Jacobians ``ID|pt2|J{k}_{j}`` (``(Q, S_k, R_j)``)
computed with ``torch.func.jacrev``.
"""

from __future__ import annotations

import sys

sys.modules["mat2grad"] = None  # type: ignore[assignment]  # `import mat2grad` now fails

import json  # noqa: E402

import numpy as np  # noqa: E402


def _as_tuple(y):
    return tuple(y) if isinstance(y, tuple | list) else (y,)


def _torch_outputs(module, xs, torch):
    with torch.no_grad():
        return [o.numpy() for o in _as_tuple(module(*[torch.from_numpy(x) for x in xs]))]


def _jacobians(module, xs, torch):
    """Per-sample Jacobians: vmap over samples of jacrev of the module on a batch of one."""
    n_in = len(xs)

    def per_sample(*xi):
        y = _as_tuple(module(*(t.unsqueeze(0) for t in xi)))
        return tuple(yk.squeeze(0) for yk in y)

    jac = torch.func.vmap(torch.func.jacrev(per_sample, argnums=tuple(range(n_in))))
    blocks = jac(*[torch.from_numpy(x) for x in xs])  # [output][input]
    return {
        f"J{k}_{j}": blocks[k][j].detach().numpy() for k in range(len(blocks)) for j in range(n_in)
    }


def check_pt2(case, xs, results):
    import torch

    module = torch.export.load(case["files"]["pt2"]).module()
    _store(results, case["id"], "pt2", _torch_outputs(module, xs, torch))
    _store(results, case["id"], "pt2", _torch_outputs(module, [x[:1] for x in xs], torch), "q1_")
    for key, value in _jacobians(module, xs, torch).items():
        results[f"{case['id']}|pt2|{key}"] = value


def check_pt(case, xs, results):
    import torch

    module = torch.jit.load(case["files"]["pt"])
    _store(results, case["id"], "pt", _torch_outputs(module, xs, torch))
    _store(results, case["id"], "pt", _torch_outputs(module, [x[:1] for x in xs], torch), "q1_")
    for key, value in _jacobians(module, xs, torch).items():
        results[f"{case['id']}|pt|{key}"] = value


def _onnx_session(path):
    """onnxruntime, or onnx's reference evaluator where onnxruntime has no kernel for the
    file's element type (float64 Conv and pooling); with the input and output names."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    except Exception as exc:
        if type(exc).__name__ != "NotImplemented":
            raise
        import onnx
        from onnx.reference import ReferenceEvaluator

        model = onnx.load(path)
        weights = {t.name for t in model.graph.initializer}
        names = [i.name for i in model.graph.input if i.name not in weights]
        return ReferenceEvaluator(model), names, [o.name for o in model.graph.output]
    outs = [o.name for o in session.get_outputs()]
    return session, [i.name for i in session.get_inputs()], outs


def check_onnx(case, xs, results):
    for kind in ("onnx64", "onnx32", "onnx_ml", "onnx_own"):
        if kind not in case["files"]:
            continue  # an ONNX source has no MATLAB-layout file unless its inputs are vectors
        session, names, outs = _onnx_session(case["files"][kind])
        assert names == case["input_names"], (names, case["input_names"])
        assert outs == case["output_names"], (outs, case["output_names"])
        # onnx_own: an ONNX source converted in its own precision, named by the manifest
        dtype = {"onnx32": np.float32, "onnx_own": np.dtype(case.get("own_dtype", "float32"))}
        dtype = dtype.get(kind, np.float64)
        for prefix, batch in (("", xs), ("q1_", [x[:1] for x in xs])):
            if kind == "onnx_ml":  # MATLAB layout: R x Q in, S x Q out
                feed = {
                    n: np.ascontiguousarray(x.T, dtype) for n, x in zip(names, batch, strict=True)
                }
                outs = [o.T for o in session.run(None, feed)]
            else:
                feed = {n: x.astype(dtype) for n, x in zip(names, batch, strict=True)}
                outs = session.run(None, feed)
            _store(results, case["id"], kind, outs, prefix)


def _store(results, case_id, kind, outputs, prefix=""):
    for k, y in enumerate(outputs):
        results[f"{case_id}|{kind}|{prefix}y{k}"] = np.asarray(y)


CHECKS = {"pt2": check_pt2, "pt": check_pt, "onnx": check_onnx}


def main(kind: str, manifest: str, out: str) -> None:
    with open(manifest) as fh:
        cases = json.load(fh)
    results: dict[str, np.ndarray] = {}
    for case in cases:
        data = np.load(case["data"])
        xs = [data[f"x{j}"] for j in range(case["n_inputs"])]
        CHECKS[kind](case, xs, results)
    leaked = sorted(m for m, v in sys.modules.items() if m.startswith("mat2grad") and v)
    assert not leaked, f"mat2grad was imported: {leaked}"
    np.savez(out, **results)


if __name__ == "__main__":
    main(*sys.argv[1:])
