"""`netedge trace`: the decoder (tools/trace.py) on a capture recorded from a real run
(tests/fixtures/trace_capture.jsonl, by tools/record_fixture.py), on random input, and the
command end to end against Mosquitto and the embedded broker."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import paho.mqtt.client as paho
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netedge.gateway import cli
from netedge.shared import cbor
from netedge.shared import frame as FR
from netedge.shared import topics as T
from netedge.shared.chain import SequenceGap
from netedge.shared.discontinuity import ChainBreak, Discontinuity, NodeCrash
from netedge.shared.fork import ForkRecord
from netedge.shared.link import CausalLink
from netedge.shared.log import ChainEvent, EntityLog
from netedge.shared.proof import ContinuityProof
from netedge.tools import trace as TR

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "fixtures", "trace_capture.jsonl")
VECTORS = os.path.join(HERE, "vectors")
NETEDGE = [sys.executable, "-m", "netedge.gateway.cli"]
ALL_TYPES = {"INPUT", "CHAIN_EVENT", "HEARTBEAT", "STATUS", "CONTROL", "ERROR", "PROOF", "FORK_RECORD",
             "DISCONTINUITY"}


def capture():
    with open(FIXTURE) as f:
        return list(TR.read_capture(f))


def records():
    return [TR.describe(topic, payload, t, meta) for topic, payload, t, meta in capture()]


def no_bug(rec):
    assert not (rec.get("error") or {}).get("name", "").startswith("TraceBug"), rec


# ---- the recorded capture ----

def test_capture_one_line_per_message_every_type():
    rows = capture()
    assert 20 <= len(rows) <= 80
    recs = records()
    lines = [TR.format_line(r) for r in recs]
    assert len(lines) == len(rows)
    for r, line in zip(recs, lines):
        no_bug(r)
        assert "\n" not in line and line.strip() == line and len(line) < 400
    types = {r.get("type") for r in recs}
    assert ALL_TYPES <= types, ALL_TYPES - types
    # STATUS from the three kinds of sender (§11): node, daemon (gateway), gateway
    scopes = {(r["where"][0], r["where"][2]) for r in recs if r.get("type") == "STATUS"}
    assert {("node", "status"), ("d", "status"), ("gw", "status"), ("gw", "rep")} <= scopes
    # only the frames no run emits are synthetic
    synth = {r.get("type", "?") for r in recs if r.get("synthetic")}
    assert synth == {"PROOF", "FORK_RECORD", "DISCONTINUITY", "?"}
    real = [r for r in recs if not r.get("synthetic")]
    assert not any(r.get("warnings") for r in real)
    assert all("[synthetic]" in TR.format_line(r) for r in recs if r.get("synthetic"))


def test_capture_garbage_is_malformed_and_the_node_said_so():
    recs = records()
    bad = [r for r in recs if "type" not in r]
    garbage = [r for r in bad if not r.get("synthetic")]
    assert len(garbage) == 1
    g = garbage[0]
    assert g["error"]["name"] == "MalformedFrame" and g["where"][2] == "in"
    line = TR.format_line(g)
    assert line.split()[1] == "MALFORMED" and "MalformedFrame: truncated" in line
    unknown = [r for r in bad if r.get("synthetic")]
    assert len(unknown) == 1 and unknown[0]["error"]["name"] == "UnknownFrameType"
    assert TR.format_line(unknown[0]).split()[1] == "UNKNOWN_TYPE"
    errs = [r for r in recs if r.get("type") == "ERROR"]
    assert errs and errs[0]["body"]["code"] == "malformed" and errs[0]["body"]["at"] == g["topic"]


def test_capture_chain_decodes_to_a_real_chain_and_the_proof_verifies():
    recs = records()
    chain = [r for r in recs if r.get("type") == "CHAIN_EVENT"]
    assert len(chain) >= 5
    origin = int(chain[0]["body"]["o"], 16)
    log = EntityLog(origin)
    raw = {}
    for (topic, payload, t, meta), r in zip(capture(), recs):
        if r.get("type") == "CHAIN_EVENT":
            b = FR.decode(payload).body()
            ev = ChainEvent(CausalLink.from_bytes(b["l"]), b["p"])
            raw[ev.sequence] = ev
            lk = r["body"]["l"]
            assert lk["origin"] == "%08x" % origin and lk["seq"] == ev.sequence
            assert lk["parent"] == "%016x" % ev.link.parent_hash
            assert r["body"]["fwd"] == "%016x" % ev.forward
            assert r["body"]["p"]["sender"] == "sensor-7" and r["body"]["p"]["status"] in ("ok", "failed")
    for s in sorted(raw):
        log.append(raw[s])  # the decoded links chain: parent = fwd of the previous line
    assert [r["body"]["p"]["status"] for r in chain].count("failed") == 1
    # INPUT h8 == the chain event's input_h8
    ins = {r["counter"]: r["body"]["h8"] for r in recs if r.get("type") == "INPUT"}
    for r in chain:
        assert ins[r["body"]["p"]["counter"]] == r["body"]["p"]["input_h8"]
    proof = next(r for r in recs if r.get("type") == "PROOF")["body"]["proof"]
    p = ContinuityProof(int(proof["origin"], 16), proof["from_seq"], proof["to_seq"], int(proof["from_hash"], 16),
                        int(proof["to_hash"], 16))
    p.verify_events(origin, [raw[s] for s in sorted(raw)])
    fork = next(r for r in recs if r.get("type") == "FORK_RECORD")["body"]["fork"]
    assert fork["verified"] and fork["original_origin"] == "%08x" % origin
    disc = next(r for r in recs if r.get("type") == "DISCONTINUITY")["body"]["d"]
    assert disc["reason"]["name"] == "ChainBreak" and disc["reason"]["error"] == "SequenceGap"


def test_capture_lines_look_right():
    lines = {r.get("type", "?"): TR.format_line(r) for r in records()}
    ev = lines["CHAIN_EVENT"]
    assert " n1 CHAIN_EVENT d/" in ev and "/chain #" in ev
    for field in ("origin=", "epoch=1", "seq=", "parent=", "in=sensor-7/", "out=[b'"):
        assert field in ev, ev
    assert "node=n1" in lines["HEARTBEAT"] and "heap=" in lines["HEARTBEAT"] and "daemons=" in lines["HEARTBEAT"]
    assert "cmd=" in lines["CONTROL"]
    assert "code=malformed" in lines["ERROR"]
    assert "1..5" in lines["PROOF"] and "verified" in lines["FORK_RECORD"]
    assert "reason=ChainBreak" in lines["DISCONTINUITY"]


def test_capture_json_lines_parse():
    for r in records():
        d = json.loads(TR.to_json(r))
        assert d["topic"] == r["topic"] and isinstance(d["time"], float)
        if "raw" in r:
            assert bytes.fromhex(d["raw"]) == r["raw"]
        if r.get("type") == "INPUT":
            assert bytes.fromhex(d["body"]["p"]) == r["body"]["p"]


# ---- golden vectors and hand-made frames ----

def vector(name):
    with open(os.path.join(VECTORS, "messages.json")) as f:
        return next(c for c in json.load(f)["cases"] if c["name"] == name)


def test_golden_chain_event_and_input():
    c = vector("chain-event-1")
    r = TR.describe(T.daemon(c["origin"], "chain"), bytes.fromhex(c["hex"]), 0.0)
    assert r["type"] == "CHAIN_EVENT" and r["sender"] == "n1" and r["counter"] == 1025
    assert r["body"]["l"] == {"origin": "12345678", "horizon": "00000000", "seq": 1, "parent": "ad64f6ce8e9fb34b"}
    assert r["body"]["p"] == {"sender": "sensor-7", "counter": 7, "input_h8": "8d8e560ab45c4773", "status": "ok",
                              "outputs": [b"42"]}
    line = TR.format_line(r, utc=True)
    assert line == ("00:00:00.000 n1 CHAIN_EVENT d/12345678/chain #1025 origin=12345678 epoch=1 seq=1 "
                    "parent=ad64f6ce8e9fb34b in=sensor-7/7 ok out=[b'42'] fwd=%s" % r["body"]["fwd"])
    i = vector("input-42")
    r = TR.describe(T.daemon(0x12345678, "in"), bytes.fromhex(i["hex"]), 0.0)
    assert r["body"]["h8"] == "8d8e560ab45c4773"  # = the event's input_h8


def test_records_of_the_wrong_size_are_errors_not_exceptions():
    o = 0x1A2B3C4D
    good = ContinuityProof(o, 1, 2, 3, 4).to_bytes()
    r = TR.describe(T.daemon(o, "proof"), FR.encode(FR.PROOF, "g", 1, {"o": o, "proof": good[:-1]}))
    assert r["type"] == "PROOF" and r["error"]["name"] == "DecodeError" and "36" in r["error"]["message"]
    assert "!! DecodeError" in TR.format_line(r)
    fr = bytearray(ForkRecord.create(o, o + 1, 10).to_bytes())
    fr[40] = 2
    r = TR.describe("t", FR.encode(FR.FORK_RECORD, "g", 1, bytes(fr)))
    assert r["error"]["name"] == "ForkRecordFlag"
    bad_lineage = ForkRecord(o, o + 1, 10, CausalLink(o + 1, 0, 0, 5)).to_bytes()
    r = TR.describe("t", FR.encode(FR.FORK_RECORD, "g", 1, {"fork": bad_lineage}))
    assert "error" not in r and r["body"]["fork"]["verified"] is False and "NOT VERIFIED" in TR.format_line(r)
    d = Discontinuity(o, CausalLink(o, 0, 4, 9), None, NodeCrash(3), 7).to_bytes()
    r = TR.describe("t", FR.encode(FR.DISCONTINUITY, "g", 1, {"d": d}))
    assert r["body"]["d"]["reason"] == {"code": 1, "name": "NodeCrash", "last_snapshot_seq": 3}
    r = TR.describe("t", FR.encode(FR.DISCONTINUITY, "g", 1, {"d": d + b"sig"}))
    assert r["error"]["name"] == "DiscontinuityLength"
    d2 = Discontinuity(o, CausalLink(o, 0, 4, 9), CausalLink(o, 0, 6, 1), ChainBreak(SequenceGap(5, 6)), 7)
    r = TR.describe("t", FR.encode(FR.DISCONTINUITY, "g", 1, d2.to_bytes()))  # the record as the body itself
    assert r["body"]["reason"]["expected"] == 5 and r["body"]["failed_link"]["seq"] == 6


def test_odd_messages():
    r = TR.describe(T.node("n1", "status"), b"", 1.0)
    assert r["type"] == "CLEARED" and "CLEARED" in TR.format_line(r)
    r = TR.describe(T.node("n1", "hb"), FR.encode(FR.INPUT, "x", 1, {"p": b""}))
    assert "INPUT on a hb topic" in r["warnings"][0] and "!! INPUT on a hb topic" in TR.format_line(r)
    r = TR.describe(T.daemon(1, "chain"), FR.encode(FR.CHAIN_EVENT, "n1", 1, {"o": 2, "e": 1, "l": b"\0" * 23,
                                                                            "p": b"\x01"}))
    assert r["error"]["name"] == "DecodeError" and any("origin 00000002" in w for w in r["warnings"])
    six = bytes.fromhex("86010362" + b"n1".hex() + "0140" + "40")
    assert TR.describe("t", six)["error"]["name"] == "AuthNotSupported"
    assert TR.describe("t", b"\x81\x02")["error"]["name"] == "UnsupportedVersion"
    assert TR.describe("t", b"x" * 9000)["error"]["name"] == "FrameTooLarge"
    assert TR.describe("t", "not bytes")["error"]["name"] == "MalformedFrame"
    assert TR.describe(b"ne/v1/\xff", b"\x00")["error"]["name"] == "MalformedFrame"


# ---- never an exception ----

topics = st.one_of(st.text(max_size=60), st.builds(lambda o, leaf: T.daemon(o, leaf), st.integers(0, 2**32 - 1),
                                                   st.sampled_from(["in", "chain", "status", "x"])),
                   st.builds(lambda n, leaf: T.node(n, leaf), st.text(min_size=1, max_size=8),
                             st.sampled_from(["hb", "status", "err", "ctl"])))
leaves = st.one_of(st.none(), st.booleans(), st.integers(-2**64, 2**64 - 1), st.binary(max_size=100),
                   st.text(max_size=10), st.floats(allow_nan=True))
KEYS = ["l", "p", "o", "e", "head", "proof", "fork", "d", "origin", "next", "daemons", "p", "x"]
bodies = st.recursive(leaves, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                     st.dictionaries(st.sampled_from(KEYS), kids, max_size=5)),
                      max_leaves=12)
sized = st.sampled_from([0, 23, 24, 25, 35, 36, 48, 49, 86, 87, 100])


def check(rec):
    no_bug(rec)
    line = TR.format_line(rec)
    assert isinstance(line, str) and "\n" not in line and "TRACE-BUG" not in line
    json.loads(TR.to_json(rec))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(topics, st.binary(max_size=200), st.floats(allow_nan=True) | st.integers() | st.none())
def test_random_bytes_never_raise(topic, payload, t):
    check(TR.describe(topic, payload, t))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(topics, st.sampled_from(sorted(FR.TYPES)), st.text(min_size=1, max_size=8).filter(
    lambda s: len(s.encode()) <= 32), st.integers(0, 2**32 - 1), bodies, st.data())
def test_random_frames_never_raise(topic, ftype, sender, counter, body, data):
    if isinstance(body, dict):  # binary values of the interesting sizes under the interesting keys
        for k in data.draw(st.lists(st.sampled_from(KEYS), max_size=3)):
            body[k] = data.draw(sized.flatmap(lambda n: st.binary(min_size=n, max_size=n)))
    try:
        payload = FR.encode(ftype, sender, counter, body)
    except (cbor.CborEncodeError, FR.FrameError):
        return
    rec = TR.describe(topic, payload, time.time())
    check(rec)
    assert rec["type"] == FR.TYPES[ftype]


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=120), st.integers(0, 200))
def test_mutated_capture_frames_never_raise(noise, at):
    rows = capture()
    topic, payload, t, meta = rows[at % len(rows)]
    cut = at % (len(payload) + 1)
    check(TR.describe(topic, payload[:cut] + noise + payload[cut + len(noise):], t, meta))


# ---- the command ----

def run_cli(capsys, *argv):
    rc = cli.main(["trace", *argv])
    out, err = capsys.readouterr()
    return rc, out.splitlines(), err


def test_cli_replays_the_capture(capsys, tmp_path):
    n = len(capture())
    rc, lines, _ = run_cli(capsys, "--file", FIXTURE)
    assert rc == 0 and len(lines) == n
    rc, lines, _ = run_cli(capsys, "--file", FIXTURE, "--json", "--count", "7")
    assert rc == 0 and len(lines) == 7 and all(json.loads(x)["topic"].startswith("ne/v1/") for x in lines)
    rc, lines, _ = run_cli(capsys, "--file", FIXTURE, "--node", "n1")
    assert rc == 0 and lines and all("node/n1/" in x or (" n1 CHAIN_EVENT " in x) for x in lines)
    assert any("CHAIN_EVENT" in x for x in lines)
    origin = next(r for r in records() if r.get("type") == "CHAIN_EVENT")["body"]["o"]
    rc, lines, _ = run_cli(capsys, "--file", FIXTURE, "--daemon", origin, "--json")
    assert rc == 0 and lines and all(json.loads(x)["topic"].startswith("ne/v1/d/%s/" % origin) for x in lines)
    rc, lines, err = run_cli(capsys, "--file", FIXTURE, "--group", "g1")
    assert rc == 0 and len(lines) == n and "filters nothing" in err
    # --record of a replay writes the same capture back
    rc, lines, _ = run_cli(capsys, "--file", FIXTURE, "--record", str(tmp_path / "copy.jsonl"))
    with open(tmp_path / "copy.jsonl") as f:
        assert [(tp, p) for tp, p, _, _ in TR.read_capture(f)] == [(tp, p) for tp, p, _, _ in capture()]


def test_cli_errors(capsys, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"topic": "x"}\n')
    rc, _, err = run_cli(capsys, "--file", str(bad))
    assert rc == 2 and "line 1" in err
    rc, _, err = run_cli(capsys, "--file", str(tmp_path / "missing.jsonl"))
    assert rc == 2 and "cannot read" in err
    for spelling in ("xyz", "1A2B3C4D", "0x1a2b3c"):
        rc, _, err = run_cli(capsys, "--daemon", spelling, "--file", FIXTURE)
        assert rc == 2 and "8 lowercase hex digits" in err
    from netedge.gateway.broker import free_port
    rc, _, err = run_cli(capsys, "--broker", "mqtt://127.0.0.1:%d" % free_port())
    assert rc == 2 and "cannot reach the broker" in err and "--broker" in err
    rc, _, err = run_cli(capsys, "--broker", "http://x")
    assert rc == 2 and "mqtt://host" in err


class Publisher:
    """Publishes INPUT frames (and one garbage frame) every 20 ms until stopped."""

    def __init__(self, host, port):
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="pub-%d" % os.getpid())
        self.c.connect(host, port)
        self.c.loop_start()
        self.stop_ = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        n = 0
        while not self.stop_.is_set():
            n += 1
            data = FR.encode(FR.INPUT, "sensor-7", n, {"p": b"%d" % n}) if n % 4 else b"\x85garbage"
            self.c.publish(T.daemon(0x1A2B3C4D, "in"), data, qos=1)
            self.stop_.wait(0.02)

    def close(self):
        self.stop_.set()
        self.t.join(2)
        self.c.loop_stop()
        self.c.disconnect()


def trace_count(host, port, tmp_path):
    pub = Publisher(host, port)
    try:
        res = subprocess.run(NETEDGE + ["trace", "--broker", "mqtt://%s:%d" % (host, port), "--count", "5",
                                        "--timeout", "20", "--record", str(tmp_path / "cap.jsonl")],
                             capture_output=True, text=True, timeout=30)
    finally:
        pub.close()
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) == 5, res.stdout
    assert all(" d/1a2b3c4d/in" in x and (" INPUT " in x or " MALFORMED " in x) for x in lines), lines
    with open(tmp_path / "cap.jsonl") as f:
        assert len(list(TR.read_capture(f))) == 5
    assert "Traceback" not in res.stderr


def test_trace_live_mosquitto(mosquitto, tmp_path):
    trace_count(mosquitto.host, mosquitto.port, tmp_path)


def test_trace_live_embedded_broker(tmp_path):
    from netedge.gateway.broker import EmbeddedBroker
    b = EmbeddedBroker().start()
    try:
        trace_count(b.host, b.port, tmp_path)
    finally:
        b.stop()


def test_trace_ctrl_c_is_a_clean_exit(mosquitto):
    pub = Publisher(mosquitto.host, mosquitto.port)
    p = subprocess.Popen(NETEDGE + ["trace", "--broker", "mqtt://%s:%d" % (mosquitto.host, mosquitto.port), "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = p.stdout.readline()
        assert json.loads(first)["topic"] == T.daemon(0x1A2B3C4D, "in")
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=10)
    finally:
        pub.close()
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    assert "Traceback" not in err and "stopped" in err
    for line in out.splitlines():
        json.loads(line)


def test_trace_timeout_without_count_reached(mosquitto):
    res = subprocess.run(NETEDGE + ["trace", "--broker", "mqtt://%s:%d" % (mosquitto.host, mosquitto.port),
                                    "--count", "3", "--timeout", "0.5"], capture_output=True, text=True, timeout=20)
    assert res.returncode == 1 and "0 of 3" in res.stderr and res.stdout == ""
