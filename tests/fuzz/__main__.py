"""``python -m tests.fuzz --mat N --onnx M --seed S``: a fuzz campaign with its outcome table.

Exit status 1 when any case crashed, timed out, ran out of memory or raised an exception
other than Mat2GradError (each listed with its detail).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .campaign import format_table, run_campaign


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__)
    parser.add_argument("--mat", type=int, default=1000, help="mutated MAT-files")
    parser.add_argument("--onnx", type=int, default=200, help="mutated ONNX files")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per case")
    parser.add_argument("--memory", type=float, default=2.0, help="GiB of address space")
    parser.add_argument("--save", type=Path, help="folder for the files of bad cases")
    parser.add_argument("--every", type=int, default=1000, help="print the table every N")
    args = parser.parse_args(argv)
    start = time.monotonic()

    def progress(n, table):
        if n % args.every == 0:
            print(f"[{n} cases, {time.monotonic() - start:.0f} s]\n{format_table(table)}",
                  flush=True)  # fmt: skip

    table, bad = run_campaign(
        args.mat, args.onnx, args.seed, workers=args.workers, timeout=args.timeout,
        memory=int(args.memory * (1 << 30)), save=args.save, progress=progress,
    )  # fmt: skip
    print(f"seed {args.seed}, {time.monotonic() - start:.0f} s\n{format_table(table)}")
    for result in bad:
        print(f"\n{result.outcome}: {result.case}\n  {result.detail.strip()}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
