"""Failure-detection floor: delay from `kill -9` of a node process to its retained last will
("offline") reaching a subscriber, through a real Mosquitto.  Also the frozen-node case
(SIGSTOP: the socket stays open) with the node's keepalive, which is why the gateway keeps its
own heartbeat deadline.

usage: python bench/last_will.py [--trials 20] [--frozen-trials 3]
"""
import argparse
import os
import signal
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

from mosquitto import Mosquitto  # noqa: E402
from nodes import NodeProc, Observer  # noqa: E402


def trial(fw, root, broker, obs, i, sig):
    node = NodeProc(fw, root, "lw%d" % i, broker).start()
    try:
        obs.wait(lambda: obs.status.get(node.node_id, {}).get("state") == "online", 15, "online")
        t0 = time.monotonic()
        node.signal(sig)
        obs.wait(lambda: obs.status.get(node.node_id, {}).get("state") == "offline", 30, "last will")
        return (time.monotonic() - t0) * 1000
    finally:
        if sig == signal.SIGSTOP:
            node.signal(signal.SIGCONT)
        node.kill()


def summary(name, xs):
    xs = sorted(xs)
    p99 = xs[min(len(xs) - 1, int(round(0.99 * (len(xs) - 1))))]
    return "%-22s n=%-3d median %8.1f ms   p99 %8.1f ms   max %8.1f ms" % (name, len(xs), statistics.median(xs), p99,
                                                                             xs[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--frozen-trials", type=int, default=3)
    args = ap.parse_args()
    from netedge.tools.firmware import build
    tmp = tempfile.mkdtemp(prefix="netedge-bench-")
    fw = build("unix", os.path.join(tmp, "fw"))
    broker = Mosquitto(os.path.join(tmp, "broker")).start()
    obs = Observer(broker, "bench")
    try:
        root = os.path.join(tmp, "boards")
        kills = [trial(fw, root, broker, obs, i, signal.SIGKILL) for i in range(args.trials)]
        print(summary("kill -9 -> last will", kills))
        if args.frozen_trials:
            frozen = [trial(fw, root, broker, obs, 1000 + i, signal.SIGSTOP) for i in range(args.frozen_trials)]
            print(summary("SIGSTOP -> last will", frozen) + "   (node keepalive 5 s)")
            print("ratio frozen/killed median: %.0fx — the gateway's own heartbeat deadline bounds the frozen case"
                  % (statistics.median(frozen) / statistics.median(kills)))
    finally:
        obs.close()
        broker.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
