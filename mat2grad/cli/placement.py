"""The argument groups that say where a command computes: ``--device`` (the compute
device of this process) and Dask's ``--scheduler``/``--workers`` (see :mod:`.parser`)."""

from __future__ import annotations

import argparse

from .help import DASK_GROUP


def add_device_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device",
        metavar="DEV",
        help="compute device: cpu (default), cuda or cuda:N where torch sees a GPU, mps; "
        "results are written as from the CPU",
    )


def add_dask_args(p: argparse.ArgumentParser, threads: bool = True) -> None:
    """Scale-out on Dask (predict, jacobian, sens; needs mat2grad[dask])."""
    g = p.add_argument_group("Dask (pip install mat2grad[dask])", DASK_GROUP)
    where = g.add_mutually_exclusive_group()
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run on the Dask cluster at ADDRESS (tcp://HOST:8786); workers need FILE and "
        "the data at the same paths",
    )
    where.add_argument(
        "--workers",
        metavar="N",
        type=int,
        help="run on N local worker processes (a LocalCluster started and stopped here)",
    )
    g.add_argument(
        "--block-size",
        metavar="N",
        type=int,
        help="samples per Dask task (default: results of about 64 MiB per task, 2^18 "
        "samples for a 10-20-3 network's Jacobian; a zarr input: its own chunks)",
    )
    if threads:
        g.add_argument(
            "--threads", type=int, metavar="N", help="torch CPU threads per worker (default 1)"
        )
