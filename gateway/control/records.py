"""Signed records issued by the gateway: honest discontinuity, never a silent repair.

Ingestion (control/core.py) calls a RecordIssuer when it refuses something that says a daemon's
chain no longer verifies: a link that fails validation (ChainBreak), a different event at a
sequence already stored (ConflictingChains), a node reporting a damaged flash record
(Corruption).  The issuer builds the 87-byte Discontinuity, signs
`b"netedge/record/v1" || kind || body` with the gateway identity key, wraps it in the signed
envelope of shared/records.py, appends it to the store (`records` table) and marks the daemon
`discontinued`, all in one transaction; the core then publishes the envelope RETAINED on
`ne/v1/d/<origin>/continuity`.  The refused event itself is still not stored.

Deduplication (persisted as typed control state, kind `record`, keys `<origin>:...`, written
in the same transaction as the record), so a QoS 1 redelivery, a node repeating itself or a
gateway restart never issues a second record for one fault:
  ChainBreak         one per break point: origin + the last verified sequence (every later link
                     that fails against the same stored head is the same discontinuity);
  ConflictingChains  origin + seq + the refused event's forward hash;
  Corruption         origin + the last verified sequence at the time of the report;
and a refused event whose parent is the forward hash of an event already named in a record (the
rest of a diverging branch) is counted, not recorded again.

Checking a record (`netedge record verify`) is gateway/records.py.
"""
import logging

from ...shared import records as R
from ...shared.discontinuity import ChainBreak, ConflictingChains, Corruption, Discontinuity, NodeCrash
from ...shared.errors import NetedgeError
from ...shared.link import CausalLink
from .state import BranchTips, IssuedRecord

MAX_TIPS = 16          # forward hashes of refused events remembered per origin (branch continuation)
DISCONTINUED = "discontinued"
log = logging.getLogger("netedge.gateway")


def sign(keystore, kind, body):
    """The envelope of `body` (a Discontinuity / ForkRecord or its bytes) signed by the gateway."""
    body_bytes = body.to_bytes() if hasattr(body, "to_bytes") else bytes(body)
    sig = keystore.sign(R.signed_message(kind, body_bytes))
    return R.encode_signed(kind, body_bytes, keystore.gateway_public_key, sig)


class Issued:
    """A record just created: its store id, envelope bytes and Discontinuity."""

    def __init__(self, record_id, envelope, record):
        self.id, self.envelope, self.record = record_id, envelope, record


class RecordIssuer:
    def __init__(self, store, keystore, clock):
        self.store = store
        self.keystore = keystore   # signs with the gateway identity (sign(), gateway_public_key)
        self.clock = clock         # the driver's wall clock: a record says when it was detected

    def _now_ms(self):
        return int(self.clock() * 1000)

    def _head_link(self, origin):
        h = self.store.head(origin)
        return CausalLink.genesis(origin) if h is None else h.link

    # -- the three faults ingestion detects ------------------------------------------------

    def chain_break(self, origin, event, error):
        """`event` (a ChainEvent) failed validation against the stored head with `error`."""
        last = self._head_link(origin)
        key = "%08x:break:%d" % (origin, last.sequence)
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
        key = "%08x:conflict:%d:%016x" % (origin, seq, event.forward)
        return self._issue(origin, key, event, lambda: Discontinuity(
            origin, last, event.link, ConflictingChains(seq, stored.forward, event.forward), self._now_ms()))

    def corruption(self, origin):
        """The daemon's host reported its flash record damaged."""
        last = self._head_link(origin)
        key = "%08x:corruption:%d" % (origin, last.sequence)
        return self._issue(origin, key, None, lambda: Discontinuity(origin, last, None, Corruption(), self._now_ms()))

    def node_crash(self, origin, last_snapshot_seq):
        """The daemon's host died with events the gateway cannot rebuild: its chain is
        verified up to the stored head, continuable only from the snapshot at
        `last_snapshot_seq` (the lost events are those after it)."""
        last = self._head_link(origin)
        key = "%08x:crash:%d" % (origin, last.sequence)
        return self._issue(origin, key, None, lambda: Discontinuity(
            origin, last, None, NodeCrash(last_snapshot_seq), self._now_ms()))

    # -- common path -------------------------------------------------------------------------

    def _issue(self, origin, key, event, build):
        """Issue once per `key`; None when already recorded (or the continuation of a recorded
        branch).  Record, dedup key, branch tips and daemon status: one transaction."""
        with self.store.transaction():
            tips = getattr(self.store.load_state(BranchTips, origin), "f", [])
            if event is not None:
                fwd = event.forward
                if event.link.parent_hash in tips or self.store.load_state(IssuedRecord, key) is not None:
                    if fwd not in tips:  # follow the branch: its next event is a continuation too
                        self.store.save_state(origin, BranchTips(f=(tips + [fwd])[-MAX_TIPS:]))
                    return None
            elif self.store.load_state(IssuedRecord, key) is not None:
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
            self.store.save_state(key, IssuedRecord(id=rid, at=disc.detected_at))
            if event is not None:
                self.store.save_state(origin, BranchTips(f=(tips + [event.forward])[-MAX_TIPS:]))
            if self.store.daemon(origin).status not in (DISCONTINUED, "stopped"):
                self.store.update_daemon(origin, status=DISCONTINUED)
        return Issued(rid, envelope, disc)
