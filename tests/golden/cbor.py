"""CBOR vectors: expected bytes come from cbor2 (the gateway's codec), not from shared/cbor.py.

A value is described in JSON as null/true/false or a list [kind, x]: ["i", "decimal"],
["f", "16 hex digits of the IEEE double"], ["b", "hex"], ["s", "hex of UTF-8"],
["a", [values]], ["t", [values]] (tuple), ["m", [[key, value], ...]].
Cases: "value" (canonical hex, plus "plain" hex when the encoding does not depend on dict order,
plus "decoded" when cbor2's decoding differs from "value", e.g. tuple -> list), "decode"
(hex -> value), "decode_error" (hex -> error class name and the reason, i.e. the error's
message, optional caps), "encode_error" (value -> error class name and reason).
"""
import struct

from golden import eq, unhex


def build(d):
    if d is None or d is True or d is False:
        return d
    k, x = d
    if k == "i":
        return int(x)
    if k == "f":
        return struct.unpack(">d", unhex(x))[0]
    if k == "b":
        return unhex(x)
    if k == "s":
        return str(unhex(x), "utf-8")
    if k == "a":
        return [build(v) for v in x]
    if k == "t":
        return tuple(build(v) for v in x)
    if k == "m":
        return dict((build(a), build(b)) for a, b in x)
    raise ValueError("bad value description %r" % (d,))


def same(a, b):
    """Structural equality that tells bool from int, -0.0 from 0.0 and lets nan equal nan."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        if a != a:
            return b != b
        return struct.pack(">d", a) == struct.pack(">d", b)
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if type(a) is dict:
        if len(a) != len(b):
            return False
        nan_keys = [k for k in b if k != k]  # a NaN key is never `in` a dict: pair them up
        for k in a:
            if k != k:
                if not nan_keys or not same(a[k], b[nan_keys.pop()]):
                    return False
            elif k not in b or not same(a[k], b[k]):
                return False
        return True
    return a == b


def expect_error(name, fn, *args, reason=None):
    """fn(*args) raises the class called `name` (and, if given, with message `reason`)."""
    try:
        fn(*args)
    except Exception as e:
        eq("error", type(e).__name__, name)
        if reason is not None:
            eq("reason", str(e), reason)
        return
    raise AssertionError("no error, want %s" % name)


def check(case):
    from netedge.shared import cbor
    kind = case["kind"]
    if kind == "value":
        v = build(case["value"])
        data = unhex(case["canonical"])
        eq("canonical", cbor.dumps(v, True), data)
        back = build(case.get("decoded", case["value"]))
        if "plain" in case:
            eq("plain", cbor.dumps(v), unhex(case["plain"]))
            if not same(cbor.loads(unhex(case["plain"])), back):
                raise AssertionError("plain decode mismatch")
        if not same(cbor.loads(data), back):
            raise AssertionError("decode mismatch: %r" % (cbor.loads(data),))
    elif kind == "decode":
        got = cbor.loads(unhex(case["hex"]))
        if not same(got, build(case["value"])):
            raise AssertionError("decode: got %r" % (got,))
    elif kind == "decode_error":
        expect_error(case["error"], cbor.loads, unhex(case["hex"]),
                     case.get("max_depth", cbor.MAX_DEPTH), case.get("max_items", cbor.MAX_ITEMS),
                     reason=case["reason"])
    elif kind == "encode_error":
        expect_error(case["error"], cbor.dumps, build(case["value"]), True,
                     reason=case["reason"])
    else:
        raise ValueError("unknown kind " + kind)


# ---- generation (CPython only) ----

def describe(v):
    if v is None or v is True or v is False:
        return v
    t = type(v)
    if t is int:
        return ["i", str(v)]
    if t is float:
        return ["f", struct.pack(">d", v).hex()]
    if t is bytes:
        return ["b", v.hex()]
    if t is str:
        return ["s", v.encode().hex()]
    if t is list:
        return ["a", [describe(x) for x in v]]
    if t is tuple:
        return ["t", [describe(x) for x in v]]
    if t is dict:
        return ["m", [[describe(k), describe(x)] for k, x in v.items()]]
    raise TypeError(t)


def _order_free(v):
    """True if the plain (non-canonical) encoding cannot depend on dict iteration order."""
    if type(v) is dict:
        return len(v) < 2 and all(_order_free(k) and _order_free(x) for k, x in v.items())
    if type(v) in (list, tuple):
        return all(_order_free(x) for x in v)
    return True


def _values():
    nan = float("nan")
    inf = float("inf")
    ints = [0, 1, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63, 2**64 - 1,
            -1, -24, -25, -256, -257, -65536, -65537, -2**32, -2**32 - 1, -2**64]
    floats = [0.0, -0.0, 1.0, 1.5, -2.5, 65504.0, 65520.0, 2.0**-14, 2.0**-24, 2.0**-25,
              0.1, 1e300, -1e300, 1e-40, 2.0**-149, 3.4028234663852886e+38, 100000.0,
              1.0 / 3, inf, -inf, nan]
    vals = [("int_%s" % str(i).replace("-", "m"), i) for i in ints]
    vals += [("float_%d" % n, f) for n, f in enumerate(floats)]
    vals += [
        ("none", None), ("true", True), ("false", False),
        ("bytes_empty", b""), ("bytes_23", bytes(range(23))), ("bytes_24", bytes(24)),
        ("bytes_256", bytes(range(256))),
        ("text_empty", ""), ("text_ascii", "netedge"), ("text_utf8", "h\u00e9\u20ac\U0001f600"),
        ("text_24", "x" * 24),
        ("list_empty", []), ("list_nested", [1, [2, [3, []]], "a", b"b", None]),
        ("list_24", list(range(24))), ("tuple", (1, "two", 3.5)),
        ("map_empty", {}), ("map_one", {"k": [1, 2]}),
        ("map_text_keys", {"b": 1, "a": 2, "aa": 3, "B": 4, "": 5}),
        ("map_int_keys", {10: "a", -1: "b", 0: "c", 24: "d", 1000: "e", -1000: "f"}),
        # Text and bytes keys are never in one map here: a MicroPython dict holding both compares
        # them whenever a lookup probes past one (False, rightly, but the unix port prints
        # "Comparison between bytes and str" each time).  Both in one map: tests/test_cbor.py.
        ("map_mixed_keys", {"a": 1, 1: 2, -5: 4, 1.5: 5, None: 6, False: 7, (1, 2): 8, "aaaa": 9, 300: 10}),
        ("map_mixed_bytes_keys", {b"a": 3, 1: 2, -5: 4, 1.5: 5, None: 6, False: 7, (1, 2): 8, b"aaaa": 9,
                                  300: 10}),
        ("map_nested", {"z": {"y": 1, "x": [{"b": 2, "a": 1}]}, "a": {2: 0, 1: 0}}),
        ("map_float_vals", {"h": 1.5, "s": 0.1, "n": nan}),
    ]
    return vals


_DECODE = [  # hex forms cbor2 may accept that canonical encoding never produces
    ("nonminimal_u8", "1801"), ("nonminimal_u64", "1b0000000000000001"),
    ("nonminimal_neg", "3900ff"), ("half_1.5", "f93e00"), ("half_subnormal", "f90001"),
    ("half_neg_zero", "f98000"), ("half_max", "f97bff"), ("single_0.1", "fa3dcccccd"),
    ("double_1.5", "fb3ff8000000000000"), ("nan_single", "fa7fc00000"),
    ("bytes_u16_len", "590002abcd"),
]

_ERRORS = [  # name, hex, reason (the CborError's message)
    ("empty", "", "truncated"),
    ("truncated_u16", "19ff", "truncated"),
    ("truncated_u64", "1b00000000000000", "truncated"),
    ("truncated_text", "6361", "truncated"),
    ("truncated_array", "830102", "truncated"),
    ("truncated_map_value", "a16161", "truncated"),
    ("truncated_double", "fb3ff8", "truncated"),
    ("truncated_simple_u8", "f8", "truncated"),
    ("bytes_len_bomb", "5bffffffffffffffff00", "truncated"),
    ("array_len_bomb", "9bffffffffffffffff00", "truncated"),
    ("map_len_bomb", "ba7fffffff0000", "truncated"),
    ("trailing", "0000", "trailing"),
    ("trailing_after_array", "8001", "trailing"),
    ("reserved_ai_28", "1c", "reserved"),
    ("reserved_ai_30_neg", "3e", "reserved"),
    ("reserved_simple_28", "fc", "reserved"),
    # indefinite lengths are outside the subset (cbor2 never writes them), and so is a break
    ("stray_break", "ff", "indef"),
    ("break_as_map_value", "a16161ff", "indef"),
    ("indef_uint", "1f", "indef"),
    ("indef_tag", "df", "indef"),
    ("indef_bytes", "5f4161426263ff", "indef"),
    ("indef_text", "7f62c3a9626161ff", "indef"),
    ("indef_bytes_empty", "5fff", "indef"),
    ("indef_array", "9f0102ff", "indef"),
    ("indef_in_array", "829f01ff02", "indef"),
    ("indef_map", "bf616101616202ff", "indef"),
    ("utf8_invalid_ff", "61ff", "utf-8"),
    ("utf8_overlong", "62c080", "utf-8"),
    ("utf8_overlong_3", "63e08080", "utf-8"),
    ("utf8_overlong_4", "64f08fbfbf", "utf-8"),
    ("utf8_surrogate", "63eda080", "utf-8"),
    ("utf8_above_10ffff", "64f4908080", "utf-8"),
    ("utf8_f5_lead", "64f5808080", "utf-8"),
    ("utf8_truncated_seq", "62e282", "utf-8"),
    ("utf8_lone_continuation", "6180", "utf-8"),
    ("duplicate_key", "a201010102", "dup key"),
    ("tag_datetime", "c11a514b67b0", "tag"),
    ("tag_bignum", "c249010000000000000000", "tag"),
    ("undefined", "f7", "simple"),
    ("simple_16", "f0", "simple"),
    ("simple_u8", "f8ff", "simple"),
    ("simple_u8_false", "f814", "simple"),
    ("map_as_map_key", "a1a00101", "map key"),
    ("map_in_array_key", "a181a00101", "map key"),
]

_LIMIT_ERRORS = [
    ("depth_17", "81" * 17 + "00", "depth", {}),
    ("depth_cap_2", "8181818100", "depth", {"max_depth": 2}),
    ("items_cap_3", "8401020304", "items", {"max_items": 3}),
    ("items_cap_nested", "8281018101", "items", {"max_items": 3}),
]


def generate():
    import cbor2
    cases = []
    for name, v in _values():
        c = {"kind": "value", "name": name, "value": describe(v),
             "canonical": cbor2.dumps(v, canonical=True).hex()}
        if _order_free(v):
            c["plain"] = cbor2.dumps(v).hex()
        back = describe(cbor2.loads(bytes.fromhex(c["canonical"])))
        if back != c["value"]:  # arrays decode as lists (tuples only as map keys)
            c["decoded"] = back
        cases.append(c)
    for name, h in _DECODE:
        cases.append({"kind": "decode", "name": name, "hex": h,
                      "value": describe(cbor2.loads(bytes.fromhex(h)))})
    for name, h, why in _ERRORS:
        cases.append({"kind": "decode_error", "name": name, "hex": h, "error": "CborError",
                      "reason": why})
    for name, h, why, caps in _LIMIT_ERRORS:
        c = {"kind": "decode_error", "name": name, "hex": h, "error": "CborError", "reason": why}
        c.update(caps)
        cases.append(c)
    for name, v in (("int_2_64", 2**64), ("int_m2_64_m1", -2**64 - 1)):
        cases.append({"kind": "encode_error", "name": name, "value": describe(v),
                      "error": "CborEncodeError", "reason": "int"})
    return cases
