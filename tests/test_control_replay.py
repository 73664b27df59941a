"""The one windowed, acknowledged replay (gateway/control/replay.py) that migration, recovery
and standby promotion share: what it replays (from a real store), how it cuts batches, and how
the window advances on acknowledgements only, in order, and re-sends after a stall."""
import hashlib

import pytest

from netedge.gateway.control import replay as RP
from netedge.gateway.store import Store
from netedge.shared import cbor
from netedge.shared.link import ChainBuilder, h8
from netedge.shared.log import ChainEvent

ORIGIN = 0x0A0B0C0D


def items(n, size=4):
    return [["s", i, b"x" * size] for i in range(n)]


def test_batches_are_frame_sized():
    assert RP.batches([]) == []
    out = RP.batches(items(20))
    assert [len(b) for b in out] == [8, 8, 4] and sum(out, []) == items(20)
    big = RP.batches(items(5, size=1000))  # (about REPLAY_BYTES of payload each)
    assert [len(b) for b in big] == [2, 2, 1]
    assert RP.batches([["odd"]]) == [[["odd"]]]  # (the node checks each input; the cut never fails)


def test_the_window_advances_only_on_the_expected_ack():
    r = RP.Replay("n2", RP.batches(items(40)), ack_of=lambda i: [7, i])  # 5 batches
    assert [i for i, _ in r.advance()] == [0, 1, 2]           # WINDOW in flight
    assert r.advance([7, 1]) is None                          # out of order: ignored
    assert r.advance([6, 0]) is None                          # another replay's: ignored
    assert r.advance(0) is None                               # another flow's form: ignored
    assert [i for i, _ in r.advance([7, 0])] == [3]
    assert r.advance([7, 0]) is None                          # a repeat: ignored
    assert [i for i, _ in r.advance([7, 1])] == [4]
    assert r.advance([7, 2]) == [] and not r.done
    r.rewind()                                                # a stall: 3 and 4 again
    assert [i for i, _ in r.advance()] == [3, 4]
    assert r.advance([7, 3]) == [] and r.advance([7, 4]) == [] and r.done
    assert r.advance([7, 4]) is None and r.advance([7, 5]) is None  # nothing after the end


def test_an_empty_replay_is_done_at_once():
    r = RP.Replay("n1", [], ack_of=lambda i: i)
    assert r.advance() == [] and r.done
    r = RP.Replay("n1", [[]], ack_of=lambda i: i)   # (a migration's: one empty batch, "log": true)
    assert r.advance() == [(0, [])] and not r.done and r.advance(0) == [] and r.done


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "netedge.db"), synchronous="NORMAL")
    s.add_daemon(ORIGIN, "counter", hashlib.sha256(b"pk").digest())
    yield s
    s.close()


def event_of(b, sender, counter, payload):
    """A chain event as a counter daemon emits it: its payload names the input it consumed."""
    p = cbor.dumps([sender, counter, h8(payload)])
    return ChainEvent(b.append(p), p)


def test_the_backlog_from_a_real_store(store):
    b = ChainBuilder(ORIGIN)
    for i in range(1, 7):
        store.log_input(ORIGIN, "s", i, b"in%d" % i)
    store.append_events([event_of(b, "s", i, b"in%d" % i) for i in (1, 2, 3, 4)])
    # a host at event 2: the inputs of events 3 and 4 (chain order), then the unconsumed 5 and 6
    got, last, missing = RP.backlog(store, ORIGIN, 2)
    assert [x[1] for x in got] == [3, 4, 5, 6] and missing is None
    assert last == max(i.id for i in store.inputs_after(ORIGIN, 0))
    # a log replay (consumed=False): only what no stored event consumed
    assert [x[1] for x in RP.backlog(store, ORIGIN, 2, consumed=False)[0]] == [5, 6]
    # an event whose input the log cannot supply: the events after it are lost, and said so
    store.append_events([event_of(b, "t", 1, b"never logged")])
    assert RP.backlog(store, ORIGIN, 2)[2] == 5
