"""Regenerate tests/vectors/<family>.json from tests/golden/<family>.py `generate()`.

usage: python -m netedge.tools.gen_vectors [family ...]
The vectors are the normative examples of docs/PROTOCOL.md: review every diff this makes.
"""
import importlib
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(REPO, "tests")


def families():
    gdir = os.path.join(TESTS, "golden")
    return sorted(n[:-3] for n in os.listdir(gdir) if n.endswith(".py") and not n.startswith("_"))


def write(family):
    sys.path.insert(0, TESTS)
    mod = importlib.import_module("golden." + family)
    cases = mod.generate()
    path = os.path.join(TESTS, "vectors", family + ".json")
    with open(path, "w") as f:
        json.dump({"family": family, "cases": cases}, f, indent=1, sort_keys=True)
        f.write("\n")
    print("%s: %d cases -> %s" % (family, len(cases), os.path.relpath(path, REPO)))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    for family in argv or families():
        write(family)


if __name__ == "__main__":
    main()
