"""One windowed, acknowledged replay of the gateway's durable input log to a node.

Three flows re-drive a node from the log, and all three use this module: a migration whose
target (or rebooted source) lost what it held in RAM (control/migration.py `_replay_log`), a
promoted standby catching up from its copy's seq (control/standby.py `_replay`/`_feed`), and a
source recovered after it crashed mid-migration (migration.py `node_up`).

- `backlog(store, origin, seq, consumed)` says WHAT to replay: the inputs a host at event `seq`
  must still process, read from the store (chain events, input log);
- `batches(items)` cuts them into frames a small board can take (REPLAY_BATCH inputs, about
  REPLAY_BYTES of payload);
- `Replay` sends them WINDOW at a time, each batch acknowledged by the node before the next
  goes out: a board buffers little, and a log's worth of batches at once, redelivered whole
  after each of its reconnects, would starve it.  `rewind()` re-sends the unacknowledged ones
  after a stall (the node's input window drops what it had processed already).

The node's frames differ per flow (`replay`/`replayed` with `b: [replay id, index]` for a
migration, `feed`/`fed` with `b: index` for a promotion: PROTOCOL §16, §17); `Replay` takes the
acknowledgement's form as `ack_of(index)` and leaves the frames to its owner.  Sans-I/O: no
clock, no store writes; the owner keeps it in RAM (a restarted gateway re-drives from scratch).
"""
from ...shared import cbor
from ...shared.link import h8

WINDOW = 3             # acknowledged batches in flight: hides the round trip, stays within a node's queue
# inputs per `replay` / `feed` frame: a node decodes a frame whole (~150 B of heap an input on a
# 64-bit port) and builds a chain event per input before it publishes any, so a whole 64-input
# buffer at once could exhaust a small board's heap
REPLAY_BATCH = 8
REPLAY_BYTES = 2048    # ... and about this many payload bytes
INPUT_OVERHEAD = 16    # bytes counted per input beside its payload (sender, counter, framing)


def batches(items):
    """[sender, counter, payload] lists (as given: the node checks each) -> frame-sized batches."""
    out, cur, size = [], [], 0
    for x in items:
        n = INPUT_OVERHEAD + (len(x[2]) if isinstance(x, list) and len(x) == 3 and isinstance(x[2], bytes) else 0)
        if cur and (len(cur) >= REPLAY_BATCH or size + n > REPLAY_BYTES):
            out.append(cur)
            cur, size = [], 0
        cur.append(x)
        size += n
    return out + [cur] if cur else out


def _consumed(payload):
    """(sender, counter, H8 of the input: u64) of the input an event payload consumed; None when the payload
    is not an event payload (the chain's hashes bind it, its content is the daemon's word)."""
    try:
        head = cbor.loads(payload)[:3]
    except (cbor.CborError, TypeError, KeyError):
        return None
    if len(head) == 3 and isinstance(head[0], str) and type(head[1]) is int and type(head[2]) is int:
        return head
    return None


RECENT_INPUTS = 64    # unconsumed(): the newest logged inputs looked at ...
RECENT_EVENTS = 128   # ... against the inputs the newest stored events consumed (reordering slack)


def unconsumed(store, origin, head_seq, after_id=0):
    """Logged inputs of `origin` (among the RECENT_INPUTS newest, and after arrival id
    `after_id`) that none of the RECENT_EVENTS newest stored events consumed, in arrival order:
    with the host caught up with the stored head, inputs it never had (its broker session
    dropped them, or a replay was read before they came).  Bounded work, whatever the chain's
    length; an input consumed more than RECENT_EVENTS events ago counts as consumed."""
    start = max(after_id, store.last_input_id(origin) - RECENT_INPUTS)
    fresh = list(store.inputs_after(origin, start))
    if not fresh:
        return []
    done = set()
    for ev in store.events(origin, max(1, head_seq - RECENT_EVENTS + 1), head_seq):
        c = _consumed(ev.payload)
        if c is not None:
            done.add((c[0], c[1]))
    return [i for i in fresh if (i.sender, i.counter) not in done]


def backlog(store, origin, seq, consumed=True):
    """What a host at event `seq` of `origin` must process, from the durable input log:
    ([sender, counter, payload] in order, the last input id read, missing).

    With `consumed`, first the inputs of the stored events after `seq`, in chain order (a
    promoted standby rebuilds them byte-identically: daemons are deterministic); then every
    input logged after the one event `seq` consumed that no later stored event consumed, in
    arrival order.  `missing`: the first stored event after `seq` whose input the log cannot
    supply (pruned at the cap, or not the input it hashed), else None.  If the input of event
    `seq` itself was pruned, every unconsumed logged input follows: the receiver's input window
    drops what it already processed."""
    items, done, missing = [], set(), None
    for ev in store.events(origin, seq + 1):
        consumed_id = _consumed(ev.payload)
        if consumed_id is None:  # (not an event payload: which input it consumed is unknown)
            missing = ev.link.sequence if missing is None else missing
            continue
        sender, counter, digest = consumed_id
        done.add((sender, counter))
        if consumed:
            inp = store.input_of(origin, sender, counter)
            if inp is None or h8(inp.payload) != digest:
                missing = ev.link.sequence if missing is None else missing
            else:
                items.append([sender, counter, inp.payload])
    last = 0
    ev = store.event(origin, seq) if seq > 0 else None
    consumed_id = None if ev is None else _consumed(ev.payload)
    if consumed_id is not None:
        inp = store.input_of(origin, consumed_id[0], consumed_id[1])
        last = inp.id if inp is not None else 0
    for inp in store.inputs_after(origin, last):
        if (inp.sender, inp.counter) not in done:
            items.append([inp.sender, inp.counter, inp.payload])
        last = inp.id
    return items, last, missing


class Replay:
    """Batches to one node, WINDOW unacknowledged at a time, in order.

    `advance(ack)` (ack None: the start) -> the (index, batch) pairs to send now, or None when
    `ack` is not the one expected next (a repeat, one of a replay this one replaced: ignored).
    `done` once every batch is acknowledged."""

    def __init__(self, node, batches, ack_of, window=WINDOW):
        self.node = node
        self.batches = batches
        self.ack_of = ack_of      # index -> the `b` the node echoes for that batch
        self.window = window
        self.sent = 0
        self.acked = 0

    @property
    def done(self):
        return self.acked == len(self.batches)

    def advance(self, ack=None):
        if ack is not None:
            if self.done or ack != self.ack_of(self.acked):
                return None
            self.acked += 1
        out = []
        while self.sent < len(self.batches) and self.sent - self.acked < self.window:
            out.append((self.sent, self.batches[self.sent]))
            self.sent += 1
        return out

    def rewind(self):
        """A stall: the unacknowledged batches go out again at the next advance()."""
        self.sent = self.acked
