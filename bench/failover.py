"""Standby failover latency (PROTOCOL §17): real Mosquitto, a real gateway process, three
unix-port nodes (-X heapsize=96K) in a standby group, a steady input stream.

Each trial kills the active's node and measures, from the signal, (a) the retained last will
reaching a subscriber — the floor: nothing can react before the broker says the node is gone —
and (b) the first chain event at the new epoch, i.e. the first input processed by the promoted
standby.  The killed node is then restarted: it boots at its old epoch, is demoted and rejoins
as a standby, so every trial starts from a full group.  SIGSTOP trials freeze the active
instead (no last will: the gateway's heartbeat deadline detects it).

usage: python bench/failover.py [--trials 30] [--frozen-trials 5] [--deadline-ms 1000] [--rate 200] [--heap 96K]
"""
import argparse
import os
import pathlib
import signal
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

from gateways import cli  # noqa: E402
from cluster import Cluster, Stream  # noqa: E402
from netedge.gateway.control.state import GroupState  # noqa: E402


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))]


def line(name, xs):
    return "%-34s n=%-3d p50 %7.1f ms   p99 %7.1f ms   max %7.1f ms" % (name, len(xs), statistics.median(xs),
                                                                         pct(xs, 0.99), max(xs))


class Group:
    def __init__(self, c, origin):
        self.c, self.origin = c, origin

    def state(self):
        st = self.c.gw.store()
        try:
            g = st.load_state(GroupState, self.origin)
            return (g.to_obj() if g is not None else None), st.daemon(self.origin)
        finally:
            st.close()

    def wait_full(self, timeout=30):
        """Running, every member up and keeping a copy (so the next trial has a standby)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            g, d = self.state()
            if g["step"] == "running" and all(m["up"] and (m["role"] == "active" or m["seq"] is not None)
                                              for m in g["members"].values()):
                return g, d
            time.sleep(0.05)
        raise SystemExit("group %08x did not recover in %ds: %r" % (self.origin, timeout, self.state()[0]))


def check_log(c, origin, n, timeout=60):
    """The gateway's log after every promotion: one Continuous chain 1..n, inputs 1..n each once."""
    from netedge.shared.event_decode import decode as decode_event
    from netedge.shared import status as S
    c.gw.wait_for(lambda st: st.event_count(origin) >= n, timeout, "all %d inputs in the chain" % n)
    st = c.gw.store()
    try:
        evs = list(st.events(origin))
    finally:
        st.close()
    cont = S.assess_continuity(evs, origin)
    inputs = [decode_event(e.payload)[1] for e in evs]
    ok = cont.kind == S.CONTINUOUS and inputs == list(range(1, n + 1))
    return "%d events, %s, inputs 1..%d each exactly once in order: %s" % (len(evs), cont.kind, n,
                                                                        "yes" if ok else "NO")


def trial(c, grp, sig):
    g, d = grp.wait_full()
    victim, epoch = g["active"], d.epoch
    obs, node = c.obs, c.nodes[g["active"]]
    seen = len(obs.chain.get(grp.origin, []))
    t0 = time.monotonic()
    node.signal(sig)
    will = None
    if sig == signal.SIGKILL:
        obs.wait(lambda: obs.status.get(victim, {}).get("state") == "offline", 30, "last will")
        will = (time.monotonic() - t0) * 1000

    def promoted():
        evs = obs.chain.get(grp.origin, [])
        return any(e[0] > epoch for e in evs[seen:])
    obs.wait(promoted, 30, "first event at the new epoch")
    took = (time.monotonic() - t0) * 1000
    if sig == signal.SIGSTOP:
        node.signal(signal.SIGCONT)   # it wakes at the old epoch: fenced, then demoted
    else:
        node.kill()
        node.start()                  # reboots from flash at the old epoch: fenced, then demoted
    return will, took


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--frozen-trials", type=int, default=5)
    ap.add_argument("--deadline-ms", type=int, default=1000, help="the gateway's heartbeat deadline")
    ap.add_argument("--rate", type=int, default=200, help="inputs per second during the whole run")
    ap.add_argument("--heap", default="96K", help="the nodes' -X heapsize (default 96K)")
    args = ap.parse_args()
    from netedge.tools.firmware import build
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="netedge-bench-"))
    fw = build("unix", str(tmp / "fw"))
    c = Cluster(tmp, fw, ["n1", "n2", "n3"], deadline_ms=args.deadline_ms, heap=args.heap)
    stream = None
    try:
        out = cli(c.cfg, "group", "standby", "create", "--kind", "counter", "--members", "3",
                  "--nodes", "n1,n2,n3", "--sync-every", "50").stdout
        origin = int(out.split("standby group ")[1][:8], 16)
        grp = Group(c, origin)
        total = int(args.rate * (4 * args.trials + 4 * args.frozen_trials + 30))
        stream = Stream(c.obs, origin, 1, total, rate=args.rate)
        stream.start()
        time.sleep(1)
        wills, kills, frozen = [], [], []
        for i in range(args.trials):
            w, k = trial(c, grp, signal.SIGKILL)
            wills.append(w)
            kills.append(k)
            print("  kill -9 trial %2d: last will %6.1f ms, first event at the new epoch %6.1f ms" % (i + 1, w, k),
                  flush=True)
        for i in range(args.frozen_trials):
            _, k = trial(c, grp, signal.SIGSTOP)
            frozen.append(k)
            print("  SIGSTOP trial %2d: first event at the new epoch %7.1f ms" % (i + 1, k), flush=True)
        g, d = grp.wait_full()
        stream.stopping.set()
        stream.join(10)
        verdict = check_log(c, origin, stream.sent)
        print()
        print("standby failover, %d inputs/s, 3 members, heap %s, gateway deadline %d ms" % (
            args.rate, args.heap, args.deadline_ms))
        if kills:
            print(line("kill -9 -> last will (floor)", wills))
            print(line("kill -9 -> promoted, first event", kills))
            print("%-34s p50 x%.1f   p99 x%.1f      target: p99 < 250 ms -> %s" % (
                "ratio to the floor", statistics.median(kills) / statistics.median(wills),
                pct(kills, 0.99) / pct(wills, 0.99), "MET" if pct(kills, 0.99) < 250 else "NOT MET"))
        if frozen:
            print(line("SIGSTOP -> promoted, first event", frozen))
            print("%-34s p99 - deadline = %.1f ms      target: < deadline + 250 ms -> %s" % (
                "", pct(frozen, 0.99) - args.deadline_ms,
                "MET" if pct(frozen, 0.99) < args.deadline_ms + 250 else "NOT MET"))
        print("after %d promotions: epoch %d, host %s; %s" % (len(kills) + len(frozen), d.epoch, d.host_node, verdict))
    finally:
        if stream is not None:
            stream.stopping.set()
        c.close()


if __name__ == "__main__":
    main()
