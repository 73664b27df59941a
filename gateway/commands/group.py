"""netedge group standby create | sync | list — standby groups (docs/PROTOCOL.md §17)."""
import json

from ..status_view import group_lines
from . import CliError
from .daemon import parse_origin, read_store


def register(sub):
    p = sub.add_parser("group", help="standby groups: a daemon that fails over to another node",
                       description="A standby group runs one daemon on an active node while the other members "
                                   "hold its latest snapshot. When the active's node crashes (last will) or goes "
                                   "silent (heartbeat deadline), the standby furthest along is promoted at a new "
                                   "epoch and replays the gateway's input log: the same chain continues.")
    s = p.add_subparsers(title="actions", metavar="ACTION")
    sb = s.add_parser("standby", help="standby groups")
    ss = sb.add_subparsers(title="actions", metavar="ACTION")
    c = ss.add_parser("create", help="create a daemon in a new standby group",
                      epilog="example: netedge group standby create --kind counter --members 3 --config netedge.toml")
    c.add_argument("--kind", required=True, help="a daemon kind every member can host")
    c.add_argument("--members", type=int, default=3, help="members on distinct nodes, 2..16 (default 3)")
    c.add_argument("--nodes", help="comma-separated node ids (the first is the active); default: least loaded")
    c.add_argument("--sync-every", type=int, default=None, metavar="N",
                   help="sync the standbys after every N events (default 50)")
    c.add_argument("--sync-seconds", type=float, default=None, metavar="S",
                   help="... and at least every S seconds while events arrive (default 5)")
    c.add_argument("--config")
    c.set_defaults(func=create)
    sb.set_defaults(func=lambda a: (sb.print_help(), 0)[1])
    y = s.add_parser("sync", help="sync a group's standbys now (sync_standbys)")
    y.add_argument("origin", help="the group daemon's origin: 8 hex digits")
    y.add_argument("--config")
    y.set_defaults(func=sync)
    ls = s.add_parser("list", help="list groups: members, roles, sync points, last promotion (reads the store)")
    ls.add_argument("--json", action="store_true")
    ls.add_argument("--config")
    ls.set_defaults(func=list_)
    p.set_defaults(func=lambda a: (p.print_help(), 0)[1])


def _request(args, cmd, **body):
    from ..remote import ask
    return ask(args.config, cmd, **body)


def create(args):
    if not 2 <= args.members <= 16:
        raise CliError("--members must be 2..16 (one active and at least one standby)")
    body = {"kind": args.kind, "members": args.members}
    if args.nodes:
        body["nodes"] = [n.strip() for n in args.nodes.split(",") if n.strip()]
        if len(body["nodes"]) != args.members:
            raise CliError("--nodes lists %d nodes but --members is %d" % (len(body["nodes"]), args.members))
    if args.sync_every is not None:
        if args.sync_every < 1:
            raise CliError("--sync-every must be >= 1")
        body["sync_every"] = args.sync_every
    if args.sync_seconds is not None:
        if args.sync_seconds <= 0:
            raise CliError("--sync-seconds must be > 0")
        body["sync_seconds"] = args.sync_seconds
    r = _request(args, "group_create", **body)
    print("standby group %08x (kind %s): active on %s, standbys on %s, synced at seq %d" % (
        r["origin"], r["kind"], r["active"],
        ", ".join(n for n, m in sorted(r["members"].items()) if m["role"] == "standby"),
        (r["last_sync"] or {}).get("seq", 0)))
    return 0


def sync(args):
    r = _request(args, "group_sync", origin=parse_origin(args.origin))
    print("sync of %08x requested from its active %s" % (r["origin"], r["active"]))
    return 0


def list_(args):
    from ..control.standby import groups_of
    groups = read_store(args.config, groups_of)
    if args.json:
        print(json.dumps(groups, indent=1, sort_keys=True))
        return 0
    for g in groups:
        print("\n".join(group_lines(g, "")))
    if not groups:
        print("(no groups: create one with `netedge group standby create --kind KIND`)")
    return 0
