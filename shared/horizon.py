"""ObservedHorizon: which origins a daemon has seen, carried as a 32-bit bloom in CausalLink.horizon.

Bloom (DESIGN §4 link field `horizon`, k = 3, m = 32): for an observed origin o,
h = H8(o as u32 LE); h1 = low 32 bits of h; h2 = (high 32 bits) | 1; bits (h1 + i*h2) mod 2^32 mod 32
for i = 0, 1, 2.  h2 is odd, so the three positions are always distinct.  The encoded value is the OR
over every origin ever observed.  32 bits saturate fast (measured FPR in docs/PROTOCOL.md): the bloom
answers "maybe seen", the exact per-origin sequence map answers "seen up to seq N".

Bounded memory (invariant 6): the exact map keeps at most `cap` origins.  An origin beyond the cap
still sets its bloom bits (the bloom stays a superset, never a false negative) but its sequence is
not kept; `overflowed` then stays True so that callers know exact answers are incomplete.
"""
import struct

from .errors import DecodeError, NetedgeError
from .link import h8

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

DEFAULT_CAP = const(32)
MAX_CAP = const(1024)
U64_MAX = 0xFFFFFFFFFFFFFFFF  # bignum on MicroPython: not a const()


class HorizonDecodeError(DecodeError):
    """A horizon snapshot object (to_obj form) that is malformed or inconsistent."""


def origin_bits(origin):
    """The 32-bit mask of the k = 3 bloom positions of `origin` (u32)."""
    if not isinstance(origin, int) or not 0 <= origin <= 0xFFFFFFFF:
        raise NetedgeError("origin must be a u32")
    h = h8(struct.pack("<I", origin))
    h1 = h & 0xFFFFFFFF
    h2 = (h >> 32) | 1
    mask = 0
    for i in range(3):
        mask |= 1 << (((h1 + i * h2) & 0xFFFFFFFF) & 31)
    return mask


def might_contain(encoded, origin):
    """True when all 3 bits of `origin` are set in the encoded bloom (false positives possible)."""
    m = origin_bits(origin)
    return (encoded & m) == m


class ObservedHorizon:
    def __init__(self, cap=DEFAULT_CAP):
        if not isinstance(cap, int) or not 1 <= cap <= MAX_CAP:
            raise NetedgeError("horizon cap must be 1..%d" % MAX_CAP)
        self.cap = cap
        self.seqs = {}  # origin -> max observed seq (exact; bounded by cap)
        self.bloom = 0
        self.overflowed = False

    def observe(self, origin, seq):
        """Record an event (origin, seq).  Returns False when the origin did not fit the exact map."""
        if not isinstance(seq, int) or not 0 <= seq <= U64_MAX:
            raise NetedgeError("seq must be a u64")
        prev = self.seqs.get(origin)
        if prev is not None:
            if seq > prev:
                self.seqs[origin] = seq
            return True
        self.bloom |= origin_bits(origin)  # validates origin
        if len(self.seqs) >= self.cap:
            self.overflowed = True
            return False
        self.seqs[origin] = seq
        return True

    def encode(self):
        """The u32 for CausalLink.horizon."""
        return self.bloom

    def seq_of(self, origin):
        """Exact max seq observed for `origin`, or None (unknown or dropped by the cap)."""
        return self.seqs.get(origin)

    def might_contain(self, origin):
        return might_contain(self.bloom, origin)

    def __len__(self):
        return len(self.seqs)

    def to_obj(self):
        """Plain data for a CBOR snapshot.  Origins sorted: MicroPython dicts are unordered and the
        snapshot may be hashed."""
        return {"cap": self.cap, "bloom": self.bloom, "overflowed": self.overflowed,
                "origins": [[o, self.seqs[o]] for o in sorted(self.seqs)]}

    @classmethod
    def from_obj(cls, obj):
        """Strict inverse of to_obj: raises HorizonDecodeError on any malformed or inconsistent field."""
        if not isinstance(obj, dict) or len(obj) != 4:
            raise HorizonDecodeError("horizon: expected a 4-key map")
        try:
            cap, bloom, over, pairs = obj["cap"], obj["bloom"], obj["overflowed"], obj["origins"]
        except KeyError:
            raise HorizonDecodeError("horizon: missing key")
        if not _is_int(cap) or not 1 <= cap <= MAX_CAP:
            raise HorizonDecodeError("horizon: bad cap")
        if not _is_int(bloom) or not 0 <= bloom <= 0xFFFFFFFF:
            raise HorizonDecodeError("horizon: bad bloom")
        if not isinstance(over, bool):
            raise HorizonDecodeError("horizon: bad overflowed flag")
        if not isinstance(pairs, list) or len(pairs) > cap:
            raise HorizonDecodeError("horizon: bad origins list")
        hz = cls(cap)
        last = -1
        mask = 0
        for p in pairs:
            if not isinstance(p, list) or len(p) != 2:
                raise HorizonDecodeError("horizon: bad origin entry")
            o, s = p
            if not _is_int(o) or not 0 <= o <= 0xFFFFFFFF or o <= last:
                raise HorizonDecodeError("horizon: origins must be sorted unique u32")
            if not _is_int(s) or not 0 <= s <= U64_MAX:
                raise HorizonDecodeError("horizon: bad seq")
            last = o
            hz.seqs[o] = s
            mask |= origin_bits(o)
        # Without overflow the bloom is exactly the OR of the kept origins; with it, a superset.
        if (bloom & mask) != mask or (not over and bloom != mask):
            raise HorizonDecodeError("horizon: bloom inconsistent with origins")
        if over and len(pairs) != cap:
            raise HorizonDecodeError("horizon: overflow below cap")
        hz.bloom = bloom
        hz.overflowed = over
        return hz

    def __eq__(self, other):
        return (isinstance(other, ObservedHorizon) and self.cap == other.cap and self.bloom == other.bloom
                and self.overflowed == other.overflowed and self.seqs == other.seqs)

    def __repr__(self):
        return "ObservedHorizon(%d origins, bloom=%08x%s)" % (
            len(self.seqs), self.bloom, ", overflowed" if self.overflowed else "")


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)
