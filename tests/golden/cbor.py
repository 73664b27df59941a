"""CBOR vectors: expected bytes come from cbor2 (the gateway's codec), not from shared/cbor.py.

A value is described in JSON as null/true/false or a list [kind, x]: ["i", "decimal"],
["f", "16 hex digits of the IEEE double"], ["b", "hex"], ["s", "hex of UTF-8"],
["a", [values]], ["t", [values]] (tuple), ["m", [[key, value], ...]].
Cases: "value" (canonical hex, plus "plain" hex when the encoding does not depend on dict order,
plus "decoded" when cbor2's decoding differs from "value", e.g. tuple -> list), "decode"
(hex -> value), "decode_error" (hex -> error class name, optional caps), "encode_error"
(value -> error class name).
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
        return len(a) == len(b) and all(k in b and same(a[k], b[k]) for k in a)
    return a == b


def expect_error(name, fn, *args):
    try:
        fn(*args)
    except Exception as e:
        eq("error", type(e).__name__, name)
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
                     case.get("max_depth", cbor.MAX_DEPTH), case.get("max_items", cbor.MAX_ITEMS))
    elif kind == "encode_error":
        expect_error(case["error"], cbor.dumps, build(case["value"]), True)
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
        ("map_mixed_keys", {"a": 1, 1: 2, b"a": 3, -5: 4, 1.5: 5, None: 6, False: 7,
                            (1, 2): 8, "aaaa": 9, 300: 10}),
        ("map_nested", {"z": {"y": 1, "x": [{"b": 2, "a": 1}]}, "a": {2: 0, 1: 0}}),
        ("map_float_vals", {"h": 1.5, "s": 0.1, "n": nan}),
    ]
    return vals


_DECODE = [  # hex forms cbor2 may accept that canonical encoding never produces
    ("nonminimal_u8", "1801"), ("nonminimal_u64", "1b0000000000000001"),
    ("nonminimal_neg", "3900ff"), ("half_1.5", "f93e00"), ("half_subnormal", "f90001"),
    ("half_neg_zero", "f98000"), ("half_max", "f97bff"), ("single_0.1", "fa3dcccccd"),
    ("double_1.5", "fb3ff8000000000000"), ("nan_single", "fa7fc00000"),
    ("indef_bytes", "5f4161426263ff"), ("indef_text", "7f62c3a9626161ff"),
    ("indef_bytes_empty", "5fff"), ("indef_array", "9f0102ff"), ("indef_nested", "9f9fff80ff"),
    ("indef_map", "bf616101616202ff"), ("array_in_indef_map_key", "bf82010201ff"),
    ("bytes_u16_len", "590002abcd"),
]

_ERRORS = [
    ("empty", "", "CborTruncated"),
    ("truncated_u16", "19ff", "CborTruncated"),
    ("truncated_u64", "1b00000000000000", "CborTruncated"),
    ("truncated_text", "6361", "CborTruncated"),
    ("truncated_array", "830102", "CborTruncated"),
    ("truncated_map_value", "a16161", "CborTruncated"),
    ("truncated_double", "fb3ff8", "CborTruncated"),
    ("truncated_indef", "9f01", "CborTruncated"),
    ("bytes_len_bomb", "5bffffffffffffffff00", "CborTruncated"),
    ("array_len_bomb", "9bffffffffffffffff00", "CborTruncated"),
    ("map_len_bomb", "ba7fffffff0000", "CborTruncated"),
    ("trailing", "0000", "CborTrailingBytes"),
    ("trailing_after_array", "8001", "CborTrailingBytes"),
    ("reserved_ai_28", "1c", "CborMalformed"),
    ("reserved_ai_30_neg", "3e", "CborMalformed"),
    ("reserved_simple_28", "fc", "CborMalformed"),
    ("stray_break", "ff", "CborMalformed"),
    ("break_as_map_value", "bf6161ff", "CborMalformed"),
    ("indef_uint", "1f", "CborMalformed"),
    ("indef_tag", "df", "CborMalformed"),
    ("indef_text_bad_chunk", "7f4161ff", "CborMalformed"),
    ("indef_text_nested_indef", "7f7fffff", "CborMalformed"),
    ("utf8_invalid_ff", "61ff", "CborMalformed"),
    ("utf8_overlong", "62c080", "CborMalformed"),
    ("utf8_overlong_3", "63e08080", "CborMalformed"),
    ("utf8_surrogate", "63eda080", "CborMalformed"),
    ("utf8_above_10ffff", "64f4908080", "CborMalformed"),
    ("utf8_truncated_seq", "62e282", "CborMalformed"),
    ("utf8_split_chunks", "7f61c361a9ff", "CborMalformed"),
    ("duplicate_key", "a201010102", "CborMalformed"),
    ("tag_datetime", "c11a514b67b0", "CborUnsupported"),
    ("tag_bignum", "c249010000000000000000", "CborUnsupported"),
    ("undefined", "f7", "CborUnsupported"),
    ("simple_16", "f0", "CborUnsupported"),
    ("simple_u8", "f8ff", "CborUnsupported"),
    ("map_as_map_key", "a1a00101", "CborUnsupported"),
]

_LIMIT_ERRORS = [
    ("depth_17", "81" * 17 + "00", {}),
    ("depth_cap_2", "8181818100", {"max_depth": 2}),
    ("items_cap_3", "8401020304", {"max_items": 3}),
    ("items_cap_nested", "8281018101", {"max_items": 3}),
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
    for name, h, err in _ERRORS:
        cases.append({"kind": "decode_error", "name": name, "hex": h, "error": err})
    for name, h, caps in _LIMIT_ERRORS:
        c = {"kind": "decode_error", "name": name, "hex": h, "error": "CborLimitExceeded"}
        c.update(caps)
        cases.append(c)
    for name, v in (("int_2_64", 2**64), ("int_m2_64_m1", -2**64 - 1)):
        cases.append({"kind": "encode_error", "name": name, "value": describe(v),
                      "error": "CborEncodeError"})
    return cases
