"""Live-migration latency: p50/p99 of `migrate` for a daemon with 1 KiB and 16 KiB of
state while a separate publisher keeps feeding it, beside the MQTT floor measured in the same
run (a QoS 1 publish -> receive round trip through the same Mosquitto) and their ratio.

Everything is real: Mosquitto, a gateway process, unix-port `micropython` nodes running the
compiled firmware, the `blob` daemon (firmware/daemons/blob.py: its input `=N` sets N bytes of
state). Latency is timed by the gateway, from the request's arrival to the target's `active`
(the reply's `ms`), so CLI start-up is not in it; the client-side request -> reply time over a
long-lived connection is printed too.

usage: python bench/migration_latency.py [--migrations 30] [--rate 100] [--sizes 1024,16384]
                                          [--heap 96K] [--big-heap 256K] [--quick]
"""
import argparse
import os
import statistics
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

import paho.mqtt.client as paho  # noqa: E402

from cluster import Cluster, Stream  # noqa: E402
from gateways import deploy  # noqa: E402

BLOB = {"kinds": {"counter": "netedge.firmware.daemons.counter.Counter",
                  "blob": "netedge.firmware.daemons.blob.Blob"},
        "max_state": 20000}  # (a node's default cap is 4 KiB of state)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def mqtt_floor(broker, n):
    """QoS 1 publish -> receive round trips (ms) of one paho client through the broker."""
    got = threading.Event()
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-rtt-%d" % os.getpid())
    c.on_message = lambda *a: got.set()
    c.connect(broker.host, broker.port)
    from netedge.gateway.service import nodelay
    nodelay(c)
    c.loop_start()
    c.subscribe("bench/rtt", qos=1)
    time.sleep(0.2)
    out = []
    for i in range(n + 5):
        got.clear()
        t = time.perf_counter()
        c.publish("bench/rtt", b"x" * 64, qos=1)
        if not got.wait(2):
            raise RuntimeError("round trip lost")
        if i >= 5:  # (warm-up)
            out.append((time.perf_counter() - t) * 1000)
    c.loop_stop()
    c.disconnect()
    return out


def run_size(tmp, fw, size, heap, migrations, rate):
    names = ["n1", "n2", "n3"]
    c = Cluster(os.path.join(tmp, "s%d" % size), fw, names, extra={n: BLOB for n in names}, heap=heap)
    try:
        from netedge.gateway.config import load
        from netedge.gateway.remote import GatewayClient
        a = deploy(c.cfg, "blob", "n1")
        c.obs.send_input(a, b"=%d" % size, counter=1)
        c.wait_events(a, 1)
        floor = mqtt_floor(c.broker, 200)
        s = Stream(c.obs, a, 2, 10 ** 9, rate)
        s.start()
        gc = GatewayClient(load(c.cfg))
        gw_ms, cli_ms = [], []
        try:
            here = "n1"
            for i in range(migrations):
                to = names[(names.index(here) + 1) % 3]
                time.sleep(0.35)  # (heartbeats must show the last source no longer hosts it)
                t = time.perf_counter()
                r = gc.request("migrate", progress=False, origin=a, to=to)
                cli_ms.append((time.perf_counter() - t) * 1000)
                gw_ms.append(r["ms"])
                here = to
                if i == 0:
                    print("    first migration phases: %s" % " ".join("%s=%s" % (p, ms) for p, ms in r["phases"]))
        finally:
            s.stop()
            gc.close()
        # the figures count only if nothing was lost or doubled meanwhile
        c.wait_events(a, 1 + s.sent)
        from netedge.shared import status as S
        st = c.gw.store()
        try:
            evs = list(st.events(a))
            ok = len(evs) == 1 + s.sent and S.assess_continuity(evs, a).kind == S.CONTINUOUS
        finally:
            st.close()
        if not ok:
            raise SystemExit("chain check failed: %d events for %d inputs" % (len(evs), 1 + s.sent))
        print("    %d inputs during %d migrations: one event each, one Continuous chain" % (s.sent, migrations))
        return floor, gw_ms, cli_ms
    finally:
        c.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--migrations", type=int, default=30)
    ap.add_argument("--rate", type=int, default=100, help="inputs per second during the migrations")
    ap.add_argument("--sizes", default="1024,16384")
    ap.add_argument("--heap", default="128K", help="node heap for states up to 4 KiB (a 96K unix-port heap fragments: a 1 KiB restore can fail)")
    ap.add_argument("--big-heap", default="256K", help="node heap for larger states")
    ap.add_argument("--quick", action="store_true", help="5 migrations, 1 KiB only (smoke test)")
    args = ap.parse_args()
    if args.quick:
        args.migrations, args.sizes = 5, "1024"
    from netedge.tools.firmware import build
    tmp = tempfile.mkdtemp(prefix="netedge-bench-")
    fw = build("unix", os.path.join(tmp, "fw"))
    print("migration latency, %d migrations per size among 3 nodes, %d inputs/s streaming meanwhile" % (
        args.migrations, args.rate))
    for size in [int(x) for x in args.sizes.split(",")]:
        heap = args.heap if size <= 4096 else args.big_heap
        floor, gw, cl = run_size(tmp, fw, size, heap, args.migrations, args.rate)
        f50 = statistics.median(floor)
        g50 = statistics.median(gw)
        print("  state %5d B (nodes -X heapsize=%s): migrate p50 %6.1f ms  p99 %6.1f ms   "
              "(client request->reply p50 %6.1f ms)" % (size, heap, g50, pct(gw, 99), statistics.median(cl)))
        print("  %-40s MQTT QoS 1 round trip p50 %5.2f ms  p99 %5.2f ms   migrate/floor = %.0fx" % (
            "", f50, pct(floor, 99), g50 / f50))


if __name__ == "__main__":
    main()
