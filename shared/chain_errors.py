"""ChainError and its wire codes (docs/PROTOCOL.md §1): a link that does not follow its predecessor.

Apart from shared/chain.py so that link.py can raise SequenceGap (a chain at 2**64 - 1 has no
next link) without importing the validation that imports link.py; the node loads this module
only then.
"""
from .errors import NetedgeError


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
