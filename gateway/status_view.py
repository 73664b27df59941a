"""The status read model: nodes, daemons and groups as the gateway's store holds them, one plain
map that `netedge status`, its --json, the status page (gateway/http.py) and `netedge demo` all
show; and its text rendering.  Read-only: it never writes the store.

    snap = snapshot(store)          # {"nodes": [...], "daemons": [...], "groups": [...]}
    print("\\n".join(render(snap)))  # the lines `netedge status` prints
"""
import json
import time

from .control.fork import lineage_of
from .control.migration import status_of as migration_status
from .control.standby import groups_of
from .control.state import StoreOutage
from .store import STORE_FAULT_SUFFIX, STORE_OUTAGE_KEY

# a daemon that has no chain event yet: the assessment of an empty log
EMPTY_CONTINUITY = {"kind": "Continuous", "genesis_hash": 0, "head_seq": 0, "head_hash": 0}


def _obj(record):
    return None if record is None else record.to_obj()


def snapshot(store, now=None):
    """The read model at wall-clock time `now` (default: the clock), which only dates the nodes'
    last heartbeats ("seen_s_ago")."""
    now = time.time() if now is None else now
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
                        "continuity": d.continuity or dict(EMPTY_CONTINUITY),
                        "migrating": phase, "fork_of": _obj(lineage_of(store, d.origin)),
                        "last_migration": None if last is None else {
                            k: getattr(last, k) for k in ("kind", "migration_seq", "source_node", "target_node")}})
    return {"nodes": nodes, "daemons": daemons, "groups": groups_of(store), "store": store_health(store)}


def store_health(store):
    """The gateway's store faults (gateway/service.py): {"failing": the outage going on (its
    start, error, retries) or None, "last": the last outage that cleared or None}."""
    failing = None
    try:
        with open(store.path + STORE_FAULT_SUFFIX) as f:
            failing = json.load(f)
    except (OSError, ValueError, AttributeError):
        pass
    return {"failing": failing, "last": _obj(store.load_state(StoreOutage, STORE_OUTAGE_KEY))}


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
    st = snap.get("store") or {}
    if st.get("failing"):
        f = st["failing"]
        out.append("STORE FAILING for %.1f s: %s (%d retries; nothing is acknowledged until it is stored)" % (
            time.time() - f["since"], f["error"], f["retries"]))
    if st.get("last"):
        s = st["last"]
        out.append("STORE last outage: %.1f s, %d retries, at %s (%s); %d outages since the gateway started" % (
            s["seconds"], s["retries"], time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(s["at"])), s["error"],
            s["faults"]))
    if snap["groups"]:
        out.append("GROUPS")
        for g in snap["groups"]:
            out += group_lines(g)
    return out


def group_lines(g, indent="  "):
    """Lines describing one standby group (`netedge status`, `netedge group list`)."""
    last = g["last_sync"]
    lines = ["%sgroup %08x %-10s %-9s sync every %d events / %gs, last sync %s" % (
        indent, g["origin"], g["kind"], g["step"], g["sync_every"][0], g["sync_every"][1],
        "seq %d" % last["seq"] if last else "-")]
    for n, m in sorted(g["members"].items(), key=lambda x: (x[1]["role"] != "active", x[0])):
        lines.append("%s  %-10s %-8s %-5s holds seq %s" % (indent, n, m["role"], "up" if m["up"] else "DOWN",
                                                           "-" if m["seq"] is None else m["seq"]))
    p = g["last_promotion"]
    if p:
        lines.append("%s  last promotion: %s -> %s at epoch %d in %d ms (%s; replayed %d inputs from seq %d)" % (
            indent, p["from"], p["to"], p["epoch"], p["ms"], p["why"], p["replayed"], p["snapshot_seq"]))
    return lines


def migration_lines(reply):
    """A migrate reply as lines: each phase with its time, then the outcome (`netedge migrate`,
    `netedge demo`)."""
    out = ["  %-10s done in %d ms" % (phase, ms) for phase, ms in reply.get("phases") or [] if phase != "request"]
    out.append("migrated %08x from %s to %s at seq %d, epoch %d" % (
        reply["origin"], reply["source"], reply["target"], reply["migration_seq"], reply["epoch"]))
    return out
