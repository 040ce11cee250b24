"""The package's layering (issue 23), read from the source with ast (nothing imported):

* no import circle among the package's modules (module-level imports);
* no upward import, at any level of a module: codec/ imports none of io/, link/, ros/, bag/,
  restore/; link/ imports neither ros/ nor bag/;
* no module over 500 lines.
"""
from __future__ import annotations

import ast
from pathlib import Path

PKG = "mm_compress_ros"
ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 500
UPWARD = {"codec": {"io", "link", "ros", "bag", "restore"}, "link": {"ros", "bag"}}


def _modules() -> dict[str, tuple[Path, bool]]:
    """Dotted name -> (file, is a package's __init__)."""
    mods = {}
    for f in sorted((ROOT / PKG).rglob("*.py")):
        parts = list(f.relative_to(ROOT).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        mods[".".join(parts[:-1] if is_pkg else parts)] = (f, is_pkg)
    return mods


def _targets(mods, mod: str, is_pkg: bool, node) -> list[str]:
    """The package modules an import statement names (a name imported from a package that is a
    module of its own counts as that module)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level == 0:
        base = node.module or ""
    else:
        pkg = mod.split(".") if is_pkg else mod.split(".")[:-1]
        base = ".".join(pkg[: len(pkg) - (node.level - 1)] + ([node.module] if node.module else []))
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]


def _imports(mods, module_level: bool) -> dict[str, set[str]]:
    edges = {}
    for mod, (f, is_pkg) in mods.items():
        deps, stack = set(), list(ast.parse(f.read_text()).body)
        while stack:
            n = stack.pop()
            if module_level and isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                continue
            if isinstance(n, (ast.Import, ast.ImportFrom)):
                deps.update(_targets(mods, mod, is_pkg, n))
            else:
                stack.extend(ast.iter_child_nodes(n))
        edges[mod] = {d for d in deps if d in mods and d != mod}
    return edges


def _circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], 0
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def _layer(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_the_checker_sees_a_circle():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _circles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle():
    mods = _modules()
    edges = _imports(mods, module_level=True)
    assert len(edges) > 50 and f"{PKG}.codec.packet" in edges[f"{PKG}.link.pair_decoder"]
    assert _circles(edges) == []


def test_no_upward_import():
    edges = _imports(_modules(), module_level=False)
    upward = sorted((m, d) for m, ds in edges.items() for d in ds if _layer(d) in UPWARD.get(_layer(m), ()))
    assert upward == []


def test_no_module_over_500_lines():
    long = {str(f.relative_to(ROOT)): n for f, _ in _modules().values()
            if (n := len(f.read_text().splitlines())) > MAX_LINES}
    assert long == {}
