"""What NodeCore shares with the modules it loads on demand (migrate.py, standby.py) and with
its driver (main.py): the Ready it fills, the node's limits, the INPUT frame parser, and the
error a flash record reader raises for a damaged record.

Imports nothing from the firmware, so the modules NodeCore loads never import node.py.
"""
from ..shared import frame as FR

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

MAX_HOSTED = const(16)
MAX_REC = const(6144)  # a daemon record in one MIGRATION frame (migration snapshot, group sync)


class CorruptRecord(Exception):
    """A record that exists on flash but fails its checks: reported and set aside, never reset."""

    def __init__(self, path, why):
        self.path = path
        self.why = why
        super().__init__("%s: %s" % (path, why))


def parse_input(payload):
    """An INPUT frame -> [sender, counter, payload bytes]; FrameError otherwise."""
    f = FR.decode(payload)
    if f.type != FR.INPUT:
        raise FR.MalformedFrame("expected INPUT on an inbox, got %s" % f.type_name())
    body = f.body()
    data = body.get("p") if isinstance(body, dict) else None
    if not isinstance(data, bytes):
        raise FR.MalformedFrame("INPUT body needs 'p': bytes")
    return [f.sender, f.counter, data]


class Ready:
    """What the driver must do, in this order: quarantine (names of damaged records to set
    aside), persist (name, record; None deletes it), then publish (topic, bytes, qos, retain);
    only then acknowledge the input.  requeue: (topic, INPUT frame) already acknowledged, to be
    processed next, before any other queued input (a migration buffer being released)."""
    quarantine = ()  # (boot only: no list per input)

    def __init__(self):
        self.persist = []
        self.publish = []
        self.requeue = None
