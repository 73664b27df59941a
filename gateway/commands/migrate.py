"""netedge migrate ORIGIN --to NODE | --auto — live migration (docs/PROTOCOL.md §16)."""
import argparse

from ..config import load
from ..status_view import migration_lines
from .daemon import parse_origin


def register(sub):
    p = sub.add_parser("migrate", help="move a running daemon to another node, without losing an input",
                       description="Live-migrate a daemon: its host snapshots and buffers it, the target restores "
                                   "it, the epoch moves on and the buffered inputs are replayed there. One "
                                   "contiguous chain. Any failure before the cutover leaves it on its source.",
                       epilog="example: netedge migrate 1a2b3c4d --to n2 --config netedge.toml\n"
                              "         netedge migrate 1a2b3c4d --auto --config netedge.toml",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("origin", help="8 hex digits, as `netedge daemon list` shows")
    to = p.add_mutually_exclusive_group(required=True)
    to.add_argument("--to", help="target node id")
    to.add_argument("--auto", action="store_true",
                    help="let the gateway pick: an online node that can host the kind, holds the key slot "
                         "or can be given it, and has free heap for the snapshot (it says why none fits)")
    p.add_argument("--config")
    p.set_defaults(func=run)


def run(args):
    from ..remote import GatewayClient
    origin = parse_origin(args.origin)
    gc = GatewayClient(load(args.config))
    try:
        r = gc.request("migrate", origin=origin, **({"auto": True} if args.auto else {"to": args.to}))
    finally:
        gc.close()
    print("\n".join(migration_lines(r)))
    return 0
