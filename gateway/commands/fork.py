"""netedge fork ORIGIN --to NODE — a new daemon identity continuing another's state (§17)."""
from .daemon import parse_origin


def register(sub):
    p = sub.add_parser("fork", help="fork a running daemon into a new identity with a verifiable lineage",
                       description="Snapshot a running daemon (it keeps running) and start a new daemon on NODE "
                                   "from that state: a new keypair and origin, a chain that starts at the fork "
                                   "genesis (PROTOCOL §8), and a ForkRecord signed by the gateway "
                                   "(`netedge record list`). Both chains then continue independently.",
                       epilog="example: netedge fork 1a2b3c4d --to n3 --config netedge.toml")
    p.add_argument("origin", help="the parent daemon: 8 hex digits")
    p.add_argument("--to", required=True, help="the node that hosts the fork")
    p.add_argument("--config")
    p.set_defaults(func=run)


def run(args):
    from ..remote import ask
    r = ask(args.config, "fork", origin=parse_origin(args.origin), to=args.to)
    print("forked %08x at seq %d into %08x on %s" % (r["parent"], r["fork_seq"], r["origin"], r["node"]))
    return 0
