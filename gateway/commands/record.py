"""netedge record list [--origin O]  |  netedge record verify HEX | --file F | --id N [--signer PUBHEX]"""
from ...shared import records as R
from ..audit import gateway_key
from ..config import load
from . import CliError
from .daemon import open_store, parse_origin

PREFIX = 16  # hex digits of a public key shown in output


def register(sub):
    p = sub.add_parser("record", help="list and verify signed discontinuity / fork records",
                       description="Signed records are the gateway's honest account of where and why a daemon's chain "
                                   "stops verifying (docs/PROTOCOL.md, signed records). `list` reads the gateway's "
                                   "store; `verify` checks a record's layout, body and ed25519 signature.")
    s = p.add_subparsers(title="actions", metavar="ACTION")
    ls = s.add_parser("list", help="list the records in the gateway's store",
                      epilog="example: netedge record list --origin 1a2b3c4d --config netedge.toml")
    ls.add_argument("--origin", help="only this daemon (8 hex digits)")
    ls.add_argument("--hex", action="store_true", help="also print each record's envelope in hex")
    ls.add_argument("--config")
    ls.set_defaults(func=list_)
    v = s.add_parser("verify", help="verify a signed record (exit 0 VALID, 1 INVALID, 2 unusable input)",
                     description="Checks the envelope layout, the strict decoding of its body (a ForkRecord's "
                                 "lineage included) and the ed25519 signature over b\"netedge/record/v1\" || kind || "
                                 "body. The signer must be --signer when given, else the gateway identity of the "
                                 "store when --config or --id is given; otherwise any signer is accepted and "
                                 "printed, so check it yourself.",
                     epilog="examples:\n  netedge record verify 01...\n  netedge record verify --id 3 --config netedge.toml"
                            "\n  netedge record verify --file rec.bin --signer 3b6a27bcceb6a42d62a3a8d02a6f0d73...")
    v.add_argument("hex", nargs="?", help="the record in hex")
    v.add_argument("--file", help="a file holding the record (raw bytes or hex text)")
    v.add_argument("--id", type=int, help="a record of the gateway's store, by id (see `netedge record list`)")
    v.add_argument("--signer", help="require this signer: an ed25519 public key, 64 hex digits")
    v.add_argument("--config")
    v.set_defaults(func=verify)
    p.set_defaults(func=lambda a: (p.print_help(), 0)[1])


def list_(args):
    from ..records import envelope_of, summary
    store = open_store(load(args.config))
    try:
        origin = parse_origin(args.origin) if args.origin else None
        rows = store.records(origin=origin)
        print("%4s  %-13s %-8s  %s" % ("ID", "KIND", "ORIGIN", "SUMMARY"))
        for rec in rows:
            env = envelope_of(rec)
            try:
                kind, body, _, _, _ = R.decode_signed(env)
                text = summary(kind, body)
            except R.RecordDecodeError as e:
                text = "UNDECODABLE: %s" % e
            print("%4d  %-13s %08x  %s" % (rec.id, rec.kind, rec.origin, text))
            if args.hex:
                print("      %s" % env.hex())
        if not rows:
            print("(no records%s)" % (" for %08x" % origin if origin is not None else ""))
    finally:
        store.close()
    return 0


def _unhex(text, what):
    t = "".join(text.split())
    try:
        return bytes.fromhex(t)
    except ValueError:
        raise CliError("%s is not hexadecimal: %r" % (what, text[:24]))


def _read(args):
    """(record bytes, store or None): exactly one of HEX, --file, --id."""
    given = [x for x in (args.hex, args.file, args.id) if x is not None]
    if len(given) != 1:
        raise CliError("give exactly one of HEX, --file F or --id N (see `netedge record verify --help`)")
    if args.hex is not None:
        data = _unhex(args.hex, "the record")
        return data, (open_store(load(args.config)) if args.config else None)
    if args.file is not None:
        try:
            with open(args.file, "rb") as f:
                raw = f.read(1 << 16)
        except OSError as e:
            raise CliError("cannot read %s: %s" % (args.file, e.strerror or e))
        try:
            text = raw.decode("ascii")
            data = bytes.fromhex("".join(text.split())) if text.strip() else raw
        except (UnicodeDecodeError, ValueError):
            data = raw  # raw bytes
        return data, (open_store(load(args.config)) if args.config else None)
    store = open_store(load(args.config))
    rec = store.record(args.id)
    if rec is None:
        store.close()
        raise CliError("no record %d in %s (see `netedge record list`)" % (args.id, store.path))
    from ..records import envelope_of
    return envelope_of(rec), store


def verify(args):
    from ..records import RecordInvalid, summary, verify as verify_record
    signer = None
    if args.signer is not None:
        signer = _unhex(args.signer, "--signer")
        if len(signer) != R.PUBLIC_KEY_SIZE:
            raise CliError("--signer must be a %d-byte ed25519 public key (%d hex digits), got %d bytes"
                           % (R.PUBLIC_KEY_SIZE, 2 * R.PUBLIC_KEY_SIZE, len(signer)))
    data, store = _read(args)
    try:
        if signer is None and store is not None:
            signer = gateway_key(store)
    finally:
        if store is not None:
            store.close()
    if not data:
        raise CliError("empty record")
    try:
        v = verify_record(data, signer)
    except (R.RecordLength, R.UnknownRecordKind) as e:
        raise CliError("not a signed record: %s (kind 1 Discontinuity is %d bytes, kind 2 ForkRecord %d)"
                       % (str(e).replace("signed record: ", "", 1), R.envelope_size(R.KIND_DISCONTINUITY), R.envelope_size(R.KIND_FORK)))
    except (R.RecordBodyError, RecordInvalid) as e:
        print("INVALID: %s" % e)
        return 1
    who = v.signer.hex()[:PREFIX]
    note = "" if signer is not None else " (no required signer: check that this is the gateway you trust)"
    print("VALID %s %s signed by %s%s" % (v.kind_name, summary(v.kind, v.body), who, note))
    return 0
