"""Frame vectors: expected bytes are built with cbor2 (canonical), not with shared/frame.py.

Values are described as in golden/cbor.py. Cases:
  "frame"        type, sender, counter, body -> hex (encode equals it; decode gives the fields)
  "decode_error" hex (+ optional max_size) -> error class name
  "body_error"   hex decodes, but Frame.body() raises MalformedFrame
  "encode_error" type, sender, counter, body descriptions -> error class name
  "size"         a frame of exactly `len` bytes, pinned by sha256 (too big to store as hex);
                 one more body byte must fail to encode, one more trailing byte to decode
"""
import hashlib

from golden import eq, unhex
from golden.cbor import build, same, expect_error


def check(case):
    from netedge.shared import frame
    kind = case["kind"]
    if kind == "frame":
        body = build(case["body"])
        data = unhex(case["hex"])
        eq("encode", frame.encode(case["type"], case["sender"], case["counter"], body), data)
        f = frame.decode(data)
        eq("version", f.version, 1)
        eq("type", f.type, case["type"])
        eq("type name", f.type_name(), case["type_name"])
        eq("sender", f.sender, case["sender"])
        eq("counter", f.counter, case["counter"])
        eq("body_bytes", f.body_bytes, unhex(case["body_hex"]))
        if not same(f.body(), build(case.get("decoded", case["body"]))):
            raise AssertionError("body: got %r" % (f.body(),))
    elif kind == "decode_error":
        expect_error(case["error"], frame.decode, unhex(case["hex"]),
                     case.get("max_size", frame.MAX_FRAME))
    elif kind == "body_error":
        f = frame.decode(unhex(case["hex"]))
        expect_error("MalformedFrame", f.body)
    elif kind == "encode_error":
        expect_error(case["error"], frame.encode, build(case["type"]), build(case["sender"]),
                     build(case["counter"]), build(case["body"]))
    elif kind == "size":
        n = case["body_len"]
        data = frame.encode(case["type"], case["sender"], case["counter"], bytes(n))
        eq("len", len(data), case["len"])
        eq("len", frame.MAX_FRAME, case["len"])
        eq("sha256", hashlib.sha256(data).digest(), unhex(case["sha256"]))
        eq("body", frame.decode(data).body(), bytes(n))
        expect_error("FrameTooLarge", frame.decode, data + b"\x00")
        expect_error("FrameTooLarge", frame.encode, case["type"], case["sender"], case["counter"],
                     bytes(n + 1))
    else:
        raise ValueError("unknown kind " + kind)


# ---- generation (CPython only) ----

_FRAMES = [  # name, type, type name, sender, counter, body
    ("heartbeat_example", 3, "HEARTBEAT", "node-1", 300, {"up": 12, "heap": 40960}),
    ("input_min", 1, "INPUT", "a", 0, None),
    ("chain_event", 2, "CHAIN_EVENT", "node-7", 2**32 - 1,
     {"link": bytes(range(24)), "payload": b"\x01\x02", "daemon": "thermo"}),
    ("status_nested", 4, "STATUS", "gw", 65536,
     {"daemons": [{"id": "b", "seq": 3}, {"id": "a", "seq": 24}], "load": 0.25, "ok": True}),
    ("error_text", 5, "ERROR", "gateway-0", 24, {"code": 3, "msg": "sequence gap"}),
    ("proof_bytes", 6, "PROOF", "n", 255, bytes(36)),
    ("fork_record", 7, "FORK_RECORD", "x" * 32, 256, [1, -1, 1.5, "f", b""]),
    ("discontinuity_utf8_sender", 8, "DISCONTINUITY", "n\u00f8de-\u00e9", 23, {"reason": 2}),
]


def _raw(*fields):
    import cbor2
    return cbor2.dumps(list(fields), canonical=True).hex()


def _body(v):
    import cbor2
    return cbor2.dumps(v, canonical=True)


def _decode_errors():
    ok = _body({"a": 1})
    h = "850103616101" + "43a16101"  # a valid frame prefix: v1 HEARTBEAT "a" counter 1, body
    return [
        ("not_cbor", "ff", "MalformedFrame"),
        ("empty", "", "MalformedFrame"),
        ("truncated", h[:-2], "MalformedFrame"),
        ("trailing", h + "00", "MalformedFrame"),
        ("not_array", _raw_map(), "MalformedFrame"),
        ("empty_array", "80", "MalformedFrame"),
        ("version_text", _raw("1", 3, "a", 1, ok), "MalformedFrame"),
        ("version_negative", _raw(-1, 3, "a", 1, ok), "MalformedFrame"),
        ("version_0", _raw(0, 3, "a", 1, ok), "UnsupportedVersion"),
        ("version_2", _raw(2, 3, "a", 1, ok), "UnsupportedVersion"),
        ("version_2_other_arity", _raw(2, "anything"), "UnsupportedVersion"),
        ("auth_6th_element", _raw(1, 3, "a", 1, ok, bytes(32)), "AuthNotSupported"),
        ("arity_4", _raw(1, 3, "a", 1), "MalformedFrame"),
        ("arity_7", _raw(1, 3, "a", 1, ok, b"", b""), "MalformedFrame"),
        ("version_only", _raw(1), "MalformedFrame"),
        ("type_0", _raw(1, 0, "a", 1, ok), "UnknownFrameType"),
        ("type_99", _raw(1, 99, "a", 1, ok), "UnknownFrameType"),
        ("type_text", _raw(1, "HEARTBEAT", "a", 1, ok), "MalformedFrame"),
        ("type_bool", _raw(1, True, "a", 1, ok), "MalformedFrame"),
        ("sender_empty", _raw(1, 3, "", 1, ok), "MalformedFrame"),
        ("sender_33", _raw(1, 3, "x" * 33, 1, ok), "MalformedFrame"),
        ("sender_17_chars_34_bytes", _raw(1, 3, "\u00e9" * 17, 1, ok), "MalformedFrame"),
        ("sender_bytes", _raw(1, 3, b"a", 1, ok), "MalformedFrame"),
        ("sender_int", _raw(1, 3, 7, 1, ok), "MalformedFrame"),
        ("counter_2_32", _raw(1, 3, "a", 2**32, ok), "MalformedFrame"),
        ("counter_negative", _raw(1, 3, "a", -1, ok), "MalformedFrame"),
        ("counter_float", _raw(1, 3, "a", 1.0, ok), "MalformedFrame"),
        ("body_map", _raw(1, 3, "a", 1, {"a": 1}), "MalformedFrame"),
        ("body_text", _raw(1, 3, "a", 1, "x"), "MalformedFrame"),
        ("noncanonical_counter", "850103616119000143a16101", "MalformedFrame"),
        ("noncanonical_array_head", "98050103616101" + "43a16101", "MalformedFrame"),
        ("indefinite_array", "9f0103616101" + "43a16101" + "ff", "MalformedFrame"),
        ("indefinite_body", "850103616101" + "5f43a16101ff", "MalformedFrame"),
        ("nested_too_deep", "8501" + "81" * 8 + "00", "MalformedFrame"),
        ("over_max_size_param", h, "FrameTooLarge", 8),
    ]


def _raw_map():
    import cbor2
    return cbor2.dumps({"v": 1}).hex()


def generate():
    import cbor2
    cases = []
    from golden.cbor import describe
    for name, t, tname, sender, counter, body in _FRAMES:
        bb = _body(body)
        c = {"kind": "frame", "name": name, "type": t, "type_name": tname, "sender": sender,
             "counter": counter, "body": describe(body), "body_hex": bb.hex(),
             "hex": _raw(1, t, sender, counter, bb)}
        back = describe(cbor2.loads(bb))
        if back != c["body"]:
            c["decoded"] = back
        cases.append(c)
    for e in _decode_errors():
        c = {"kind": "decode_error", "name": e[0], "hex": e[1], "error": e[2]}
        if len(e) > 3:
            c["max_size"] = e[3]
        cases.append(c)
    for name, body_hex in (("body_truncated", "a161"), ("body_trailing", "0000"),
                           ("body_tag", "c100"), ("body_empty", "")):
        cases.append({"kind": "body_error", "name": name,
                      "hex": _raw(1, 4, "a", 1, bytes.fromhex(body_hex))})
    for name, t, s, n, b, err in (
            ("enc_type_unknown", 42, "a", 1, None, "UnknownFrameType"),
            ("enc_sender_empty", 1, "", 1, None, "MalformedFrame"),
            ("enc_sender_long", 1, "y" * 33, 1, None, "MalformedFrame"),
            ("enc_sender_bytes", 1, b"a", 1, None, "MalformedFrame"),
            ("enc_counter_big", 1, "a", 2**32, None, "MalformedFrame"),
            ("enc_counter_neg", 1, "a", -1, None, "MalformedFrame"),
            ("enc_body_bigint", 1, "a", 1, 2**64, "CborEncodeError")):
        cases.append({"kind": "encode_error", "name": name, "type": describe(t),
                      "sender": describe(s), "counter": describe(n), "body": describe(b),
                      "error": err})
    # The largest frame: MAX_FRAME (8192) bytes, a `bytes` body, computed with cbor2.
    t, sender, counter = 2, "node-1", 1
    n = 8192 - len(bytes.fromhex(_raw(1, t, sender, counter, _body(bytes(1000))))) + 1000
    data = bytes.fromhex(_raw(1, t, sender, counter, _body(bytes(n))))
    assert len(data) == 8192
    cases.append({"kind": "size", "name": "max_frame", "type": t, "sender": sender,
                  "counter": counter, "body_len": n, "len": len(data),
                  "sha256": hashlib.sha256(data).hexdigest()})
    return cases
