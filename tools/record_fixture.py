"""Record tests/fixtures/trace_capture.jsonl from a REAL run (the fixture of tests/test_trace.py).

    .venv/bin/python -m netedge.tools.record_fixture [--out tests/fixtures/trace_capture.jsonl]

Starts a private Mosquitto, a real `netedge gateway` process and one unix-port node (n1, 128K heap,
compiled firmware), records every message under ne/v1/# with the trace recorder while it:
deploys a counter daemon, streams five inputs (one of them not a number: a failed event), publishes
one garbage frame to the daemon's inbox (the node answers with an ERROR), stops the daemon, and
shuts down.  Then it appends frames no run emits yet, built with the shared encoders from the
recorded chain and marked "synthetic": a PROOF (events 1..5 of the real chain), a FORK_RECORD, a
DISCONTINUITY, and a frame of an unregistered type.  Needs mosquitto and the MicroPython unix port
(the dev extra); takes ~15 s.
"""
import argparse
import os
import re
import shutil
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO, "tests", "fixtures", "trace_capture.jsonl")
GARBAGE = b"\x85\x01\x01\x68sensor-7\x09\x4agarbage"  # an INPUT whose body is cut short: MalformedFrame truncated


def synthetic_frames(origin, events, now):
    """[(topic, frame bytes, note)] built with the shared encoders from the recorded chain events
    [(link, payload)] (seq order)."""
    from ..shared import cbor
    from ..shared import frame as FR
    from ..shared import topics as T
    from ..shared.chain import SequenceGap
    from ..shared.discontinuity import ChainBreak, Discontinuity
    from ..shared.fork import ForkRecord
    from ..shared.link import CausalLink
    from ..shared.log import ChainEvent
    from ..shared.proof import ContinuityProof

    evs = [ChainEvent(lk, p) for lk, p in events]
    proof = ContinuityProof.from_events(origin, evs)
    head = evs[-1].link
    fork = ForkRecord.create(origin, origin ^ 0x5A5A5A5A, head.sequence, snapshot_seq=head.sequence)
    disc = Discontinuity(origin, head, CausalLink(origin, 0, head.sequence + 2, 0x1111111111111111),
                         ChainBreak(SequenceGap(head.sequence + 1, head.sequence + 2)), int(now * 1000))
    who = "trace-fixture"
    unknown = b"\x85\x01\x18\x63" + cbor.dumps(who) + b"\x04" + cbor.dumps(cbor.dumps({"x": 1}))
    return [
        (T.daemon(origin, "proof"), FR.encode(FR.PROOF, who, 1, {"o": origin, "proof": proof.to_bytes()}),
         "synthetic: no run publishes PROOF frames yet; a proof of events %d..%d of the recorded chain"
         % (proof.from_seq, proof.to_seq)),
        (T.daemon(origin, "fork"), FR.encode(FR.FORK_RECORD, who, 2, {"o": origin, "fork": fork.to_bytes()}),
         "synthetic: no run publishes FORK_RECORD frames yet; a fork of the recorded daemon at its head"),
        (T.daemon(origin, "discontinuity"),
         FR.encode(FR.DISCONTINUITY, who, 3, {"o": origin, "d": disc.to_bytes()}),
         "synthetic: no run publishes DISCONTINUITY frames yet; a SequenceGap after the recorded head"),
        (T.daemon(origin, "proof"), unknown, "synthetic: a frame of unregistered type 99 (UnknownFrameType)"),
    ]


def record(out=DEFAULT_OUT, workdir=None, log=print):
    sys.path.insert(0, os.path.join(REPO, "tests"))
    import paho.mqtt.client as paho
    from gateways import GatewayProc, cli, write_config
    from mosquitto import Mosquitto
    from nodes import NodeProc, Observer

    from ..shared import frame as FR
    from ..shared import topics as T
    from ..shared.link import CausalLink
    from .firmware import build
    from .trace import Recorder

    tmp = workdir or tempfile.mkdtemp(prefix="netedge-fixture-")
    part = out + ".part"
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    if os.path.exists(part):
        os.remove(part)
    rec = Recorder(part)
    rec.meta(what="netedge trace capture, recorded by tools/record_fixture.py",
            run="Mosquitto + `netedge gateway` + unix-port node n1 (128K heap); deploy counter, 5 inputs, "
                "1 garbage frame, daemon stop, shutdown",
            synthetic="rows with \"synthetic\": true were built with the shared encoders, not seen on a run")
    lock = threading.Lock()
    seen = []
    chain = {}

    def on_message(c, u, msg):
        t = time.time()
        with lock:
            rec.write(msg.topic, msg.payload, t, msg.qos, msg.retain)
            seen.append(msg.topic)
            try:
                f = FR.decode(msg.payload)
                if f.type == FR.CHAIN_EVENT:
                    b = f.body()
                    chain.setdefault(b["o"], {})[CausalLink.from_bytes(b["l"]).sequence] = (
                        CausalLink.from_bytes(b["l"]), b["p"])
            except Exception:
                pass

    log("building firmware...")
    fw = build("unix", os.path.join(tmp, "fw", "unix"))
    broker = Mosquitto(os.path.join(tmp, "broker")).start()
    procs = []
    tap = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="fixture-tap", clean_session=True)
    tap.on_message = on_message
    tap.on_connect = lambda c, u, f, rc, p=None: c.subscribe(T.ALL, qos=1)
    tap.connect(broker.host, broker.port, keepalive=10)
    tap.loop_start()
    try:
        time.sleep(0.3)
        n1 = NodeProc(fw, os.path.join(tmp, "boards"), "n1", broker, heap="128K", heartbeat_ms=1500)
        cfg = write_config(os.path.join(tmp, "netedge.toml"), broker, [n1], deadline_ms=6000)
        gw = GatewayProc(cfg).start()
        procs.append(gw)
        n1.start()
        procs.append(n1)
        log("waiting for n1...")
        gw.wait_for(lambda st: any(n.status == "online" and "kinds" in n.info for n in st.nodes()), 30, "n1 online")
        out_ = cli(cfg, "daemon", "deploy", "--kind", "counter", "--node", "n1").stdout
        origin = int(re.search(r"deployed ([0-9a-f]{8})", out_).group(1), 16)
        log("deployed %08x" % origin)
        obs = Observer(broker, "sensor")
        try:
            for i, p in enumerate((b"1", b"2", b"3", b"x", b"4"), 1):
                obs.send_input(origin, p, sender="sensor-7", counter=i)
            obs.wait_seq(origin, 5)
            obs.publish_raw(T.daemon(origin, "in"), GARBAGE)
            obs.wait(lambda: obs.errors, 10, "the node's ERROR for the garbage frame")
        finally:
            obs.close()
        gw.wait_for(lambda st: st.event_count(origin) == 5, 10, "events logged")
        time.sleep(0.5)
        cli(cfg, "daemon", "stop", "%08x" % origin)
        time.sleep(1.6)  # one more heartbeat (the daemon gone)
        n1.stop()
        time.sleep(0.3)
        gw.terminate()
        time.sleep(0.3)
    finally:
        for p in procs:
            p.kill()
        tap.loop_stop()
        tap.disconnect()
        broker.kill()
    with lock:
        events = [chain[origin][s] for s in sorted(chain.get(origin, {}))]
        now = time.time()
        for i, (topic, data, note) in enumerate(synthetic_frames(origin, events, now)):
            rec.write(topic, data, now + 0.001 * i, 1, False, synthetic=True, note=note)
        rec.close()
    os.replace(part, out)
    if workdir is None:
        shutil.rmtree(tmp, ignore_errors=True)
    log("wrote %s: %d recorded messages + 4 synthetic" % (out, len(seen)))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--workdir", help="keep the run's files (logs, boards) here")
    a = ap.parse_args(argv)
    record(a.out, a.workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
