"""mat2grad.budget: the working set and the memory check before large allocations."""

from __future__ import annotations

import subprocess
import sys

from tests.support.helpers import ROOT

_LIMITED = """
import resource
import numpy as np
import mat2grad
from tests.support.records import network

resource.setrlimit(resource.RLIMIT_AS, (3 << 30, resource.RLIM_INFINITY))
net = network((200,), ((10, "tansig"), (100, "purelin")))
try:
    mat2grad.jacobian(net, np.zeros((30000, 200)), chunk_size=30000)  # 4.5 GiB of result
except mat2grad.Mat2GradError as exc:
    print(exc)
else:
    raise SystemExit("no error")
"""


def test_a_result_beyond_the_address_space_limit_is_refused_before_allocating():
    """Under ``ulimit -v`` (a batch system's memory limit) the check counts what the limit
    leaves, not the machine's free memory: a clear error instead of a MemoryError."""
    run = subprocess.run(
        [sys.executable, "-c", _LIMITED], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:] + run.stdout
    assert "needs 4.47 GiB, more than the" in run.stdout
    assert "jacobian_chunks" in run.stdout
