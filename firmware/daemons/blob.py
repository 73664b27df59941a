"""A benchmark daemon whose state has a chosen size (bench/migration_latency.py).

Inputs are decimal integers, added to a running total as by the counter, with one twist: an
input `=N` sets the state to N bytes (a deterministic pattern). Each later input also
overwrites one byte of that state, so every snapshot differs and a migration must move all of it.
The state size is still capped by the host (MAX_SNAPSHOT, or the node's `max_state`).
"""
from ..daemon import Daemon


class Blob(Daemon):
    KIND = "blob"

    def __init__(self):
        self.total = 0
        self.count = 0
        self.data = bytearray()

    def process(self, event):
        p = event.payload
        if p[:1] == b"=":
            n = int(p[1:])
            if not 0 <= n <= 65536:
                raise ValueError("size")  # validated before any change (the state stays as it was)
            self.data = bytearray(i & 255 for i in range(n))
            return [b"size %d" % n]
        self.total += int(p)
        self.count += 1
        if self.data:
            self.data[self.count % len(self.data)] = self.total & 255
        return [b"%d" % self.total]

    def snapshot(self):
        return b"%d,%d," % (self.total, self.count) + self.data

    def restore(self, data):
        total, count, rest = data.split(b",", 2)
        self.total, self.count, self.data = int(total), int(count), bytearray(rest)
