"""How many torch threads to use: the Jacobian of each benchmark model with 1 thread and with
every core, on an idle machine and beside one busy process (a shared machine), in one run.

    python benchmarks/threads.py            # models A (1e5), B (1e4), LSTM, ONNX CNN
    python benchmarks/threads.py --quick    # fewer repeats

Each cell runs in a fresh subprocess; times are the best of several runs. The busy process
is a Python loop that keeps one core occupied, as another user's job would.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE.parent))
from timing import best  # noqa: E402  (beside this file)

CASES = ["A 1e5", "B 1e4", "LSTM", "CNN"]


def worker(case: str, threads: int, repeats: int) -> float:
    import numpy as np
    import torch

    import mat2grad

    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    if case.startswith(("A", "B")):
        from benchmarks.speed import _network

        model, n = case.split()
        net = _network(model)
        x = rng.uniform(-2, 2, (int(float(n)), net.input_sizes[0]))
        call = lambda: mat2grad.jacobian(net, x)  # noqa: E731
    elif case == "LSTM":
        from benchmarks.speed import worker_lstm

        return worker_lstm()["jacobian"]
    else:
        net = mat2grad.load(ROOT / "fixtures/onnx/matlab2020a_conv_fc_dropout.onnx", check=False)
        x = rng.normal(size=(1000, *net.input_shapes[0]))
        call = lambda: mat2grad.jacobian(net, x)  # noqa: E731
    call()
    return best(call, 1e9, repeats)[0]


def _busy() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        case, threads, repeats = args.worker
        print(json.dumps(worker(case, int(threads), int(repeats))))
        return
    cores = len(os.sched_getaffinity(0))
    repeats = 3 if args.quick else 7
    print(f"{cores} cores; load average {os.getloadavg()[0]:.2f}; Jacobian time, best of {repeats}")
    heads = [f"{how}, {n}" for how in ("idle", "busy") for n in (1, cores)]
    print(" " * 10 + "".join(f"{h:>11s}" for h in heads))
    env = dict(os.environ, OMP_NUM_THREADS=str(cores))
    for case in CASES:
        cells = []
        for busy in (False, True):
            other = _busy() if busy else None
            try:
                for threads in (1, cores):
                    out = subprocess.run(
                        [sys.executable, str(HERE), "--worker", case, str(threads), str(repeats)],
                        capture_output=True, text=True, env=env, cwd=ROOT,
                    )  # fmt: skip
                    cells.append(json.loads(out.stdout.strip().splitlines()[-1]) * 1e3)
            finally:
                if other is not None:
                    other.kill()
        print(f"{case:10s} " + " ".join(f"{c:8.1f}ms" for c in cells), flush=True)


if __name__ == "__main__":
    main()
