"""The migration crash matrix: for each phase, `kill -9` the source and, separately,
the target while the migration is there, then restart the killed node from its flash.

Real parts only: Mosquitto, the gateway process, unix-port nodes (96K heap, firmware in their ROM
partition, as `netedge provision --romfs` deploys it).  A migration is
held at a phase from the test side: the node that must answer next is paused (SIGSTOP) and the
gateway's persisted step is watched; nothing in the product knows about the test.

Every case must end with exactly one host, every input the broker accepted processed exactly
once and in order, one Continuous chain, and either "migrated" or "still on the source" with a
clear error from `netedge migrate` (docs/PROTOCOL.md §16, "Crash matrix", says which and why).
"""
import signal
import threading
import time

import pytest

from cluster import Cluster, Stream, check_chain, cli, deploy
from netedge.gateway.control.state import MigrationState

BLOB_NODE = {"kinds": {"counter": "netedge.firmware.daemons.counter.Counter",
                       "blob": "netedge.firmware.daemons.blob.Blob"}}
N = 160     # inputs streamed during each case (40/s: a pause of a node fits its 64-input buffer)

# phase -> (the gateway's step the migration is held at, expected outcome: source killed, target killed)
MATRIX = {
    "snapshot": ("snapshot", "source", "source"),    # source paused before it answers freeze
    "transfer": ("transfer", "migrated", "source"),  # target paused with snapshot chunks in flight
    "restore": ("restore", "migrated", "source"),    # target paused before it answers restore
    "replay": ("replay", "migrated", "migrated"),    # after the epoch bump, source paused before release
    "cutover": ("cutover", "migrated", "migrated"),  # target paused with the replay and go in flight
    "complete": ("complete", "migrated", "migrated"),  # right after the target answered active
}
CASES = [(p, v) for p in MATRIX for v in ("source", "target")]


def step_of(st, origin):
    s = st.load_state(MigrationState, origin)
    return s and s.step


@pytest.mark.parametrize("phase,victim", CASES, ids=["%s-kill-%s" % c for c in CASES])
def test_kill_during_migration(tmp_path, firmware, phase, victim):
    want, if_source, if_target = MATRIX[phase]
    outcome = if_source if victim == "source" else if_target
    # The nodes run their firmware from the ROM partition (`netedge provision --romfs`), with a
    # 96K heap.  From lib/ a 96K node has ~19 KB free. Its restart is then flooded with what the
    # broker queued for it meanwhile, which starves it now and then, and a 2.5 KB state does not
    # fit at all (boards/README.md).
    c = Cluster(tmp_path, firmware, ["n1", "n2"], extra={"n1": BLOB_NODE, "n2": BLOB_NODE}, romfs=True)
    S, T = c.nodes["n1"], c.nodes["n2"]
    try:
        a = deploy(c.cfg, "blob", "n1")
        setup = 0
        if phase == "transfer":  # a record over 2 KB: it travels in chunks
            c.obs.send_input(a, b"=2500", sender="setup", counter=1)
            setup = 1
            c.wait_events(a, 1)
        s = Stream(c.obs, a, 1, N, rate=40)
        s.start()
        time.sleep(0.5)
        res = {}

        def migrate():
            res["r"] = c.migrate(a, "n2", check=False)
        mig = threading.Thread(target=migrate)
        at = lambda step: c.gw.wait_for(lambda st: step_of(st, a) == step, 15, "migration at %s" % step)  # noqa: E731
        paused = None
        if phase == "complete":
            migrate()
        else:
            first = S if phase == "snapshot" else T
            first.signal(signal.SIGSTOP)
            paused = first
            mig.start()
            at(want if phase in ("snapshot", "transfer") else "restore")
            if phase in ("replay", "cutover"):  # let the target restore, hold the source at release
                S.signal(signal.SIGSTOP)
                T.signal(signal.SIGCONT)
                paused = S
                at("replay")
                if phase == "cutover":  # let the source release, hold the target at go
                    T.signal(signal.SIGSTOP)
                    S.signal(signal.SIGCONT)
                    paused = T
                    at("cutover")
        killed = S if victim == "source" else T
        killed.kill()  # SIGKILL (a paused process dies too)
        if paused is not None and paused is not killed:
            paused.signal(signal.SIGCONT)
        time.sleep(0.5)
        killed.start()  # back from its flash
        if mig.is_alive() or phase != "complete":
            mig.join(30)
        r = res["r"]
        s.join(30)
        assert s.error is None and not s.is_alive()
        c.wait_events(a, N + setup, timeout=30)
        c.wait_settled(a, 15)
        host, epoch = ("n2", 2) if outcome == "migrated" else ("n1", 1)
        if outcome == "migrated":
            assert r.returncode == 0 and "migrated %08x from n1 to n2" % a in r.stdout, r.stdout + r.stderr
        else:
            assert r.returncode != 0 and "keeps running on n1" in r.stderr, r.stdout + r.stderr
        check_chain(c, a, N, epoch, host, setup=setup)
        assert c.hosts_now(a, ("n1", "n2")) == [host]  # exactly one host
    except Exception:
        print(c.gw.output()[-6000:])
        raise
    finally:
        for n in c.nodes.values():
            n.signal(signal.SIGCONT)
        c.close()
