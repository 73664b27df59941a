"""The status read model: one function builds a daemon's status body from the store.

The retained `ne/v1/d/<origin>/status` topic publishes it; the CLI and the status page may show
the same body (it reads the store only, so it works while the gateway is down, given the
group's persisted state).
"""
from ...shared import status as S
from .fork import lineage_of
from .migration import status_of as migration_status
from .standby import summary as group_summary
from .state import GroupState


def continuity_of(store, origin):
    """The ContinuityStatus of a daemon's stored chain.  A chain appended through the gateway's
    validating tail is contiguous by construction (cheap: three reads); any other is assessed
    by walking it."""
    head = store.head(origin)
    if head is None:
        return S.continuous(0, 0, 0)
    lineage = lineage_of(store, origin)
    count = store.event_count(origin)
    if lineage is not None and head.sequence + 1 == count:
        # a fork, appended through the validating tail from its fork genesis (event 0)
        at = store.event(lineage.parent, lineage.fork_seq)
        return S.forked(lineage.fork_seq, at.forward if at is not None else 0,
                        store.event(origin, 0).link.parent_hash)
    first = store.event(origin, 1)
    if first is not None and head.sequence == count:
        return S.continuous(first.forward, head.sequence, head.forward)
    return S.assess_continuity(list(store.events(origin)), origin)


def daemon_status_body(store, origin, continuity=None, group=None):
    """The status body of daemon `origin`: kind, host, epoch, status, ContinuityStatus (given, or
    assessed), the migration phase in progress, the last migration, its fork lineage and its
    standby group (given as the live group state, else read from the store)."""
    d = store.daemon(origin)
    cont = continuity_of(store, origin) if continuity is None else continuity
    body = {"origin": origin, "kind": d.kind, "host": d.host_node, "epoch": d.epoch, "status": d.status,
            "continuity": cont.to_obj()}
    phase, last = migration_status(store, origin)
    if phase is not None:
        body["migrating"] = phase
    lineage = lineage_of(store, origin)
    if lineage is not None:
        body["fork_of"] = {"origin": lineage.parent, "fork_seq": lineage.fork_seq, "why": lineage.why}
    group = store.load_state(GroupState, origin) if group is None else group
    if group is not None:
        body["group"] = group_summary(group)
    if last is not None:
        body["migrated"] = {"migration_seq": last.migration_seq, "source": last.source_node,
                            "target": last.target_node}
    return body
