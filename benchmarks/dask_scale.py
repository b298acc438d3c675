"""Scaling of mat2grad.dask: the 10-20-3 network's Jacobian streamed to a zarr store on a
LocalCluster, against the single-process chunked Jacobian, and sensitivity reductions.

    python benchmarks/dask_scale.py                       # N = 1e6, 2 workers
    python benchmarks/dask_scale.py --n 1e8 --n-sens 1e9  # the issue's sizes (a free machine)

Printed, all measured in this run:
* single process (torch 1 thread): the in-memory chunked Jacobian of N/workers samples,
  its per-core throughput;
* Dask: inputs generated on the workers, the Jacobian and outputs written to zarr block by
  block; time, throughput, efficiency = throughput / (workers x the single-process per-core
  throughput), and the peak resident memory of each worker;
* the per-task overhead of the scheduler (empty tasks) and the block size that keeps it
  under 5 % of a task's work;
* sensitivity over --n-sens samples (reductions only, nothing stored).
The machine's load average is printed: on a shared machine the numbers are pessimistic.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NET = ROOT / "fixtures" / "example_fitnet.mat"


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _inputs(n: int, r: int, block: int):
    import dask.array as da

    return da.random.default_rng(0).uniform(-1.0, 1.0, (n, r), chunks=(block, r))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=float, default=1e6, help="samples of the Jacobian to zarr")
    p.add_argument("--n-sens", type=float, default=1e6, help="samples of the sensitivity run")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--block", type=int, default=2**16, help="samples per task")
    p.add_argument("--store", default=None, help="folder for the zarr store (default: temp)")
    args = p.parse_args()
    n, n_sens, w = int(args.n), int(args.n_sens), args.workers

    import numpy as np
    import torch
    from distributed import Client, LocalCluster

    import mat2grad
    from mat2grad import dask as m2d

    torch.set_num_threads(1)
    net = mat2grad.load(NET)
    r = net.input_shapes[0][0]
    print(f"load average {os.getloadavg()[0]:.2f}, cpus {os.cpu_count()}, N {n:.3g}, {w} workers")

    # single process, one thread, N / workers samples: the per-core baseline
    per = n // w
    x = np.random.default_rng(0).uniform(-1.0, 1.0, (per, r))
    mat2grad.jacobian(net, x[:1000])  # warm-up
    t0 = time.perf_counter()
    for _ch in mat2grad.jacobian_chunks(net, x, progress=False):
        pass  # streamed like the zarr run: chunk buffers, no N-sized result
    t_single = time.perf_counter() - t0
    core = per / t_single
    print(f"single process: {per:.3g} samples in {t_single:.2f} s = {core:.3g} samples/s/core")

    folder = Path(args.store or tempfile.mkdtemp(prefix="dask_scale-", dir=ROOT.parent))
    with (
        LocalCluster(
            n_workers=w, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        # warm-up: each worker builds the network once
        m2d.jacobian(NET, _inputs(w * 1000, r, 1000)).sum().compute()
        client.run(lambda: None)
        J, Y = m2d.jacobian(NET, _inputs(n, r, args.block), return_outputs=True)
        t0 = time.perf_counter()
        m2d.to_zarr(folder / "J.zarr", {"J": J, "Y": Y}, progress=False)
        t_dask = time.perf_counter() - t0
        rate = n / t_dask
        peaks = client.run(_peak_mb)
        gb = n * (3 * r + 3) * 8 / 1e9
        print(
            f"dask -> zarr: {n:.3g} samples ({gb:.2f} GB) in {t_dask:.2f} s = {rate:.3g} "
            f"samples/s, {rate / w:.3g} per worker; efficiency {rate / (w * core):.2f}; peak "
            f"RSS per worker {', '.join(f'{v:.0f} MB' for v in peaks.values())}"
        )

        # scheduler overhead per task: empty tasks
        import dask.array as da

        m = 400
        empty = da.zeros((m,), chunks=1).map_blocks(lambda b: b)
        t0 = time.perf_counter()
        empty.sum().compute()
        per_task = (time.perf_counter() - t0) * w / m
        block_5pct = per_task / 0.05 * core
        print(
            f"scheduler overhead {per_task * 1e3:.2f} ms per task (per worker); blocks of "
            f">= {block_5pct:.3g} samples keep it under 5 % (used {args.block})"
        )

        xs = _inputs(n_sens, r, args.block)
        t0 = time.perf_counter()
        res = m2d.sensitivity(NET, xs)
        t_sens = time.perf_counter() - t0
        print(
            f"sensitivity: {n_sens:.3g} samples in {t_sens:.2f} s = {n_sens / t_sens:.3g} "
            f"samples/s (rms[0, :3] = {np.round(res['rms'][0, :3], 4).tolist()})"
        )
    if args.store is None:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
