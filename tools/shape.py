"""The codebase's shape in figures: loose top-level modules, the longest files, function-local imports of
edgecv itself, import cycles between edgecv modules, and the README's length.

    python tools/shape.py            # the figures, one per line
    python tools/shape.py --json     # the same as JSON

Every ``import edgecv.X`` or ``from edgecv.X import ...`` anywhere in a module (under ``TYPE_CHECKING`` and
inside function bodies included) is an edge from that module to X; ``from edgecv.X import Y`` is an edge to
``edgecv.X.Y`` when Y is a module. A module importing a package that contains it is not an edge. A cycle is
any loop of edges. Standard library only, so it runs anywhere.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "edgecv"


@dataclass
class Shape:
    loose_modules: list[str]
    long_files: dict[str, int]  # files over the line limit, with their line counts
    longest_file: tuple[str, int]
    function_local_imports: int
    cycles: list[list[str]]
    readme_lines: int
    modules: int = 0
    lines: int = 0
    edges: int = 0
    local_import_sites: list[str] = field(default_factory=list)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(name: str, path: Path, known: set[str]) -> list[tuple[str, bool, int]]:
    """(imported module, inside a function body, line) for every import of edgecv in one file."""
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[str, bool, int]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            local = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            if isinstance(child, ast.Import):
                found.extend((a.name, in_function, child.lineno) for a in child.names if a.name.split(".")[0] ==
                             "edgecv")
            elif isinstance(child, ast.ImportFrom):
                target = _resolve(child, name, path.name == "__init__.py")
                if target.split(".")[0] == "edgecv":
                    subs = [f"{target}.{a.name}" for a in child.names if f"{target}.{a.name}" in known]
                    rest = len(subs) < len(child.names)
                    found.extend((sub, in_function, child.lineno) for sub in subs)
                    if rest:
                        found.append((target, in_function, child.lineno))
            visit(child, local)

    visit(tree, False)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strong(w)
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
            if len(component) > 1 or v in graph.get(v, ()):
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            strong(v)
    return sorted(found)


def measure(line_limit: int = 400) -> Shape:
    mods = modules()
    known = set(mods)
    graph: dict[str, set[str]] = {m: set() for m in mods}
    local_sites: list[str] = []
    lines = 0
    lengths: dict[str, int] = {}
    for name, path in mods.items():
        lengths[str(path.relative_to(ROOT))] = n = len(path.read_text().splitlines())
        lines += n
        for target, in_function, lineno in imports_of(name, path, known):
            while target not in known and "." in target:
                target = target.rsplit(".", 1)[0]
            if in_function:
                local_sites.append(f"{path.relative_to(ROOT)}:{lineno} {target}")
            if target == name or name.startswith(target + "."):
                continue  # itself, or a package that contains it
            graph[name].add(target)
    loose = sorted(p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    longest = max(lengths.items(), key=lambda kv: kv[1])
    readme = ROOT / "README.md"
    return Shape(loose_modules=loose, long_files={k: v for k, v in sorted(lengths.items()) if v > line_limit},
                 longest_file=longest, function_local_imports=len(local_sites), cycles=_cycles(graph),
                 readme_lines=len(readme.read_text().splitlines()) if readme.is_file() else 0, modules=len(mods),
                 lines=lines, edges=sum(map(len, graph.values())), local_import_sites=local_sites)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--sites", action="store_true", help="also list every function-local import of edgecv")
    args = parser.parse_args(argv)
    shape = measure()
    if args.json:
        print(json.dumps(asdict(shape), indent=2))
        return 0
    print(f"modules in edgecv/: {shape.modules} ({shape.lines} lines, {shape.edges} import edges)")
    print(f"loose top-level modules: {len(shape.loose_modules)} ({', '.join(shape.loose_modules)})")
    print(f"longest file: {shape.longest_file[0]} ({shape.longest_file[1]} lines); over 400 lines: "
          f"{len(shape.long_files)}")
    print(f"function-local imports of edgecv: {shape.function_local_imports}")
    print(f"import cycles: {len(shape.cycles)}")
    for cycle in shape.cycles:
        print("  " + " <-> ".join(cycle))
    print(f"README.md lines: {shape.readme_lines}")
    if args.sites:
        print("\n".join(shape.local_import_sites))
    return 0


if __name__ == "__main__":
    sys.exit(main())
