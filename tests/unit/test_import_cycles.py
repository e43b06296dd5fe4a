"""No import cycles between files (issue 15), counting what Python really runs.

Importing ``a.b.c`` first runs ``a/__init__.py`` and ``a/b/__init__.py``, so a module that
imports ``models.embedders.dlib_dat`` also depends on ``models/embedders/__init__.py`` and
everything that package imports. import-linter's layers contract does not see such a cycle
(``models.landmarks`` -> ``models.embedders.dlib_dat`` -> package ``models.embedders`` ->
``models.embedders.dlib_resnet`` -> ``models.landmarks`` was one: importing
``models.landmarks`` first failed). This test builds the graph with grimp (import-linter's
own graph library), adds those package edges, and fails on any strongly connected set.
"""

from __future__ import annotations

import grimp

PACKAGES = ("facestream", "models", "pipelines", "serve", "bench")


def _graph() -> dict[str, set[str]]:
    g = grimp.build_graph(*PACKAGES, include_external_packages=False)
    edges: dict[str, set[str]] = {m: set() for m in g.modules}
    for m in g.modules:
        for target in g.find_modules_directly_imported_by(m):
            edges[m].add(target)
            # Python runs every enclosing package's __init__ first.
            parts = target.split(".")
            for k in range(1, len(parts)):
                parent = ".".join(parts[:k])
                if parent in edges and not m.startswith(parent + ".") and m != parent:
                    edges[m].add(parent)
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of size > 1 (or self-loops)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        work = [(v, iter(sorted(edges[v])))]
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on.add(v)
        while work:
            node, it = work[-1]
            for w in it:
                if w not in edges:
                    continue
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                    break
                if w in on:
                    low[node] = min(low[node], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == node:
                            break
                    if len(comp) > 1 or node in edges[node]:
                        out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_cycle_through_a_package_init() -> None:
    edges = {
        "p": {"p.a"},  # p/__init__.py imports p.a
        "p.a": {"q"},
        "q": {"p"},
        "r": set(),
    }
    assert _cycles(edges) == [["p", "p.a", "q"]]
    assert _cycles({"x": {"y"}, "y": set()}) == []


def test_no_import_cycles_between_files() -> None:
    cycles = _cycles(_graph())
    assert not cycles, "import cycles (package __init__ edges included): " + "; ".join(
        " <-> ".join(c) for c in cycles
    )
