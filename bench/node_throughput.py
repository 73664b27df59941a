"""Node throughput: events/s processed by one node — an INPUT published at QoS 1 by a client,
processed by a counter daemon (dedup, process, chain link, record written to flash, chain event
published at QoS 1, input acked), the chain event received by the observer — against a real
Mosquitto started here on a free port, with the node under `-X heapsize=96K` (compiled firmware).
The client keeps at most --window inputs without a chain event in flight (a closed loop): a
flood beyond the node's queue makes it resync (drop the connection, take redeliveries), which
is a back-pressure path, not a throughput figure; resyncs are printed.

Its floor, measured in the same run against the same broker: a raw MicroPython loop (same heap,
same .mpy MQTT packet helpers) doing one sha256 and one QoS 0 publish of a chain-event-sized
packet per event on a blocking socket, timed until the broker answers a PINGREQ sent after the
last publish (Mosquitto reads a connection in order, so by then it has routed every publish).

usage: python bench/node_throughput.py [--n 2000] [--heap 96K] [--window 16]
Figures only, never asserted (2 shared cores: expect +-30 % run to run).  The node's chain is
checked with the shared verifier (contiguous from genesis, exact final total).
raw_loop() and core_loop() are the MicroPython side (`--raw`, `--core`); the second one, the node's
sans-I/O core with its flash record but no MQTT, shows where the rest of a node's time goes.
"""
import sys

try:
    from time import ticks_us, ticks_diff
except ImportError:  # CPython never runs the child
    pass


def raw_loop(host, port, n, size):
    """The floor: n x (sha256 of `size` bytes + one QoS 0 PUBLISH of them); events/s."""
    import hashlib
    import socket
    from netedge.firmware.mqtt_codec import encode, pack
    s = socket.socket()
    s.connect(socket.getaddrinfo(host, port)[0][-1])
    s.setsockopt(6, 1, 1)  # TCP_NODELAY, as the node's client sets it
    s.write(pack(0x10, b"\0\4MQTT\4\2\0\x3c" + encode("bench-raw")))  # clean session, keepalive 60
    if s.recv(4)[:2] != b"\x20\x02":
        raise OSError("no CONNACK")
    blob = bytes(size)
    topic = encode("bench/raw")
    t0 = ticks_us()
    for _ in range(n):
        hashlib.sha256(blob).digest()
        s.write(pack(0x30, topic + blob))
    s.write(b"\xc0\0")  # PINGREQ
    while s.recv(1) != b"\xd0":  # PINGRESP (first byte; nothing else is sent to us)
        pass
    dt = ticks_diff(ticks_us(), t0) / 1e6
    s.close()
    return n / dt


def core_loop(state_dir, public_hex, n):
    """The node without its driver: NodeCore.on_message + its flash record per input (the input
    frame encoded here too), no MQTT; events/s.  Where the rest of a node's time goes: the
    asyncio driver and the network."""
    from netedge.firmware.node import NodeCore
    from netedge.firmware.registry import DaemonFactoryRegistry
    from netedge.firmware.store import RecordStore
    from netedge.shared import frame as FR
    from netedge.shared import topics as T

    class Cfg:
        node_id, board, hosted = "core", "unix", []
    reg = DaemonFactoryRegistry()
    reg.register_kind("counter", "netedge.firmware.daemons.counter.Counter")
    Cfg.hosted = [reg.provision("counter", bytes.fromhex(public_hex))]
    core = NodeCore(Cfg, reg)
    store = RecordStore(state_dir)
    topic = T.daemon(Cfg.hosted[0], "in")
    mark = T.node(Cfg.node_id, "mark")
    store.commit(core.boot(store, 1))  # activates the daemon (Cfg.hosted)
    t0 = ticks_us()
    host = core.hosts[Cfg.hosted[0]]
    for i in range(1, n + 1):
        store.commit(core.on_message(topic, FR.encode(FR.INPUT, "c", i, {"p": b"1"})))
        if i % 8 == 0:  # the gateway's stored mark (without it the host takes nothing past its cap)
            store.commit(core.on_message(mark, FR.encode(FR.CONTROL, "gw", i, {
                "cmd": "stored", "origin": host.origin, "epoch": host.epoch, "seq": i})))
    return n / (ticks_diff(ticks_us(), t0) / 1e6)


def main():
    import argparse
    import os
    import subprocess
    import tempfile
    import time

    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(os.path.dirname(here), "tests"))
    from conftest import micropython_cmd
    from netedge.tools.interpreter import label
    from mosquitto import Mosquitto
    from netedge.shared import frame as FR
    from netedge.tools.firmware import build
    from nodes import NodeProc, Observer, daemon_key, daemon_origin, total_of

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="timed inputs (after a 50-input warm-up)")
    ap.add_argument("--heap", default="96K")
    ap.add_argument("--window", type=int, default=16,
                    help="inputs in flight at most (closed loop; below Mosquitto's 20 and the node's queue_max 32)")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="netedge-bench-")
    fw = build("unix", os.path.join(tmp, "fw"))
    broker = Mosquitto(os.path.join(tmp, "broker")).start()
    obs = Observer(broker, "bench", marks=True)
    node = NodeProc(fw, os.path.join(tmp, "boards"), "tp1", broker, daemons=[("counter", "tp")], hosted=["tp"],
                    heap=args.heap, heartbeat_ms=1000).start()
    o = daemon_origin("tp")
    try:
        obs.wait(lambda: "tp1" in obs.heartbeats, 15, "node heartbeat")
        warm = 50
        obs.send_inputs(o, [b"1"] * warm, args.window)
        obs.wait_seq(o, warm)
        t0 = time.monotonic()
        obs.send_inputs(o, [b"1"] * args.n, args.window)
        obs.wait_seq(o, warm + args.n, timeout=60 + args.n / 20)
        node_rate = args.n / (time.monotonic() - t0)
        log = obs.log_of(o)  # raises unless one contiguous chain from genesis
        if log.head_seq() != warm + args.n or total_of(log) != warm + args.n:
            raise AssertionError("node chain: head %d, total %d" % (log.head_seq(), total_of(log)))
        with obs.lock:  # the size of the node's chain-event frames, for the raw loop's packets
            size = max(len(FR.encode(f.type, f.sender, f.counter, f.body())) for t, f in obs.frames
                       if t.endswith("/chain"))
        hb = obs.heartbeats["tp1"]
        rates = []
        for child in (["--raw", broker.host, str(broker.port), str(args.n), str(size)],
                      ["--core", os.path.join(tmp, "core-state"), daemon_key("tp")[0].hex(), str(args.n)]):
            out = subprocess.run([micropython_cmd(), "-X", "heapsize=" + args.heap, os.path.abspath(__file__), child[0],
                                  os.path.join(fw, "lib")] + child[1:], capture_output=True, text=True, timeout=120)
            if out.returncode != 0:
                print("MicroPython %s loop failed:" % child[0], (out.stderr or out.stdout).strip())
                return 1
            rates.append(float(out.stdout.split()[-1]))
        raw_rate, core_rate = rates
    finally:
        node.kill()
        obs.close()
        broker.kill()
    print("node throughput, %s, -X heapsize=%s, one counter daemon, %d inputs (+%d warm-up), at most %d in flight,"
          " Mosquitto on :%d" % (label(), args.heap, args.n, warm, args.window, broker.port))
    print("  node: input QoS 1 -> chain event at the observer %8.0f events/s   (chain verified; free heap %s B,"
          " resyncs %d)" % (node_rate, hb["heap"], hb["errors"]["overflow"]))
    print("  raw MicroPython loop: sha256 + QoS 0 publish    %8.0f events/s   (%d-byte packets)" % (raw_rate, size))
    print("  node core alone: NodeCore + flash record, no MQTT %8.0f events/s" % core_rate)
    print("  ratio node / raw: %.3f   (node / core alone: %.2f; noisy: 2 shared cores, +-30 %% run to run)"
          % (node_rate / raw_rate, node_rate / core_rate))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--raw":
        sys.path.insert(0, sys.argv[2])
        print("%f" % raw_loop(sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])))
    elif len(sys.argv) > 1 and sys.argv[1] == "--core":
        sys.path.insert(0, sys.argv[2])
        print("%f" % core_loop(sys.argv[3], sys.argv[4], int(sys.argv[5])))
    else:
        sys.exit(main())
