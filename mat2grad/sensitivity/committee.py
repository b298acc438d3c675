"""Committees: several networks trained for the same task (the "train 10 nets and compare"
practice), analysed on the same samples, pooled, with the spread across networks.

The pooled statistics treat the derivatives of all M networks at all Q samples as one set
of M*Q samples (their moment states merged; see NOTE: [Parallel moment merge]), so the
pooled ``std`` includes the disagreement between networks. ``<stat>_spread`` is the
standard deviation across networks (``ddof=1``) of each network's own statistic, and
``<stat>_networks`` ``(S, R, M)`` holds them all.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from torch import nn

from ..errors import Mat2GradError
from ..loading import find_networks, is_onnx, load
from .bootstrap import check_bootstrap
from .local import local_result
from .result import SensitivityResult
from .stream import accumulate, states

__all__ = ["committee", "committee_file", "committee_models"]


def committee(
    models: Sequence[nn.Module],
    *x: Any,
    scale: str | None = None,
    ddof: int = 0,
    bootstrap: int = 0,
    conf_level: float = 0.95,
    seed: int = 0,
    chunk_size: int | None = None,
    names: Sequence[str] | None = None,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
) -> SensitivityResult:
    """Pooled local statistics of several static networks with the same inputs and
    outputs, and their spread across networks.

    Returns:
        A :class:`SensitivityResult` of kind ``"committee"``: ``mean``, ``std``, ``rms``,
        ``mean_abs`` pooled ``(S, R)``; ``<stat>_spread`` ``(S, R)``;
        ``<stat>_networks`` ``(S, R, M)``.
    """
    models = list(models)
    if len(models) < 2:
        raise Mat2GradError(
            f"a committee needs at least 2 networks to compare, found {len(models)}"
        )
    q = int(np.shape(x[0])[0]) if x else 0
    check_bootstrap(bootstrap, q, conf_level, "committee")
    sts = []
    for m in models:
        sts.append(
            accumulate(
                m,
                x,
                replicates=bootstrap,
                seed=seed,
                chunk_size=chunk_size,
                input_names=input_names,
                output_names=output_names,
            )
        )
    shapes = {(st.layout.inputs, st.layout.outputs) for st in sts}  # type: ignore[union-attr]
    if len({(len(i), len(o)) for i, o in shapes}) != 1:
        raise Mat2GradError(
            "the networks of a committee must have the same inputs and outputs; found "
            + ", ".join(f"{len(o)}x{len(i)}" for i, o in shapes)
        )
    each = [local_result(st, m, scale=scale, ddof=ddof) for st, m in zip(sts, models, strict=True)]
    pooled = local_result(states(sts), models[0], scale=scale, ddof=ddof, conf_level=conf_level)
    pooled.kind = "committee"
    for name in ("mean", "std", "rms", "mean_abs"):
        stack = np.stack([r.stats[name] for r in each], axis=-1)
        pooled.stats[f"{name}_networks"] = stack
        pooled.stats[f"{name}_spread"] = np.std(stack, axis=-1, ddof=1)
    pooled.settings["networks"] = (
        list(names) if names else [f"net{i + 1}" for i in range(len(models))]
    )
    return pooled


def committee_models(
    path: str | os.PathLike[str], loader: Callable[..., nn.Module] = load, **options: Any
) -> tuple[list[nn.Module], list[str]]:
    """Every network of a MAT-file, loaded with ``loader(path, network, **options)``, and
    their paths in the file (a committee's names)."""
    if is_onnx(path):
        raise Mat2GradError(
            f"{path}: a committee needs a MAT-file of networks; an ONNX file holds one model"
        )
    found = find_networks(path)
    broken = [f for f in found if f.spec is None]
    if broken:
        raise Mat2GradError(broken[0].error or f"{path}: network '{broken[0].path}' is unreadable")
    if not found:
        raise Mat2GradError(f"{path}: no MATLAB network found")
    return [loader(str(path), f.path, **options) for f in found], [f.path for f in found]


def committee_file(path: str | os.PathLike[str], *x: Any, **options: Any) -> SensitivityResult:
    """:func:`committee` over every network in a MAT-file (named by their paths in it)."""
    models, names = committee_models(path)
    return committee(models, *x, names=names, **options)
