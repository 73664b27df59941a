"""Snapshot transfer vectors (shared/transfer.py).  Chunk bytes are built in generate() with
cbor2 (canonical) and hashlib (tests/golden/_ref.py), not with the code under test; the
reassembly outcomes are written out by hand from docs/PROTOCOL.md "Snapshot transfer".

Cases:
  "chunks"      split(mid, origin, snapshot, size) -> the canonical CBOR of each chunk map;
                each decodes and validates, and feeding them in reverse order gives the snapshot
                ("hex": the chunk when there is only one: the doc's worked example)
  "chunk_error" CBOR hex of a frame body -> chunk_from_obj raises TransferError(reason, detail?)
  "split_error" split arguments -> TransferError reason
  "size_for"    chunk_size_for(free_heap) -> size
  "scenario"    Reassembler(**params), then steps: {"op": "feed", "chunk": hex, "now"?} ->
                "want" None (incomplete), "done" (+ "sha256" of the snapshot) or a reason;
                {"op": "cancel"} / {"op": "expire", "now"} -> the bool returned. After every
                step "state" is [origin, mid, chunks left] of the transfer in progress, or None.
"""
import hashlib

from golden import eq, unhex


def _reason(fn, *args):
    from netedge.shared.transfer import TransferError
    try:
        fn(*args)
    except TransferError as e:
        return list(e.args[:2]) if e.args[0] == "malformed" else e.args[0]
    return None


def check(case):
    from netedge.shared import cbor, transfer as T
    from netedge.shared.link import h8
    kind = case["kind"]
    if kind == "chunks":
        data = unhex(case["snapshot"])
        eq("digest", h8(data), case["digest"])
        chunks = T.split(case["mid"], case["origin"], data, case["size"])
        eq("count", len(chunks), len(case["chunks"]))
        r = T.Reassembler(case["size"] * len(chunks), len(chunks))
        got = None
        for i in range(len(chunks)):
            want = unhex(case["chunks"][i])
            eq("chunk %d" % i, cbor.dumps(T.chunk_to_obj(chunks[i]), True), want)
            c = T.chunk_from_obj(cbor.loads(want))
            eq("decoded %d" % i, c["d"], chunks[i]["d"])
        for h in reversed(case["chunks"]):
            got = r.feed(cbor.loads(unhex(h)))
        eq("snapshot", bytes(got), data)
        if "hex" in case:
            eq("hex", case["chunks"], [case["hex"]])
    elif kind == "chunk_error":
        eq("reason", _reason(T.chunk_from_obj, cbor.loads(unhex(case["hex"]))), case["error"])
    elif kind == "split_error":
        eq("reason", _reason(T.split, case["mid"], case["origin"], unhex(case["data"]),
                             case["size"]), case["error"])
    elif kind == "size_for":
        eq("size", T.chunk_size_for(case["free_heap"]), case["size"])
    elif kind == "scenario":
        p = case["params"]
        r = T.Reassembler(p.get("max_bytes", 16384), p.get("max_chunks", 64),
                          p.get("max_chunk", 4096), p.get("max_age", 60))
        for n, st in enumerate(case["steps"]):
            op = st["op"]
            if op == "feed":
                try:
                    got = r.feed(cbor.loads(unhex(st["chunk"])), st.get("now", 0))
                except T.TransferError as e:
                    got = e.args[0]
                else:
                    if got is not None:
                        eq("step %d sha256" % n, hashlib.sha256(got).digest(), unhex(st["sha256"]))
                        got = "done"
            elif op == "cancel":
                got = r.cancel()
            else:
                got = r.expire(st["now"])
            eq("step %d (%s)" % (n, op), got, st["want"])
            eq("step %d state" % n, None if r.buf is None else [r.origin, r.mid, r.left],
               st["state"])
    else:
        raise ValueError("unknown kind " + kind)


# ---- generation (CPython only) ----

def _chunks(mid, origin, data, size, **over):
    """Reference chunk maps: DESIGN.md H8 and docs/PROTOCOL.md's layout, written out."""
    from golden import _ref as R
    n = max(1, -(-len(data) // size))
    out = []
    for i in range(n):
        c = {"m": mid, "o": origin, "i": i, "n": n, "t": len(data), "c": size, "h": R.h8(data),
             "d": data[i * size:(i + 1) * size]}
        c.update(over)
        out.append(c)
    return out


def _hex(c):
    import cbor2
    return cbor2.dumps(c, canonical=True).hex()


def _pattern(n, k=37, b=11):
    return bytes((i * k + b) & 0xFF for i in range(n))


def _feed(c, want, state, now=None, sha=None):
    st = {"op": "feed", "chunk": _hex(c), "want": want, "state": state}
    if now is not None:
        st["now"] = now
    if sha is not None:
        st["sha256"] = hashlib.sha256(sha).hexdigest()
    return st


def _scenarios():
    A, B = 0x0A0A0A0A, 0x0B0B0B0B
    S = _pattern(40)           # a 40-byte snapshot in chunks of 16: 16 + 16 + 8
    S2 = _pattern(40, 5, 200)  # another snapshot of the same length
    a5 = _chunks(5, A, S, 16)
    a6 = _chunks(6, A, S2, 16)
    b1 = _chunks(1, B, S2, 16)
    forged = dict(a5[1], d=bytes(16))
    yield "in_order", {}, [
        _feed(a5[0], None, [A, 5, 2]), _feed(a5[1], None, [A, 5, 1]),
        _feed(a5[2], "done", None, sha=S)]
    yield "out_of_order_with_duplicates", {}, [
        _feed(a5[2], None, [A, 5, 2]), _feed(a5[0], None, [A, 5, 1]),
        _feed(a5[2], None, [A, 5, 1]),  # identical duplicate: idempotent
        _feed(a5[1], "done", None, sha=S),
        _feed(a5[0], "stale", None),    # a redelivery after completion
        _feed(a6[0], None, [A, 6, 2])]  # the next migration of A is welcome
    yield "single_chunk", {}, [
        _feed(_chunks(9, A, S, 64)[0], "done", None, sha=S),
        _feed(_chunks(9, A, S, 64)[0], "stale", None)]
    yield "duplicate_with_other_data", {}, [
        _feed(a5[1], None, [A, 5, 2]), _feed(forged, "duplicate", [A, 5, 2]),
        _feed(a5[0], None, [A, 5, 1]), _feed(a5[2], "done", None, sha=S)]
    yield "forged_chunk_cannot_complete", {}, [
        _feed(a5[0], None, [A, 5, 2]), _feed(forged, None, [A, 5, 1]),
        _feed(a5[2], "digest", None),   # refused, state reset
        _feed(a5[1], None, [A, 5, 2]),  # the genuine chunks start it again
        _feed(a5[2], None, [A, 5, 1]), _feed(a5[0], "done", None, sha=S)]
    yield "header_mismatch", {}, [
        _feed(a5[0], None, [A, 5, 2]),
        _feed(dict(a5[1], h=a5[1]["h"] ^ 1), "mismatch", [A, 5, 2]),                # digest
        _feed(_chunks(5, A, S + b"x", 16)[1], "mismatch", [A, 5, 2]),               # total
        _feed(_chunks(5, A, S, 8)[1], "mismatch", [A, 5, 2]),                       # size
        _feed(_chunks(5, A, S[:32], 32)[0], "mismatch", [A, 5, 2]),                 # count 1
        _feed(a5[1], None, [A, 5, 1])]
    yield "newer_migration_evicts_older_refused", {}, [
        _feed(a5[0], None, [A, 5, 2]), _feed(a6[1], None, [A, 6, 2]),
        _feed(a5[1], "stale", [A, 6, 2]), _feed(a6[0], None, [A, 6, 1]),
        _feed(a6[2], "done", None, sha=S2), _feed(a5[2], "stale", None)]
    yield "other_origin_busy", {}, [
        _feed(a5[0], None, [A, 5, 2]), _feed(b1[0], "busy", [A, 5, 2]),
        _feed(a5[1], None, [A, 5, 1]), _feed(a5[2], "done", None, sha=S),
        _feed(b1[0], None, [B, 1, 2])]
    yield "caps_refuse_before_buffering", {"max_bytes": 39, "max_chunks": 2, "max_chunk": 8}, [
        _feed(_chunks(1, A, S, 8)[0], "count", None),        # 5 chunks > 2
        _feed(_chunks(1, A, S[:16], 8)[0], None, [A, 1, 1]),
        _feed(_chunks(2, A, S[:32], 16)[0], "oversize", [A, 1, 1]),  # c 16 > 8
        _feed(_chunks(1, A, S[:16], 8)[1], "done", None, sha=S[:16])]
    yield "byte_cap", {"max_bytes": 39}, [
        _feed(a5[0], "too large", None), _feed(_chunks(5, A, S[:39], 16)[0], None, [A, 5, 2])]
    yield "structural_refusals_keep_state", {}, [
        _feed(a5[0], None, [A, 5, 2]),
        _feed(dict(a5[1], i=3), "index", [A, 5, 2]),
        _feed(dict(a5[1], d=b""), "empty", [A, 5, 2]),
        _feed(dict(a5[1], d=a5[1]["d"] + b"!"), "oversize", [A, 5, 2]),
        _feed(dict(a5[1], d=a5[1]["d"][:-1]), "malformed", [A, 5, 2]),  # a short chunk
        _feed(dict(a5[1], n=0), "count", [A, 5, 2]),
        _feed(dict(a5[1], m=-1), "malformed", [A, 5, 2]),
        _feed({k: v for k, v in a5[1].items() if k != "h"}, "malformed", [A, 5, 2]),
        _feed(a5[1], None, [A, 5, 1])]
    yield "cancel_keeps_latest_id", {}, [
        {"op": "cancel", "want": False, "state": None},
        _feed(a6[0], None, [A, 6, 2]), {"op": "cancel", "want": True, "state": None},
        _feed(a5[0], "stale", None),
        _feed(a6[1], None, [A, 6, 2]), _feed(a6[0], None, [A, 6, 1]),
        _feed(a6[2], "done", None, sha=S2)]
    yield "expire_explicit", {"max_age": 60}, [
        _feed(a5[0], None, [A, 5, 2], now=1000),
        {"op": "expire", "now": 1060, "want": False, "state": [A, 5, 2]},
        _feed(a5[1], None, [A, 5, 1], now=1050),  # progress refreshes the clock
        {"op": "expire", "now": 1110, "want": False, "state": [A, 5, 1]},
        {"op": "expire", "now": 1111, "want": True, "state": None},
        {"op": "expire", "now": 9999, "want": False, "state": None},
        _feed(a5[1], None, [A, 5, 2], now=2000)]
    yield "expire_opportunistic", {"max_age": 60}, [
        _feed(a5[0], None, [A, 5, 2], now=0),
        _feed(b1[0], "busy", [A, 5, 2], now=60),
        _feed(b1[0], None, [B, 1, 2], now=61),  # A idle > 60: swept first
        _feed(b1[1], None, [B, 1, 1], now=62), _feed(b1[2], "done", None, now=62, sha=S2)]


def generate():
    cases = []
    snap = _pattern(700)
    for name, mid, origin, data, size in (
            ("snapshot_700_in_256", 7, 0xDEADBEEF, snap, 256),
            ("exact_multiple", 1, 1, snap[:512], 256),
            ("one_byte", 0, 0, b"\x00", 256),
            ("max_ids", 0xFFFFFFFF, 0xFFFFFFFF, snap[:100], 4096),
            ("worked_example", 3, 0x12345678, b"counter=42", 256)):
        from golden import _ref as R
        cs = [_hex(c) for c in _chunks(mid, origin, data, size)]
        c = {"kind": "chunks", "name": name, "mid": mid, "origin": origin, "size": size,
             "snapshot": data.hex(), "digest": R.h8(data), "chunks": cs}
        if len(cs) == 1:
            c["hex"] = cs[0]
        cases.append(c)
    good = _chunks(7, 0xDEADBEEF, snap, 256)
    g = good[1]
    for name, obj, err in (
            ("not_a_map", [1, 2], ["malformed", "map"]),
            ("bytes", b"chunk", ["malformed", "map"]),
            ("missing_key", {k: v for k, v in g.items() if k != "t"}, ["malformed", "map"]),
            ("extra_key", dict(g, x=1), ["malformed", "map"]),
            ("wrong_key", dict({k: v for k, v in g.items() if k != "o"}, O=1), ["malformed", "o"]),
            ("int_keys", {i: v for i, v in enumerate(g.values())}, ["malformed", "m"]),
            ("mid_negative", dict(g, m=-1), ["malformed", "m"]),
            ("mid_2_32", dict(g, m=2 ** 32), ["malformed", "m"]),
            ("origin_text", dict(g, o="deadbeef"), ["malformed", "o"]),
            ("index_bool", dict(g, i=True), ["malformed", "i"]),
            ("count_float", dict(g, n=3.0), ["malformed", "n"]),
            ("total_null", dict(g, t=None), ["malformed", "t"]),
            ("size_negative", dict(g, c=-256), ["malformed", "c"]),
            ("digest_negative", dict(g, h=-1), ["malformed", "h"]),
            ("digest_bytes", dict(g, h=bytes(8)), ["malformed", "h"]),
            ("data_text", dict(g, d="x" * 256), ["malformed", "d"]),
            ("data_list", dict(g, d=[1]), ["malformed", "d"]),
            ("count_zero", dict(g, n=0), "count"),
            ("count_over_cap", dict(g, n=65536), "count"),
            ("index_out_of_range", dict(g, i=3), "index"),
            ("index_u32_max", dict(g, i=2 ** 32 - 1), "index"),
            ("zero_length", dict(g, d=b""), "empty"),
            ("data_over_size", dict(g, d=g["d"] + b"\x00"), "oversize"),
            ("size_over_cap", _chunks(1, 1, bytes(5000), 4097)[0], "oversize"),
            ("size_zero", dict(g, c=0), "oversize"),
            ("count_not_ceil", dict(g, n=4, i=1), ["malformed", "n"]),
            ("total_zero", dict(g, t=0), ["malformed", "n"]),
            ("short_middle_chunk", dict(g, d=g["d"][:255]), ["malformed", "d"]),
            ("short_last_chunk", dict(good[2], d=good[2]["d"][:-1]), ["malformed", "d"]),
            ("long_last_chunk", dict(good[2], d=good[2]["d"] + b"\x00"), ["malformed", "d"])):
        cases.append({"kind": "chunk_error", "name": name, "hex": _hex(obj), "error": err})
    for name, mid, origin, data, size, err in (
            ("empty_snapshot", 1, 1, b"", 256, "empty"),
            ("size_zero", 1, 1, b"abc", 0, "empty"),
            ("size_negative", 1, 1, b"abc", -1, ["malformed", "c"]),
            ("size_over_cap", 1, 1, b"abc", 4097, "oversize"),
            ("mid_2_32", 2 ** 32, 1, b"abc", 256, ["malformed", "m"]),
            ("origin_negative", 1, -1, b"abc", 256, ["malformed", "o"])):
        cases.append({"kind": "split_error", "name": name, "mid": mid, "origin": origin,
                      "data": data.hex(), "size": size, "error": err})
    for free in (0, 1000, 2047, 2048, 2111, 2112, 30000, 30720, 32767, 32768, 100000):
        size = max(256, min(4096, free // 8 // 64 * 64))
        cases.append({"kind": "size_for", "name": "free_%d" % free, "free_heap": free,
                      "size": size})
    for name, params, steps in _scenarios():
        cases.append({"kind": "scenario", "name": name, "params": params, "steps": steps})
    return cases
