"""InputWindow: exactly-once admission of input ids (sender, counter) in bounded memory.

MQTT QoS 1 delivers at least once: a redelivery after a reconnect, a migration or a promotion
must not be processed twice.  Per sender we keep an anti-replay window (as IPsec does): the
highest counter seen and a bitmask of the WINDOW counters below it.  A counter older than the
window is refused as a probable duplicate (`TOO_OLD`), so nothing is processed twice even then;
senders publish in order, so that only happens after > WINDOW reordered messages.

State is a plain map (`to_obj` / `from_obj`) so it rides in snapshots and flash records:
it must move with the daemon, or the target would re-admit inputs the source processed.
"""
try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

WINDOW = const(64)
MAX_SENDERS = const(16)

NEW = const(0)
DUPLICATE = const(1)
TOO_OLD = const(2)
FULL = const(3)  # a new sender and no room: refused, reported (never an unbounded table)

_MASK = (1 << WINDOW) - 1


class InputWindow:
    def __init__(self, max_senders=MAX_SENDERS):
        self.max_senders = max_senders
        self.senders = {}  # sender -> [high, bitmask]; bit i set = (high - i) seen

    def check(self, sender, counter):
        """Classify without admitting: NEW, DUPLICATE, TOO_OLD or FULL."""
        ent = self.senders.get(sender)
        if ent is None:
            return FULL if len(self.senders) >= self.max_senders else NEW
        high, mask = ent
        if counter > high:
            return NEW
        off = high - counter
        if off >= WINDOW:
            return TOO_OLD
        return DUPLICATE if (mask >> off) & 1 else NEW

    def admit(self, sender, counter):
        """Record (sender, counter) as processed; returns what check() said before."""
        verdict = self.check(sender, counter)
        if verdict != NEW:
            return verdict
        ent = self.senders.get(sender)
        if ent is None:
            self.senders[sender] = [counter, 1]
        elif counter > ent[0]:
            shift = counter - ent[0]
            ent[1] = ((ent[1] << shift) & _MASK | 1) if shift < WINDOW else 1
            ent[0] = counter
        else:
            ent[1] |= 1 << (ent[0] - counter)
        return NEW

    def to_obj(self):
        return {s: [e[0], e[1]] for s, e in self.senders.items()}

    @classmethod
    def from_obj(cls, obj, max_senders=MAX_SENDERS):
        w = cls(max_senders)
        if not isinstance(obj, dict) or len(obj) > max_senders:
            raise ValueError("InputWindow: bad state")
        for s, e in obj.items():
            if not (isinstance(s, str) and isinstance(e, list) and len(e) == 2
                    and isinstance(e[0], int) and isinstance(e[1], int) and 0 <= e[1] <= _MASK and e[0] >= 0):
                raise ValueError("InputWindow: bad entry")
            w.senders[s] = [e[0], e[1]]
        return w
