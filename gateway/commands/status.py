"""netedge status — nodes, daemons and their ContinuityStatus, from the gateway's store."""
import json

from ..status_view import render, snapshot
from .daemon import read_store


def register(sub):
    p = sub.add_parser("status", help="show nodes, daemons and continuity",
                       description="Show what the gateway knows: nodes (online/suspect/offline, heap, daemons) and "
                                   "daemons (host, epoch, chain head, ContinuityStatus). Reads the store, so it works "
                                   "while the gateway is down too.")
    p.add_argument("--config")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args):
    snap = read_store(args.config, snapshot)
    if args.json:
        print(json.dumps(snap, indent=1, sort_keys=True))
        return 0
    print("\n".join(render(snap)))
    return 0
