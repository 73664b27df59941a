"""netedge firmware."""
import sys


def unload(full):
    """Drop a module so the GC can take its code back (a few KB of board heap): boot-only code
    once booted, migration code once a node is done moving."""
    sys.modules.pop(full, None)
    pkg, _, name = full.rpartition(".")
    pkg = sys.modules.get(pkg)
    if pkg is not None and hasattr(pkg, name):
        delattr(pkg, name)
