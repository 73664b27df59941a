"""Proofs and signed records against the gateway's store: what `netedge proof`, `netedge record`
and `netedge demo` check.  Read-only; failures an operator must act on are OperatorErrors.

    proof = prove(store, origin, lo, hi)   # a ContinuityProof, made only over a log that verifies
    why = check(store, proof)              # None when it holds, else the typed reason
    key = gateway_key(store)               # the public key the gateway signs its records with
"""
from ..shared.proof import ContinuityProof, ProofError
from .errors import OperatorError
from .store import StoreError


def _why(e):
    """ProofErrors name themselves ("HashMismatch(seq=6, ...)"); store errors get their class name."""
    return str(e) if isinstance(e, ProofError) else "%s: %s" % (type(e).__name__, e)


def prove(store, origin, lo=None, hi=None):
    """The ContinuityProof over lo..hi (default: the whole logged chain), made only after the
    gateway's own log was walked and verified over that range."""
    if store.daemon(origin) is None:
        raise OperatorError("no daemon %08x in the gateway's store" % origin)
    try:
        return _make(store, origin, lo, hi)
    except (ProofError, StoreError) as e:
        # a proof is only worth printing if our own log backs it
        raise OperatorError("refusing to print a proof for %08x: the gateway's log does not verify (%s). The log "
                            "was damaged or altered outside the gateway; `netedge proof %08x --from A --to B` still "
                            "proves an intact range" % (origin, _why(e), origin))


def _make(store, origin, lo, hi):
    head = store.head(origin)
    if head is None:
        raise OperatorError("daemon %08x has no chain events yet" % origin)
    lo = 1 if lo is None else lo
    hi = head.sequence if hi is None else hi
    if lo < 1 or hi < lo or hi > head.sequence:
        raise OperatorError("range %d..%d is outside the logged chain 1..%d" % (lo, hi, head.sequence))
    first, last = store.event(origin, lo), store.event(origin, hi)
    if first is None or last is None:
        raise OperatorError("events %d..%d are not in the log (pruned?)" % (lo, hi))
    proof = ContinuityProof(origin, lo, hi, first.forward, last.forward)
    proof.verify_events(origin, store.events(origin, lo, hi))
    return proof


def check(store, proof):
    """Verify a proof against the gateway's log, walking every link in its range: None when it
    holds, else the typed reason (e.g. "HashMismatch(seq=6, ...)")."""
    if store.daemon(proof.origin_hash) is None:
        raise OperatorError("no daemon %08x in the gateway's store" % proof.origin_hash)
    try:
        proof.check_range(proof.origin_hash)
        proof.verify_events(proof.origin_hash, store.events(proof.origin_hash, proof.from_seq, proof.to_seq))
    except (ProofError, StoreError) as e:  # StoreError: a row that does not decode (CorruptRow)
        return _why(e)
    return None


def gateway_key(store):
    """The gateway's ed25519 public key, from its store (it signs every record with it)."""
    r = store.query("SELECT public_key FROM gateway_identity WHERE id = 1")
    if not r:
        raise OperatorError("the gateway store %s has no gateway identity yet: run `netedge gateway` once, "
                            "or pass --signer" % store.path)
    return bytes(r[0][0])
