"""``sens``: which inputs matter. The struct S of :mod:`mat2grad.sensitivity` (derivative
statistics per output and input; per delay for dynamic networks) for the network of FILE
on the samples of the data, handed to the results receiver as one variable ``S``, and
optionally the charts drawn into ``--plot FILE``."""

from __future__ import annotations

from functools import partial

import torch

from ..contract import contract_of, parse_dtype
from ..errors import Mat2GradError
from ..loading import load
from ..sensitivity.committee import committee_models
from ..sensitivity.files import PLOT_KEEP, analyse, check_plot_file, samples_of, save_plot
from ..sensitivity.result import SensitivityResult
from .options import SensOptions
from .results import FileResults, Results
from .sources import (
    IN_MEMORY,
    Loader,
    load_model,
    read_variables,
    refuse_series_options,
    set_threads,
)

__all__ = ["deliver", "run"]


def run(opts: SensOptions, results: Results | None = None, *, loader: Loader | None = None) -> None:
    """Analyse the network of ``opts.file`` (every network of it with ``opts.committee``)
    on the inputs and hand ``S`` to ``results`` (default: the MAT-file ``opts.output``);
    with ``opts.plot``, draw the charts into that file too (checked before the work)."""
    results = results or FileResults(opts.output)
    set_threads(opts)
    if opts.plot:
        check_plot_file(opts.plot)
    if opts.committee:
        if opts.network:
            raise Mat2GradError(
                f"{opts.file}: --committee pools every network in FILE; --network chooses one "
                "(give one or the other)"
            )
        dtype = parse_dtype(opts.dtype, "--dtype") or torch.float64
        models, names = committee_models(opts.file, partial(loader or load, dtype=dtype))
    else:
        models, names = [load_model(opts, loader)], None
    if not contract_of(models[0]).is_dynamic:
        refuse_series_options(opts, ("max_lag",))
    data = read_variables(opts)
    name, value = data.select(opts.inputs_var)
    x = samples_of(models[0], value, opts.samples, data.what(name))
    result = analyse(
        models,
        x,
        names=names,
        committee_all=opts.committee,
        scale=None if opts.scale == "none" else opts.scale,
        ddof=opts.ddof,
        bootstrap=opts.bootstrap,
        conf_level=opts.conf_level,
        seed=opts.seed,
        interactions=opts.interactions,
        dgsm_samples=opts.dgsm,
        weights=opts.weights,
        max_lag=opts.max_lag,
        chunk_size=opts.chunk_size,
        keep=PLOT_KEEP if opts.plot else 0,
    )
    deliver(result, opts, results)


def deliver(result: SensitivityResult, opts: SensOptions, results: Results) -> None:
    """Hand ``result`` to ``results`` as the variable ``S``, noting where the network and
    the data came from, and draw ``opts.plot`` (in memory and on Dask alike)."""
    result.settings["network_file"] = str(opts.file)
    result.settings["inputs_file"] = str(opts.inputs or IN_MEMORY)
    results.save({"S": result.to_struct()}, format=opts.format)
    if opts.plot:
        save_plot(result, opts.plot)
