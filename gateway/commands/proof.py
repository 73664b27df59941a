"""netedge proof ORIGIN [--from A --to B]  |  netedge proof verify HEX"""
from ...shared.errors import DecodeError
from ...shared.proof import MAX_PROOF_VERIFY_SPAN, ContinuityProof, ProofError
from ..config import load
from ..store import StoreError
from . import CliError
from .daemon import open_store, parse_origin


def register(sub):
    p = sub.add_parser("proof", help="print or verify a 36-byte ContinuityProof",
                       description="`netedge proof ORIGIN` prints the proof (hex) over the daemon's logged chain; "
                                   "`netedge proof verify HEX` checks one against the gateway's log, walking every "
                                   "link in its range (at most %d events)." % MAX_PROOF_VERIFY_SPAN,
                       epilog="examples:\n  netedge proof 1a2b3c4d --from 1 --to 500\n  netedge proof verify 4d3c2b1a01...")
    p.add_argument("origin", help="8 hex digits, or `verify`")
    p.add_argument("hex", nargs="?", help="with `verify`: the proof in hex (72 hex digits)")
    p.add_argument("--from", dest="from_seq", type=int)
    p.add_argument("--to", dest="to_seq", type=int)
    p.add_argument("--config")
    p.set_defaults(func=run)


def run(args):
    store = open_store(load(args.config))
    try:
        if args.origin == "verify":
            return verify(store, args.hex)
        if args.hex is not None:
            raise CliError("unexpected argument %r: use `netedge proof ORIGIN [--from A --to B]` "
                           "or `netedge proof verify HEX`" % args.hex)
        return make(store, parse_origin(args.origin), args.from_seq, args.to_seq)
    finally:
        store.close()


def _why(e):
    """ProofErrors name themselves ("HashMismatch(seq=6, ...)"); store errors get their class name."""
    return str(e) if isinstance(e, ProofError) else "%s: %s" % (type(e).__name__, e)


def make(store, origin, lo, hi):
    print(prove(store, origin, lo, hi).to_bytes().hex())
    return 0


def prove(store, origin, lo=None, hi=None):
    """The ContinuityProof over lo..hi (default: the whole logged chain), made only after the
    gateway's own log was walked and verified over that range."""
    if store.daemon(origin) is None:
        raise CliError("no daemon %08x in the gateway's store" % origin)
    try:
        return _make(store, origin, lo, hi)
    except (ProofError, StoreError) as e:
        # a proof is only worth printing if our own log backs it
        raise CliError("refusing to print a proof for %08x: the gateway's log does not verify (%s). The log was "
                       "damaged or altered outside the gateway; `netedge proof %08x --from A --to B` still proves "
                       "an intact range" % (origin, _why(e), origin))


def _make(store, origin, lo, hi):
    head = store.head(origin)
    if head is None:
        raise CliError("daemon %08x has no chain events yet" % origin)
    lo = 1 if lo is None else lo
    hi = head.sequence if hi is None else hi
    if lo < 1 or hi < lo or hi > head.sequence:
        raise CliError("range %d..%d is outside the logged chain 1..%d" % (lo, hi, head.sequence))
    first, last = store.event(origin, lo), store.event(origin, hi)
    if first is None or last is None:
        raise CliError("events %d..%d are not in the log (pruned?)" % (lo, hi))
    proof = ContinuityProof(origin, lo, hi, first.forward, last.forward)
    proof.verify_events(origin, store.events(origin, lo, hi))
    return proof


def verify(store, text):
    if not text:
        raise CliError("usage: netedge proof verify HEX")
    try:
        proof = ContinuityProof.from_bytes(bytes.fromhex(text.strip()))
    except ValueError as e:
        if isinstance(e, DecodeError):
            raise CliError("not a proof: %s (a proof is 36 bytes: 72 hex digits)" % e)
        raise CliError("not hexadecimal: %r" % text[:20])
    why = check(store, proof)
    if why is not None:
        print("INVALID %08x %d..%d: %s" % (proof.origin_hash, proof.from_seq, proof.to_seq, why))
        return 1
    print("VALID %08x %d..%d (%d links walked)" % (proof.origin_hash, proof.from_seq, proof.to_seq,
                                                    proof.to_seq - proof.from_seq + 1))
    return 0


def check(store, proof):
    """Verify a proof against the gateway's log, walking every link in its range: None when it
    holds, else the typed reason (e.g. "HashMismatch(seq=6, ...)")."""
    if store.daemon(proof.origin_hash) is None:
        raise CliError("no daemon %08x in the gateway's store" % proof.origin_hash)
    try:
        proof.check_range(proof.origin_hash)
        proof.verify_events(proof.origin_hash, store.events(proof.origin_hash, proof.from_seq, proof.to_seq))
    except (ProofError, StoreError) as e:  # StoreError: a row that does not decode (CorruptRow)
        return _why(e)
    return None
