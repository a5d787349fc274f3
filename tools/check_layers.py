#!/usr/bin/env python3
"""Check advrec's import layering from the source (standard library only; nothing is imported).

    python tools/check_layers.py [SRC] [--allow 'A<->B' ...]

``SRC`` is the folder holding the ``advrec`` package (default: ``src`` beside ``tools/``). Every
``import`` of an advrec module counts, wherever it is written: at module level, inside a function
(a lazy import), under ``if TYPE_CHECKING:``, and ``importlib.import_module("advrec...")`` /
``__import__("advrec...")`` with a constant name. Reported, one line each:

* an import that goes up the layer table (or sideways, between two layers of the same rank);
* an import of the package face ``advrec`` or of the face (``__init__``) of a package the module
  itself is in;
* a module the layer table does not place;
* an import cycle between modules (one line per strongly connected set of modules, with one
  shortest cycle through it).

``--allow 'A<->B'`` tolerates the cycle whose modules are exactly A and B (more names with more
``<->``): a cycle that takes in any other module is still reported. An allowance that matches no
cycle is named in the summary (remove it). Exit status 1 with one line per violation on stdout
(their count on stderr), else 0 with a one-line summary on stdout.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import deque
from pathlib import Path

PACKAGE = "advrec"

# The layer table of the architecture (../shared/docs/architecture.md, "Layout"): imports go
# down it, never up; two layers of the same rank (attacks, defenses) do not import each other.
# Keep this table and that page in step.
LAYERS: dict[str, int] = {
    "data": 1,
    "training": 2,
    "models": 3,
    "attacks": 4,
    "defenses": 4,
    "evaluation": 5,
    "experiments": 6,
    "cli": 7,
    "__main__": 8,  # ``python -m advrec``: runs the CLI
}

# Foundation modules (architecture.md: errors, validation, outputs, metric_names; with them the
# version and the closed vocabularies): any layer may import them; they import only each other.
FOUNDATION: frozenset[str] = frozenset({"errors", "validation", "outputs", "metric_names",
                                        "vocabulary", "_version", "_lazy"})
FOUNDATION_RANK = 0
FACE_RANK = max(LAYERS.values()) + 1  # ``advrec/__init__.py`` re-exports the public API


# ----------------------------------------------------------------------------- the modules
def find_modules(src: Path) -> dict[str, Path]:
    """``{dotted name: file}`` of every module of the package under ``src`` (``__init__.py``
    files give their package's name: the package face)."""
    root = src / PACKAGE
    if not (root / "__init__.py").is_file():
        raise SystemExit(f"check_layers: no package {PACKAGE!r} in {src} (no {root}/__init__.py)")
    mods: dict[str, Path] = {}
    for f in sorted(root.rglob("*.py")):
        parts = list(f.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if all(p.isidentifier() for p in parts):
            mods[".".join(parts)] = f
    return mods


def faces(mods: dict[str, Path]) -> set[str]:
    return {m for m, f in mods.items() if f.name == "__init__.py"}


def layer_of(mod: str) -> str | None:
    """The layer name of a module (its first component below the package); None for the face."""
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else None


def rank_of(mod: str) -> int | None:
    layer = layer_of(mod)
    if layer is None:
        return FACE_RANK
    if layer in FOUNDATION:
        return FOUNDATION_RANK
    return LAYERS.get(layer)


# ----------------------------------------------------------------------------- the imports
def _resolve(name: str, mods: dict[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is a module of the package."""
    parts = name.split(".")
    while parts:
        cand = ".".join(parts)
        if cand in mods:
            return cand
        parts.pop()
    return None


def _relative_base(mod: str, is_face: bool, level: int) -> list[str]:
    pkg = mod.split(".") if is_face else mod.split(".")[:-1]
    return pkg[: len(pkg) - level + 1] if level > 1 else pkg


def imports_of(mod: str, path: Path, mods: dict[str, Path]) -> list[tuple[str, int]]:
    """``(imported module, line)`` for every import of a package module in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_face = path.name == "__init__.py"
    out: list[tuple[str, int]] = []

    def add(name: str, line: int) -> None:
        if name == PACKAGE or name.startswith(PACKAGE + "."):
            target = _resolve(name, mods)
            if target is not None and target != mod:
                out.append((target, line))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _relative_base(mod, is_face, node.level)
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if not (name == PACKAGE or name.startswith(PACKAGE + ".")):
                continue
            # ``from pkg import x`` reads x from pkg (its face, when pkg is a package) and, when
            # x is a submodule, imports it too
            add(name, node.lineno)
            for alias in node.names:
                if f"{name}.{alias.name}" in mods:
                    add(f"{name}.{alias.name}", node.lineno)
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            called = (func.attr if isinstance(func, ast.Attribute)
                      else func.id if isinstance(func, ast.Name) else "")
            arg = node.args[0]
            if (called in ("import_module", "__import__") and isinstance(arg, ast.Constant)
                    and isinstance(arg.value, str)):
                add(arg.value, node.lineno)
    return out


# ----------------------------------------------------------------------------- the rules
def layer_violations(mods: dict[str, Path], edges: dict[str, dict[str, int]]) -> list[str]:
    bad: list[str] = []
    face_set = faces(mods)
    for mod in sorted(mods):
        if rank_of(mod) is None:
            bad.append(f"{mod}: layer {layer_of(mod)!r} is not in the layer table "
                       f"(tools/check_layers.py LAYERS/FOUNDATION, architecture.md)")
    for mod in sorted(edges):
        rank = rank_of(mod)
        for target, line in sorted(edges[mod].items()):
            where = f"{mod} (line {line})"
            if target == PACKAGE:
                bad.append(f"{where} imports the package face {PACKAGE} (a cycle through "
                           f"advrec/__init__.py; import the defining module)")
                continue
            if target in face_set and (mod + ".").startswith(target + "."):
                bad.append(f"{where} imports its own package's face {target} "
                           f"({target.replace('.', '/')}/__init__.py; import the defining "
                           f"module)")
                continue
            t_rank = rank_of(target)
            if rank is None or t_rank is None or layer_of(mod) == layer_of(target):
                continue
            if t_rank > rank or (t_rank == rank and rank != FOUNDATION_RANK):
                direction = "above" if t_rank > rank else "beside"
                what = "foundation" if rank == FOUNDATION_RANK else layer_of(mod)
                bad.append(f"{where} imports {target} (layer {layer_of(target)} {direction} "
                           f"{what}: imports go down the layer table)")
    return bad


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative), each sorted, with > 1 module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        top = stack.pop()
                        on_stack.discard(top)
                        comp.append(top)
                        if top == node:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return sorted(out)


def shortest_cycle(graph: dict[str, set[str]], comp: list[str]) -> list[str]:
    """A shortest cycle through the first module of ``comp``, inside ``comp``."""
    inside, start = set(comp), comp[0]
    prev: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in sorted(graph[node] & inside):
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(prev[path[-1]])
                return [*reversed(path), start]
            if child not in prev:
                prev[child] = node
                queue.append(child)
    return [start, start]  # unreachable for a strongly connected set


def parse_allowance(text: str) -> frozenset[str]:
    names = frozenset(n.strip() for n in text.split("<->"))
    if len(names) < 2 or "" in names:
        raise argparse.ArgumentTypeError(f"expected 'A<->B' (two or more modules), got {text!r}")
    return names


def check(src: Path, allow: list[frozenset[str]] = ()) -> tuple[list[str], str]:
    """The violations (one line each) and the summary line."""
    mods = find_modules(src)
    edges: dict[str, dict[str, int]] = {}
    for mod, path in mods.items():
        found: dict[str, int] = {}
        for target, line in imports_of(mod, path, mods):
            found.setdefault(target, line)
        edges[mod] = found
    bad = layer_violations(mods, edges)
    graph = {m: set(e) for m, e in edges.items()}
    used: set[frozenset[str]] = set()
    n_cycles = 0
    for comp in strongly_connected(graph):
        n_cycles += 1
        if frozenset(comp) in allow:
            used.add(frozenset(comp))
            continue
        cycle = shortest_cycle(graph, comp)
        rest = sorted(set(comp) - set(cycle))
        line = f"import cycle: {' -> '.join(cycle)}"
        if rest:
            line += f" (the same cycle takes in {', '.join(rest)})"
        bad.append(line)
    summary = (f"layers ok: {len(mods)} modules, {sum(map(len, edges.values()))} imports, "
               f"no upward import, no cycle")
    if used:
        summary += "; allowed: " + ", ".join(sorted("<->".join(sorted(a)) for a in used))
    unused = sorted("<->".join(sorted(a)) for a in allow if a not in used)
    if unused:
        summary += f"; unused --allow {', '.join(unused)} (no such cycle: remove it)"
    return bad, summary


def main(argv: list[str] | None = None) -> int:
    here = Path(__file__).resolve().parent.parent
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src", nargs="?", type=Path, default=here / "src",
                   help="folder holding the advrec package (default: src)")
    p.add_argument("--allow", action="append", type=parse_allowance, default=[],
                   metavar="'A<->B'", help="tolerate the import cycle of exactly these modules")
    args = p.parse_args(argv)
    bad, summary = check(args.src, args.allow)
    if bad:
        for line in bad:
            print(line)
        print(f"{len(bad)} layering violation(s)", file=sys.stderr)
        return 1
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
