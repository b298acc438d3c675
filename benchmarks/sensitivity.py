"""Speed and memory of mat2grad.sensitivity (issue 12), on the 10-20-3 example network
(fixtures/example_fitnet.mat: removeconstantrows + mapminmax, tansig, purelin, mapminmax).

    python benchmarks/sensitivity.py              # N = 1e6 timing, memory at 1e5..1e7, DGSM at 1e5
    python benchmarks/sensitivity.py --quick      # N = 1e5 timing, memory at 1e4..1e6, DGSM at 1e4

Rows:
1. ``sensitivity`` / ``jacobian`` time on the same N samples (target: <= 1.2).
2. peak memory of ``sensitivity`` above the inputs at three N (target: flat), each in a
   fresh subprocess (ru_maxrss after the inputs exist vs after the analysis).
3. ``dgsm`` (exact derivatives, 100 bootstrap replicates) against SALib's route (sample
   with ``finite_diff``, evaluate with ``mat2grad.predict``, ``dgsm.analyze`` with 100
   resamples, per output) on N base points (target: >= 10x faster), with the
   forward-difference error of SALib's nu on the same base points.
Times are the best of a few runs, wall clock and CPU time (on a shared machine the wall
clock includes waiting for a core); the load average is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
NET = ROOT / "fixtures" / "example_fitnet.mat"


def _best(fn, repeat: int = 3, clock=time.perf_counter) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = clock()
        fn()
        best = min(best, clock() - t)
    return best


def _inputs(n: int):
    import numpy as np

    import mat2grad

    net = mat2grad.load(NET)
    rng = np.random.default_rng(0)
    lo, hi = net.spec.inputs[0].range[:, 0], net.spec.inputs[0].range[:, 1]
    return net, lo + rng.random((n, 10)) * (hi - lo)


def time_ratio(n: int) -> dict:
    import mat2grad
    from mat2grad.sensitivity import sensitivity

    net, x = _inputs(n)
    tj = _best(lambda: mat2grad.jacobian(net, x))
    ts = _best(lambda: sensitivity(net, x))
    # CPU time as well: on a machine shared with other jobs the wall clock also counts the
    # time this process waited for a core
    cj = _best(lambda: mat2grad.jacobian(net, x), clock=time.process_time)
    cs = _best(lambda: sensitivity(net, x), clock=time.process_time)
    return {
        "n": n,
        "jacobian_s": tj,
        "sensitivity_s": ts,
        "ratio": ts / tj,
        "jacobian_cpu_s": cj,
        "sensitivity_cpu_s": cs,
        "cpu_ratio": cs / cj,
    }


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kB


def memory(n: int) -> dict:
    from mat2grad.sensitivity import sensitivity

    net, x = _inputs(n)
    sensitivity(net, x[:1000])  # warm up (imports, first-chunk allocations)
    before = _rss_mb()
    sensitivity(net, x)
    return {"n": n, "inputs_mb": x.nbytes / 2**20, "above_inputs_mb": _rss_mb() - before}


def dgsm_vs_salib(n: int) -> dict:
    import numpy as np
    from SALib.analyze import dgsm as salib_dgsm
    from SALib.sample import finite_diff

    from mat2grad.sensitivity import dgsm, salib_model, salib_problem

    net, _ = _inputs(1)
    bounds = net.spec.inputs[0].range.copy()
    flat = bounds[:, 0] == bounds[:, 1]
    bounds[flat] += [-0.5, 0.5]
    problem = salib_problem(net, bounds=bounds)
    d = problem["num_vars"]
    out: dict = {}

    def salib_route():
        X = finite_diff.sample(problem, n, seed=1)
        Y = salib_model(net)(X)
        out["vi"] = [
            salib_dgsm.analyze(problem, X, Y[:, k], num_resamples=100, seed=1)["vi"]
            for k in range(Y.shape[1])
        ]
        out["base"] = X[:: d + 1]

    t_salib = _best(salib_route, repeat=1)
    t_ours = _best(lambda: dgsm(net, n, bounds=bounds, bootstrap=100), repeat=2)
    exact = dgsm(net, data=out["base"], bounds=bounds, bootstrap=0)["nu"]
    vi = np.array(out["vi"])
    fd_err = float(np.max(np.abs(vi - exact)) / np.max(np.abs(exact)))
    return {
        "n": n,
        "salib_s": t_salib,
        "dgsm_s": t_ours,
        "speedup": t_salib / t_ours,
        "salib_fd_rel_error": fd_err,
    }


def _child(task: str, n: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    code = (
        f"import json, sys; sys.path.insert(0, {str(ROOT)!r}); "
        f"from benchmarks.sensitivity import {task}; print(json.dumps({task}({n})))"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small N (a smoke test)")
    args = p.parse_args()
    n_time, mems, n_dgsm = (10**6, (10**5, 10**6, 10**7), 10**5)
    if args.quick:
        n_time, mems, n_dgsm = (10**5, (10**4, 10**5, 10**6), 10**4)
    print(
        f"load average {os.getloadavg()[0]:.2f}, OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}"
    )
    r = _child("time_ratio", n_time)
    print(
        f"sensitivity / jacobian at N={r['n']:.0e}: {r['sensitivity_s']:.3f} s / "
        f"{r['jacobian_s']:.3f} s = {r['ratio']:.2f}x wall clock; CPU time "
        f"{r['sensitivity_cpu_s']:.3f} s / {r['jacobian_cpu_s']:.3f} s = {r['cpu_ratio']:.2f}x "
        "(target <= 1.2)"
    )
    for n in mems:
        m = _child("memory", n)
        print(
            f"peak memory above inputs at N={n:.0e}: {m['above_inputs_mb']:.1f} MB "
            f"(inputs {m['inputs_mb']:.0f} MB)"
        )
    g = _child("dgsm_vs_salib", n_dgsm)
    print(
        f"DGSM at N={n_dgsm:.0e}: SALib finite-difference route {g['salib_s']:.2f} s, "
        f"mat2grad dgsm {g['dgsm_s']:.2f} s = {g['speedup']:.1f}x faster (target >= 10); "
        f"SALib's nu differs from the exact one by {g['salib_fd_rel_error']:.1e} (relative)"
    )


if __name__ == "__main__":
    main()
