"""Chain validation: ChainError (with its wire codes) and validate_chain_link.

Split from shared/link.py so that a node, which builds its own chains but never validates
another's, does not pay for these classes in its heap.  The gateway, the log and the proofs
import them from here.
"""
from .errors import NetedgeError
from .link import U64_MAX


class ChainError(NetedgeError):
    """A link that does not follow its predecessor.  `code` is the wire code (docs/PROTOCOL.md)."""
    code = 0

    def __init__(self, expected, got):
        self.expected = expected
        self.got = got
        super().__init__("%s: expected %d, got %d" % (self.__class__.__name__, expected, got))

    def __eq__(self, other):
        return type(self) is type(other) and self.expected == other.expected and self.got == other.got


class OriginMismatch(ChainError):
    code = 1


class SequenceGap(ChainError):
    code = 2


class ParentHashMismatch(ChainError):
    code = 3


CHAIN_ERRORS = {1: OriginMismatch, 2: SequenceGap, 3: ParentHashMismatch}


def validate_chain_link(prev_link, prev_forward, new_link):
    """Check `new_link` follows `prev_link` whose forward hash is `prev_forward`.

    Raises OriginMismatch, SequenceGap or ParentHashMismatch (in that order of checks).
    """
    if new_link.origin_hash != prev_link.origin_hash:
        raise OriginMismatch(prev_link.origin_hash, new_link.origin_hash)
    if prev_link.sequence >= U64_MAX:
        raise SequenceGap(U64_MAX, new_link.sequence)
    if new_link.sequence != prev_link.sequence + 1:
        raise SequenceGap(prev_link.sequence + 1, new_link.sequence)
    if new_link.parent_hash != prev_forward:
        raise ParentHashMismatch(prev_forward, new_link.parent_hash)
