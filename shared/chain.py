"""Chain validation: validate_chain_link, and ChainError with its wire codes (from
shared/chain_errors.py, re-exported here: the gateway, the log and the proofs import them from here).

Split from shared/link.py so that a node, which builds its own chains but never validates
another's, does not pay for it in its heap.
"""
from .chain_errors import CHAIN_ERRORS, ChainError, OriginMismatch, ParentHashMismatch, SequenceGap  # noqa: F401
from .link import U64_MAX


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
