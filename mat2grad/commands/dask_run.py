"""``predict``, ``jacobian`` and ``sens`` on Dask (``--scheduler ADDRESS`` or ``--workers
N``): the same results as the in-memory commands, computed block by block on a cluster;
Jacobians and outputs are written block by block, never gathered whole, and ``sens``
reduces per-block moment states in a tree (:func:`mat2grad.dask.sensitivity`) into the
struct S the in-memory command writes.

Inputs: a MAT v7.3 variable is read lazily by the workers (R x Q, or Q x R with
``--samples rows``); a v7 MAT-file is read here and sent in blocks; ``.npy`` and ``.zarr``
inputs are batch-first arrays (Q x R, one sample per row: Python's layout). Results: a
MAT-file in MATLAB's layout (J S x R x Q, Y S x Q; ``--format``), or a zarr store (a name
ending in ``.zarr``) holding batch-first arrays J (Q, S, R) and Y (Q, S); ``sens`` writes
S to a MAT-file only. The network (a static MATLAB network) travels as its file and network
path. What ``sens`` computes in memory only (a committee, Hessian interactions) is refused
before any work; ``--weights`` (the weights alone), ``--dgsm`` (its own samples from the
recorded ranges, drawn and differentiated here) and ``--plot`` (a subset of raw derivatives
kept by the reduction) are as in memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..contract import contract_of
from ..errors import Mat2GradError
from ..loading import is_onnx
from ..sensitivity.bootstrap import check_bootstrap
from ..sensitivity.files import PLOT_KEEP, check_plot_file, network_parts
from .options import JacobianOptions, PredictOptions, SensOptions, flag
from .results import FileResults
from .sens import deliver
from .sources import inputs_of, load_model, refuse_series_options

__all__ = ["DaskOptions", "run"]


@dataclass(kw_only=True)
class DaskOptions:
    """Where the tasks run (a scheduler's address, or N local worker processes started and
    stopped by the command), samples per task, and torch threads per worker thread."""

    command: ClassVar[str] = "dask"
    scheduler: str | None = None
    workers: int | None = None
    block_size: int | None = None
    threads: int | None = None

    @property
    def wanted(self) -> bool:
        return bool(self.scheduler or self.workers)


#: sens options that run in memory only, and why (refused on Dask by :func:`_refuse`)
IN_MEMORY_ONLY = {
    "committee": "a committee pools its networks in memory",
    "interactions": "the Hessian interactions run in memory",
}


def run(opts: PredictOptions | JacobianOptions | SensOptions, how: DaskOptions) -> Path:
    """Run ``opts.command`` (predict, jacobian or sens) on Dask and write ``opts.output``."""
    try:
        from .. import dask as m2d  # deferred: the optional dask extra, and start-up time
    except ImportError as exc:
        raise Mat2GradError(
            f"--scheduler/--workers need Dask ({exc}); install it with: pip install "
            "'mat2grad[dask]'"
        ) from None
    if not opts.output:
        raise Mat2GradError(f"{opts.command} on Dask writes a file: pass -o OUT.mat or OUT.zarr")
    if isinstance(opts, SensOptions):
        _refuse(opts)
    if getattr(opts, "device", None):
        raise Mat2GradError(
            f"--device applies to computing in this process; Dask workers compute on their "
            f"own CPUs: drop --device {opts.device} or --scheduler/--workers"
        )
    if is_onnx(opts.file):
        raise Mat2GradError(
            f"{opts.file}: --scheduler/--workers take MATLAB networks; for ONNX models use "
            "the Python API mat2grad.dask (batch-first arrays)"
        )
    model = load_model(opts, None)
    if contract_of(model).is_dynamic:
        raise Mat2GradError(
            f"{opts.file}: --scheduler/--workers take static networks; a dynamic network's "
            "time series run without them"
        )
    ref = m2d.NetworkRef(opts.file, opts.network, opts.dtype or "float64")
    threads = how.threads or 1
    if isinstance(opts, SensOptions):
        refuse_series_options(opts, ("max_lag",))  # the network is static here
    xs = _inputs(opts, model, how.block_size)  # lazy; bad input fails before any cluster
    if isinstance(opts, SensOptions):
        return _sens(opts, how, model, ref, xs)
    with m2d.scheduler(how.scheduler, how.workers):
        if opts.command == "predict":
            arrays = {"Y": _single(m2d.predict(ref, *xs, threads=threads), "Y")}
        else:
            J, Y = m2d.jacobian(
                ref,
                *xs,
                mode=opts.mode,
                chunk_size=opts.chunk_size,
                threads=threads,
                return_outputs=True,
            )
            arrays = {"J": _single(J, "J"), "Y": _single(Y, "Y")}
        out = Path(opts.output)
        if out.suffix.lower() == ".zarr":
            return m2d.to_zarr(out, arrays)
        fmt = getattr(opts, "format", "auto")
        return m2d.to_mat(out, arrays, samples=opts.samples, format=fmt)


def _refuse(opts: SensOptions) -> None:
    """sens on Dask: options computed in memory only, and a zarr result, refused before any
    work; a --plot file checked (its name, matplotlib) likewise."""
    given = [n for n in IN_MEMORY_ONLY if getattr(opts, n) not in (None, False)]
    if given:
        name = flag(given[0])
        raise Mat2GradError(
            f"{name} does not run on Dask ({IN_MEMORY_ONLY[given[0]]}): run 'mat2grad sens' "
            f"without --scheduler/--workers for {name}, or drop {name}"
        )
    if Path(opts.output or "").suffix.lower() == ".zarr":
        raise Mat2GradError(
            f"{opts.output}: sens writes the struct S to a MAT-file (-o S.mat); zarr stores "
            "hold the per-sample arrays of predict and jacobian"
        )
    if opts.plot:
        check_plot_file(opts.plot)


def _sens(opts: SensOptions, how: DaskOptions, model: Any, ref: Any, xs: list[Any]) -> Path:
    """sens on Dask: the statistics reduced on the cluster, the struct S written here as
    the in-memory command writes it (:mod:`.sens`)."""
    from .. import dask as m2d  # deferred: see run

    check_bootstrap(opts.bootstrap, int(xs[0].shape[0]), opts.conf_level, "sensitivity")
    with m2d.scheduler(how.scheduler, how.workers):
        result = m2d.sensitivity(
            ref,
            *xs,
            scale=None if opts.scale == "none" else opts.scale,
            ddof=opts.ddof,
            bootstrap=opts.bootstrap,
            conf_level=opts.conf_level,
            seed=opts.seed,
            keep=PLOT_KEEP if opts.plot else 0,
            chunk_size=opts.chunk_size,
            threads=how.threads or 1,
        )
    network_parts(  # DGSM draws its own samples from the recorded ranges: here
        result,
        model,
        dgsm_samples=opts.dgsm,
        weights=opts.weights,
        bootstrap=opts.bootstrap,
        conf_level=opts.conf_level,
        seed=opts.seed,
        chunk_size=opts.chunk_size,
    )
    deliver(result, opts, FileResults(opts.output))
    return Path(opts.output)


def _single(x: Any, name: str) -> Any:
    if isinstance(x, tuple):
        raise Mat2GradError(
            f"--scheduler/--workers write one {name} array: the network has several inputs or "
            "outputs; use the Python API mat2grad.dask, which returns each block"
        )
    return x


def _default_block(command: str, model: Any) -> int:
    """Samples per task when --block-size is not given: blocks whose results (J and Y, or
    Y and the inputs, or for sens the Jacobian it reduces) take about
    :data:`mat2grad.dask.arrays.BLOCK_BYTES`."""
    from .. import dask as m2d  # deferred: see run

    s = sum(math.prod(shape) for shape in model.output_shapes)
    r = sum(math.prod(shape) for shape in model.input_shapes)
    per = {"predict": s + r, "jacobian": s * r + s}.get(command, s * r)
    return m2d.arrays.block_for(8 * per)


def _inputs(opts: Any, model: Any, given: int | None) -> list[Any]:
    """The inputs as dask arrays in blocks of ``given`` samples (--block-size), else of
    :func:`_default_block` (a zarr input: its own chunks)."""
    from .. import dask as m2d  # deferred: see run
    from ..matfile.lazy import is_v73

    block = given or _default_block(opts.command, model)
    path = Path(opts.inputs or "")
    if opts.data is not None or not opts.inputs:
        return [m2d.arrays.samples_of(x, block) for x in inputs_of(opts, model)]
    if path.suffix.lower() == ".npy":
        return [m2d.from_npy(path, block=block)]
    if path.suffix.lower() == ".zarr":
        return [m2d.from_zarr(path, opts.inputs_var, block=given)]
    if is_v73(path):
        if not opts.inputs_var:
            raise Mat2GradError(
                f"{path}: a v7.3 file is read lazily, variable by variable: name the inputs "
                "with --inputs-var"
            )
        return [m2d.from_mat(path, opts.inputs_var, samples=opts.samples, block=block)]
    return [m2d.arrays.samples_of(x, block) for x in inputs_of(opts, model)]
