"""Checking the records the gateway signs (`netedge record verify|list`, the status page).

`verify(data, signer=None)` is the full check (layout, strict body, ed25519 signature, optional
required signer).  Issuing them is gateway/control/records.py.
"""
import time

from ..shared import records as R
from ..shared.discontinuity import ChainBreak, ConflictingChains, Corruption
from ..shared.errors import NetedgeError
from .keystore import verify as ed25519_verify

STORE_KINDS = {R.KIND_DISCONTINUITY: "discontinuity", R.KIND_FORK: "fork"}
KIND_CODES = {v: k for k, v in STORE_KINDS.items()}


class RecordInvalid(NetedgeError):
    """A well-formed record whose signature does not verify, or signed by someone else."""


class Verified:
    def __init__(self, kind, body, signer, signature):
        self.kind, self.body, self.signer, self.signature = kind, body, signer, signature

    @property
    def kind_name(self):
        return R.KIND_NAMES[self.kind]


def verify(data, signer=None):
    """Verified(kind, body, signer, signature), or raises: a RecordDecodeError subclass when the
    bytes are not a well-formed record, RecordInvalid when the signature does not verify or the
    record is not signed by `signer` (32-byte public key) when one is required."""
    kind, body, who, sig, message = R.decode_signed(data)
    if not ed25519_verify(who, message, sig):
        raise RecordInvalid("bad signature (the record was altered, or not signed by the key it names %s)"
                            % who.hex()[:16])
    if signer is not None and bytes(signer) != who:
        raise RecordInvalid("signed by %s, not by the required signer %s" % (who.hex()[:16], bytes(signer).hex()[:16]))
    return Verified(kind, body, who, sig)


def envelope_of(rec):
    """The envelope bytes of a stored Record (the store keeps body, signature, signer apart)."""
    return bytes((KIND_CODES[rec.kind],)) + rec.body + rec.signer + rec.signature


def _reason_text(reason):
    if isinstance(reason, ChainBreak):
        e = reason.chain_error
        if e.code == 2:
            return "ChainBreak(SequenceGap: expected seq %d, got %d)" % (e.expected, e.got)
        if e.code == 1:
            return "ChainBreak(OriginMismatch: expected %08x, got %08x)" % (e.expected, e.got)
        return "ChainBreak(%s: expected %016x, got %016x)" % (type(e).__name__, e.expected, e.got)
    if isinstance(reason, ConflictingChains):
        return "ConflictingChains(seq %d: %016x != %016x)" % (reason.seq, reason.hash_a, reason.hash_b)
    if isinstance(reason, Corruption):
        return "Corruption"
    return "NodeCrash(last snapshot seq %d)" % reason.last_snapshot_seq


def summary(kind, body):
    """One line describing a record's body (for `netedge record verify|list`)."""
    if kind == R.KIND_FORK:
        return "%08x -> %08x at seq %d%s" % (body.original_origin, body.forked_origin, body.fork_seq,
                                             "" if body.snapshot_seq is None else " (snapshot %d)" % body.snapshot_seq)
    at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(body.detected_at / 1000.0)) + ".%03dZ" % (body.detected_at % 1000)
    return "%08x %s: verified through seq %d, %s, detected %s" % (
        body.origin_hash, _reason_text(body.reason), body.last_verified.sequence,
        "failed link seq %d" % body.failed_link.sequence if body.failed_link else "no failed link", at)
