"""netedge status — nodes, daemons and their ContinuityStatus, from the gateway's store."""
import json
import time

from .daemon import read_store
from ..control.migration import status_of as migration_status
from ..control.standby import groups_of
from ..control.fork import lineage_of
from .group import show as show_group


def register(sub):
    p = sub.add_parser("status", help="show nodes, daemons and continuity",
                       description="Show what the gateway knows: nodes (online/suspect/offline, heap, daemons) and "
                                   "daemons (host, epoch, chain head, ContinuityStatus). Reads the store, so it works "
                                   "while the gateway is down too.")
    p.add_argument("--config")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def snapshot(store):
    now = time.time()
    nodes = []
    for n in store.nodes():
        nodes.append({"node": n.node_id, "status": n.status, "board": n.info.get("board"), "heap": n.info.get("heap"),
                      "daemons": len(n.info.get("daemons") or []),
                      "kinds": [str(k) for k in n.info.get("kinds") or []],
                      "seen_s_ago": None if n.last_seen is None else round(now - n.last_seen, 1)})
    daemons = []
    for d in store.daemons():
        head = store.head(d.origin)
        phase, last = migration_status(store, d.origin)
        daemons.append({"origin": "%08x" % d.origin, "kind": d.kind, "host": d.host_node, "epoch": d.epoch,
                        "status": d.status, "head_seq": head.sequence if head else 0,
                        "continuity": d.continuity or {"kind": "Continuous", "genesis_hash": 0, "head_seq": 0,
                                                       "head_hash": 0},
                        "migrating": phase, "fork_of": lineage_of(store, d.origin),
                        "last_migration": None if last is None else {
                            k: last[k] for k in ("kind", "migration_seq", "source_node", "target_node")}})
    return {"nodes": nodes, "daemons": daemons, "groups": groups_of(store)}


def render(snap):
    """The human-readable status, as lines (`netedge status`, `netedge demo`)."""
    out = ["NODES"]
    for n in snap["nodes"]:
        out.append("  %-10s %-8s %-10s heap=%-7s daemons=%d kinds=%s seen %ss ago" % (
            n["node"], n["status"], n["board"] or "-", n["heap"], n["daemons"], ",".join(n["kinds"]) or "-",
            n["seen_s_ago"]))
    if not snap["nodes"]:
        out.append("  (none yet: nodes appear with their first heartbeat)")
    out.append("DAEMONS")
    for d in snap["daemons"]:
        c = d["continuity"]
        detail = ", ".join("%s=%s" % (k, v) for k, v in sorted(c.items()) if k != "kind")
        out.append("  %s %-10s host=%-8s epoch=%-3d %-12s head=%-6d %s{%s}" % (
            d["origin"], d["kind"], d["host"], d["epoch"], d["status"], d["head_seq"], c["kind"], detail))
        if d["migrating"]:
            out.append("    migrating: phase %s" % d["migrating"])
        if d["fork_of"]:
            out.append("    fork of %08x at seq %d (%s)" % (d["fork_of"]["parent"], d["fork_of"]["fork_seq"],
                                                        d["fork_of"]["why"]))
        m = d["last_migration"]
        if m:
            out.append("    last migration: Migrated{migration_seq=%d, source_node=%s, target_node=%s}" % (
                m["migration_seq"], m["source_node"], m["target_node"]))
    if not snap["daemons"]:
        out.append("  (none)")
    if snap["groups"]:
        out.append("GROUPS")
        for g in snap["groups"]:
            out += show_group(g)
    return out


def run(args):
    snap = read_store(args.config, snapshot)
    if args.json:
        print(json.dumps(snap, indent=1, sort_keys=True))
        return 0
    print("\n".join(render(snap)))
    return 0
