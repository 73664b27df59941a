"""shared/frame.py: frames built with cbor2 decode, ours equal cbor2's bytes, bad ones fail typed."""
import cbor2
import pytest
from hypothesis import given, settings, strategies as st

from golden.cbor import same
from netedge.shared import frame
from netedge.shared.errors import DecodeError
from test_cbor import values

senders = st.text(min_size=1, max_size=32).filter(lambda s: len(s.encode()) <= 32)
counters = st.integers(0, 2**32 - 1)
ftypes = st.sampled_from(sorted(frame.TYPES))


def ref(*fields):
    """A frame as the gateway's cbor2 would build it."""
    return cbor2.dumps(list(fields), canonical=True)


OK_BODY = cbor2.dumps({"a": 1}, canonical=True)


@settings(max_examples=200, deadline=None)
@given(ftypes, senders, counters, values)
def test_roundtrip_equals_cbor2(t, sender, counter, body):
    bb = cbor2.dumps(body, canonical=True)
    data = frame.encode(t, sender, counter, body)
    assert data == ref(1, t, sender, counter, bb)
    f = frame.decode(data)
    assert (f.version, f.type, f.sender, f.counter, f.body_bytes) == (1, t, sender, counter, bb)
    assert same(f.body(), cbor2.loads(bb))
    for g in (frame.decode(bytearray(data)), frame.decode(memoryview(data))):
        assert (g.version, g.type, g.sender, g.counter, g.body_bytes) == (1, t, sender, counter, bb)
        assert type(g.body_bytes) is bytes


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_raise_only_frame_errors(data):
    try:
        frame.decode(data)
    except frame.FrameError:
        pass


@settings(max_examples=300, deadline=None)
@given(ftypes, senders, counters, values, st.data())
def test_mutations_raise_only_frame_errors(t, sender, counter, body, draw):
    b = bytearray(frame.encode(t, sender, counter, body))
    i = draw.draw(st.integers(0, len(b) - 1))
    b[i] = draw.draw(st.integers(0, 255))
    try:
        f = frame.decode(bytes(b))
    except frame.FrameError:
        return
    try:
        f.body()
    except frame.FrameError:
        pass
    # whatever decoded is canonical: re-encoding the fields gives the same bytes back
    assert frame._header(f.type, f.sender, f.counter, len(f.body_bytes)) + f.body_bytes == bytes(b)


@pytest.mark.parametrize("fields, err", [
    ((2, 3, "a", 1, OK_BODY), frame.UnsupportedVersion),
    ((0, 3, "a", 1, OK_BODY), frame.UnsupportedVersion),
    ((7,), frame.UnsupportedVersion),
    (("1", 3, "a", 1, OK_BODY), frame.MalformedFrame),
    ((99, 3, "a", 1, OK_BODY), frame.UnsupportedVersion),
    ((1, 9999, "a", 1, OK_BODY), frame.UnknownFrameType),
    ((1, 0, "a", 1, OK_BODY), frame.UnknownFrameType),
    ((1, "STATUS", "a", 1, OK_BODY), frame.MalformedFrame),
    ((1, 3, "a", 1, OK_BODY, b"mac"), frame.AuthNotSupported),
    ((1, 3, "a", 1), frame.MalformedFrame),
    ((1, 3, "a", 1, OK_BODY, b"", b""), frame.MalformedFrame),
    ((1,), frame.MalformedFrame),
    ((1, 3, "", 1, OK_BODY), frame.MalformedFrame),
    ((1, 3, "s" * 33, 1, OK_BODY), frame.MalformedFrame),
    ((1, 3, "\u20ac" * 11, 1, OK_BODY), frame.MalformedFrame),  # 11 chars, 33 bytes
    ((1, 3, b"node", 1, OK_BODY), frame.MalformedFrame),
    ((1, 3, None, 1, OK_BODY), frame.MalformedFrame),
    ((1, 3, "a", 2**32, OK_BODY), frame.MalformedFrame),
    ((1, 3, "a", -1, OK_BODY), frame.MalformedFrame),
    ((1, 3, "a", True, OK_BODY), frame.MalformedFrame),
    ((1, 3, "a", 1, {"a": 1}), frame.MalformedFrame),
    ((1, 3, "a", 1, "text"), frame.MalformedFrame),
    ((1, 3, "a", 1, None), frame.MalformedFrame),
])
def test_bad_fields(fields, err):
    with pytest.raises(err):
        frame.decode(ref(*fields))


def test_edges_accepted():
    for fields in ((1, 1, "s" * 32, 2**32 - 1, OK_BODY), (1, 8, "\u20ac" * 10, 0, b"\xf6")):
        f = frame.decode(ref(*fields))
        assert (f.version, f.type, f.sender, f.counter, f.body_bytes) == fields


def test_not_a_frame():
    for data in (b"", b"\xff", cbor2.dumps({"v": 1}), b"\x80", ref(1, 3, "a", 1, OK_BODY)[:-1],
                 ref(1, 3, "a", 1, OK_BODY) + b"\x00", "850103", None):
        with pytest.raises(frame.MalformedFrame):
            frame.decode(data)


def test_non_canonical_envelope():
    good = ref(1, 3, "a", 7, OK_BODY)
    assert frame.decode(good).counter == 7
    for bad in ("8501036161" "1807" "43a16101",          # counter 7 in two bytes
                "9805" "0103616107" "43a16101",          # array head in two bytes
                "9f" "0103616107" "43a16101" "ff",       # indefinite array
                "8501036161" "07" "5f43a16101ff",        # indefinite body
                "8501037f6161ff" "07" "43a16101"):       # indefinite sender
        with pytest.raises(frame.MalformedFrame):
            frame.decode(bytes.fromhex(bad))


def test_sizes():
    body = bytes(frame.MAX_FRAME - 20)
    data = frame.encode(frame.CHAIN_EVENT, "node-1", 1, body)
    n = len(data)
    assert n < frame.MAX_FRAME
    pad = frame.MAX_FRAME - n
    data = frame.encode(frame.CHAIN_EVENT, "node-1", 1, bytes(len(body) + pad))
    assert len(data) == frame.MAX_FRAME and frame.decode(data).body_bytes[3:] == bytes(len(body) + pad)
    with pytest.raises(frame.FrameTooLarge):
        frame.encode(frame.CHAIN_EVENT, "node-1", 1, bytes(len(body) + pad + 1))
    with pytest.raises(frame.FrameTooLarge):
        frame.decode(data + b"\x00")
    with pytest.raises(frame.FrameTooLarge):
        frame.decode(b"\x00" * 10**6)  # refused before parsing
    small = frame.encode(frame.HEARTBEAT, "a", 1, None)
    with pytest.raises(frame.FrameTooLarge):
        frame.decode(small, max_size=len(small) - 1)
    assert frame.decode(small, max_size=len(small)).body() is None


def test_body_errors_are_malformed_frame():
    for bb in (b"", b"\xa1\x61", b"\x00\x00", b"\xc1\x00", b"\x81" * 40 + b"\x00"):
        f = frame.decode(ref(1, 4, "a", 1, bb))  # the envelope is fine; the body is not
        with pytest.raises(frame.MalformedFrame):
            f.body()
    f = frame.decode(ref(1, 4, "a", 1, cbor2.dumps(list(range(2000)))))
    assert len(f.body(max_items=2001)) == 2000


@pytest.mark.parametrize("args, err", [
    ((42, "a", 1, None), frame.UnknownFrameType),
    (("INPUT", "a", 1, None), frame.MalformedFrame),
    ((1, "", 1, None), frame.MalformedFrame),
    ((1, "z" * 33, 1, None), frame.MalformedFrame),
    ((1, b"a", 1, None), frame.MalformedFrame),
    ((1, "a", 2**32, None), frame.MalformedFrame),
    ((1, "a", -1, None), frame.MalformedFrame),
    ((1, "a", 1.0, None), frame.MalformedFrame),
    ((1, "a", 1, {1, 2}), frame.cbor.CborEncodeError),
])
def test_encode_refuses_what_decode_would(args, err):
    with pytest.raises(err):
        frame.encode(*args)


def test_registry():
    assert frame.TYPES[frame.INPUT] == "INPUT" and frame.TYPES[frame.DISCONTINUITY] == "DISCONTINUITY"
    assert set(range(1, 10)) <= set(frame.TYPES)
    frame.register_type(8, "DISCONTINUITY")  # idempotent
    with pytest.raises(ValueError):
        frame.register_type(8, "OTHER")
    with pytest.raises(ValueError):
        frame.register_type(0, "ZERO")
    frame.register_type(200, "TEST_ONLY")
    try:
        f = frame.decode(frame.encode(200, "gw", 1, [1]))
        assert f.type_name() == "TEST_ONLY" and f.body() == [1]
    finally:
        del frame.TYPES[200]
    with pytest.raises(frame.UnknownFrameType):
        frame.encode(200, "gw", 1, [1])


def test_error_hierarchy():
    for cls in (frame.UnsupportedVersion, frame.UnknownFrameType, frame.MalformedFrame,
                frame.FrameTooLarge, frame.AuthNotSupported):
        assert issubclass(cls, frame.FrameError) and issubclass(cls, DecodeError)
