"""netedge proof ORIGIN [--from A --to B]  |  netedge proof verify HEX"""
from ...shared.errors import DecodeError
from ...shared.proof import MAX_PROOF_VERIFY_SPAN, ContinuityProof
from ..audit import check, prove
from ..config import load
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


def make(store, origin, lo, hi):
    print(prove(store, origin, lo, hi).to_bytes().hex())
    return 0


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
