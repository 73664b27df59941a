"""The daemon API: what an application developer writes.

    class Counter(Daemon):
        KIND = "counter"
        def __init__(self):
            self.total = 0
        def process(self, event):            # one input -> list of output payloads (bytes)
            self.total += int(event.payload)
            return [b"%d" % self.total]
        def snapshot(self):                  # whole state -> bytes
            return b"%d" % self.total
        def restore(self, data):             # bytes from snapshot() -> state
            self.total = int(data)

Rules the runtime relies on (read these before writing one):
- `process` must be DETERMINISTIC given the state and the event: no clocks, no randomness, no
  I/O.  Replay after a migration or a promotion re-runs inputs on another board and must reach
  the same state and emit the same outputs, or the chain would fork.
- `process` must be quick (milliseconds on a board): the node processes inputs one at a time.
- `snapshot()` must capture everything `process` depends on; `restore(snapshot())` on a fresh
  instance must give an equivalent daemon.  Keep snapshots small: they travel in MQTT chunks
  and sit in a board's RAM (the host caps them at MAX_SNAPSHOT bytes).
- Raising in `process` is allowed: the input is then recorded as failed (counted, reported on
  the chain as an error event) and the daemon state must be left unchanged.
"""


class InputEvent:
    """What `process` receives: the input payload and where it sits in the daemon's history."""

    def __init__(self, payload, sender, counter, sequence):
        self.payload = payload      # bytes, as published to the daemon's inbox
        self.sender = sender        # publisher id (text) from the frame envelope
        self.counter = counter      # the publisher's frame counter: (sender, counter) is the input id
        self.sequence = sequence    # the chain sequence this input's event will get


class Daemon:
    """Base class; subclasses set KIND and override the three methods."""
    KIND = None

    def process(self, event):
        raise NotImplementedError

    def snapshot(self):
        return b""

    def restore(self, data):
        if data:
            raise ValueError("%s is stateless but got a %d-byte snapshot" % (self.KIND, len(data)))
