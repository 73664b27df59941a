"""Gateway end to end: a real `netedge gateway` process, real Mosquitto (and the embedded broker),
unix-port nodes; the operator CLI drives it."""
import time


from netedge.shared import status as S
from netedge.shared import topics as T

from gateways import GatewayProc, cli, deploy, write_config
from mosquitto import Mosquitto
from nodes import NodeProc, Observer, assert_in_order


def stored_total(store, origin):
    from nodes import event_outputs
    return int(event_outputs(store.head(origin).payload)[4][0])


def late_status(observer, origin):
    """The retained STATUS body on ne/v1/d/<origin>/status, as a late subscriber sees it."""
    with observer.lock:
        for topic, f in reversed(observer.frames):
            if topic == T.daemon(origin, "status") and not isinstance(f, Exception):
                return f.body()
    return None


def run_scenario(tmp_path, firmware, broker, embedded):
    n1 = NodeProc(firmware, tmp_path / "boards", "n1", broker)
    n2 = NodeProc(firmware, tmp_path / "boards", "n2", broker)
    cfg = write_config(tmp_path / "netedge.toml", broker, [n1, n2], embedded=embedded)
    gw = GatewayProc(cfg).start()
    procs = [gw]
    try:
        if embedded:
            time.sleep(1.0)  # the gateway starts the broker the nodes connect to
        n1.start(), n2.start()
        procs += [n1, n2]
        gw.wait_for(lambda st: {n.node_id for n in st.nodes() if n.status == "online" and "kinds" in n.info}
                    >= {"n1", "n2"}, 20, "both nodes online")
        a = deploy(cfg, "counter", "n1")
        b = deploy(cfg, "counter", "n2")
        obs = Observer(broker, "publisher")
        try:
            for i in range(1, 151):
                obs.send_input(a, b"%d" % i)
                obs.send_input(b, b"%d" % (2 * i))
                if i == 60:
                    gw.kill()           # kill -9 mid-stream: the broker keeps its session
                if i == 90:
                    gw.start()
            gw.wait_for(lambda st: st.event_count(a) == 150 and st.event_count(b) == 150, 40, "all events logged")
        finally:
            obs.close()
        st = gw.store()
        try:
            for origin, total in ((a, sum(range(1, 151))), (b, 2 * sum(range(1, 151)))):
                evs = list(st.events(origin))
                assert [e.sequence for e in evs] == list(range(1, 151))
                assert_in_order(evs)
                status = S.assess_continuity(evs, origin)
                assert status.kind == S.CONTINUOUS and status.head_seq == 150
                assert stored_total(st, origin) == total
                inputs = list(st.inputs_after(origin))
                assert len(inputs) == 150  # every input logged durably, exactly once
        finally:
            st.close()
        gw.wait_for(lambda st: all((d.continuity or {}).get("head_seq") == 150 for d in st.daemons()), 10,
                    "retained status current")
        out = cli(cfg, "status").stdout
        assert "Continuous" in out and "n1" in out and "online" in out
        hexproof = cli(cfg, "proof", "%08x" % a).stdout.strip()
        assert len(bytes.fromhex(hexproof)) == 36
        assert "VALID" in cli(cfg, "proof", "verify", hexproof).stdout
        return cfg, gw, a
    except Exception:
        print(gw.output()[-4000:])
        raise
    finally:
        for p in procs:
            p.kill()


def test_gateway_survives_kill9_mosquitto(tmp_path, firmware):
    broker = Mosquitto(tmp_path / "broker", persistence=True).start()
    try:
        run_scenario(tmp_path, firmware, broker, embedded=False)
    finally:
        broker.kill()


def test_gateway_smoke_embedded_broker(tmp_path, firmware):
    from netedge.gateway.broker import free_port

    class Addr:
        host, port = "127.0.0.1", free_port()
    cfg = write_config(tmp_path / "netedge.toml", Addr, [], embedded=True)
    gw = GatewayProc(cfg).start()
    try:
        n1 = NodeProc(firmware, tmp_path / "boards", "n1", Addr)
        write_config(cfg, Addr, [n1], embedded=True)
        gw.kill()
        gw.start()
        time.sleep(1.5)
        n1.start()
        try:
            gw.wait_for(lambda st: any(n.status == "online" and "kinds" in n.info for n in st.nodes()), 20,
                        "node online")
            a = deploy(cfg, "counter", "n1")
            obs = Observer(Addr, "publisher")
            try:
                for i in range(1, 31):
                    obs.send_input(a, b"%d" % i)
                gw.wait_for(lambda st: st.event_count(a) == 30, 20, "events logged")
                # the retained status topic tells any MQTT tool where the daemon stands
                late = Observer(Addr, "late-reader")
                try:
                    late.wait(lambda: (late_status(late, a) or {}).get("continuity", {}).get("head_seq") == 30, 10,
                              "retained daemon status")
                    st_body = late_status(late, a)
                    assert st_body["continuity"]["kind"] == "Continuous" and st_body["host"] == "n1"
                finally:
                    late.close()
                # netedge daemon stop: the node lets go of it and the gateway records it
                assert "stopped %08x on n1" % a in cli(cfg, "daemon", "stop", "%08x" % a).stdout
                obs.heartbeats.pop("n1", None)
                obs.wait(lambda: obs.heartbeats.get("n1", {}).get("daemons", [None]) == [], 10, "daemon gone from n1")
                gw.wait_for(lambda st: st.daemon(a).status == "stopped", 10, "stopped in the store")
                assert "%08x" % a in cli(cfg, "daemon", "list").stdout
            finally:
                obs.close()
            st = gw.store()
            try:
                assert S.assess_continuity(list(st.events(a)), a).kind == S.CONTINUOUS
            finally:
                st.close()
        finally:
            n1.kill()
    finally:
        gw.kill()


def test_gateway_stops_cleanly_on_sigterm(tmp_path):
    from netedge.gateway.broker import free_port

    class Addr:
        host, port = "127.0.0.1", free_port()
    cfg = write_config(tmp_path / "netedge.toml", Addr, [], embedded=True)
    gw = GatewayProc(cfg).start()
    try:
        gw.wait_for(lambda st: True, 15, "store created")
        time.sleep(0.5)
        gw.proc.send_signal(15)
        assert gw.proc.wait(15) == 0
        out = gw.output()
        assert "gateway stopped" in out and "Traceback" not in out
    finally:
        gw.kill()
