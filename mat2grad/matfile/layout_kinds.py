"""MATLAB layouts of ONNX models' inputs and outputs, by layout kind (features, image,
volume, sequence, generic): batch-first arrays and Jacobians <-> MATLAB arrays (see NOTE:
[MATLAB layouts for ONNX models])."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import Mat2GradError
from .layout import SampleBlock

__all__ = [
    "MATLAB_LAYOUTS",
    "matlab_to_batch",
    "batch_to_matlab",
    "jacobian_to_matlab",
    "matlab_block",
    "batch_to_matlab_samples",
    "matlab_element_order",
    "with_ndim",
]

# NOTE: [MATLAB layouts for ONNX models]
# The Python API is batch-first, in the ONNX file's own axis order: an input of per-sample
# shape ``(C, H, W)`` is an array ``(N, C, H, W)``. A MATLAB user holds the same data
# MATLAB's way; ``exportONNXNetwork`` permuted the *weights* so that the ONNX graph takes
# ONNX order, and never inserts a Transpose at the input. One table row per layout kind:
#
#   kind      ONNX batch-first     MATLAB array       MATLAB per-sample     where
#   features  (N, C)               C x N              C                     featureInputLayer, MLPs
#   image     (N, C, H, W)         H x W x C x N      H x W x C             imageInputLayer
#   volume    (N, C, D, H, W)      H x W x D x C x N  H x W x D x C         image3dInputLayer
#   sequence  (N, T, C)            C x N x T          C x T                 sequenceInputLayer
#   generic   (N, d1, ..., dk)     d1 x ... x dk x N  d1 x ... x dk         anything else
#
# * ``features`` also covers per-sample shapes with singleton axes, such as the
#   ``[1, 1, 1, n]`` inputs of MATLAB's old exporters (``imageInputLayer([1 n 1])``, the usual
#   way to export an MLP before featureInputLayer): the user holds ``n x N``; the image form
#   ``1 x n x 1 x N`` is accepted too.
# * ``sequence`` is MATLAB's ``CBT`` order: the batch is the *middle* axis. The ONNX graph may
#   be time-major (``[T, N, C]``, the LSTM default); the model's batch-first API already moved
#   the batch to the front, so the per-sample shape is ``(T, C)`` either way.
# * MATLAB drops trailing singleton dimensions (one image is ``H x W x C``, one sample of
#   features ``C x 1``): missing trailing dimensions are read as 1.
#
# Jacobians. For output j and input k of sample n, MATLAB gets ``J`` of size
# ``S x R x N`` with S = numel of one output sample and R = numel of one input sample, both
# flattened in MATLAB's column-major order *of the MATLAB per-sample array*. For an image
# input, ``reshape(J(s, :, n), H, W, C)`` is the gradient image of output s for sample n:
#
#     J = ...;                                % S x (H*W*C) x N from mat2grad
#     G = reshape(J(3, :, 1), 28, 28, 1);     % d output 3 / d pixel, sample 1
#     imagesc(G); axis image; colorbar
#
# and ``J(s, :, n)`` for a ``features`` input is the gradient row ``dy_s/dx`` as usual.

# kind -> (per-sample rank, or None for any; permutation from batch-first ONNX axes to the
# MATLAB array's axes, or None for "batch last, same order")
_MATLAB_LAYOUTS: dict[str, tuple[int | None, tuple[int, ...] | None]] = {
    "features": (1, (1, 0)),
    "image": (3, (2, 3, 1, 0)),
    "volume": (4, (3, 4, 2, 1, 0)),
    "sequence": (2, (2, 0, 1)),
    "generic": (None, None),
}

#: The layout kinds :func:`matlab_to_batch` and :func:`batch_to_matlab` understand.
MATLAB_LAYOUTS = tuple(_MATLAB_LAYOUTS)


def _layout_row(layout: str) -> tuple[int | None, tuple[int, ...] | None]:
    if layout not in _MATLAB_LAYOUTS:
        raise Mat2GradError(
            f"layout '{layout}' is not a MATLAB layout kind (supported: "
            f"{', '.join(MATLAB_LAYOUTS)})"
        )
    return _MATLAB_LAYOUTS[layout]


def _full_perm(layout: str, sample_rank: int) -> tuple[int, ...]:
    """Permutation taking a batch-first array to the MATLAB array's axis order."""
    rank, perm = _layout_row(layout)
    if perm is None:
        return tuple(range(1, sample_rank + 1)) + (0,)
    return perm


def with_ndim(array: np.ndarray, ndim: int) -> np.ndarray | None:
    """``array`` with exactly ``ndim`` dimensions, as MATLAB sizes it: missing trailing
    dimensions are 1 (MATLAB drops trailing singletons), extra trailing singletons are
    dropped; ``None`` when an extra trailing dimension is not 1."""
    if array.ndim > ndim:
        if any(d != 1 for d in array.shape[ndim:]):
            return None
        array = array.reshape(array.shape[:ndim])
    return array.reshape(array.shape + (1,) * (ndim - array.ndim))


def _single_axis_shape(shape: tuple[int, ...], layout: str) -> None:
    if sum(d != 1 for d in shape) > 1:
        raise Mat2GradError(
            f"layout '{layout}' needs one non-singleton axis per sample, but the model's "
            f"per-sample shape is {shape}; use layout 'generic' or 'image'"
        )


def matlab_to_batch(array: Any, layout: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """A MATLAB-layout array -> batch-first ONNX layout ``(N, *shape)``.

    Args:
        array: the MATLAB array (``C x N``, ``H x W x C x N``, ``C x N x T``, ...; see NOTE:
            [MATLAB layouts for ONNX models]); trailing singleton dimensions may be missing.
        layout: the layout kind (``model.input_layouts[k]``).
        shape: the model's per-sample shape (``model.input_shapes[k]``); when given, the
            result is reshaped to ``(N, *shape)`` (``features`` into singleton axes such as
            ``(1, 1, n)``) and checked, with ``None`` entries matching any size.

    Returns:
        a new C-contiguous array ``(N, ...)``, dtype kept.

    Raises:
        Mat2GradError: the array does not fit the layout or the shape.

    Example:
        >>> matlab_to_batch(np.zeros((28, 28, 1, 5)), "image").shape
        (5, 1, 28, 28)
    """
    x = np.asarray(array)
    rank, _ = _layout_row(layout)
    if layout == "features" and x.ndim > 2 and shape is not None and len(shape) == 3:
        layout, rank = "image", 3  # the H x W x C x N form of an old feature input
    if rank is None:
        rank = len(shape) if shape is not None else max(x.ndim - 1, 1)
    full = rank + 1
    fitted = with_ndim(x, full)
    if fitted is None:
        raise Mat2GradError(
            f"a MATLAB '{layout}' array has {full} dimensions, got an array of size "
            f"{'x'.join(map(str, x.shape))}"
        )
    x = fitted
    perm = _full_perm(layout, rank)
    out = np.ascontiguousarray(np.transpose(x, np.argsort(perm)))
    if shape is not None:
        shape = tuple(shape)
        if layout == "features" and len(shape) != 1:
            _single_axis_shape(tuple(1 if d is None else d for d in shape), layout)
            known = [d for d in shape if d is not None]
            if len(known) == len(shape) and int(np.prod(known)) == out.shape[1]:
                out = out.reshape((out.shape[0],) + shape)
        if out.ndim != len(shape) + 1 or any(
            d is not None and d != g for d, g in zip(shape, out.shape[1:], strict=True)
        ):
            want = "x".join("?" if d is None else str(d) for d in shape)
            raise Mat2GradError(
                f"a MATLAB '{layout}' array of size {'x'.join(map(str, np.shape(array)))} "
                f"gives samples of shape {out.shape[1:]}, but the model takes {want}"
            )
    return out


def batch_to_matlab(array: Any, layout: str) -> np.ndarray:
    """A batch-first ONNX-layout array ``(N, ...)`` -> the MATLAB-layout array.

    ``features`` outputs with singleton axes per sample (``(N, 1, K)``, ``(N, K, 1, 1)``)
    become ``K x N``. The inverse of :func:`matlab_to_batch`.

    Example:
        >>> batch_to_matlab(np.zeros((5, 1, 28, 28)), "image").shape
        (28, 28, 1, 5)
    """
    x = np.asarray(array)
    if x.ndim < 1:
        raise Mat2GradError("batch_to_matlab needs a batch-first array, got a scalar")
    rank, _ = _layout_row(layout)
    if layout == "features":
        _single_axis_shape(x.shape[1:], layout)
        x = x.reshape(x.shape[0], -1)
    elif rank is not None and x.ndim != rank + 1:
        raise Mat2GradError(
            f"a batch-first '{layout}' array has {rank + 1} dimensions, got shape {x.shape}"
        )
    return np.ascontiguousarray(np.transpose(x, _full_perm(layout, x.ndim - 1)))


def _sample_perm(layout: str, sample_rank: int) -> tuple[int, ...]:
    """Permutation of one sample's ONNX axes into the MATLAB per-sample array's axes."""
    full = _full_perm(layout, sample_rank)
    batch_pos = full.index(0)
    return tuple(a - 1 for k, a in enumerate(full) if k != batch_pos)


def jacobian_to_matlab(
    jac: Any, out_layout: str, in_layout: str, out_shape: tuple[int, ...]
) -> np.ndarray:
    """Batch-first Jacobian ``(N, *out_sample, *in_sample)`` -> MATLAB ``S x R x N``.

    S and R count the elements of one output and one input sample, each flattened in
    MATLAB's column-major order of its MATLAB per-sample array (``H x W x C`` for an image),
    so ``reshape(J(s, :, n), H, W, C)`` is the gradient image (see NOTE: [MATLAB layouts
    for ONNX models]).

    Args:
        jac: the Jacobian, batch-first.
        out_layout, in_layout: layout kinds of the output and the input.
        out_shape: the output's per-sample shape (splits the Jacobian's axes).

    Example:
        >>> jacobian_to_matlab(np.zeros((5, 10, 1, 28, 28)), "features", "image", (10,)).shape
        (10, 784, 5)
    """
    j = np.asarray(jac)
    n_out = len(out_shape)
    n_in = j.ndim - 1 - n_out
    if n_in < 0:
        raise Mat2GradError(f"a Jacobian of shape {j.shape} cannot have outputs {out_shape}")
    out_dims, in_dims = j.shape[1 : 1 + n_out], j.shape[1 + n_out :]
    if out_layout == "features":
        _single_axis_shape(out_dims, out_layout)
        j = j.reshape((j.shape[0], int(np.prod(out_dims, dtype=np.int64))) + in_dims)
        out_dims, n_out = j.shape[1:2], 1
    if in_layout == "features":
        _single_axis_shape(in_dims, in_layout)
        j = j.reshape(j.shape[: 1 + n_out] + (int(np.prod(in_dims, dtype=np.int64)),))
        in_dims, n_in = j.shape[1 + n_out :], 1
    for layout, rank in ((out_layout, n_out), (in_layout, n_in)):
        want, _ = _layout_row(layout)
        if want is not None and want != rank:
            raise Mat2GradError(
                f"a '{layout}' sample has {want} axes, but the Jacobian has {rank} for it"
            )
    po = _sample_perm(out_layout, n_out)
    pi = _sample_perm(in_layout, n_in)
    # MATLAB per-sample order, then reversed so that a C-order reshape is column-major
    axes = (0,) + tuple(1 + a for a in reversed(po)) + tuple(1 + n_out + a for a in reversed(pi))
    j = np.transpose(j, axes)
    s = int(np.prod(out_dims, dtype=np.int64))
    r = int(np.prod(in_dims, dtype=np.int64))
    j = j.reshape(j.shape[0], s, r)
    return np.ascontiguousarray(np.moveaxis(j, 0, -1))


def matlab_block(shape: Sequence[int], layout: str) -> SampleBlock:
    """Where one batch-first sample of per-sample ``shape`` sits in its MATLAB array: the
    MATLAB per-sample dimensions and the axis of the sample index, for :class:`SampleWriter`
    (see NOTE: [MATLAB layouts for ONNX models]).

    Example:
        >>> matlab_block((1, 28, 28), "image")
        SampleBlock(shape=(28, 28, 1), axis=3)
        >>> matlab_block((5, 3), "sequence")   # C x N x T
        SampleBlock(shape=(3, 5), axis=1)
    """
    shape = tuple(int(d) for d in shape)
    if layout == "features":
        _single_axis_shape(shape, layout)
        return SampleBlock((math.prod(shape),), 1)
    rank, _ = _layout_row(layout)
    if rank is not None and len(shape) != rank:
        raise Mat2GradError(f"a '{layout}' sample has {rank} axes, got the shape {shape}")
    perm = _full_perm(layout, len(shape))
    full = (1, *shape)
    axis = perm.index(0)
    return SampleBlock(tuple(full[a] for a in perm if a != 0), axis)


def batch_to_matlab_samples(array: Any, layout: str) -> np.ndarray:
    """A batch-first ONNX-layout chunk ``(c, ...)`` -> ``(c, *matlab_block(...).shape)``:
    each sample in its MATLAB per-sample axis order, the batch still first (what
    :class:`SampleWriter` takes for a :class:`SampleBlock`)."""
    x = np.asarray(array)
    block = matlab_block(x.shape[1:], layout)
    return np.moveaxis(batch_to_matlab(x, layout), block.axis, 0)


def matlab_element_order(shape: Sequence[int], layout: str) -> np.ndarray:
    """For each element of one sample in MATLAB's column-major order of its MATLAB
    per-sample array, its flat index in the batch-first sample (C order): element ``k``
    (0-based) of ``X(:, n)``-style flattening is ``x[n].reshape(-1)[order[k]]``."""
    shape = tuple(int(d) for d in shape)
    idx = np.arange(math.prod(shape)).reshape((1, *shape))
    return batch_to_matlab_samples(idx, layout)[0].reshape(-1, order="F")
