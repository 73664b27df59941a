"""The import graph of the whole `netedge` package, read from the source (ast), not by importing:
no module imports itself through others (no import circles), and no library module imports the
command line (gateway/commands/, whose modules parse options and call the library).

Every import counts, those inside functions too (a lazy import is still a dependency: it only
moves the moment the circle closes), relative imports are resolved against their package, and
importing a module imports its parent packages.
"""
import ast
import os

from conftest import REPO

# the source folder of each subpackage of `netedge` (pyproject.toml's package-dir)
PACKAGES = ("shared", "gateway", "firmware", "tools", "boards")
CLI = ("netedge.gateway.commands", "netedge.gateway.cli")


def modules():
    """{module name: (path, is a package)} for every .py file under the packages' folders."""
    found = {}
    for top in PACKAGES:
        for folder, dirs, files in os.walk(os.path.join(REPO, top)):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for f in sorted(files):
                if not f.endswith(".py"):
                    continue
                path = os.path.join(folder, f)
                parts = os.path.relpath(path, REPO)[:-3].split(os.sep)
                is_pkg = parts[-1] == "__init__"
                if is_pkg:
                    parts = parts[:-1]
                found["netedge." + ".".join(parts)] = (path, is_pkg)
    return found


def _with_parents(name, known):
    """`name` and the packages above it that are in the tree (importing a.b.c runs a.b first)."""
    parts = name.split(".")
    return [n for n in (".".join(parts[:i]) for i in range(2, len(parts) + 1)) if n in known]


def imports_of(name, path, is_pkg, known):
    """[(imported module, line)] for every import statement of one module, anywhere in it."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    package = name if is_pkg else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from X import y`: y is a submodule of X, or a name defined in X
            targets = [module] + ["%s.%s" % (module, a.name) for a in node.names]
        for t in targets:
            for m in _with_parents(t, known):
                if m != name and not name.startswith(m + "."):  # (a module's own packages are loaded already)
                    out.append((m, node.lineno))
    return out


def graph():
    known = modules()
    edges = {}
    for name, (path, is_pkg) in known.items():
        edges[name] = {}
        for m, line in imports_of(name, path, is_pkg, known):
            edges[name].setdefault(m, line)
    return known, edges


def cycles(edges):
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = [0]
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                scc = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    scc.append(w)
                    if w == v:
                        break
                if len(scc) > 1:
                    found.append(sorted(scc))
    return found


def circle_in(scc, edges, known):
    """One circle through the component, as lines 'a (file:line) -> b'."""
    members = set(scc)
    start = scc[0]
    # breadth-first from start back to start, inside the component
    prev = {start: None}
    queue = [start]
    end = None
    while queue and end is None:
        v = queue.pop(0)
        for w in sorted(edges[v]):
            if w == start:
                end = v
                break
            if w in members and w not in prev:
                prev[w] = v
                queue.append(w)
    path = [end]
    while prev[path[-1]] is not None:
        path.append(prev[path[-1]])
    path.reverse()
    path.append(start)
    lines = []
    for a, b in zip(path, path[1:]):
        rel = os.path.relpath(known[a][0], REPO)
        lines.append("  %s (%s:%d) imports %s" % (a, rel, edges[a][b], b))
    return "\n".join(lines)


def is_cli(name):
    return any(name == c or name.startswith(c + ".") for c in CLI)


def test_the_graph_sees_the_tree():
    """The walk finds the modules and their imports (a broken walk would pass everything)."""
    known, edges = graph()
    assert len(known) > 60
    assert "netedge.shared.cbor" in edges["netedge.shared.frame"]                 # from . import cbor
    assert "netedge.shared.link" in edges["netedge.shared.chain"]                 # from .link import U64_MAX
    assert "netedge.gateway.commands.daemon" in edges["netedge.gateway.commands.proof"]  # from .daemon import
    assert "netedge.gateway.errors" in edges["netedge.gateway.commands"]          # from ..errors (a package)
    assert "netedge.tools.fleet" in edges["netedge.tools.demo"]                   # inside a function
    assert "netedge.shared.chain_errors" in edges["netedge.shared.link"]          # lazily, inside a method
    assert "netedge.gateway.errors" in edges["netedge.gateway.cli"]               # an absolute import


def test_the_circle_finder_finds_circles():
    edges = {"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3, "d": 4}, "d": {}, "e": {"e2": 5}, "e2": {"e": 6}}
    assert sorted(cycles(edges)) == [["a", "b", "c"], ["e", "e2"]]
    known = {n: ("/x/%s.py" % n, False) for n in edges}
    assert "c (" in circle_in(["a", "b", "c"], edges, known)


def test_no_import_circles():
    known, edges = graph()
    found = cycles(edges)
    assert not found, "import circles:\n" + "\n\n".join(circle_in(s, edges, known) for s in found)


def test_libraries_never_import_the_cli():
    known, edges = graph()
    bad = ["%s (%s:%d) imports %s" % (name, os.path.relpath(known[name][0], REPO), line, m)
           for name in sorted(edges) if not is_cli(name)
           for m, line in sorted(edges[name].items()) if is_cli(m)]
    assert not bad, "library modules importing the command line:\n  " + "\n  ".join(bad)
