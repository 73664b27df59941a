"""The gateway's own crash mid-migration: `kill -9` the gateway while a migration is held at a
phase, let the nodes go on, restart the gateway from its store.

The migration's step is in the store (its MigrationState record), what it held in RAM (snapshot chunks,
a replay's batches) is gone, and the broker kept the nodes' replies for its session.  So the
restarted gateway carries on; before the epoch bump it may instead time out and abort back to
the source, after it the migration only rolls forward (docs/PROTOCOL.md §16).  Either way:
exactly one host, every input the broker accepted processed exactly once and in order, one
Continuous chain, and `netedge migrate` (its request outlived the gateway that took it) says
what happened: "migrated", or a clear error and the daemon still on the source.
Real parts only, held at a phase as in test_migration_crash.py (SIGSTOP of the node that must
answer next, the gateway's persisted step watched).
"""
import signal
import threading
import time

import pytest

from cluster import Cluster, Stream, check_chain, migrate_outcome
from gateways import deploy
from netedge.gateway.control.migration import PHASE_TIMEOUT_S
from test_migration_crash import step_of

N = 160  # inputs streamed during each case (40/s)

# phase -> (step held at, outcomes allowed)
PHASES = {
    "snapshot": ("snapshot", ("migrated", "source")),  # source paused before it answers freeze
    "restore": ("restore", ("migrated", "source")),  # target paused before it answers restore
    "replay": ("replay", ("migrated",)),             # after the epoch bump, source paused before release
    "cutover": ("cutover", ("migrated",)),           # target paused with the replay and go in flight
}


# (phase, seconds the gateway stays down): past PHASE_TIMEOUT_S, the restarted gateway finds a
# phase timed out in its store while the node's late answer waits in its session
CASES = [(p, 1.0) for p in PHASES] + [(p, PHASE_TIMEOUT_S + 2) for p in ("snapshot", "restore")]


@pytest.mark.parametrize("phase,down", CASES, ids=["%s-down-%ds" % (p, d) for p, d in CASES])
def test_gateway_killed_during_migration(tmp_path, firmware, phase, down):
    step, allowed = PHASES[phase]
    c = Cluster(tmp_path, firmware, ["n1", "n2"], romfs=True)
    S, T = c.nodes["n1"], c.nodes["n2"]
    try:
        a = deploy(c.cfg, "counter", "n1")
        s = Stream(c.obs, a, 1, N, rate=40)
        s.start()
        time.sleep(0.5)
        res = {}
        mig = threading.Thread(target=lambda: res.update(r=c.migrate(a, "n2", check=False)))
        at = lambda want: c.gw.wait_for(lambda st: step_of(st, a) == want, 15, "migration at %s" % want)  # noqa: E731
        if step in ("snapshot", "restore"):
            paused = S if step == "snapshot" else T
            paused.signal(signal.SIGSTOP)
            mig.start()
            at(step)
        else:  # let the target restore, hold the source at release ...
            T.signal(signal.SIGSTOP)
            mig.start()
            at("restore")
            S.signal(signal.SIGSTOP)
            T.signal(signal.SIGCONT)
            paused = S
            at("replay")
            if step == "cutover":  # ... then let the source release, hold the target at go
                T.signal(signal.SIGSTOP)
                S.signal(signal.SIGCONT)
                paused = T
                at("cutover")
        c.gw.kill()  # SIGKILL: what the gateway held in RAM is gone
        paused.signal(signal.SIGCONT)
        time.sleep(down)  # the nodes go on without it (the broker queues the gateway's session)
        c.gw.start()
        mig.join(60)
        assert not mig.is_alive(), "netedge migrate never returned"
        host, epoch = migrate_outcome(res["r"], a)
        assert ("migrated" if host == "n2" else "source") in allowed, res["r"].stdout + res["r"].stderr
        s.join(60)
        assert s.error is None and not s.is_alive()
        c.wait_events(a, N, timeout=60)
        c.wait_settled(a)
        check_chain(c, a, N, epoch, host)
        assert c.hosts_now(a, ("n1", "n2")) == [host]
    except Exception:
        print(c.gw.output()[-8000:])
        raise
    finally:
        for n in c.nodes.values():
            n.signal(signal.SIGCONT)
        c.close()
