"""Where the tasks run: a scheduler by address, a ``LocalCluster`` started and stopped for
one job, or Dask's threads (no server)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from ..errors import Mat2GradError

__all__ = ["scheduler"]


@contextlib.contextmanager
def scheduler(address: str | None = None, workers: int | None = None) -> Iterator[Any]:
    """A ``distributed.Client`` for the block: connected to ``address``, or to a
    ``LocalCluster`` of ``workers`` processes (one thread each; closed on leaving), or None
    with neither (Dask's threads run the tasks in this process).

    Raises:
        Mat2GradError: both given, a bad worker count, or a scheduler that cannot be reached.
    """
    if address and workers:
        raise Mat2GradError("give a scheduler address or a number of workers, not both")
    if not address and not workers:
        yield None
        return
    from distributed import Client, LocalCluster  # deferred: the dask extra, start-up time

    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise Mat2GradError(f"workers must be a whole number >= 1, found {workers!r}")
    with contextlib.ExitStack() as stack:
        if address:
            try:
                client = stack.enter_context(Client(address, timeout="30s"))
            except OSError as exc:
                raise Mat2GradError(
                    f"cannot reach the Dask scheduler at {address} ({exc}); check the address "
                    "(tcp://HOST:8786) and that the scheduler is running"
                ) from None
        else:
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                )
            )
            client = stack.enter_context(Client(cluster))
        yield client
