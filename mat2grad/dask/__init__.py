"""mat2grad on Dask: predictions, Jacobians and sensitivity statistics of networks over
inputs larger than one machine (``pip install mat2grad[dask]``).

Inputs are batch-first dask arrays chunked along samples (from MAT v7.3 variables, ``.npy``
memory maps, zarr, or any dask array); results are lazy dask arrays chunked the same way,
or, for :func:`sensitivity`, statistics reduced in a tree of moment states. The network
travels as what it is made of (:class:`NetworkRef`: file and network path), rebuilt once
per worker. The same code runs on threads (the default, no server), a ``LocalCluster``, or
any cluster a ``distributed.Client`` reaches::

    from mat2grad import dask as m2d
    x = m2d.from_mat("data.mat", "X")                    # R x Q in a v7.3 file -> (Q, R)
    J, Y = m2d.jacobian("net.mat", x, return_outputs=True)   # (Q, S, R), (Q, S), lazy
    m2d.to_zarr("J.zarr", {"J": J, "Y": Y})              # written block by block, atomically
    res = m2d.sensitivity("net.mat", x)                  # res["rms"] (S, R)
"""

from .arrays import DEFAULT_BLOCK, from_mat, from_npy, from_zarr
from .cluster import scheduler
from .compute import jacobian, predict
from .network import NetworkRef
from .reduce import sensitivity
from .store import compute, to_mat, to_zarr

__all__ = [
    "DEFAULT_BLOCK",
    "NetworkRef",
    "compute",
    "from_mat",
    "from_npy",
    "from_zarr",
    "jacobian",
    "predict",
    "scheduler",
    "sensitivity",
    "to_mat",
    "to_zarr",
]
