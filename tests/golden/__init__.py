"""Golden-vector checkers, one module per family (`tests/vectors/<family>.json`).

Each module defines `check(case)` — portable code that runs unmodified on CPython (pytest,
tests/test_vectors.py) and on the MicroPython unix port (tests/mp_vectors.py) and raises on any
mismatch — and `generate()`, CPython only, which returns the list of cases for the JSON file
(tools/gen_vectors.py writes them).  Bytes are hex strings in the JSON.
"""


def unhex(s):
    return bytes.fromhex(s)


def eq(what, got, want):
    if got != want:
        raise AssertionError("%s: got %r, want %r" % (what, got, want))


def outcome(fn, *args):
    """'ok', or the class name of what fn(*args) raised: error vectors name the class."""
    try:
        fn(*args)
    except Exception as e:
        return type(e).__name__
    return "ok"
