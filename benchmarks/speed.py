"""The speed table of issue 15: mat2grad against JAX and torch.func, predict against the
Jacobian and a numpy forward pass, a many-output recurrent model, `info`'s imports, and
ONNX CNNs against torch.func on the same module (benchmarks/cnn_speed.py).

    python benchmarks/speed.py                        # the table, one thread
    python benchmarks/speed.py --baseline ../old      # the same table for another checkout
                                                      # (its package first on sys.path), in
                                                      # the same run, for before/after ratios
    python benchmarks/speed.py --quick                # N <= 1e5, the CNNs at N = 1e3
    python benchmarks/speed.py --cnn-only --cnn-n 1e4 # only the CNN rows (0: none)

Every cell runs in a fresh subprocess pinned to one CPU (``--cpu``, default the last one
this process may use), so that no library runs more threads than the others: JAX's XLA
runtime otherwise spreads its work over every core whatever ``OMP_NUM_THREADS`` says (on
2 cores it used 1.9 CPUs for model B). Times are the best of several runs. Ratios are what
count on a shared machine: compare only numbers printed by one run. JAX rows need
``pip install -c constraints.txt jax`` (the optional ``bench`` extra); without it they are
skipped, saying so. Models as in benchmarks/jacobian.py: A = 10-20-3 (mapminmax, tansig,
purelin), B = 64-256-256-10; the recurrent model is an ONNX LSTM over 120 steps of 5
features with a 30 x 5 forecast (150 outputs), the graph tf2onnx writes for a Keras LSTM
forecaster, loaded by mat2grad.load (written by ``_forecaster_onnx``). The
CNN rows (a corpus MNIST CNN, skipped without the corpus, and a fixture CNN) take about an
hour at N = 1e4 in float64 on one CPU: see benchmarks/cnn_speed.py.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))
from timing import best, peak_mb  # noqa: E402  (beside this file)

ROOT = HERE.parents[1]
MODELS = {
    "A": dict(input_sizes=(10,), layers=((20, "tansig"), (3, "purelin"))),
    "B": dict(input_sizes=(64,), layers=((256, "tansig"), (256, "tansig"), (10, "purelin"))),
}
CONFIGS = [("A", 10**4), ("A", 10**5), ("A", 10**6), ("B", 10**4)]
VMAP_CAP = 10**5  # torch.func's vmap(jacrev) materialises the whole batch's graph


def _network(model: str):
    try:
        from tests.support.records import network
    except ModuleNotFoundError:  # a --baseline tree from before the tests were reorganised
        from tests.records import network

    return network(**MODELS[model], seed=0, scale=1.0 if model == "A" else 0.1)


def worker_dense(model: str, n: int) -> dict:
    import numpy as np
    import torch

    import mat2grad

    net = _network(model)
    x = torch.from_numpy(np.random.default_rng(0).uniform(-2, 2, (n, net.input_sizes[0])))
    mat2grad.jacobian(net, x[:100])
    mat2grad.predict(net, x[:100])
    t: dict = {}
    before = peak_mb()
    t["predict"], y = best(lambda: mat2grad.predict(net, x))
    t["predict_extra_mb"] = peak_mb() - before - y.numel() * 8 / 2**20
    t["jacobian"], _ = best(lambda: mat2grad.jacobian(net, x))
    t["numpy forward"], yn = _numpy_forward(net, x.numpy())
    t["numpy_vs_predict"] = float(np.abs(yn - y.numpy()).max() / np.abs(yn).max())
    if n <= VMAP_CAP:
        jr = torch.func.vmap(torch.func.jacrev(net))
        t["vmap(jacrev)"], _ = best(lambda: jr(x))
    t.update(_jax(net, x.numpy()))
    return t


def _numpy_forward(net, xn):
    """The network's formulas in numpy, whole batch (mapminmax, tansig layers, purelin,
    reverse mapminmax)."""
    import numpy as np

    spec = net.spec
    s_in = spec.inputs[0].steps[0].settings
    s_out = spec.outputs[0].steps[0].settings
    ws = [w.value for w in spec.input_weights + spec.layer_weights]
    bs = [np.ravel(b) for b in spec.biases]

    def run():
        h = (xn - np.ravel(s_in["xoffset"])) * np.ravel(s_in["gain"]) + s_in["ymin"]
        for k, (w, b) in enumerate(zip(ws, bs, strict=True)):
            h = h @ w.T + b
            if k < len(ws) - 1:
                h = np.tanh(h)
        return (h - s_out["ymin"]) / np.ravel(s_out["gain"]) + np.ravel(s_out["xoffset"])

    return best(run)


def _jax(net, xn) -> dict:
    try:
        import jax
    except ImportError:
        return {}
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    spec = net.spec
    s_in = spec.inputs[0].steps[0].settings
    s_out = spec.outputs[0].steps[0].settings
    ws = [jnp.asarray(w.value) for w in spec.input_weights + spec.layer_weights]
    bs = [jnp.ravel(jnp.asarray(b)) for b in spec.biases]
    xo, g_in, y_in = (jnp.ravel(jnp.asarray(s_in[k])) for k in ("xoffset", "gain", "ymin"))
    xo_o, g_o, y_o = (jnp.ravel(jnp.asarray(s_out[k])) for k in ("xoffset", "gain", "ymin"))

    def f(x):
        h = (x - xo) * g_in + y_in
        for k, (w, b) in enumerate(zip(ws, bs, strict=True)):
            h = w @ h + b
            if k < len(ws) - 1:
                h = jnp.tanh(h)
        return (h - y_o) / g_o + xo_o

    jac = jax.jit(jax.vmap(jax.jacrev(f)))
    xj = jnp.asarray(xn)
    jac(xj).block_until_ready()  # compile outside the timing
    return {"jax": best(lambda: jac(xj).block_until_ready())[0]}


def _forecaster_onnx(path: Path, steps: int = 120, features: int = 5, hidden: int = 32) -> None:
    """The recurrent row's network as tf2onnx writes a Keras LSTM forecaster: x (N, 120, 5)
    -> Transpose -> ONNX LSTM (hidden 32) -> its last state -> Gemm to 150 -> (N, 30, 5)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    g = np.random.default_rng(0)
    out = (30, 5)
    weights = {
        "W": g.normal(0, 0.3, (1, 4 * hidden, features)),
        "R": g.normal(0, 0.3, (1, 4 * hidden, hidden)),
        "B": g.normal(0, 0.1, (1, 8 * hidden)),
        "Wd": g.normal(0, 0.3, (out[0] * out[1], hidden)),
        "bd": g.normal(0, 0.1, out[0] * out[1]),
        "axis": np.array([0], np.int64),
        "shape": np.array([-1, *out], np.int64),
    }
    nodes = [
        helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2]),
        helper.make_node("LSTM", ["xt", "W", "R", "B"], ["Y", "Y_h"], hidden_size=hidden),
        helper.make_node("Squeeze", ["Y_h", "axis"], ["h"]),
        helper.make_node("Gemm", ["h", "Wd", "bd"], ["g"], transB=1),
        helper.make_node("Reshape", ["g", "shape"], ["y"]),
    ]
    f = TensorProto.FLOAT
    graph = helper.make_graph(
        nodes,
        "forecaster",
        [helper.make_tensor_value_info("x", f, ["N", steps, features])],
        [helper.make_tensor_value_info("y", f, ["N", *out])],
        [
            numpy_helper.from_array(v if v.dtype == np.int64 else v.astype(np.float32), k)
            for k, v in weights.items()
        ],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


def worker_lstm() -> dict:
    import tempfile

    import numpy as np
    import torch

    import mat2grad

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "forecaster.onnx"
        _forecaster_onnx(path)
        model = mat2grad.load(str(path), dtype=torch.float64, check=False)
    x = torch.from_numpy(np.random.default_rng(1).uniform(0, 1, (1, 120, 5)))
    mat2grad.predict(model, x)
    t = {"forward": best(lambda: mat2grad.predict(model, x))[0]}
    # the first call measures which way of batching the 150 output rows is fastest; later
    # calls on the model reuse the choice; a loop of calls (an optimiser's) measures again,
    # with the vmap way, once the process has spent 2.4 s on such rows
    start = time.perf_counter()
    mat2grad.jacobian(model, x, mode="rev")
    t["first jacobian"] = time.perf_counter() - start
    t["jacobian"], _ = best(lambda: mat2grad.jacobian(model, x, mode="rev"), repeats=5)
    start = time.perf_counter()
    while time.perf_counter() - start < 4.0:
        mat2grad.jacobian(model, x, mode="rev")
    t["jacobian in a loop"], _ = best(lambda: mat2grad.jacobian(model, x, mode="rev"), repeats=5)
    return t


def worker_info(repeats: int = 5) -> dict:
    """`mat2grad info` on a MAT-file as a user runs it, `python -m mat2grad info net.mat` in a
    fresh interpreter: the best wall time of `repeats` runs; the same for `python -c 'import
    mat2grad'`; and whether `info` imports torch. The subprocesses inherit this worker's
    environment, so they import the checkout `_spawn` put first on PYTHONPATH (the
    baseline's, with --baseline), which `package` names."""
    import tempfile

    try:
        from tests.support.records import network_record, save_network
    except ModuleNotFoundError:  # a --baseline tree from before the tests were reorganised
        from tests.records import network_record
        from tests.test_cli_gradients import _save_network as save_network

    def best(*args: str) -> float | str:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            out = subprocess.run([sys.executable, *args], capture_output=True, text=True)
            times.append(time.perf_counter() - start)
            if out.returncode != 0:
                return (out.stderr.strip().splitlines() or ["failed"])[-1]
        return min(times)

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "net.mat"
        save_network(path, network_record(**MODELS["A"], seed=0))
        info = best("-m", "mat2grad", "info", str(path))
        imports = best("-c", "import mat2grad")
        code = (
            "import sys; import mat2grad; from mat2grad.cli import main; "
            f"main(['info', {str(path)!r}]); "
            "print('TORCH', 'torch' in sys.modules, mat2grad.__file__)"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    last = out.stdout.strip().splitlines()[-1].split() if out.returncode == 0 else []
    if len(last) != 3 or isinstance(info, str) or isinstance(imports, str):
        return {"error": [info, imports, *out.stderr.strip().splitlines()[-1:]]}
    return {
        "imports_torch": last[1] == "True",
        "seconds": info,
        "import_seconds": imports,
        "package": str(Path(last[2]).parent),
    }


def _env(tree: str | None) -> dict:
    paths = [tree, str(ROOT)] if tree else [str(ROOT)]
    return dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(paths),
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
    )


#: the CPU every worker is pinned to (set by main)
CPU = [max(os.sched_getaffinity(0))]


def _spawn(tree: str | None, *args: str) -> dict:
    cmd = [sys.executable, str(HERE), "--worker", "--cpu", str(CPU[0]), *args]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=tree or ROOT, env=_env(tree))
    if out.returncode < 0:  # no traceback to show: say which signal ended it
        return {"error": [f"the worker was killed by signal {-out.returncode}"]}
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _ratio(t: dict, a: str, b: str) -> str:
    return f"{t[a] / t[b]:.2f}" if a in t and b in t else "-"


def _table(tree: str | None, configs: list, cnn_n: int, cnn_only: bool) -> None:
    print(f"tree: {tree or ROOT}")
    if not cnn_only:
        _dense_table(tree, configs)
    if cnn_n > 0:
        from cnn_speed import cnn_table  # beside this file

        cnn_table(lambda *args: _spawn(tree, *args), cnn_n)


def _dense_table(tree: str | None, configs: list) -> None:
    head = ("", "predict", "jacobian", "/ JAX", "/ vmap(jacrev)", "jac/predict", "predict/numpy")
    print("  " + "".join(h.rjust(15) for h in head) + "   predict peak above x, y")
    for model, n in configs:
        t = _spawn(tree, "--kind", "dense", "--model", model, "--n", str(n))
        if "error" in t:
            print(f"  {model} N={n:.0e}: failed: {t['error']}")
            continue
        cells = [
            f"{model} N={n:.0e}",
            f"{t['predict'] * 1e3:.1f} ms",
            f"{t['jacobian'] * 1e3:.1f} ms",
            _ratio(t, "jacobian", "jax"),
            _ratio(t, "jacobian", "vmap(jacrev)"),
            _ratio(t, "jacobian", "predict"),
            _ratio(t, "predict", "numpy forward"),
        ]
        print("  " + "".join(c.rjust(15) for c in cells) + f"   {t['predict_extra_mb']:.0f} MB")
    t = _spawn(tree, "--kind", "lstm")
    if "error" in t:
        print(f"  ONNX LSTM 120x5 -> 30x5: failed: {t['error']}")
    else:
        print(
            f"  ONNX LSTM 120x5 -> 30x5, one sample: jacobian {t['jacobian'] * 1e3:.0f} ms, "
            f"forward {t['forward'] * 1e3:.1f} ms, "
            f"ratio {t['jacobian'] / t['forward']:.0f} (goal <= 20)"
            + (
                f"; the first call, which measures how to batch the rows, "
                f"{t['first jacobian'] * 1e3:.0f} ms; after 4 s of calls in a loop: jacobian "
                f"{t['jacobian in a loop'] * 1e3:.0f} ms, ratio "
                f"{t['jacobian in a loop'] / t['forward']:.0f}"
                if "jacobian in a loop" in t
                else ""
            )
        )
    info = _spawn(tree, "--kind", "info")
    if "error" in info:
        print(f"  mat2grad info on a .mat file: failed: {info['error']}")
    else:
        print(
            f"  python -m mat2grad info net.mat: {info['seconds']:.2f} s, imports torch: "
            f"{'yes' if info['imports_torch'] else 'no'}; python -c 'import mat2grad': "
            f"{info['import_seconds']:.2f} s (best of 5 each; {info['package']})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N <= 1e5, the CNNs at N = 1e3")
    parser.add_argument("--cnn-n", type=float, help="samples for the CNN rows (0: none)")
    parser.add_argument("--cnn-only", action="store_true", help="only the CNN rows")
    parser.add_argument("--baseline", help="another checkout to measure in the same run")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--kind", default="dense", help=argparse.SUPPRESS)
    parser.add_argument("--model", default="A", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=float, default=1e4, help=argparse.SUPPRESS)
    parser.add_argument("--cpu", type=int, default=CPU[0], help="the CPU to pin workers to")
    args = parser.parse_args()
    CPU[0] = args.cpu
    if args.worker:
        os.sched_setaffinity(0, {args.cpu})
        import torch

        torch.set_num_threads(1)
        if args.kind == "dense":
            res = worker_dense(args.model, int(args.n))
        elif args.kind == "lstm":
            res = worker_lstm()
        elif args.kind in ("cnn", "cnn-predict"):
            import cnn_speed  # beside this file

            work = cnn_speed.worker_cnn if args.kind == "cnn" else cnn_speed.worker_cnn_predict
            res = work(args.model, int(args.n))
        else:
            res = worker_info()
        print(json.dumps(res))
        return
    try:
        import jax  # noqa: F401

        have_jax = True
    except ImportError:
        have_jax = False
    loads = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"load average at start: {loads}; 1 thread, every worker pinned to CPU {args.cpu}")
    if not have_jax:
        print("JAX is not installed: its column is skipped (pip install -c constraints.txt jax)")
    configs = [c for c in CONFIGS if not args.quick or c[1] <= 10**5]
    trees = [args.baseline, None] if args.baseline else [None]
    cnn_n = int(args.cnn_n if args.cnn_n is not None else 1e3 if args.quick else 1e4)
    for tree in trees:
        _table(str(Path(tree).resolve()) if tree else None, configs, cnn_n, args.cnn_only)
    print(f"load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
