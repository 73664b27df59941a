"""Signed records: the envelope around a Discontinuity or a ForkRecord (docs/PROTOCOL.md "Signed records").

Wire, little-endian, no padding:
  kind u8 (1 Discontinuity, 2 ForkRecord) | body (87 or 49 B, the unchanged encodings of
  shared/discontinuity.py and shared/fork.py) | signer ed25519 public key 32 B | signature 64 B
Total: 184 B for a Discontinuity, 146 B for a ForkRecord.  The signature covers
  b"netedge/record/v1" || kind u8 || body
(the domain tag keeps a record signature from ever being valid for another message type).

This module runs on CPython and MicroPython.  It has NO ed25519: a node checks structure and
lineage only (`check_structure`); the gateway and the CLI check the signature
(gateway/records.py).
"""
from .errors import DecodeError, NetedgeError
from .discontinuity import Discontinuity, DISCONTINUITY_SIZE
from .fork import ForkRecord, FORK_RECORD_SIZE

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

KIND_DISCONTINUITY = const(1)
KIND_FORK = const(2)
PUBLIC_KEY_SIZE = const(32)
SIGNATURE_SIZE = const(64)
DOMAIN = b"netedge/record/v1"
KIND_NAMES = {KIND_DISCONTINUITY: "Discontinuity", KIND_FORK: "ForkRecord"}
BODY_SIZES = {KIND_DISCONTINUITY: DISCONTINUITY_SIZE, KIND_FORK: FORK_RECORD_SIZE}
_DECODERS = {KIND_DISCONTINUITY: Discontinuity.from_bytes, KIND_FORK: ForkRecord.from_bytes}
_CLASSES = {KIND_DISCONTINUITY: Discontinuity, KIND_FORK: ForkRecord}


class RecordDecodeError(DecodeError):
    """Base of signed-record decode failures."""


class RecordLength(RecordDecodeError):
    """Not bytes, empty, or not exactly 1 + body + 32 + 64 bytes for its kind."""


class UnknownRecordKind(RecordDecodeError):
    """kind is not 1 (Discontinuity) or 2 (ForkRecord)."""


class RecordBodyError(RecordDecodeError):
    """The body does not decode with its strict decoder (for a ForkRecord: or its lineage does
    not verify).  `cause` is the body decoder's own DecodeError; the message names its class."""

    def __init__(self, cause):
        self.cause = cause
        super().__init__("record body: %s: %s" % (type(cause).__name__, cause))


def envelope_size(kind):
    return 1 + BODY_SIZES[kind] + PUBLIC_KEY_SIZE + SIGNATURE_SIZE


def signed_message(kind, body_bytes):
    """The exact bytes the ed25519 signature covers."""
    return DOMAIN + bytes((kind,)) + bytes(body_bytes)


def _is_bytes(v):
    return isinstance(v, (bytes, bytearray, memoryview))


def encode_signed(kind, body, signer_pub, signature):
    """The envelope bytes.  `body` is a Discontinuity / ForkRecord or its encoded bytes; it is
    checked with the strict decoder, so nothing undecodable is ever issued (NetedgeError)."""
    if kind not in BODY_SIZES:
        raise NetedgeError("signed record: unknown kind %r" % (kind,))
    if isinstance(body, _CLASSES[kind]):
        body = body.to_bytes()
    if not _is_bytes(body):
        raise NetedgeError("signed record: body must be a %s or its bytes" % KIND_NAMES[kind])
    body = bytes(body)
    try:
        _DECODERS[kind](body)
    except DecodeError as e:
        raise NetedgeError("signed record: invalid %s body: %s" % (KIND_NAMES[kind], e))
    if not (_is_bytes(signer_pub) and len(signer_pub) == PUBLIC_KEY_SIZE):
        raise NetedgeError("signed record: signer must be a %d-byte public key" % PUBLIC_KEY_SIZE)
    if not (_is_bytes(signature) and len(signature) == SIGNATURE_SIZE):
        raise NetedgeError("signed record: signature must be %d bytes" % SIGNATURE_SIZE)
    return bytes((kind,)) + body + bytes(signer_pub) + bytes(signature)


def decode_signed(data):
    """(kind, body object, signer 32 B, signature 64 B, signed message bytes).

    Layout and body are checked strictly (typed RecordDecodeError subclasses); the signature is
    NOT verified here (no ed25519 on a node): see gateway/records.py.
    """
    if not _is_bytes(data):
        raise RecordLength("signed record: expected bytes")
    if not len(data):
        raise RecordLength("signed record: empty")
    data = bytes(data)
    kind = data[0]
    size = BODY_SIZES.get(kind)
    if size is None:
        raise UnknownRecordKind("signed record: unknown kind %d" % kind)
    want = 1 + size + PUBLIC_KEY_SIZE + SIGNATURE_SIZE
    if len(data) != want:
        raise RecordLength("signed record: a %s record is %d bytes, got %d" % (KIND_NAMES[kind], want, len(data)))
    body_bytes = data[1:1 + size]
    try:
        body = _DECODERS[kind](body_bytes)
    except DecodeError as e:
        raise RecordBodyError(e)
    signer = data[1 + size:1 + size + PUBLIC_KEY_SIZE]
    signature = data[1 + size + PUBLIC_KEY_SIZE:]
    return kind, body, signer, signature, signed_message(kind, body_bytes)


def check_structure(data):
    """A node's check of a signed record it received: the layout, the strict body decode, and
    for a ForkRecord its lineage (the sentinel recomputed by ForkRecord.verify()); for a
    Discontinuity, that a ConflictingChains / ChainBreak record names a failed link that is
    consistent with its reason.  Returns (kind, body).  No signature check: that needs ed25519,
    which the node does not have.  Raises a RecordDecodeError subclass."""
    kind, body, signer, signature, _ = decode_signed(data)
    if kind == KIND_FORK:
        if not body.verify():  # from_bytes already checked it: kept explicit for the reader
            raise RecordBodyError(DecodeError("ForkRecord: " + body.problem()))
    else:
        why = discontinuity_problem(body)
        if why:
            raise RecordBodyError(DecodeError("Discontinuity: " + why))
    if signer == bytes(PUBLIC_KEY_SIZE):
        raise RecordBodyError(DecodeError("signer public key is all zeros"))
    return kind, body


def discontinuity_problem(d):
    """None when a decoded Discontinuity is self-consistent, else a short reason.  The strict
    decoder already checked field ranges; these are the cross-field rules of the gateway's
    records: a ChainBreak / ConflictingChains names the link that failed, of the same origin,
    after the last verified one (SequenceGap: expected = last + 1, got = the failed seq;
    ParentHashMismatch: got = the failed link's parent); a ConflictingChains is at the failed
    link's sequence, right after last_verified."""
    code = d.reason.code
    f = d.failed_link
    if code in (2, 3):  # ChainBreak, ConflictingChains
        if f is None:
            return "%s without a failed link" % d.reason.name
        if code == 3 and (f.sequence != d.reason.seq or f.sequence != d.last_verified.sequence + 1):
            return "ConflictingChains seq disagrees with its links"
        if code == 2:
            e = d.reason.chain_error
            if e.code != 1 and f.origin_hash != d.origin_hash:
                return "failed link of another origin without an OriginMismatch"
            if e.code == 2 and (e.expected != d.last_verified.sequence + 1 or e.got != f.sequence):
                return "SequenceGap disagrees with its links"
            if e.code == 3 and e.got != f.parent_hash:
                return "ParentHashMismatch disagrees with its links"
    return None
