"""An independent plain-numpy evaluator of MATLAB shallow networks, for tests only.

It is written from MATLAB's documented formulas (the transfer, processing, weight and
net-input functions' reference pages, and ``sim``'s order of evaluation) and works
directly on the raw network record as
``scipy.io.loadmat(path, squeeze_me=False, struct_as_record=True)`` returns it: a 1x1
structured array (the ``MatlabObject`` of class ``network``, or a plain struct as Octave
writes it). It deliberately imports nothing from ``mat2grad``: it is the second, independent
implementation that the module under test is compared with, and the generator of the
synthetic fixtures' expected outputs (``fixtures/generate.py``).

Shapes follow MATLAB, not PyTorch:

* static data: one ``R x Q`` matrix per input (features x samples), one ``S x Q`` per output;
* sequences: for each input a list over time steps of ``R x Q`` matrices (MATLAB's
  ``numInputs x TS`` cell array, one row of it per input); outputs likewise;
* initial states: ``Xi`` is for each input a list of ``numInputDelays`` raw input matrices
  (oldest first), ``Ai`` for each layer a list of ``numLayerDelays`` layer outputs (oldest
  first), as MATLAB's ``preparets`` makes them.

NOTE: [Delay-major tap stacking] A weight with delays ``[d1 ... dk]`` sees the stacked input
``[x(t-d1); x(t-d2); ...; x(t-dk)]`` (each block ``R`` rows), so its matrix has ``k*R``
columns in delay-major blocks.

NOTE: [Closed-loop feedback] A closed-loop NARX feeds back the output layer's activation
*before* reverse output processing (through ``LW{i,k}`` with the feedback delays); its initial
layer states are the *processed* targets.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "TRANSFER",
    "PROCESS",
    "WEIGHT",
    "NET_INPUT",
    "field",
    "resolve",
    "num",
    "text",
    "process_apply",
    "process_reverse",
    "mapminmax_gain_xoffset",
    "simulate",
    "sim",
    "preparets",
]

Array = np.ndarray

# --------------------------------------------------------------------------------------
# Reading the raw record
# --------------------------------------------------------------------------------------


def field(struct: Any, name: str, default: Any = KeyError) -> Any:
    """The value of field ``name`` of a 1x1 MATLAB struct/object as scipy returns it."""
    names = getattr(getattr(struct, "dtype", None), "names", None) or ()
    if name not in names:
        if default is KeyError:
            raise KeyError(f"field {name!r} not in {names}")
        return default
    return struct.flat[0][name]


def has(struct: Any, name: str) -> bool:
    """Whether the 1x1 struct has field ``name``."""
    return name in (getattr(getattr(struct, "dtype", None), "names", None) or ())


def is_empty(value: Any) -> bool:
    """MATLAB's ``isempty`` for what scipy returns (``None`` is a struct with no fields), and
    for mat-io's ``MatlabCanonicalEmpty`` (an unconnected slot read from a v7.3 file)."""
    if value is None or type(value).__name__ == "MatlabCanonicalEmpty":
        return True
    return isinstance(value, np.ndarray) and value.size == 0


def num(value: Any) -> Array:
    """A numeric/logical value as a 2-D float64 array (MATLAB stores whole numbers compactly)."""
    if value is None:
        return np.zeros((0, 0))
    arr = np.asarray(value, dtype=np.float64)
    return arr.reshape(1, -1) if arr.ndim < 2 else arr


def scalar(value: Any) -> float:
    """A 1x1 numeric value as a float."""
    arr = num(value)
    if arr.size != 1:
        raise ValueError(f"expected a scalar, found shape {arr.shape}")
    return float(arr.flat[0])


def text(value: Any) -> str:
    """A MATLAB char row as a Python str ('' for empty)."""
    if is_empty(value):
        return ""
    if isinstance(value, str):
        return value
    return str(np.asarray(value).flat[0])


def indices(value: Any) -> Array:
    """MATLAB 1-based index vector -> 0-based int array."""
    return num(value).astype(np.int64).ravel() - 1


def cell_list(value: Any) -> list[Any]:
    """The elements of a cell array in MATLAB's linear (column-major) order."""
    if value is None:
        return []
    return list(np.asarray(value, dtype=object).ravel(order="F"))


def resolve(variables: dict[str, Any], path: str) -> Any:
    """The value at a MATLAB-style path (``net``, ``S.net``, ``C{2}``, ``A.b{1}.c``) among the
    variables of a loaded MAT-file (1-based linear cell indices)."""
    m = re.match(r"[A-Za-z]\w*", path)
    if m is None:
        raise KeyError(path)
    value = variables[m.group(0)]
    for name, index in re.findall(r"\.(\w+)|\{(\d+)\}", path[m.end() :]):
        value = field(value, name) if name else cell_list(value)[int(index) - 1]
    return value


def cell_at(cell: Any, i: int, j: int) -> Any:
    """``cell{i+1, j+1}``."""
    return cell[i, j]


# --------------------------------------------------------------------------------------
# Transfer functions: n (S x Q) -> a (S x Q); column-wise where the function is
# --------------------------------------------------------------------------------------


def _softmax(n: Array) -> Array:
    e = np.exp(n - np.max(n, axis=0, keepdims=True))
    return e / np.sum(e, axis=0, keepdims=True)


def _radbasn(n: Array) -> Array:
    a = np.exp(-(n * n))
    return a / np.sum(a, axis=0, keepdims=True)


def _compet(n: Array) -> Array:
    a = np.zeros_like(n)
    if n.shape[0]:
        a[np.argmax(n, axis=0), np.arange(n.shape[1])] = 1.0  # first maximum on ties
    return a


def _tansig(n: Array) -> Array:
    with np.errstate(over="ignore"):
        return 2.0 / (1.0 + np.exp(-2.0 * n)) - 1.0


def _logsig(n: Array) -> Array:
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-n))


TRANSFER: dict[str, Callable[[Array], Array]] = {
    "tansig": _tansig,
    "logsig": _logsig,
    "purelin": lambda n: n.copy(),
    "poslin": lambda n: np.where(n >= 0, n, 0.0),
    "satlin": lambda n: np.clip(n, 0.0, 1.0),
    "satlins": lambda n: np.clip(n, -1.0, 1.0),
    "radbas": lambda n: np.exp(-(n * n)),
    "radbasn": _radbasn,
    "tribas": lambda n: np.where(np.abs(n) <= 1.0, 1.0 - np.abs(n), 0.0),
    "softmax": _softmax,
    "elliotsig": lambda n: n / (1.0 + np.abs(n)),
    "elliot2sig": lambda n: np.sign(n) * n * n / (1.0 + n * n),
    "hardlim": lambda n: np.where(n >= 0, 1.0, 0.0),
    "hardlims": lambda n: np.where(n >= 0, 1.0, -1.0),
    "compet": _compet,
    "netinv": lambda n: 1.0 / n,
}


# --------------------------------------------------------------------------------------
# Weight functions: (W S x R, P R x Q) -> Z S x Q
# --------------------------------------------------------------------------------------


def _dist(w: Array, p: Array) -> Array:
    d = w[:, :, None] - p[None, :, :]
    return np.sqrt(np.sum(d * d, axis=1))


def _normprod(w: Array, p: Array) -> Array:
    s = np.sum(np.abs(p), axis=0, keepdims=True)
    s = np.where(s == 0, 1.0, s)
    return w @ (p / s)


WEIGHT: dict[str, Callable[[Array, Array], Array]] = {
    "dotprod": lambda w, p: w @ p,
    "dist": _dist,
    "negdist": lambda w, p: -_dist(w, p),
    "normprod": _normprod,
    "mandist": lambda w, p: np.sum(np.abs(w[:, :, None] - p[None, :, :]), axis=1),
}


# --------------------------------------------------------------------------------------
# Net input functions: list of S x Q -> S x Q (weighted inputs in input order, then layer
# order, then the bias)
# --------------------------------------------------------------------------------------


def _netsum(z: Sequence[Array]) -> Array:
    out = np.array(z[0], dtype=np.float64, copy=True)
    for zk in z[1:]:
        out = out + zk
    return out


def _netprod(z: Sequence[Array]) -> Array:
    out = np.array(z[0], dtype=np.float64, copy=True)
    for zk in z[1:]:
        out = out * zk
    return out


NET_INPUT: dict[str, Callable[[Sequence[Array]], Array]] = {
    "netsum": _netsum,
    "netprod": _netprod,
}


# --------------------------------------------------------------------------------------
# Processing functions: x raw (R x Q) <-> y processed, per settings struct
# --------------------------------------------------------------------------------------


def mapminmax_gain_xoffset(settings: Any) -> tuple[Array, Array]:
    """``gain``/``xoffset`` from mapminmax settings; rebuilt by MATLAB's rule when absent (v7).

    Rule (``mapminmax.create``): ``xoffset = xmin``, ``gain = yrange ./ xrange``; rows with
    ``|gain| > 1e14``, non-finite or zero ``xrange`` get ``gain = 1``, ``xoffset = ymin``.
    """
    if has(settings, "gain") and has(settings, "xoffset"):
        return num(field(settings, "gain")), num(field(settings, "xoffset"))
    xmin, xmax = num(field(settings, "xmin")), num(field(settings, "xmax"))
    ymin, ymax = scalar(field(settings, "ymin")), scalar(field(settings, "ymax"))
    xrange = xmax - xmin
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = (ymax - ymin) / xrange
    fix = (np.abs(gain) > 1e14) | ~np.isfinite(xrange) | (xrange == 0) | ~np.isfinite(gain)
    gain = np.where(fix, 1.0, gain)
    xoffset = np.where(fix, ymin, xmin)
    return gain, xoffset


def mapstd_gain_xoffset(settings: Any) -> tuple[Array, Array]:
    """``gain``/``xoffset`` from mapstd settings (``gain = ystd./xstd``, ``xoffset = xmean``;
    rows with zero or non-finite ``xstd`` get ``gain = 1``, ``xoffset = ymean``)."""
    if has(settings, "gain") and has(settings, "xoffset"):
        return num(field(settings, "gain")), num(field(settings, "xoffset"))
    xmean, xstd = num(field(settings, "xmean")), num(field(settings, "xstd"))
    ymean, ystd = scalar(field(settings, "ymean")), scalar(field(settings, "ystd"))
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = ystd / xstd
    fix = (np.abs(gain) > 1e14) | ~np.isfinite(xstd) | ~np.isfinite(xmean) | (xstd == 0)
    return np.where(fix, 1.0, gain), np.where(fix, ymean, xmean)


def _mapminmax_apply(x: Array, s: Any) -> Array:
    gain, xoffset = mapminmax_gain_xoffset(s)
    return (x - xoffset) * gain + scalar(field(s, "ymin"))


def _mapminmax_reverse(y: Array, s: Any) -> Array:
    gain, xoffset = mapminmax_gain_xoffset(s)
    return (y - scalar(field(s, "ymin"))) / gain + xoffset


def _mapstd_apply(x: Array, s: Any) -> Array:
    gain, xoffset = mapstd_gain_xoffset(s)
    return (x - xoffset) * gain + scalar(field(s, "ymean"))


def _mapstd_reverse(y: Array, s: Any) -> Array:
    gain, xoffset = mapstd_gain_xoffset(s)
    return (y - scalar(field(s, "ymean"))) / gain + xoffset


def _rcr_apply(x: Array, s: Any) -> Array:
    return x[indices(field(s, "keep")), :]


def _rcr_reverse(y: Array, s: Any) -> Array:
    xrows = int(scalar(field(s, "xrows")))
    x = np.full((xrows, y.shape[1]), np.nan)
    x[indices(field(s, "keep")), :] = y
    remove = indices(field(s, "remove"))
    if remove.size:
        value = field(s, "value") if has(s, "value") else field(s, "constants")
        x[remove, :] = num(value).reshape(-1, 1)
    return x


def _pca_apply(x: Array, s: Any) -> Array:
    return num(field(s, "transform")) @ x


def _pca_reverse(y: Array, s: Any) -> Array:
    if has(s, "inverseTransform"):
        return num(field(s, "inverseTransform")) @ y
    return np.linalg.pinv(num(field(s, "transform"))) @ y


def _fixunknowns_rows(s: Any) -> tuple[Array, Array, Array]:
    """(row of y that holds each x row, the unknown x rows, the y rows of their flags)."""
    xrows = int(scalar(field(s, "xrows")))
    shift = num(field(s, "shift")).astype(np.int64).ravel()  # unknown rows above each row
    value_rows = np.arange(xrows) + shift
    unknown = indices(field(s, "unknown"))
    return value_rows, unknown, value_rows[unknown] + 1


def _fixunknowns_apply(x: Array, s: Any) -> Array:
    value_rows, unknown, flag_rows = _fixunknowns_rows(s)
    xmeans = num(field(s, "xmeans")).reshape(-1, 1)
    y = np.zeros((int(scalar(field(s, "yrows"))), x.shape[1]))
    y[value_rows, :] = np.where(np.isnan(x), xmeans, x)
    y[flag_rows, :] = (~np.isnan(x[unknown, :])).astype(np.float64)
    return y


def _fixunknowns_reverse(y: Array, s: Any) -> Array:
    value_rows, _, _ = _fixunknowns_rows(s)
    return y[value_rows, :]


PROCESS: dict[str, tuple[Callable[[Array, Any], Array], Callable[[Array, Any], Array]]] = {
    "mapminmax": (_mapminmax_apply, _mapminmax_reverse),
    "mapstd": (_mapstd_apply, _mapstd_reverse),
    "removeconstantrows": (_rcr_apply, _rcr_reverse),
    "processpca": (_pca_apply, _pca_reverse),
    "fixunknowns": (_fixunknowns_apply, _fixunknowns_reverse),
    "lvqoutputs": (lambda x, s: x.copy(), lambda y, s: y.copy()),
}


def _steps(port: Any) -> list[tuple[str, Any]]:
    """(function name, settings) pairs of an inputs{i}/outputs{i} struct, in order."""
    fcns = [text(f) for f in cell_list(field(port, "processFcns"))]
    settings = cell_list(field(port, "processSettings"))
    return list(zip(fcns, settings, strict=True))


def _no_change(settings: Any) -> bool:
    return has(settings, "no_change") and bool(scalar(field(settings, "no_change")))


def process_apply(port: Any, x: Array) -> Array:
    """Raw -> processed through every function of ``port`` (inputs{i} or outputs{i})."""
    for name, settings in _steps(port):
        if not _no_change(settings):
            x = PROCESS[name][0](x, settings)
    return x


def process_reverse(port: Any, y: Array) -> Array:
    """Processed -> raw, the functions of ``port`` reversed in reverse order."""
    for name, settings in reversed(_steps(port)):
        if not _no_change(settings):
            y = PROCESS[name][1](y, settings)
    return y


# --------------------------------------------------------------------------------------
# Simulation
# --------------------------------------------------------------------------------------


def _connect(net: Any, name: str) -> Array:
    return num(field(net, name)) != 0


def _delays(weight: Any) -> list[int]:
    return [int(d) for d in num(field(weight, "delays")).ravel()]


def layer_order(net: Any) -> list[int]:
    """Layers in topological order of the zero-delay layer connections (0-based)."""
    n_layers = int(scalar(field(net, "numLayers")))
    lc = _connect(net, "layerConnect")
    lw = field(net, "layerWeights")
    deps = {
        i: {k for k in range(n_layers) if lc[i, k] and 0 in _delays(cell_at(lw, i, k))}
        for i in range(n_layers)
    }
    order: list[int] = []
    while len(order) < n_layers:
        ready = [i for i in range(n_layers) if i not in order and deps[i] <= set(order)]
        if not ready:
            raise ValueError("Network contains a zero-delay loop")
        order.append(ready[0])
    return order


def simulate(
    net: Any,
    X: Sequence[Sequence[Array]],
    Xi: Sequence[Sequence[Array]] | None = None,
    Ai: Sequence[Sequence[Array]] | None = None,
) -> tuple[list[list[Array]], list[list[Array]], list[list[Array]]]:
    """MATLAB's ``[Y, Xf, Af] = sim(net, X, Xi, Ai)`` over a sequence.

    Args:
        net: the 1x1 network record.
        X: for each input, a list over ``TS`` time steps of raw ``R_i x Q`` matrices.
        Xi: for each input, ``numInputDelays`` raw ``R_i x Q`` matrices, oldest first
            (default zeros, as MATLAB).
        Ai: for each layer, ``numLayerDelays`` ``S_i x Q`` layer outputs, oldest first
            (default zeros).

    Returns:
        ``(Y, Xf, Af)``: for each output (layers with ``outputConnect``, in layer order) a
        list over time of raw ``S x Q`` matrices; the final input and layer delay states.
    """
    n_in = int(scalar(field(net, "numInputs")))
    n_layers = int(scalar(field(net, "numLayers")))
    n_id = int(scalar(field(net, "numInputDelays")))
    n_ld = int(scalar(field(net, "numLayerDelays")))
    inputs, layers = field(net, "inputs"), field(net, "layers")
    outputs = field(net, "outputs")
    iw_struct, lw_struct = field(net, "inputWeights"), field(net, "layerWeights")
    IW, LW, b = field(net, "IW"), field(net, "LW"), field(net, "b")
    bc, ic = _connect(net, "biasConnect").ravel(), _connect(net, "inputConnect")
    lc, oc = _connect(net, "layerConnect"), _connect(net, "outputConnect").ravel()
    if len(X) != n_in:
        raise ValueError(f"network has {n_in} inputs, {len(X)} given")
    ts = len(X[0]) if n_in else 0
    q = X[0][0].shape[1] if n_in and ts else 1
    in_ports = cell_list(inputs)
    out_ports = cell_list(outputs)

    # Raw and processed inputs at times -n_id .. ts-1 (index t + n_id).
    raw: list[list[Array]] = []
    P: list[list[Array]] = []
    for j in range(n_in):
        port = in_ports[j]
        r = int(scalar(field(port, "size")))
        init = list(Xi[j]) if Xi is not None else [np.zeros((r, q))] * n_id
        if len(init) != n_id:
            raise ValueError(f"Xi for input {j + 1} has {len(init)} steps, need {n_id}")
        raw.append([num(x) for x in [*init, *X[j]]])
        P.append([process_apply(port, x) for x in raw[j]])

    # Layer outputs at times -n_ld .. ts-1 (index t + n_ld).
    A: list[list[Array | None]] = []
    for i in range(n_layers):
        s = int(scalar(field(cell_at(layers, i, 0), "size")))
        init = list(Ai[i]) if Ai is not None else [np.zeros((s, q))] * n_ld
        if len(init) != n_ld:
            raise ValueError(f"Ai for layer {i + 1} has {len(init)} steps, need {n_ld}")
        A.append([num(a) for a in init] + [None] * ts)

    order = layer_order(net)
    for t in range(ts):
        for i in order:
            layer = cell_at(layers, i, 0)
            z: list[Array] = []
            for j in range(n_in):
                if ic[i, j]:
                    w = cell_at(iw_struct, i, j)
                    tap = np.vstack([P[j][t + n_id - d] for d in _delays(w)])
                    z.append(WEIGHT[text(field(w, "weightFcn"))](num(cell_at(IW, i, j)), tap))
            for k in range(n_layers):
                if lc[i, k]:
                    w = cell_at(lw_struct, i, k)
                    tap = np.vstack([A[k][t + n_ld - d] for d in _delays(w)])
                    z.append(WEIGHT[text(field(w, "weightFcn"))](num(cell_at(LW, i, k)), tap))
            if bc[i]:
                z.append(np.repeat(num(cell_at(b, i, 0)), q, axis=1))
            n = NET_INPUT[text(field(layer, "netInputFcn"))](z)
            A[i][t + n_ld] = TRANSFER[text(field(layer, "transferFcn"))](n)

    Y = [
        [process_reverse(out_ports[i], A[i][t + n_ld]) for t in range(ts)]
        for i in range(n_layers)
        if oc[i]
    ]
    Xf = [seq[len(seq) - n_id :] for seq in raw]
    Af = [[a for a in A[i][len(A[i]) - n_ld :] if a is not None] for i in range(n_layers)]
    return Y, Xf, Af


def sim(net: Any, X: Array | Sequence[Array]) -> Array | list[Array]:
    """MATLAB's ``Y = sim(net, X)`` for static data (one time step, ``Q`` samples).

    ``X`` is an ``R x Q`` matrix (one input) or a list of them (several inputs). Returns an
    ``S x Q`` matrix for one output, else a list of them (outputs in layer order).
    """
    xs = [X] if isinstance(X, np.ndarray) else list(X)
    Y, _, _ = simulate(net, [[num(x)] for x in xs])
    ys = [y[0] for y in Y]
    return ys[0] if len(ys) == 1 else ys


def _feedback_layer_of_input(net: Any, j: int) -> int | None:
    port = cell_list(field(net, "inputs"))[j]
    fo = field(port, "feedbackOutput", None)
    return None if is_empty(fo) else int(scalar(fo)) - 1


def preparets(
    net: Any,
    X: Sequence[Sequence[Array]],
    T: Sequence[Sequence[Array]],
) -> tuple[list[list[Array]], list[list[Array]], list[list[Array]], list[list[Array]]]:
    """MATLAB's ``[Xs, Xi, Ai, Ts] = preparets(net, X, {}, T)`` for the networks in tests.

    Args:
        X: for each *non-feedback* input (in input order), a list over time of raw matrices.
        T: for each output (layers with ``outputConnect``, in layer order), a list over time
            of raw target matrices.

    The series are shifted by ``max(numInputDelays, numLayerDelays)`` steps; open-loop
    feedback inputs receive the targets of their output; a closed-loop feedback layer's
    initial states are its *processed* targets; other initial layer states are zeros.
    INFERRED (no MATLAB to check against here): the alignment when the input and layer
    delay counts differ.
    """
    n_in = int(scalar(field(net, "numInputs")))
    n_layers = int(scalar(field(net, "numLayers")))
    n_id = int(scalar(field(net, "numInputDelays")))
    n_ld = int(scalar(field(net, "numLayerDelays")))
    oc = _connect(net, "outputConnect").ravel()
    out_layers = [i for i in range(n_layers) if oc[i]]
    out_ports = cell_list(field(net, "outputs"))
    shift = max(n_id, n_ld)

    full: list[list[Array]] = []
    it = iter(X)
    for j in range(n_in):
        fb = _feedback_layer_of_input(net, j)
        full.append(list(T[out_layers.index(fb)]) if fb is not None else list(next(it)))
    Xi = [seq[shift - n_id : shift] for seq in full]
    Xs = [seq[shift:] for seq in full]

    Ai: list[list[Array]] = []
    for i in range(n_layers):
        port = out_ports[i]
        closed = oc[i] and text(field(port, "feedbackMode", "")) == "closed"
        if closed:
            seq = T[out_layers.index(i)]
            Ai.append([process_apply(port, num(a)) for a in seq[shift - n_ld : shift]])
        else:
            s = int(scalar(field(cell_at(field(net, "layers"), i, 0), "size")))
            q = num(full[0][0]).shape[1] if full else 1
            Ai.append([np.zeros((s, q)) for _ in range(n_ld)])
    Ts = [list(seq[shift:]) for seq in T]
    return Xs, Xi, Ai, Ts
