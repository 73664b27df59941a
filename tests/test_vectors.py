"""The golden vectors, checked on CPython here and on the MicroPython unix port below."""
import json
import os
import importlib

import pytest

from conftest import TESTS, run_micropython

VEC_DIR = os.path.join(TESTS, "vectors")
FAMILIES = sorted(n[:-5] for n in os.listdir(VEC_DIR) if n.endswith(".json"))


def _cases(family):
    with open(os.path.join(VEC_DIR, family + ".json")) as f:
        return json.load(f)["cases"]


@pytest.mark.parametrize("family", FAMILIES)
def test_vectors_cpython(family):
    mod = importlib.import_module("golden." + family)
    cases = _cases(family)
    assert cases, "empty vector file"
    for case in cases:
        mod.check(case)


@pytest.mark.parametrize("family", FAMILIES)
def test_vectors_are_current(family):
    """The generator reproduces the committed file: vectors cannot drift from the code silently."""
    mod = importlib.import_module("golden." + family)
    assert json.loads(json.dumps(mod.generate())) == _cases(family)


def test_vectors_micropython(mp_staged):
    # the runner holds a whole parsed JSON file; board-sized heaps are exercised by the node suites
    res = run_micropython(os.path.join(TESTS, "mp_vectors.py"), mp_staged, TESTS, heap="512K")
    print(res.stdout)
    assert res.returncode == 0, res.stdout + res.stderr
    for family in FAMILIES:
        n = len(_cases(family))
        assert "%s: %d/%d passed" % (family, n, n) in res.stdout
