"""The broker restarts under the whole system (a Mosquitto upgrade on the gateway's Pi): with its
persistence on, the gateway's, the nodes' and the clients' sessions survive, everyone reconnects,
and the chain goes on: every input the broker accepted processed exactly once, in order, on one
Continuous chain; a migration caught by the restart ends migrated or on the source, never both.
Real parts only: Mosquitto, a gateway process, unix-port nodes."""
import signal
import threading
import time

from cluster import Cluster, Stream, check_chain, migrate_outcome
from gateways import deploy
from test_migration_crash import step_of

N = 300


def test_broker_restart_mid_stream(tmp_path, firmware):
    c = Cluster(tmp_path, firmware, ["n1"], persistence=True)
    try:
        a = deploy(c.cfg, "counter", "n1")
        s = Stream(c.obs, a, 1, N, rate=100)
        s.start()
        time.sleep(1.0)
        c.broker.restart()  # SIGTERM (its persistence saved), then the same port again
        s.join(60)
        assert s.error is None and not s.is_alive()
        c.wait_events(a, N, timeout=60)
        check_chain(c, a, N, 1, "n1")
    except Exception:
        print(c.gw.output()[-6000:])
        raise
    finally:
        c.close()


def test_broker_restart_mid_migration(tmp_path, firmware):
    c = Cluster(tmp_path, firmware, ["n1", "n2"], persistence=True, romfs=True)
    S, T = c.nodes["n1"], c.nodes["n2"]
    try:
        a = deploy(c.cfg, "counter", "n1")
        s = Stream(c.obs, a, 1, N // 2, rate=40)
        s.start()
        time.sleep(0.5)
        res = {}
        mig = threading.Thread(target=lambda: res.update(r=c.migrate(a, "n2", check=False)))
        T.signal(signal.SIGSTOP)  # held at restore: the target has not answered yet
        mig.start()
        c.gw.wait_for(lambda st: step_of(st, a) == "restore", 15, "migration at restore")
        c.broker.restart()
        T.signal(signal.SIGCONT)
        mig.join(60)
        assert not mig.is_alive()
        host, epoch = migrate_outcome(res["r"], a)
        s.join(60)
        assert s.error is None and not s.is_alive()
        c.wait_events(a, N // 2, timeout=60)
        c.wait_settled(a)
        check_chain(c, a, N // 2, epoch, host)
        assert c.hosts_now(a, ("n1", "n2")) == [host]
    except Exception:
        print(c.gw.output()[-8000:])
        raise
    finally:
        for n in c.nodes.values():
            n.signal(signal.SIGCONT)
        c.close()


def test_gateway_started_before_its_broker(tmp_path, firmware):
    """At boot the gateway may come up first: it waits for the broker (no traceback, no exit)."""
    from gateways import GatewayProc, cli, write_config
    from mosquitto import Mosquitto, free_port
    from nodes import NodeProc

    class Addr:
        host, port = "127.0.0.1", free_port()
    n1 = NodeProc(firmware, tmp_path / "boards", "n1", Addr)
    cfg = write_config(tmp_path / "netedge.toml", Addr, [n1])
    gw = GatewayProc(cfg).start()
    broker = None
    try:
        time.sleep(1.5)
        assert gw.proc.poll() is None, gw.output()
        assert "broker unreachable" in gw.output() and "Traceback" not in gw.output()
        broker = Mosquitto(tmp_path / "broker", port=Addr.port).start()
        n1.start()
        gw.wait_for(lambda st: any(n.status == "online" and "kinds" in n.info for n in st.nodes()), 20, "n1 online")
        a = deploy(cfg, "counter", "n1")
        assert "%08x" % a in cli(cfg, "status").stdout
    finally:
        n1.kill()
        gw.kill()
        if broker is not None:
            broker.kill()


def test_broker_restart_fails_no_group_over(tmp_path, firmware):
    """A broker going down sends every node's last will and silences every heartbeat: that is not
    a failure of the nodes.  Down for longer than the heartbeat deadline, back: the standby group
    keeps its active at its epoch, and its chain goes on."""
    from test_standby import create_group, group_of
    c = Cluster(tmp_path, firmware, ["n1", "n2", "n3"], persistence=True)
    try:
        a = create_group(c, "--nodes", "n1,n2,n3")
        s = Stream(c.obs, a, 1, N, rate=100)
        s.start()
        time.sleep(1.0)
        c.broker.restart(down_for=3.0)  # twice the gateway's heartbeat deadline
        s.join(60)
        assert s.error is None and not s.is_alive()
        c.wait_events(a, N, timeout=60)
        g = group_of(c, a)
        assert g["active"] == "n1" and g["promotions"] == [] and g["step"] == "running", g
        check_chain(c, a, N, 1, "n1")
        assert "came with the broker" in c.gw.output()  # (its wills: dropped, or ignored once back)
    except Exception:
        print(c.gw.output()[-6000:])
        raise
    finally:
        c.close()
