"""Run ``mat2grad.convert`` jobs in a process of their own (for ``tests/export/test_export.py``).

    python -m tests.support.convert_jobs JOBS.json RESULTS.json

JOBS.json lists ``{"source": FILE, "out": FILE, "options": {...}, "loaded": bool}``; with
``loaded`` the source is first loaded with ``mat2grad.load`` (once per file, float64) and the
loaded network is converted, else the file itself. RESULTS.json maps each ``out`` to ``"ok"``
or the error. The conversions of ONNX sources run here, beside the pytest process (two cores:
the shallow conversions go on meanwhile), and a crash of the exporters would end this process,
not the test session.
"""

from __future__ import annotations

import json
import sys
import warnings


def main(jobs_file: str, results_file: str) -> None:
    import torch

    import mat2grad

    torch.set_num_threads(1)
    with open(jobs_file) as fh:
        jobs = json.load(fh)
    loaded: dict[str, object] = {}
    results: dict[str, str] = {}
    for job in jobs:
        source = job["source"]
        try:
            if job["loaded"]:
                if source not in loaded:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")  # a skipped onnxruntime check
                        loaded[source] = mat2grad.load(source, check=False)
                source = loaded[source]
            mat2grad.convert(source, job["out"], **job["options"])
            results[job["out"]] = "ok"
        except Exception as exc:  # noqa: BLE001 - reported to the test, which fails on it
            results[job["out"]] = f"{type(exc).__name__}: {exc}"
    with open(results_file, "w") as fh:
        json.dump(results, fh)


if __name__ == "__main__":
    main(*sys.argv[1:])
