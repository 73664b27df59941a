"""The control plane does no I/O of its own: no module of gateway/control/, nor any netedge
module it imports (transitively), imports sqlite3, paho, time or socket.  Read from the
source (the AST), so a lazy import inside a function counts too."""
import ast
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONTROL = os.path.join(REPO, "gateway", "control")
FORBIDDEN = {"sqlite3", "paho", "time", "socket"}


def module_path(name):
    """netedge.a.b -> its file in the source tree (None: not a netedge module)."""
    parts = name.split(".")
    if parts[0] != "netedge":
        return None
    base = os.path.join(REPO, *parts[1:])
    for p in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.exists(p):
            return p
    return None


def imports_of(path, name):
    """Absolute names of the modules `path` (module `name`) imports, at any depth of its code."""
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(open(path).read(), path)):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module
            out.append(mod)
            out += ["%s.%s" % (mod, a.name) for a in node.names]  # (a submodule imported by name)
    return out


def reachable(roots):
    """{module: the chain of imports that reaches it} for everything the roots import."""
    seen = {r: [r] for r in roots}
    todo = list(roots)
    while todo:
        name = todo.pop()
        path = module_path(name)
        if path is None:
            continue
        for dep in imports_of(path, name):
            if dep not in seen:
                seen[dep] = seen[name] + [dep]
                if module_path(dep) is not None:
                    todo.append(dep)
    # a package's __init__ runs on import of any of its modules
    for dep in list(seen):
        parts = dep.split(".")
        for i in range(1, len(parts)):
            pkg = ".".join(parts[:i])
            if module_path(pkg) is not None and pkg not in seen:
                seen[pkg] = seen[dep][:-1] + [pkg]
                todo.append(pkg)
    return seen


def control_modules():
    return sorted("netedge.gateway.control." + f[:-3] if f != "__init__.py" else "netedge.gateway.control"
                  for f in os.listdir(CONTROL) if f.endswith(".py"))


def test_the_control_plane_imports_no_io():
    mods = control_modules()
    assert "netedge.gateway.control.core" in mods and len(mods) >= 5
    seen = reachable(mods)
    bad = {m: chain for m, chain in seen.items() if m.split(".")[0] in FORBIDDEN}
    assert not bad, "\n".join(" -> ".join(chain) for chain in bad.values())


@pytest.mark.parametrize("forbidden", sorted(FORBIDDEN))
def test_the_check_sees_an_import(tmp_path, forbidden, monkeypatch):
    """The walker itself: a forbidden import two modules away, inside a function, is found."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("def f():\n    import %s\n" % forbidden)
    monkeypatch.setattr(sys.modules[__name__], "REPO", str(tmp_path))
    seen = reachable(["netedge.pkg.a"])
    assert seen[forbidden] == ["netedge.pkg.a", "netedge.pkg.b", forbidden]
