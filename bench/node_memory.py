"""Node memory benchmark: free heap reported by a running node (real Mosquitto, real unix-port
`micropython`, compiled firmware) after boot with 0, 1, 4 and 8 hosted counter daemons, under
several heap sizes; and the per-daemon overhead.

usage: python bench/node_memory.py [--heaps 64K,96K,128K] [--daemons 0,1,4,8]
Note: the unix port is a 64-bit build: pointers and object headers are twice an ESP32's, so the
same firmware needs noticeably less heap on a 32-bit board.
"""
import argparse
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

from mosquitto import Mosquitto  # noqa: E402
from nodes import NodeProc, Observer  # noqa: E402


def measure(fw, root, broker, obs, heap, n):
    node_id = "m%s-%d" % (heap.lower(), n)
    names = ["d%s-%d-%d" % (heap, n, i) for i in range(n)]
    node = NodeProc(fw, root, node_id, broker, daemons=[("counter", x) for x in names], hosted=names, heap=heap,
                    heartbeat_ms=200).start()
    try:
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and node.alive():
            hb = obs.heartbeats.get(node_id)
            if hb and len(hb.get("daemons", [])) == n:
                time.sleep(0.5)  # a few heartbeats: settle after boot
                return obs.heartbeats[node_id]["heap"], None
            time.sleep(0.05)
        out = node.output().strip().splitlines()
        return None, (out[-1] if out else "no heartbeat")
    finally:
        node.kill()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--heaps", default="64K,96K,128K")
    ap.add_argument("--daemons", default="0,1,4,8")
    args = ap.parse_args()
    from netedge.tools.firmware import build
    tmp = tempfile.mkdtemp(prefix="netedge-bench-")
    fw = build("unix", os.path.join(tmp, "fw"))
    broker = Mosquitto(os.path.join(tmp, "broker")).start()
    obs = Observer(broker, "bench")
    counts = [int(x) for x in args.daemons.split(",")]
    try:
        print("free heap (bytes) reported by a connected node, by -X heapsize and hosted counter daemons")
        print("%-8s" % "heap" + "".join("%12s" % ("%d daemons" % n) for n in counts) + "   per daemon")
        for heap in args.heaps.split(","):
            row, frees, notes = [], {}, []
            for n in counts:
                free, err = measure(fw, os.path.join(tmp, "boards"), broker, obs, heap, n)
                frees[n] = free
                row.append("%12s" % (free if free is not None else "FAILS"))
                if err:
                    notes.append("%d daemons: %s" % (n, err[:90]))
            ok = [n for n in counts if frees[n] is not None]
            per = ""
            if len(ok) >= 2 and ok[-1] != ok[0]:
                per = "%.0f B" % ((frees[ok[0]] - frees[ok[-1]]) / (ok[-1] - ok[0]))
            print("%-8s" % heap + "".join(row) + "   " + per)
            for note in notes:
                print("         ! " + note)
        print("target (issue 3): runtime + 4 small daemons in 64K with >= 24576 B free")
    finally:
        obs.close()
        broker.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
