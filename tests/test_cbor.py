"""shared/cbor.py against cbor2 (the gateway's codec): equal bytes, equal values, typed errors."""
import json
import random
import struct

import cbor2
import pytest
from hypothesis import given, settings, strategies as st

from conftest import run_micropython
from golden.cbor import same
from netedge.shared import cbor
from netedge.shared.errors import DecodeError, NetedgeError

scalars = (st.none() | st.booleans() | st.integers(-2**64, 2**64 - 1)
           | st.floats(allow_nan=True, allow_infinity=True) | st.binary(max_size=40)
           | st.text(max_size=20))
keys = (st.none() | st.booleans() | st.integers(-2**64, 2**64 - 1) | st.binary(max_size=8)
        | st.text(max_size=8) | st.floats(allow_nan=False))
values = st.recursive(
    scalars,
    lambda inner: (st.lists(inner, max_size=6) | st.tuples(inner, inner)
                   | st.dictionaries(keys, inner, max_size=6)),
    max_leaves=25)


@settings(max_examples=300, deadline=None)
@given(values)
def test_bytes_equal_cbor2(v):
    assert cbor.dumps(v, canonical=True) == cbor2.dumps(v, canonical=True)
    assert cbor.dumps(v) == cbor2.dumps(v)  # plain mode: CPython dict order on both sides


@settings(max_examples=300, deadline=None)
@given(values, st.booleans())
def test_decode_equals_cbor2(v, canonical):
    data = cbor2.dumps(v, canonical=canonical)
    assert same(cbor.loads(data), cbor2.loads(data))
    assert same(cbor2.loads(cbor.dumps(v, canonical)), cbor2.loads(data))


@settings(max_examples=100, deadline=None)
@given(st.floats(width=16) | st.floats(width=32) | st.floats())
def test_minimal_float_width(x):
    assert cbor.dumps(x, True) == cbor2.dumps(x, canonical=True)
    assert same(cbor.loads(cbor.dumps(x, True)), x)


@settings(max_examples=100, deadline=None)
@given(values)
def test_every_strict_prefix_is_truncated(v):
    data = cbor2.dumps(v, canonical=True)  # CBOR is prefix-free: no prefix is an item
    for i in range(len(data)):
        with pytest.raises(cbor.CborError, match="^truncated$"):
            cbor.loads(data[:i], max_items=10**6)


@settings(max_examples=100, deadline=None)
@given(values, st.binary(min_size=1, max_size=4))
def test_trailing_bytes(v, extra):
    with pytest.raises(cbor.CborError, match="^trailing$"):
        cbor.loads(cbor2.dumps(v) + extra)


def _only_typed(data, **kw):
    """Decode; anything but success or a CborError is a bug. On success cbor2 must agree."""
    try:
        got = cbor.loads(data, **kw)
    except cbor.CborError:
        return
    assert same(got, cbor2.loads(data))


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_raise_only_typed_errors(data):
    _only_typed(data)


@settings(max_examples=300, deadline=None)
@given(values, st.data())
def test_mutated_encodings_raise_only_typed_errors(v, data):
    b = bytearray(cbor2.dumps(v, canonical=True))
    i = data.draw(st.integers(0, len(b) - 1))
    b[i] = data.draw(st.integers(0, 255))
    _only_typed(bytes(b))


@pytest.mark.parametrize("hexdata", [
    "5bffffffffffffffff", "7b00000000ffffffff", "9b0000000100000000", "bb00000000ffffffff00",
    "9a0000ffff" + "00" * 10, "5a7fffffff61",
])
def test_declared_length_beyond_input_is_rejected_before_allocation(hexdata):
    with pytest.raises(cbor.CborError, match="^truncated$"):
        cbor.loads(bytes.fromhex(hexdata))


def test_caps():
    nested = b"\x81" * 16 + b"\x00"
    assert cbor.loads(nested) == [[[[[[[[[[[[[[[[0]]]]]]]]]]]]]]]]
    with pytest.raises(cbor.CborError, match="^depth$"):
        cbor.loads(b"\x81" + nested)
    with pytest.raises(cbor.CborError, match="^items$"):
        cbor.loads(cbor2.dumps(list(range(cbor.MAX_ITEMS))))  # + the array itself
    assert len(cbor.loads(cbor2.dumps(list(range(cbor.MAX_ITEMS - 1))))) == cbor.MAX_ITEMS - 1
    assert len(cbor.loads(cbor2.dumps(list(range(5000))), max_items=5001)) == 5000


def test_recursion_beyond_the_stack_is_a_typed_error():
    with pytest.raises(DecodeError):
        cbor.loads(b"\x81" * 100000 + b"\x00", max_depth=10**6, max_items=10**6)


def test_input_types():
    assert cbor.loads(bytearray(b"\x01")) == 1
    assert cbor.loads(memoryview(b"\x82\x01\x02")) == [1, 2]
    for bad in ("01", None, 1):
        with pytest.raises(cbor.CborError, match="^not bytes$"):
            cbor.loads(bad)


@pytest.mark.parametrize("v", [2**64, -2**64 - 1, {1, 2}, object(), "\ud800", memoryview(b"a")])
def test_encode_errors(v):
    with pytest.raises(cbor.CborEncodeError):
        cbor.dumps(v, canonical=True)


def test_encode_cycle():
    a = []
    a.append(a)
    with pytest.raises(cbor.CborEncodeError):
        cbor.dumps(a)


def test_error_hierarchy():
    assert issubclass(cbor.CborError, DecodeError) and issubclass(cbor.CborError, ValueError)
    assert issubclass(cbor.CborEncodeError, NetedgeError)
    assert not issubclass(cbor.CborEncodeError, DecodeError)
    assert cbor.CborError.__name__ == "CborError" and cbor.CborError("x").args == ("x",)


@pytest.mark.parametrize("hexdata", ["5f4161ff", "7f6161ff", "9f01ff", "bf616101ff", "8261619f01ff",
                                     "ff", "a16161ff"])
def test_indefinite_lengths_and_breaks_are_refused(hexdata):
    """cbor2 never writes them and neither do we: outside the subset, so the node's decoder
    does not carry the code (docs/PROTOCOL.md §5)."""
    with pytest.raises(cbor.CborError, match="^indef$"):
        cbor.loads(bytes.fromhex(hexdata))


def _as_text(b):
    """A CBOR text string holding the raw bytes b (valid UTF-8 or not)."""
    h = cbor2.dumps(bytes(b))
    return bytes([h[0] + 0x20]) + h[1:]


def _strict(b):
    try:
        return b.decode("utf-8")
    except UnicodeError:
        return None


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=12) | st.text(max_size=6).map(lambda t: t.encode()))
def test_text_is_strict_utf8(b):
    want = _strict(b)
    if want is None:
        with pytest.raises(cbor.CborError, match="^utf-8$"):
            cbor.loads(_as_text(b))
    else:
        assert cbor.loads(_as_text(b)) == want


# ---- the same differential check on the MicroPython unix port ----

def _rand_value(r, depth=0):
    k = r.randrange(10 if depth < 3 else 7)
    if k == 0:
        return r.choice([None, True, False])
    if k == 1:
        return r.randrange(-2**64, 2**64) >> r.randrange(64)
    if k == 2:
        return r.choice([r.random() * 10 ** r.randrange(-40, 40), float(r.randrange(-2**11, 2**11)),
                         r.randrange(-100, 100) / 4.0, float("inf"), float("nan"), -0.0,
                         struct.unpack(">d", r.randbytes(8))[0]])
    if k == 3:
        return r.randbytes(r.randrange(30))
    if k in (4, 5, 6):
        return "".join(chr(r.choice([r.randrange(32, 127), r.randrange(160, 0xD7FF),
                                     r.randrange(0x10000, 0x10FFFF)])) for _ in range(r.randrange(8)))
    if k in (7, 8):
        return [_rand_value(r, depth + 1) for _ in range(r.randrange(5))]
    keys = [_rand_value(r, 3) for _ in range(r.randrange(5))]
    if str in [type(x) for x in keys]:  # never text and bytes keys in one map: see below
        keys = [x for x in keys if type(x) is not bytes]
    return {x: _rand_value(r, depth + 1) for x in keys}


def test_text_and_bytes_keys_in_one_map():
    """"a" and b"a" are two keys, and the canonical order puts the bytes first (major type 2).
    CPython only: a MicroPython dict holding both compares them whenever a lookup probes past one
    (False, rightly; the unix port prints "Comparison between bytes and str" each time), so the
    vectors and the MicroPython runs below keep them in separate maps."""
    v = {"a": 1, 1: 2, b"a": 3, "aaaa": 9, b"aaaa": 10}
    data = cbor.dumps(v, True)
    assert data == cbor2.dumps(v, canonical=True)
    assert data.index(b"\x41a") < data.index(b"\x61a")
    assert same(cbor.loads(data), v) and same(cbor.loads(cbor.dumps(v)), v)


MP_ROUNDTRIP = """
import sys, json
sys.path.insert(0, sys.argv[1])
from netedge.shared import cbor
with open(sys.argv[2]) as f:
    cases = json.load(f)
out = []
for h in cases:
    b = bytes.fromhex(h)
    out.append(cbor.dumps(cbor.loads(b, 32, 10000), True).hex())
for h in ["1c", "62c080", "9bffffffffffffffff", "c100", "0000", "63eda080", "9f01ff"]:
    try:
        cbor.loads(bytes.fromhex(h))
        out.append("accepted " + h)
    except cbor.CborError as e:
        out.append("%s %s" % (type(e).__name__, e))
print(json.dumps(out))
"""


def test_micropython_roundtrip_equals_cbor2(mp_staged, tmp_path):
    """cbor2 canonical bytes -> MicroPython loads -> MicroPython canonical dumps: identical."""
    r = random.Random(20240611)
    hexes = []
    for _ in range(300):
        hexes.append(cbor2.dumps(_rand_value(r), canonical=True).hex())
    vec = tmp_path / "cases.json"
    vec.write_text(json.dumps(hexes))
    script = tmp_path / "rt.py"
    script.write_text(MP_ROUNDTRIP)
    res = run_micropython(str(script), mp_staged, str(vec), heap="512K")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out[:len(hexes)] == hexes
    assert out[len(hexes):] == ["CborError " + r for r in (
        "reserved", "utf-8", "truncated", "tag", "trailing", "utf-8", "indef")]


def _utf8_cases(n, seed=7):
    """Random short byte strings around the UTF-8 edges (leads C0..FF, continuations, ASCII)."""
    r = random.Random(seed)
    pool = [0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0,
            0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xF7, 0xF8, 0xFE, 0xFF]
    return [bytes(r.choice(pool) if r.random() < 0.8 else r.randrange(256)
                  for _ in range(r.randrange(1, 7))) for _ in range(n)]


MP_UTF8 = """
import sys, json
sys.path.insert(0, sys.argv[1])
from netedge.shared import cbor
with open(sys.argv[2]) as f:
    cases = json.load(f)
out = []
for h in cases:
    try:
        out.append(cbor.loads(bytes.fromhex(h)).encode().hex())
    except cbor.CborError as e:
        out.append(str(e))
print(json.dumps(out))
"""


def test_micropython_utf8_is_as_strict_as_cpython(mp_staged, tmp_path):
    """MicroPython's own decoder accepts overlong forms, surrogates and > U+10FFFF: the codec's
    check must make the node refuse exactly what CPython refuses."""
    raw = _utf8_cases(3000) + [bytes([a, b]) for a in range(0xC0, 0x100) for b in (0x80, 0xBF)]
    raw += [bytes([0xE0 | a >> 4, 0x80 | a & 0xF, 0x80]) for a in range(256)]  # 3-byte forms
    raw += [bytes([0xF0 | a >> 4, 0x80 | a & 0xF, 0x80, 0x80]) for a in range(256)]
    raw += [chr(c).encode() for c in (0x7F, 0x80, 0x7FF, 0x800, 0xD7FF, 0xE000, 0xFFFF, 0x10000,
                                      0x10FFFF)]
    vec = tmp_path / "utf8.json"
    vec.write_text(json.dumps([_as_text(b).hex() for b in raw]))
    script = tmp_path / "utf8.py"
    script.write_text(MP_UTF8)
    res = run_micropython(str(script), mp_staged, str(vec), heap="4M")
    assert res.returncode == 0, res.stderr
    want = [b.hex() if _strict(b) is not None else "utf-8" for b in raw]
    got = json.loads(res.stdout)
    bad = [(b.hex(), w, g) for b, w, g in zip(raw, want, got) if w != g]
    assert not bad, bad[:10]
