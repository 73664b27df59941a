"""netedge firmware.

The package itself holds what NodeCore (node.py) shares with the modules it loads on demand
(migrate.py, standby.py) and with its driver (main.py, store.py): the Ready it fills, the node's
limits, the INPUT frame parser and the error a flash record reader raises for a damaged record.
So those modules never import node.py, and a node pays for no module of its own for them (a
module costs a board's heap even when its bytecode stays in a ROM partition).  Importing the
package loads nothing more: the parser imports the frame codec on first use.
"""
import sys


def unload(full):
    """Drop a module so the GC can take its code back (a few KB of board heap): boot-only code
    once booted, migration code once a node is done moving."""
    sys.modules.pop(full, None)
    pkg, _, name = full.rpartition(".")
    pkg = sys.modules.get(pkg)
    if pkg is not None and hasattr(pkg, name):
        delattr(pkg, name)


MAX_HOSTED = 16
MAX_REC = 6144  # a daemon record in one MIGRATION frame (migration snapshot, group sync)


class CorruptRecord(Exception):
    """A record that exists on flash but fails its checks: reported and set aside, never reset."""

    def __init__(self, path, why):
        self.path = path
        self.why = why
        super().__init__("%s: %s" % (path, why))


def parse_input(payload):
    """An INPUT frame -> [sender, counter, payload bytes]; FrameError otherwise."""
    from ..shared import frame as FR  # (resident by then: NodeCore's own)
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
    only then acknowledge the input (unless `stall`).  requeue: (topic, INPUT frame) already acknowledged, to be
    processed next, before any other queued input (a migration buffer being released)."""
    quarantine = ()  # (boot only: no list per input)
    stall = 0        # an inbox input not taken (its host's unmarked events at their cap): not acked

    def __init__(self):
        self.persist = []
        self.publish = []
        self.requeue = None
