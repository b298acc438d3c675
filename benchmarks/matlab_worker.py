"""Per-call cost of the MATLAB/Octave helpers, in GNU Octave: a new Python per call
(system(), mat2grad_setup('Worker', false)) against the warm worker (Octave's default).

    python benchmarks/matlab_worker.py             # 30 warm calls each
    python benchmarks/matlab_worker.py --calls 10  # shorter

One Octave process, the bundled example (fixtures/example_fitnet.mat, a 10-20-3 fitnet),
5 samples. Reported: the system() route's time per call (median of 3); the worker's first
call (starting Python, importing PyTorch, reading the network); then the median and 90th
percentile of warm calls of mat2grad_jacobian, mat2grad_predict and an objective handle
[y, g] = f(x) (mat2grad_objective); and what the MAT-files of one call cost Octave
(saving the inputs, loading the results), the price of passing data as MAT-files. The
machine's load average is printed: on a shared machine the numbers are pessimistic.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r"""
addpath('{matlab}');
file = '{example}'; S = load(file); X = S.X(:, 1:5); n = {calls};
mat2grad_setup('Worker', false);   % the worker is Octave's default: measure system() first
t = zeros(1, 3);
for k = 1:3, tic; J = mat2grad_jacobian(file, X); t(k) = toc; end
printf('system() route, jacobian      median %8.1f ms per call\n', 1e3 * median(t));
mat2grad_setup('Worker', true);
tic; J = mat2grad_jacobian(file, X); first = toc;
printf('worker first call (start)     %15.1f ms\n', 1e3 * first);
f = mat2grad_objective(file, 'Output', 1); x = X(:, 1);
names = {{'jacobian', 'predict', 'objective [y, g] = f(x)'}};
for m = 1:3
  t = zeros(1, n);
  for k = 1:n
    tic;
    switch m
      case 1, J = mat2grad_jacobian(file, X);
      case 2, Y = mat2grad_predict(file, X);
      case 3, [y, g] = f(x);
    end
    t(k) = toc;
  end
  t = sort(t);
  printf('worker warm, %-24s median %8.1f ms, p90 %8.1f ms\n', names{{m}}, 1e3 * median(t), ...
         1e3 * t(ceil(0.9 * n)));
end
folder = tempname(); mkdir(folder);
in = fullfile(folder, 'in.mat'); out = fullfile(folder, 'out.mat');
save('-v7', out, 'J', 'Y');
t = zeros(1, n);
for k = 1:n, tic; save('-v7', in, 'X'); R = load(out); t(k) = toc; end
printf('MAT-file I/O of one call      median %8.1f ms (save inputs + load a result)\n', ...
       1e3 * median(t));
delete(in); delete(out); rmdir(folder);
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=30, help="warm calls per helper")
    args = parser.parse_args(argv)
    octave = shutil.which("octave-cli")
    if octave is None:
        print("GNU Octave (octave-cli) is not installed", file=sys.stderr)
        return 1
    code = SCRIPT.format(
        matlab=(ROOT / "matlab").as_posix(),
        example=(ROOT / "fixtures" / "example_fitnet.mat").as_posix(),
        calls=args.calls,
    )
    with tempfile.TemporaryDirectory(prefix="m2g-bench-") as home:
        env = dict(
            os.environ,
            HOME=home,
            MAT2GRAD_PYTHON=sys.executable,
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        )
        print(f"load average {os.getloadavg()[0]:.2f}; Octave {_octave_version(octave)}")
        proc = subprocess.run(
            [octave, "--no-gui", "--no-history", "--norc", "--quiet", "--eval", code],
            env=env,
            cwd=home,
            capture_output=True,
            text=True,
        )
    print(proc.stdout, end="")
    if proc.returncode:
        print(proc.stderr, file=sys.stderr)
        return proc.returncode
    pattern = r"^(system\(\) route|worker warm, jacobian).*?([\d.]+) ms"
    times = dict(re.findall(pattern, proc.stdout, re.M))
    if len(times) == 2:
        ratio = float(times["system() route"]) / float(times["worker warm, jacobian"])
        print(f"jacobian: the warm worker is {ratio:.0f}x faster per call than system()")
    return 0


def _octave_version(octave: str) -> str:
    out = subprocess.run([octave, "--version"], capture_output=True, text=True).stdout
    return out.splitlines()[0].rsplit(" ", 1)[-1] if out else "?"


if __name__ == "__main__":
    sys.exit(main())
