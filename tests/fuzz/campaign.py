"""A fuzz campaign: which fixtures, which mutations, in what order (all from one seed)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .mutate_mat import mutate_mat
from .mutate_onnx import mutate_onnx
from .pool import OUTCOMES, Result, WorkerPool

__all__ = ["Case", "cases", "run_campaign", "format_table", "FIXTURES"]

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
BAD = ("other", "crash", "timeout", "memory")


@dataclass(frozen=True)
class Case:
    kind: str  # "mat" or "onnx"
    index: int
    fixture: str
    mutation: str

    def __str__(self) -> str:
        return f"{self.kind}#{self.index} {self.fixture} ({self.mutation})"


def _fixture_bytes(kind: str) -> list[tuple[str, bytes]]:
    pattern = "*.mat" if kind == "mat" else "onnx/*.onnx"
    return [(p.name, p.read_bytes()) for p in sorted(FIXTURES.glob(pattern))]


def cases(kind: str, count: int, seed: int) -> Iterator[tuple[Case, str, bytes]]:
    """``count`` mutated files of ``kind``; case ``k`` depends only on (seed, kind, k)."""
    originals = _fixture_bytes(kind)
    mutate = mutate_mat if kind == "mat" else mutate_onnx
    for k in range(count):
        rng = random.Random(f"{seed}:{kind}:{k}")
        name, data = rng.choice(originals)
        mutation, out = mutate(data, rng)
        yield Case(kind, k, name, mutation), "." + kind, out


def run_campaign(
    mat: int, onnx: int, seed: int, workers: int = 2, timeout: float = 10.0,
    memory: int = 2 << 30, save: Path | None = None, progress=None,
) -> tuple[dict[str, dict[str, int]], list[Result]]:  # fmt: skip
    """Run the cases; return ``{kind: {outcome: count}}`` and the results that are bad."""
    table = {kind: dict.fromkeys(OUTCOMES, 0) for kind in ("mat", "onnx")}
    bad: list[Result] = []
    pool = WorkerPool(workers=workers, timeout=timeout, memory=memory)

    def all_cases():
        yield from cases("mat", mat, seed)
        yield from cases("onnx", onnx, seed)

    data_of: dict[Case, bytes] = {}

    def remembered():
        for case, suffix, data in all_cases():
            if save is not None:
                data_of[case] = data
            yield case, suffix, data

    for n, result in enumerate(pool.run(remembered()), 1):
        table[result.case.kind][result.outcome] += 1
        data = data_of.pop(result.case, None)
        if result.outcome in BAD:
            bad.append(result)
            if save is not None and data is not None:
                save.mkdir(parents=True, exist_ok=True)
                case = result.case
                (save / f"{case.kind}{case.index}_{result.outcome}.{case.kind}").write_bytes(data)
        if progress is not None:
            progress(n, table)
    return table, bad


def format_table(table: dict[str, dict[str, int]]) -> str:
    head = f"{'':6}" + "".join(f"{o:>16}" for o in OUTCOMES) + f"{'total':>10}"
    rows = [head]
    for kind, counts in table.items():
        cells = "".join(f"{counts[o]:>16}" for o in OUTCOMES)
        rows.append(f"{kind:6}{cells}{sum(counts.values()):>10}")
    return "\n".join(rows)
