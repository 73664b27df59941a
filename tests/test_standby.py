"""Standby groups (PROTOCOL §17): real Mosquitto, a real gateway process, unix-port nodes.
The active's node dies (kill -9) or freezes (SIGSTOP) under a steady stream; a standby is
promoted at a new epoch and the gateway's log stays ONE Continuous chain with every input
processed exactly once, in order."""
import re
import signal
import time

from gateways import cli
from cluster import Cluster, Stream, check_chain
from netedge.gateway.control.state import GroupState


def create_group(c, *extra):
    out = cli(c.cfg, "group", "standby", "create", "--kind", "counter", "--members", "3", *extra).stdout
    m = re.search(r"standby group ([0-9a-f]{8})", out)
    assert m, out
    return int(m.group(1), 16)


def group_of(c, origin):
    st = c.gw.store()
    try:
        return st.load_state(GroupState, origin).to_obj()
    finally:
        st.close()


def wait_running(c, origin, timeout=20):
    c.gw.wait_for(lambda st: getattr(st.load_state(GroupState, origin), "step", None) == "running"
                  and st.daemon(origin).host_node != c.failed, timeout, "group running again")


def test_kill9_active_promotes_a_standby(tmp_path, firmware):
    # (every board here runs the firmware from its ROM partition, as boards do: from lib/, a 64-bit
    # unix-port node at 96K has ~8 KB left for a promotion's feed, and runs out now and then)
    c = Cluster(tmp_path, firmware, ["n1", "n2", "n3", "n4"], romfs=True)  # n4: outside the group, a recruit
    try:
        a = create_group(c, "--nodes", "n1,n2,n3", "--sync-every", "40")
        g = group_of(c, a)
        assert g["active"] == "n1" and g["last_sync"]["seq"] == 0
        assert {n: m["role"] for n, m in g["members"].items()} == {"n1": "active", "n2": "standby", "n3": "standby"}
        assert "sync of %08x requested from its active n1" % a in cli(c.cfg, "group", "sync", "%08x" % a).stdout
        s = Stream(c.obs, a, 1, 600, rate=200)
        s.start()
        time.sleep(1.2)
        c.failed = "n1"
        c.nodes["n1"].kill()  # SIGKILL: the broker sends its last will
        s.join(60)
        assert s.error is None
        c.wait_events(a, 600)
        wait_running(c, a)
        g = group_of(c, a)
        p = g["promotions"][-1]
        assert p["from"] == "n1" and p["to"] in ("n2", "n3") and p["epoch"] == 2, p
        check_chain(c, a, 600, 2, p["to"])
        # a replacement standby was recruited on the node outside the group, and keeps a copy
        c.gw.wait_for(lambda st: getattr(st.load_state(GroupState, a).members.get("n4"), "seq", None) is not None,
                      20, "n4 recruited")
        assert "n4         standby  up" in cli(c.cfg, "group", "list").stdout
        out = cli(c.cfg, "status").stdout
        assert "GROUPS" in out and "last promotion: n1 -> %s at epoch 2" % p["to"] in out, out
        print(out)
        # the status page's view of the same store: the group, its roles and the promotion
        from netedge.gateway.http import History, build_status, render_page
        st = c.gw.store()
        try:
            h = History()
            h.sample(st)
            snap = build_status(st, h)
            html = render_page(snap, "gw1")
        finally:
            st.close()
        assert "Standby groups" in html and "n1 -&gt; %s, epoch 2" % p["to"] in html, html
        assert any(m["kind"] == "promotion" for m in snap["history"]["%08x" % a]["markers"])
    except Exception:
        print(c.gw.output()[-6000:])
        raise
    finally:
        c.close()


def test_frozen_active_is_deposed_and_rejoins_as_standby(tmp_path, firmware):
    c = Cluster(tmp_path, firmware, ["n1", "n2", "n3"], deadline_ms=1000, romfs=True)
    try:
        a = create_group(c, "--nodes", "n1,n2,n3", "--sync-every", "40")
        s = Stream(c.obs, a, 1, 700, rate=200)
        s.start()
        time.sleep(1.0)
        c.failed = "n1"
        c.nodes["n1"].signal(signal.SIGSTOP)  # frozen: its socket stays open, no last will
        wait_running(c, a)
        time.sleep(0.5)
        c.nodes["n1"].signal(signal.SIGCONT)  # it wakes up still believing it is the active
        s.join(60)
        assert s.error is None
        c.wait_events(a, 700)
        # its stale-epoch frames were rejected and it was told to step down: a standby again
        c.gw.wait_for(lambda st: (st.load_state(GroupState, a).members["n1"].role == "standby"
                                  and st.load_state(GroupState, a).members["n1"].seq is not None),
                      20, "n1 demoted and holding a copy")
        c.obs.heartbeats.clear()
        c.obs.wait(lambda: "n1" in c.obs.heartbeats, 5, "n1 heartbeat")
        hb = c.obs.heartbeats["n1"]
        assert a not in [d["origin"] for d in hb["daemons"]], hb          # never two actives
        assert a in [o for o, _ in hb.get("standby", [])], hb
        p = group_of(c, a)["promotions"][-1]
        assert p["from"] == "n1" and "silent" in p["why"], p
        check_chain(c, a, 700, 2, p["to"])
    except Exception:
        print(c.gw.output()[-6000:])
        raise
    finally:
        c.close()


def test_lost_events_give_a_signed_node_crash_and_a_fork(tmp_path, firmware):
    # a log capped at 64 inputs and no sync after the first: when the active dies, the inputs
    # of most of its events are gone — the gateway must say so, not invent a chain
    c = Cluster(tmp_path, firmware, ["n1", "n2", "n3"], gateway={"input_log_max": 64}, romfs=True)
    try:
        a = create_group(c, "--nodes", "n1,n2,n3", "--sync-every", "100000", "--sync-seconds", "3600")
        s = Stream(c.obs, a, 1, 300, rate=400)
        s.start()
        s.join(30)
        c.wait_events(a, 300)
        c.nodes["n1"].kill()
        c.gw.wait_for(lambda st: getattr(st.load_state(GroupState, a), "step", None) == "lost", 20, "loss recorded")
        lost = group_of(c, a)["lost"]
        assert lost["snapshot_seq"] == 0 and lost["missing"] == 1, lost
        child = lost["child"]
        c.gw.wait_for(lambda st: st.daemon(child) is not None and st.daemon(child).status == "active", 20,
                      "the fork active")
        st = c.gw.store()
        try:
            assert st.daemon(a).status == "discontinued"
            crash = [r for r in st.records(origin=a) if r.kind == "discontinuity"][-1]
            fork = [r for r in st.records(origin=child) if r.kind == "fork"][-1]
            host = st.daemon(child).host_node
        finally:
            st.close()
        assert host in ("n2", "n3")
        listing = cli(c.cfg, "record", "list").stdout
        assert "NodeCrash(last snapshot seq 0)" in listing and "-> %08x at seq 0" % child in listing, listing
        for rec in (crash, fork):
            assert "VALID" in cli(c.cfg, "record", "verify", "--id", str(rec.id)).stdout
        # the fork runs: its own inbox, a chain from its fork genesis (state = the snapshot's)
        c.obs.send_input(child, b"5", counter=1)
        c.wait_events(child, 2)  # event 0 is the fork genesis
        out = cli(c.cfg, "status").stdout
        assert "%08x" % child in out and "Forked{" in out and "discontinued" in out, out
        print(out)
    except Exception:
        print(c.gw.output()[-6000:])
        raise
    finally:
        c.close()


def test_netedge_fork_of_a_running_daemon(tmp_path, firmware):
    c = Cluster(tmp_path, firmware, ["n1", "n2"], romfs=True)
    try:
        from gateways import deploy
        a = deploy(c.cfg, "counter", "n1")
        for i in range(1, 11):
            c.obs.send_input(a, b"%d" % i, counter=i)
        c.wait_events(a, 10)
        out = cli(c.cfg, "fork", "%08x" % a, "--to", "n2").stdout
        m = re.search(r"forked %08x at seq 10 into ([0-9a-f]{8}) on n2" % a, out)
        assert m, out
        child = int(m.group(1), 16)
        c.obs.send_input(child, b"100", counter=1)
        c.obs.send_input(a, b"11", counter=11)  # the parent keeps running, on its own chain
        c.wait_events(child, 2)
        c.wait_events(a, 11)
        from nodes import event_outputs
        st = c.gw.store()
        try:
            assert int(event_outputs(st.event(child, 1).payload)[4][0]) == 55 + 100  # the parent's state went along
            assert int(event_outputs(st.event(a, 11).payload)[4][0]) == 66
            assert st.daemon(a).status == "active"
        finally:
            st.close()
        out = cli(c.cfg, "status").stdout
        assert "fork_point=10" in out and "fork of %08x at seq 10 (requested)" % a in out, out
    except Exception:
        print(c.gw.output()[-6000:])
        raise
    finally:
        c.close()
