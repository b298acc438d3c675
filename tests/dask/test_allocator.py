"""glibc's allocator thresholds restored in Dask worker processes (NOTE: [Allocator
thresholds in Dask workers]): a fixed trim threshold, as Dask's nanny sets, makes every
allocation of 1 MiB a fresh mapping that faults its pages in again; after
restore_thresholds the freed memory is reused."""

from __future__ import annotations

import ctypes.util
import json
import os
import subprocess
import sys
import textwrap

import dask.array as da
import pytest

from mat2grad import dask as m2d
from mat2grad.dask import allocator
from tests.dask.cases import NETWORKS

GLIBC = sys.platform.startswith("linux") and "libc.so" in (ctypes.util.find_library("c") or "")

_PROBE = textwrap.dedent(
    """
    import json, resource, sys
    import numpy as np
    from mat2grad.dask.allocator import restore_thresholds

    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    def churn(n=50):  # allocate, touch and free 1 MiB (numpy's malloc) n times
        for _ in range(n):
            a = np.empty(2**17)
            a.fill(1.0)
            del a
        f0 = faults()
        for _ in range(n):
            a = np.empty(2**17)
            a.fill(1.0)
            del a
        return (faults() - f0) / n

    before = churn()
    done = restore_thresholds(workers_only=sys.argv[1] == "workers")
    after = churn()
    print(json.dumps([done, before, after, restore_thresholds()]))
    """
)


def _probe(env: dict[str, str], scope: str = "any process") -> list:
    full = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    full.update(env)
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, scope],
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc thresholds: Linux with glibc only")
def test_a_fixed_trim_threshold_is_undone():
    done, before, after, again = _probe({"MALLOC_TRIM_THRESHOLD_": "65536"})
    assert done == "restored" and again == "restored"  # once per process
    # 1 MiB is 256 pages of 4 KiB: each allocation faulted them in again before
    assert before >= 200, before
    assert after <= 5, after


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc thresholds: Linux with glibc only")
@pytest.mark.parametrize(
    ("env", "scope", "why"),
    [
        ({}, "any process", "not fixed"),
        (
            {"MALLOC_TRIM_THRESHOLD_": "65536", "MALLOC_MMAP_THRESHOLD_": "131072"},
            "any process",
            "chosen",
        ),
        ({"MALLOC_TRIM_THRESHOLD_": "65536"}, "workers", "not a worker"),
    ],
)
def test_thresholds_left_alone(env, scope, why):
    done, before, after, _ = _probe(env, scope)
    assert done == why
    if "MALLOC_TRIM_THRESHOLD_" in env:
        assert after >= 200, after  # still a fresh mapping per allocation


def test_dask_workers_get_the_thresholds_restored(client):
    m2d.predict(NETWORKS["static"], da.ones((40, 10), chunks=10)).compute()  # a task on each
    states = client.run(allocator.restore_thresholds)
    nanny_env = client.run(lambda: "MALLOC_TRIM_THRESHOLD_" in os.environ)
    for worker, state in states.items():
        if nanny_env[worker] and GLIBC:
            assert state == "restored", (worker, state)
        else:
            assert state in ("not fixed", "not glibc"), (worker, state)
