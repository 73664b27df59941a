"""The control plane's time and operation ids, supplied by its driver.

Liveness deadlines run on the driver's monotonic clock (`now`, seconds), which never steps.
What is persisted carries a wall time (for people, and for a restarted gateway), read from
the wall clock the driver supplies: a board without an RTC steps its wall clock at NTP sync,
so a wall time is never a deadline's base while the gateway runs.
"""

# A step's wall stamp read back after a restart counts as at most this old: past every step
# timeout, and a wall clock that stepped by hours while the gateway was down changes nothing more.
MAX_RESTORED_AGE_S = 3600.0
COUNTER_MASK = 0xFFFFFFFF  # frame counters and operation ids are u32 on the wire
# An operation id skips up to 2^this counter values: unguessable within that many, and the u32
# space still lasts ~10^7 operations from a start near 2^30
OP_ID_STEP_BITS = 8


class ControlClock:
    """`now` of the entry point being handled (the core sets it on entry), the driver's wall
    clock, and the monotonic ages of persisted steps."""

    def __init__(self, wall):
        self.wall = wall     # () -> seconds since the epoch: the driver's, or a simulated one
        self.now = 0.0       # the driver's monotonic seconds, as of the current entry point
        self._starts = {}    # step key -> (its wall stamp, its monotonic start)

    def advance(self, now):
        self.now = now

    def stamp(self, key):
        """A step named `key` starts now: its wall stamp, to persist."""
        at = self.wall()
        self._starts[key] = (at, self.now)
        return at

    def age(self, key, at):
        """Seconds since step `key`, persisted with wall stamp `at`, started.  A stamp this clock
        did not give (a restarted gateway reading its store) is dated once from the wall clock,
        clamped to [0, MAX_RESTORED_AGE_S]; from then on the monotonic clock alone counts."""
        start = self._starts.get(key)
        if start is None or start[0] != at:
            elapsed = min(max(self.wall() - at, 0.0), MAX_RESTORED_AGE_S)
            start = self._starts[key] = (at, self.now - elapsed)
        return self.now - start[1]

    def forget(self, key):
        self._starts.pop(key, None)


class FrameCounter:
    """The gateway's frame counter and the operation ids drawn from it.

    Frame counters are strictly increasing per sender, across restarts too: the driver gives
    the start (above any a previous run used).  An operation id (`m` of every migration and
    group command) is a counter value too, because ids must grow (a larger id is a newer
    migration of the origin: PROTOCOL §14, a node refuses a late `freeze` of an older one), and
    it skips ahead by a random step from the driver's source, so that a node cannot guess the
    id of a command it was not sent."""

    def __init__(self, start, rng):
        self.value = start & COUNTER_MASK
        self.rng = rng  # random.Random-like (getrandbits): SystemRandom in service, seeded in a simulation

    def next(self):
        self.value = (self.value + 1) & COUNTER_MASK
        return self.value

    def op_id(self):
        self.value = (self.value + 1 + self.rng.getrandbits(OP_ID_STEP_BITS)) & COUNTER_MASK
        return self.value
