"""shared/topics.py and topic_types.py beyond their golden vectors: the strict origin parser against a regular
expression on any text, and the frame-type table as `netedge trace` applies it."""
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from netedge.shared import frame as FR
from netedge.shared import topics as T
from netedge.shared.topic_types import frame_types
from netedge.tools import trace as TR

STRICT = re.compile("[0-9a-f]{8}")


@settings(max_examples=1000, deadline=None)
@given(st.one_of(st.text(max_size=10), st.text(alphabet="0123456789abcdefABCDEFx_ +-", min_size=6, max_size=10)))
def test_parse_origin_takes_exactly_the_spelling_daemon_writes(text):
    if STRICT.fullmatch(text):
        assert "%08x" % T.parse_origin(text) == text
    else:
        try:
            T.parse_origin(text)
        except ValueError as e:
            assert "expected 8 lowercase hex digits" in str(e) and repr(text) in str(e)
        else:
            raise AssertionError("accepted %r" % text)


def test_parse_origin_refuses_what_is_not_text():
    for v in (None, 0x1a2b3c4d, b"1a2b3c4d", ["1a2b3c4d"]):
        try:
            T.parse_origin(v)
        except ValueError:
            continue
        raise AssertionError("accepted %r" % (v,))


def test_every_topic_of_the_protocol_has_its_types():
    for topic in (T.daemon(1, "in"), T.daemon(1, "chain"), T.daemon(1, "status"), T.daemon(1, "continuity"),
                  T.node("n1", "status"), T.node("n1", "hb"), T.node("n1", "err"), T.node("n1", "ctl"),
                  T.node("n1", "mig"), T.gateway("gw1", "status"), T.gateway("gw1", "req", "c"),
                  T.gateway("gw1", "rep", "c")):
        types = frame_types(T.split(topic))
        assert types and all(t in FR.TYPES for t in types), topic
    assert frame_types(("d", "1a2b3c4d")) is None and frame_types(("d", "1a2b3c4d", "x")) is None


def test_trace_warns_by_the_table():
    ok = TR.describe(T.node("n1", "mig"), FR.encode(FR.MIGRATION, "n1", 1, {"op": "got", "m": 1, "o": 1}))
    assert "warnings" not in ok
    bad = TR.describe(T.daemon(1, "continuity"), FR.encode(FR.INPUT, "c", 1, {"p": b""}))
    assert bad["warnings"] == ["INPUT on a continuity topic (expected DISCONTINUITY or FORK_RECORD)"]


def test_trace_names_a_bad_event_payload():
    from netedge.shared.link import CausalLink
    lk = CausalLink(1, 0, 1, 5).to_bytes()
    r = TR.describe(T.daemon(1, "chain"), FR.encode(FR.CHAIN_EVENT, "n1", 1, {"o": 1, "e": 1, "l": lk, "p": b"\x80"}))
    assert r["error"]["name"] == "MalformedEvent" and r["body"]["p"]["error"]["message"].startswith("shape")
