"""Signed records issued by the gateway: honest discontinuity, never a silent repair.

Ingestion (gateway/core.py) calls a RecordIssuer when it refuses something that says a daemon's
chain no longer verifies: a link that fails validation (ChainBreak), a different event at a
sequence already stored (ConflictingChains), a node reporting a damaged flash record
(Corruption).  The issuer builds the 87-byte Discontinuity, signs
`b"netedge/record/v1" || kind || body` with the gateway identity key, wraps it in the signed
envelope of shared/records.py, appends it to the store (`records` table) and marks the daemon
`discontinued`, all in one transaction; the core then publishes the envelope RETAINED on
`ne/v1/d/<origin>/continuity`.  The refused event itself is still not stored.

Deduplication (persisted in the store's orchestration table, keys `record:<origin>:...`, written
in the same transaction as the record), so a QoS 1 redelivery, a node repeating itself or a
gateway restart never issues a second record for one fault:
  ChainBreak         one per break point: origin + the last verified sequence (every later link
                     that fails against the same stored head is the same discontinuity);
  ConflictingChains  origin + seq + the refused event's forward hash;
  Corruption         origin + the last verified sequence at the time of the report;
and a refused event whose parent is the forward hash of an event already named in a record (the
rest of a diverging branch) is counted, not recorded again.

`verify(data, signer=None)` is the full check (layout, strict body, ed25519 signature, optional
required signer) used by `netedge record verify`.
"""
import logging
import time

from ..shared import records as R
from ..shared.discontinuity import ChainBreak, ConflictingChains, Corruption, Discontinuity, NodeCrash
from ..shared.errors import NetedgeError
from ..shared.link import CausalLink
from .keystore import verify as ed25519_verify

STORE_KINDS = {R.KIND_DISCONTINUITY: "discontinuity", R.KIND_FORK: "fork"}
KIND_CODES = {v: k for k, v in STORE_KINDS.items()}
STATE_PREFIX = "record:"
MAX_TIPS = 16          # forward hashes of refused events remembered per origin (branch continuation)
DISCONTINUED = "discontinued"
log = logging.getLogger("netedge.gateway")


class RecordInvalid(NetedgeError):
    """A well-formed record whose signature does not verify, or signed by someone else."""


class Verified:
    def __init__(self, kind, body, signer, signature):
        self.kind, self.body, self.signer, self.signature = kind, body, signer, signature

    @property
    def kind_name(self):
        return R.KIND_NAMES[self.kind]


def sign(keystore, kind, body):
    """The envelope of `body` (a Discontinuity / ForkRecord or its bytes) signed by the gateway."""
    body_bytes = body.to_bytes() if hasattr(body, "to_bytes") else bytes(body)
    sig = keystore.sign(R.signed_message(kind, body_bytes))
    return R.encode_signed(kind, body_bytes, keystore.gateway_public_key, sig)


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


class Issued:
    """A record just created: its store id, envelope bytes and Discontinuity."""

    def __init__(self, record_id, envelope, record):
        self.id, self.envelope, self.record = record_id, envelope, record


class RecordIssuer:
    def __init__(self, store, keystore, clock=time.time):
        self.store = store
        self.keystore = keystore
        self.clock = clock

    def _now_ms(self):
        return int(self.clock() * 1000)

    def _head_link(self, origin):
        h = self.store.head(origin)
        return CausalLink.genesis(origin) if h is None else h.link

    # -- the three faults ingestion detects ------------------------------------------------

    def chain_break(self, origin, event, error):
        """`event` (a ChainEvent) failed validation against the stored head with `error`."""
        last = self._head_link(origin)
        key = "%s%08x:break:%d" % (STATE_PREFIX, origin, last.sequence)
        return self._issue(origin, key, event, lambda: Discontinuity(
            origin, last, event.link, ChainBreak(error), self._now_ms()))

    def conflict(self, origin, stored, event):
        """`event` differs from the `stored` ChainEvent at the same sequence."""
        seq = event.link.sequence
        if stored is None or stored.forward == event.forward or seq < 1:
            return None  # nothing stored to conflict with (or an H8 collision): counted by the caller
        prev = self.store.event(origin, seq - 1) if seq > 1 else None
        last = prev.link if prev is not None else CausalLink.genesis(origin)
        if last.sequence != seq - 1:
            return None
        key = "%s%08x:conflict:%d:%016x" % (STATE_PREFIX, origin, seq, event.forward)
        return self._issue(origin, key, event, lambda: Discontinuity(
            origin, last, event.link, ConflictingChains(seq, stored.forward, event.forward), self._now_ms()))

    def corruption(self, origin):
        """The daemon's host reported its flash record damaged."""
        last = self._head_link(origin)
        key = "%s%08x:corruption:%d" % (STATE_PREFIX, origin, last.sequence)
        return self._issue(origin, key, None, lambda: Discontinuity(origin, last, None, Corruption(), self._now_ms()))

    def node_crash(self, origin, last_snapshot_seq):
        """The daemon's host died with events the gateway cannot rebuild: its chain is
        verified up to the stored head, continuable only from the snapshot at
        `last_snapshot_seq` (the lost events are those after it)."""
        last = self._head_link(origin)
        key = "%s%08x:crash:%d" % (STATE_PREFIX, origin, last.sequence)
        return self._issue(origin, key, None, lambda: Discontinuity(
            origin, last, None, NodeCrash(last_snapshot_seq), self._now_ms()))

    # -- common path -------------------------------------------------------------------------

    def _issue(self, origin, key, event, build):
        """Issue once per `key`; None when already recorded (or the continuation of a recorded
        branch).  Record, dedup key, branch tips and daemon status: one transaction."""
        tips_key = "%s%08x:tips" % (STATE_PREFIX, origin)
        with self.store.transaction():
            tips = (self.store.get_state(tips_key) or {}).get("f", [])
            if event is not None:
                fwd = event.forward
                if event.link.parent_hash in tips or self.store.get_state(key) is not None:
                    if fwd not in tips:  # follow the branch: its next event is a continuation too
                        self.store.put_state(tips_key, {"f": (tips + [fwd])[-MAX_TIPS:]})
                    return None
            elif self.store.get_state(key) is not None:
                return None
            try:
                disc = build()
                envelope = sign(self.keystore, R.KIND_DISCONTINUITY, disc)
                R.check_structure(envelope)  # never issue what a node would refuse
            except NetedgeError as e:  # a fault no record can describe (a gateway bug): say so loudly
                log.error("no record issued for %s: %s", key, e)
                return None
            rid = self.store.add_record("discontinuity", origin, disc.to_bytes(), envelope[-R.SIGNATURE_SIZE:],
                                        self.keystore.gateway_public_key)
            self.store.put_state(key, {"id": rid, "at": disc.detected_at})
            if event is not None:
                self.store.put_state(tips_key, {"f": (tips + [event.forward])[-MAX_TIPS:]})
            if self.store.daemon(origin).status not in (DISCONTINUED, "stopped"):
                self.store.update_daemon(origin, status=DISCONTINUED)
        return Issued(rid, envelope, disc)
