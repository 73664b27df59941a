"""The chain event payload codec (shared/event.py, event_decode.py, docs/PROTOCOL.md §11): what
decodes, to which fields, and what is refused with which reason.  Expectations come from cbor2 and
hashlib, not from the code under test."""
from netedge.shared import event as E
from netedge.shared import event_decode as D
from golden import unhex, eq


def check(case):
    data = unhex(case["hex"])
    if "error" in case:
        try:
            D.decode(data)
        except D.MalformedEvent as e:
            eq("reason", str(e).split(":")[0], case["error"])
            return
        raise AssertionError("decoded, want MalformedEvent %s" % case["error"])
    sender, counter, digest, status, outputs = D.decode(data)
    eq("sender", sender, case["sender"])
    eq("counter", counter, case["counter"])
    eq("input_h8", "%016x" % digest, case["input_h8"])
    eq("status", status, case["status"])
    eq("outputs", [o.hex() for o in outputs], case["outputs"])
    if "input" in case:  # the encoder gives these very bytes
        eq("encode", E.encode(sender, counter, unhex(case["input"]), status, outputs).hex(), case["hex"])


def generate():
    import cbor2
    from golden import _ref as R

    def c(v):
        return cbor2.dumps(v, canonical=True)

    cases = []

    def ok(name, sender, counter, inp, status, outputs):
        digest = R.h8(inp)
        cases.append({"name": name, "hex": c([sender, counter, digest, status, outputs]).hex(), "sender": sender,
                      "counter": counter, "input": inp.hex(), "input_h8": "%016x" % digest, "status": status,
                      "outputs": [o.hex() for o in outputs]})

    def bad(name, data, why):
        cases.append({"name": name, "hex": data.hex(), "error": why})

    ok("counter-event", "sensor-7", 7, b"42", 0, [b"42"])
    ok("failed-input", "sensor-7", 8, b"x", 1, [b"ValueError"])
    ok("no-outputs", "s", 0, b"", 0, [])
    ok("many-outputs", "s", 1, b"abc", 0, [b"", b"a" * 30, b"\x00" * 300])
    ok("longest-sender-utf8", "\u00e9" * 16, 0xFFFFFFFF, b"\xff" * 2048, 0, [b"1"])

    good = c(["sensor-7", 7, R.h8(b"42"), 0, [b"42"]])
    h = R.h8(b"42")
    bad("empty", b"", "cbor")
    bad("truncated", good[:-1], "cbor")
    bad("trailing-byte", good + b"\x00", "cbor")
    bad("indefinite-array", b"\x9f" + good[1:] + b"\xff", "cbor")
    bad("a-map", c({"sender": "s"}), "shape")
    bad("four-items", c(["s", 7, h, 0]), "shape")
    bad("six-items", c(["s", 7, h, 0, [], None]), "shape")
    bad("sender-int", c([7, 7, h, 0, []]), "sender")
    bad("sender-bytes", c([b"s", 7, h, 0, []]), "sender")
    bad("sender-empty", c(["", 7, h, 0, []]), "sender")
    bad("sender-33-bytes", c(["s" * 33, 7, h, 0, []]), "sender")
    bad("counter-negative", c(["s", -1, h, 0, []]), "counter")
    bad("counter-2^32", c(["s", 2 ** 32, h, 0, []]), "counter")
    bad("counter-true", c(["s", True, h, 0, []]), "counter")
    bad("counter-float", c(["s", 7.0, h, 0, []]), "counter")
    bad("input_h8-negative", c(["s", 7, -1, 0, []]), "input_h8")
    bad("input_h8-bytes", c(["s", 7, b"\x00" * 8, 0, []]), "input_h8")
    bad("input_h8-bignum", c(["s", 7, 2 ** 64, 0, []]), "cbor")  # a tag: outside the CBOR subset
    bad("status-2", c(["s", 7, h, 2, []]), "status")
    bad("status-false", c(["s", 7, h, False, []]), "status")
    bad("outputs-bytes", c(["s", 7, h, 0, b"42"]), "outputs")
    bad("outputs-text", c(["s", 7, h, 0, ["42"]]), "outputs")
    bad("outputs-nested", c(["s", 7, h, 0, [[b"42"]]]), "outputs")
    bad("outputs-deep", c(["s", 7, h, 0, [[[b"42"]]]]), "cbor")
    bad("failed-no-output", c(["s", 7, h, 1, []]), "outputs")
    bad("failed-two-outputs", c(["s", 7, h, 1, [b"ValueError", b"x"]]), "outputs")
    # counter 7 as 0x18 0x07: the same values, another encoding (canonical CBOR is unique)
    bad("non-canonical-counter", b"\x85" + c("s") + b"\x18\x07" + c(h) + b"\x00\x80", "canonical")
    bad("non-canonical-h8", b"\x85" + c("s") + b"\x07" + b"\x1b" + (5).to_bytes(8, "big") + b"\x00\x80",
        "canonical")
    big = c(["s", 7, h, 0, [b"x" * 8192]])
    bad("larger-than-a-frame", big, "size")
    return cases
