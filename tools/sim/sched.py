"""The simulated clock and the seeded scheduler: the only source of time and chance in a run."""
import heapq
import random

# Simulated wall clock at t = 0 (2026-01-01T00:00:00Z): persisted stamps look like real ones.
EPOCH_WALL = 1767225600.0


class Stalled(RuntimeError):
    """More events at one instant than any run needs: a livelock in the simulated system."""


class Scheduler:
    """Events ordered by (time, insertion order), so equal times replay in the same order."""

    MAX_EVENTS_PER_INSTANT = 100000

    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.now = 0.0
        self._q = []
        self._n = 0
        self.events = 0

    def wall(self):
        return EPOCH_WALL + self.now

    def at(self, t, fn, *args):
        heapq.heappush(self._q, (max(t, self.now), self._n, fn, args))
        self._n += 1

    def after(self, dt, fn, *args):
        self.at(self.now + dt, fn, *args)

    def run_until(self, t):
        q = self._q
        same, last = 0, None
        while q and q[0][0] <= t:
            when, _, fn, args = heapq.heappop(q)
            same = same + 1 if when == last else 0
            if same > self.MAX_EVENTS_PER_INSTANT:
                raise Stalled("over %d events at t=%.6f" % (same, when))
            last = when
            self.now = when
            self.events += 1
            fn(*args)
        self.now = max(self.now, t)
