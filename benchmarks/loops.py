"""ONNX Loop and Scan models: the body run step by step as written against the hoisted plan
(NOTE: [Hoisting a Loop body] in mat2grad/onnx/ops/loop_hoisting.py), in one run.

    python benchmarks/loops.py                  # the committed tf2onnx exports and fixtures
    python benchmarks/loops.py --n 256 --nj 16  # other batch sizes
    python benchmarks/loops.py extra.onnx ...   # more files (the corpus's tf2onnx exports
                                                # are added when ../shared/corpus is there)

Per file: ``mat2grad.predict`` on N samples and ``mat2grad.jacobian`` (reverse mode) on NJ
samples, float64, one thread; the two variants alternate, each timing is the best of
``--repeat`` runs, and the largest relative difference between the variants' results is
printed beside the ratio (the plan changes the order of evaluation, not the arithmetic).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from timing import best  # noqa: E402  (beside this file)

DEFAULT_FILES = [
    *sorted((ROOT / "fixtures" / "onnx" / "tf2onnx").glob("*.onnx")),
    *sorted((ROOT / "fixtures" / "onnx" / "control_flow").glob("*.onnx")),
    *sorted((ROOT / ".." / "shared" / "corpus" / "tf2onnx").glob("*.onnx")),
]


def _flat(result):
    import numpy as np

    parts = result if isinstance(result, tuple | list) else [result]
    return np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1) for p in parts])


def _rel(a, b) -> float:
    import numpy as np

    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def measure(path: Path, n: int, nj: int, repeat: int) -> str | None:
    import numpy as np
    import torch

    import mat2grad
    from mat2grad.onnx.ops.control_flow import OnnxLoop, OnnxScan

    net = mat2grad.load(path, dtype=torch.float64, check=False)
    bodies = [m for m in net.modules() if isinstance(m, OnnxLoop | OnnxScan)]
    plans = [m.hoisting for m in bodies]
    if not bodies or all(p is None for p in plans):
        return None
    x = np.random.default_rng(0).normal(size=(n, *net.input_shapes[0]))

    def use(on: bool) -> None:
        for module, plan in zip(bodies, plans, strict=True):
            module.hoisting = plan if on else None

    results, times = {}, {True: [], False: []}
    for on in (False, True, False, True):
        use(on)
        y = _flat(mat2grad.predict(net, x))
        jac = _flat(mat2grad.jacobian(net, x[:nj], mode="rev"))
        results[on] = (y, jac)
        tp = best(lambda: mat2grad.predict(net, x), 1e9, repeat)[0]
        tj = best(lambda: mat2grad.jacobian(net, x[:nj], mode="rev"), 1e9, repeat)[0]
        times[on].append((tp, tj))
    p0 = min(t[0] for t in times[False])
    j0 = min(t[1] for t in times[False])
    p1 = min(t[0] for t in times[True])
    j1 = min(t[1] for t in times[True])
    diff = max(_rel(results[True][0], results[False][0]), _rel(results[True][1], results[False][1]))
    shape = "x".join(str(d) for d in net.input_shapes[0])
    kinds = "; ".join(f"{p.counts['hoisted']}/{sum(p.counts.values())}" for p in plans if p)
    return (
        f"{path.stem[:34]:34s} {shape:>7s} {p0 * 1e3:9.1f} {p1 * 1e3:9.1f} {p1 / p0:6.2f} "
        f"{j0 * 1e3:9.1f} {j1 * 1e3:9.1f} {j1 / j0:6.2f} {diff:9.1e}  {kinds}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--n", type=int, default=64, help="samples for predict (64)")
    parser.add_argument("--nj", type=int, default=8, help="samples for jacobian (8)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing (3)")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    print(f"load average {os.getloadavg()[0]:.2f}; float64, 1 thread; N={args.n}, NJ={args.nj}")
    print(
        f"{'file':34s} {'input':>7s} {'predict ms':>19s} {'ratio':>6s} "
        f"{'jacobian ms':>19s} {'ratio':>6s} {'max diff':>9s}  per Loop: hoisted ops"
    )
    print(
        " " * 43 + f"{'as written':>9s} {'hoisted':>9s} {'':6s} {'as written':>9s} {'hoisted':>9s}"
    )
    for path in args.files or [p for p in DEFAULT_FILES if p.is_file()]:
        line = measure(path.resolve(), args.n, args.nj, args.repeat)
        if line is not None:
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
