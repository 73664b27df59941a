"""Stage the `netedge` package for the MicroPython unix port.

The repository keeps the mission's layout (shared/, firmware/) while both interpreters import
one namespace, `netedge.*`. CPython gets it from the editable install; the unix port gets it
from a staging folder of symlinks, so it runs the very same source files, unmodified.
"""
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("shared", "firmware")


def stage(dest=None):
    """Create (idempotently) `<dest>/netedge/{shared,firmware}` symlinks; return `dest`."""
    dest = dest or os.path.join(REPO, ".build", "mp")
    pkg = os.path.join(dest, "netedge")
    os.makedirs(pkg, exist_ok=True)
    init = os.path.join(pkg, "__init__.py")
    if not os.path.exists(init):
        with open(init, "w") as f:
            f.write('"""netedge (staged for MicroPython)."""\n')
    for name in PACKAGES:
        link = os.path.join(pkg, name)
        target = os.path.join(REPO, name)
        if os.path.islink(link) and os.readlink(link) == target:
            continue
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(target, link)
    return dest


if __name__ == "__main__":
    print(stage(sys.argv[1] if len(sys.argv) > 1 else None))
