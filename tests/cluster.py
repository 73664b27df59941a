"""Shared harness for migration tests and benchmarks: a Mosquitto, a gateway process and
unix-port nodes (Cluster), a steady input publisher (Stream) and the chain checks (check_chain)."""
import pathlib

from netedge.shared import status as S
from netedge.gateway.control.state import MigrationState, RecoveryState
from netedge.tools.fleet import InputStream

from gateways import GatewayProc, cli, deploy, write_config  # noqa: F401 (deploy: re-exported)
from mosquitto import Mosquitto
from nodes import NodeProc, Observer, assert_in_order, event_outputs


def Stream(obs, origin, first, n, rate=200):
    """Publishes inputs first..first+n-1 at about `rate` per second through the observer (a thread:
    start() it; stop() ends it early; `sent` counts what the broker accepted)."""
    return InputStream(obs.send_input, origin, first, n, rate)


class Cluster:
    def __init__(self, tmp_path, firmware, names, configured=None, extra=None, http=None, heap=None,
                 deadline_ms=1500, gateway=None, romfs=None, persistence=False, broker_conf=""):
        tmp_path = pathlib.Path(tmp_path)
        self.broker = Mosquitto(tmp_path / "broker", persistence=persistence, extra_conf=broker_conf).start()
        self.nodes = {n: NodeProc(firmware, tmp_path / "boards", n, self.broker, extra=(extra or {}).get(n),
                                  romfs=romfs, **({"heap": heap} if heap else {}))
                      for n in names}
        cfg_nodes = [self.nodes[n] for n in (configured or names) if n in self.nodes]
        self.cfg = write_config(tmp_path / "netedge.toml", self.broker, cfg_nodes, http=http, deadline_ms=deadline_ms,
                                gateway=gateway)
        self.gw = GatewayProc(self.cfg).start()
        for n in self.nodes.values():
            n.start()
        self.gw.wait_for(lambda st: {n.node_id for n in st.nodes() if n.status == "online" and "kinds" in n.info}
                         >= set(names), 20, "nodes online")
        self.obs = Observer(self.broker, "publisher")

    def close(self):
        self.obs.close()
        for p in [self.gw] + list(self.nodes.values()):
            p.kill()
        self.broker.kill()

    def migrate(self, origin, to, check=True):
        return cli(self.cfg, "migrate", "%08x" % origin, "--to", to, check=check)

    def migrate_under_stream(self, origin, to, tries=3):
        """`netedge migrate` while inputs stream in: (its result, how many refusals came first).
        The one honest refusal under overload is retried, as an operator would: the frozen
        source's buffer filled before the cutover (a slow board on a loaded machine) and the
        daemon kept running on the source.  Any other failure fails the test."""
        for refused in range(tries):
            r = self.migrate(origin, to, check=False)
            if r.returncode == 0:
                return r, refused
            assert "buffer full" in r.stderr and "keeps running on" in r.stderr, r.stdout + r.stderr
        raise AssertionError("migration of %08x to %s refused %d times: %s" % (origin, to, tries, r.stderr))

    def hosted(self, node):
        hb = self.obs.heartbeats.get(node) or {}
        return [d["origin"] for d in hb.get("daemons", [])]

    def wait_events(self, origin, n, timeout=30):
        self.gw.wait_for(lambda st: st.event_count(origin) >= n, timeout, "%d events of %08x" % (n, origin))

    def wait_settled(self, origin, timeout=30):
        """No migration of `origin` in progress, and none waiting to recover after a crash."""
        self.gw.wait_for(lambda st: st.load_state(MigrationState, origin) is None
                         and st.load_state(RecoveryState, origin) is None, timeout, "migration settled")

    def hosts_now(self, origin, nodes):
        """Which of `nodes` host `origin`, by a fresh heartbeat from each (exactly one, or a bug)."""
        self.obs.heartbeats.clear()
        self.obs.wait(lambda: set(nodes) <= set(self.obs.heartbeats), 10, "heartbeats")
        return [n for n in nodes if origin in self.hosted(n)]


def migrate_outcome(r, origin, source="n1", target="n2"):
    """(host, epoch) that a `netedge migrate` result says, checking it says it clearly: migrated,
    or an error saying the daemon keeps running on the source."""
    if r.returncode == 0:
        assert "migrated %08x from %s to %s" % (origin, source, target) in r.stdout, r.stdout
        return target, 2
    assert "keeps running on %s" % source in r.stderr and "Traceback" not in r.stderr, r.stdout + r.stderr
    return source, 1


def check_chain(c, origin, n, epoch, host, setup=0):
    """The stored chain: `setup` leading events, then inputs 1..n each exactly once, in order,
    with the exact running total; one Continuous chain; the daemon where it should be."""
    st = c.gw.store()
    try:
        evs = list(st.events(origin))
        assert [e.sequence for e in evs] == list(range(1, n + setup + 1))
        assert_in_order(evs)
        # exactly once: every input counter 1..n appears once, and the total is exact
        assert sorted(event_outputs(e.payload)[1] for e in evs[setup:]) == list(range(1, n + 1))
        assert int(event_outputs(evs[-1].payload)[4][0]) == n * (n + 1) // 2
        assert S.assess_continuity(evs, origin).kind == S.CONTINUOUS
        d = st.daemon(origin)
        assert (d.epoch, d.host_node, d.status) == (epoch, host, "active")
        assert st.load_state(MigrationState, origin) is None
    finally:
        st.close()
    proof = cli(c.cfg, "proof", "%08x" % origin).stdout.strip()
    assert "VALID" in cli(c.cfg, "proof", "verify", proof).stdout
