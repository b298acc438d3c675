"""The package's shape, checked from its source: module size, where MATLAB layout lives, no
import cycles, imports only downwards through the layers, and a package that speaks of
itself only.

Each check collects every violation and fails with the whole list, so that one run shows
all there is to fix.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mat2grad"
NAME = "mat2grad"

#: the most lines a module may have
MAX_LINES = 450

#: code (strings and comments left out) that reshapes data the way MATLAB lays it out
LAYOUT = re.compile(r"\.T\b|order\s*=\s*[\"']F|moveaxis|\.permute\(|swapaxes|\.mT\b")

#: the comment that marks such a line as something else, with its reason
NOT_LAYOUT = re.compile(r"#\s*not MATLAB layout:\s*\S")

#: Each top-level unit of the package and its layer: a module may import units of its own
#: layer or below, never above. The package's ``__init__`` (the public API) sits above all.
RANKS = {
    "errors": 0,
    "_version": 0,
    "contract": 0,
    "arrays": 0,  # tensors or array-likes as numpy, without importing torch
    "kernels": 0,  # dense products and tanh by numpy or torch, whichever is faster here
    "matfile": 1,
    "shallow": 2,
    "onnx": 2,
    "finding": 3,  # networks found in files, parsed without torch
    "budget": 3,
    "predict": 3,
    "autodiff": 4,
    "performance": 4,
    "dynamic": 4,
    "sensitivity": 5,
    "export": 5,
    "dask": 5,
    "loading": 5,
    "info": 5,
    "commands": 6,
    "worker": 6,  # runs command lines it is handed; the CLI starts it
    "cli": 7,
    "matlab_api": 7,
    "__main__": 7,
}
API_RANK = 8  # ``mat2grad`` itself

#: citations of files that are not part of the repository
FOREIGN = re.compile(r"research/|DESIGN\.md|STYLE\.md")


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (a package's
    ``__init__`` named as the package)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _is_package(module: str) -> bool:
    return MODULES[module].name == "__init__.py"


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` that runs (function bodies included), leaving out the bodies
    of ``if TYPE_CHECKING:``, which only type checkers read."""
    found = []
    todo = [tree]
    while todo:
        node = todo.pop()
        found.append(node)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return found


def _imports(module: str) -> set[str]:
    """The package's modules that ``module`` imports anywhere in its body (function-local
    imports included), relative imports resolved."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    base = module.split(".") if _is_package(module) else module.split(".")[:-1]
    targets: set[str] = set()
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - (node.level - 1)]
                parent = ".".join(anchor + ([node.module] if node.module else []))
            else:
                parent = node.module or ""
            for alias in node.names:
                child = f"{parent}.{alias.name}"
                targets.add(child if child in MODULES else parent)
    found = set()
    for target in targets:
        # `import mat2grad.a.b` names a.b; anything below a module is that module
        while target and target not in MODULES:
            target = target.rpartition(".")[0]
        if target and target.split(".")[0] == NAME:
            found.add(target)
    found.discard(module)
    return found


GRAPH = {module: _imports(module) for module in MODULES}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else NAME


def _code_lines(path: Path) -> dict[int, str]:
    """Line number -> the line's code with strings and comments blanked out."""
    lines = path.read_text(encoding="utf-8").splitlines()
    keep = {n: list(line) for n, line in enumerate(lines, start=1)}
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline)
    for tok in tokens:
        text = tok.type in (tokenize.STRING, tokenize.COMMENT) or tok.type == getattr(
            tokenize, "FSTRING_MIDDLE", -1
        )
        if text and tok.string not in ("'F'", '"F"'):  # order="F" is code
            (r0, c0), (r1, c1) = tok.start, tok.end
            for r in range(r0, r1 + 1):
                chars = keep[r]
                start = c0 if r == r0 else 0
                end = c1 if r == r1 else len(chars)
                chars[start:end] = " " * (end - start)
    return {n: "".join(chars) for n, chars in keep.items()}


def test_the_tables_cover_the_package():
    units = {_unit(m) for m in MODULES} - {NAME}
    assert units <= set(RANKS), f"units without a layer in RANKS: {sorted(units - set(RANKS))}"


def test_no_module_is_over_the_line_limit():
    over = [
        f"{path.relative_to(PACKAGE.parent)}: {n} lines"
        for path in MODULES.values()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    ]
    assert not over, f"modules over {MAX_LINES} lines (split them): {over}"


def test_matlab_layout_lives_in_matfile_only():
    bad = []
    for module, path in MODULES.items():
        if module == f"{NAME}.matfile" or module.startswith(f"{NAME}.matfile."):
            continue
        text = path.read_text(encoding="utf-8").splitlines()
        for n, code in _code_lines(path).items():
            if not LAYOUT.search(code):
                continue
            marked = NOT_LAYOUT.search(text[n - 1]) or (n > 1 and NOT_LAYOUT.search(text[n - 2]))
            if not marked:
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{n}: {text[n - 1].strip()}")
    assert not bad, (
        "MATLAB layout outside mat2grad/matfile/ (move it there, or mark a line that "
        "transposes for another reason with '# not MATLAB layout: <reason>'):\n" + "\n".join(bad)
    )


def test_the_layout_scan_sees_code_and_skips_text(tmp_path):
    # the scan must find what it is meant to find, or the test above cannot fail
    sample = tmp_path / "sample.py"
    sample.write_text(
        '"""A docstring about X.T."""\n'
        "y = x.T\n"
        "z = f('a.T', b)  # c.T in a comment\n"
        "w = a.reshape(-1, order='F')\n"
        "v = x.Tensor + self.Total\n",
        encoding="utf-8",
    )
    hits = [n for n, line in _code_lines(sample).items() if LAYOUT.search(line)]
    assert hits == [2, 4]


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle():
    cycles = _strongly_connected(GRAPH)
    assert not cycles, f"modules that import each other (directly or round a loop): {cycles}"


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _strongly_connected(graph) == [["a", "b", "c"]]


def test_imports_go_down_the_layers_only():
    up = []
    for module, targets in GRAPH.items():
        unit = _unit(module)
        if unit == NAME:
            continue  # the public API imports from every layer
        rank = RANKS[unit]
        for target in sorted(targets):
            target_rank = API_RANK if _unit(target) == NAME else RANKS[_unit(target)]
            if target_rank > rank:
                up.append(f"{module} (layer {rank}) imports {target} (layer {target_rank})")
    assert not up, "imports from a higher layer:\n" + "\n".join(up)


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        (f"{NAME}.commands.predict", f"{NAME}.matfile"),
        (f"{NAME}.cli", f"{NAME}.commands"),
    ],
)
def test_the_import_reader_resolves_relative_imports(module, expected):
    assert module in MODULES
    assert any(t == expected or t.startswith(expected + ".") for t in GRAPH[module]), (
        f"{module} imports {sorted(GRAPH[module])}; expected {expected} among them"
    )


def test_the_package_speaks_of_itself_only():
    bad = []
    for path in sorted(PACKAGE.rglob("*")):
        if path.is_file() and path.suffix in (".py", ".m", ".md", ".txt", ".json", ".toml"):
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if FOREIGN.search(line):
                    bad.append(f"{path.relative_to(PACKAGE.parent)}:{n}: {line.strip()}")
    assert not bad, (
        "the package cites files that are not part of it (say it in its own words):\n"
        + "\n".join(bad)
    )
