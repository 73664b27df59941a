"""The chain event payload codec (shared/event.py, event_decode.py) beyond its golden vectors: every payload
encode() can write decodes to its fields, and any other bytes are refused with MalformedEvent,
never another exception (the gateway, trace and the tests read events with it)."""
from hypothesis import given, settings
from hypothesis import strategies as st

import cbor2
import pytest

from netedge.shared import event as EV
from netedge.shared import event_decode as D
from netedge.shared.errors import DecodeError
from netedge.shared.link import h8

senders = st.text(min_size=1, max_size=32).filter(lambda s: 0 < len(s.encode()) <= 32)
counters = st.integers(0, 2**32 - 1)
outputs = st.lists(st.binary(max_size=200), max_size=8)


@settings(max_examples=300, deadline=None)
@given(senders, counters, st.binary(max_size=300), outputs)
def test_encode_then_decode(sender, counter, inp, outs):
    data = EV.encode(sender, counter, inp, EV.OK, outs)
    assert data == cbor2.dumps([sender, counter, h8(inp), 0, outs], canonical=True)
    assert D.decode(data) == (sender, counter, h8(inp), EV.OK, outs)
    assert D.decode(bytearray(data)) == D.decode(memoryview(data)) == D.decode(data)
    failed = EV.encode(sender, counter, inp, EV.FAILED, [b"ValueError"])
    assert D.decode(failed) == (sender, counter, h8(inp), EV.FAILED, [b"ValueError"])


@settings(max_examples=500, deadline=None)
@given(senders, counters, outputs, st.data())
def test_mutations_decode_or_are_refused(sender, counter, outs, data):
    good = EV.encode(sender, counter, b"x", EV.OK, outs)
    at = data.draw(st.integers(0, len(good)))
    cut = data.draw(st.integers(0, 3))
    noise = data.draw(st.binary(max_size=4))
    bad = good[:at] + noise + good[at + cut:]
    try:
        fields = D.decode(bad)
    except D.MalformedEvent as e:
        assert str(e).split(":")[0] in ("cbor", "shape", "sender", "counter", "input_h8", "status", "outputs",
                                        "canonical", "size")
        return
    assert cbor2.dumps(list(fields), canonical=True) == bad  # accepted: a whole event, canonical


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=100))
def test_random_bytes_are_refused_cleanly(data):
    try:
        D.decode(data)
    except D.MalformedEvent:
        pass


@pytest.mark.parametrize("value", [None, "text", 7, ["s", 1, 2, 0, []]])
def test_not_bytes(value):
    with pytest.raises(D.MalformedEvent, match="^type"):
        D.decode(value)


def test_refusal_is_a_decode_error_and_a_value_error():
    with pytest.raises(DecodeError):
        D.decode(b"")
    with pytest.raises(ValueError):
        D.decode(b"\x80")
