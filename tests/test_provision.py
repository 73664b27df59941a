"""`netedge provision` against a virtual board: the unix-port `micropython` behind a socat pty,
its "flash" = the folder it runs in.  After provisioning, the node is booted from that folder
exactly as a board boots (`micropython main.py`, cwd = the board) and must heartbeat to a real
Mosquitto."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import nacl.signing
import paho.mqtt.client as paho
import pytest

from netedge.shared import frame as FR
from netedge.shared import topics as T
from netedge.shared.identity import origin_hash
from netedge.tools import firmware as FW
from netedge.tools import fleet
from netedge.tools import provision as P

from conftest import micropython_cmd

BOOT_HEAP = os.environ.get("NETEDGE_NODE_HEAP", "96K")

needs_socat = pytest.mark.skipif(shutil.which("socat") is None, reason="socat is not installed")


class VirtualBoard:
    """socat PTY,link=<link> EXEC:micropython with cwd = folder; stopped by its own process group."""

    def __init__(self, folder, link, rom=False, env=None):
        """rom: the board has a ROM partition (rom.bin in its folder: boards/unix/rom_partition.py);
        env: added to the board's environment (the partition's NETEDGE_ROM_* settings)."""
        self.folder = str(folder)
        self.link = str(link)
        self.env = dict(os.environ, **(env or {}))
        self.exe = micropython_cmd()
        if rom:
            self.exe += " -i " + os.path.join(FW.BOARDS, "unix", "rom_partition.py")
        os.makedirs(self.folder, exist_ok=True)
        self.proc = None

    def start(self, timeout=5.0):
        self.proc = subprocess.Popen(
            ["socat", "PTY,link=%s,raw,echo=0" % self.link, "EXEC:%s,pty,raw,echo=0" % self.exe],
            cwd=self.folder, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not os.path.exists(self.link):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError("virtual board pty %s did not appear" % self.link)
            time.sleep(0.02)
        time.sleep(0.1)  # let micropython print its banner
        return self

    def stop(self):
        p, self.proc = self.proc, None
        if p is None:
            return
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)  # socat and the micropython it started
            except ProcessLookupError:
                pass
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)


def netedge(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "netedge.gateway.cli", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


class HeartbeatWatcher:
    def __init__(self, broker, node_id):
        self.topic = T.node(node_id, "hb")
        self.frames = []
        self.cond = threading.Condition()
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="hb-watch", clean_session=True)
        self.c.on_connect = lambda c, u, f, rc, p=None: c.subscribe(self.topic, qos=0)
        self.c.on_message = self._on_message
        self.c.connect(broker.host, broker.port, keepalive=10)
        self.c.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.c.loop_start()

    def _on_message(self, c, u, msg):
        with self.cond:
            self.frames.append((msg.topic, FR.decode(msg.payload)))
            self.cond.notify_all()

    def wait(self, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not self.frames:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)
            return self.frames[0]

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


@needs_socat
def test_provision_virtual_board_then_boot(tmp_path, mosquitto):
    board_dir = tmp_path / "board"
    board = VirtualBoard(board_dir, tmp_path / "tty").start()
    node = None
    watch = None
    try:
        t0 = time.monotonic()
        res = netedge("provision", "--port", board.link, "--board", "unix", "--node", "prov-1",
                      "--broker", "mqtt://%s:%d" % (mosquitto.host, mosquitto.port), "--heartbeat-ms", "200")
        took = time.monotonic() - t0
        assert res.returncode == 0, res.stdout + res.stderr
        print("provision of a virtual board took %.2f s" % took)
        assert "provisioned node prov-1" in res.stdout and "verified by sha256" in res.stdout
        assert "verifying" in res.stderr and "lib/netedge/firmware/mqtt.mpy" in res.stderr  # progress bar

        for rel in ("main.py", "board.py", "lib/netedge/__init__.mpy", "lib/netedge/firmware/main.mpy",
                    "lib/netedge/firmware/mqtt.mpy", "lib/netedge/shared/frame.mpy"):
            assert (board_dir / rel).is_file(), rel
        assert not (board_dir / "keys.json").exists()  # keys come later, from the gateway
        with open(board_dir / "netedge.json") as f:
            cfg = json.load(f)
        assert cfg == {"node_id": "prov-1", "board": "unix", "heartbeat_ms": 200,
                       "broker": {"host": mosquitto.host, "port": mosquitto.port}}

        # re-provisioning copies only what changed and removes stale modules
        (board_dir / "lib/netedge/shared/obsolete.mpy").write_bytes(b"M\x06")
        rep = P.provision(board.link, "unix", "prov-1", mosquitto.host, mosquitto.port, heartbeat_ms=200)
        # (only sources edited meanwhile may differ: others work on shared/ concurrently)
        assert "main.py" in rep["unchanged"] and len(rep["copied"]) < len(rep["files"]) // 2
        assert rep["removed"] == ["lib/netedge/shared/obsolete.mpy"]
        assert not (board_dir / "lib/netedge/shared/obsolete.mpy").exists()

        # the gateway's deploy path: only keys.json is rewritten
        pub = bytes(nacl.signing.SigningKey(b"k" * 32).verify_key)
        rep = P.push_keys(board.link, [{"kind": "counter", "public": pub.hex()}])
        assert rep["keys"] == 1
        with open(board_dir / "keys.json") as f:
            assert json.load(f) == [{"kind": "counter", "public": pub.hex()}]
    finally:
        board.stop()

    # boot the node from the board's folder, exactly as a board runs main.py
    try:
        watch = HeartbeatWatcher(mosquitto, "prov-1")
        node = _boot(board_dir, BOOT_HEAP, tmp_path / "node.log")
        got = watch.wait(15)
        out = (tmp_path / "node.log").read_text(errors="replace")
        assert got is not None, "no heartbeat from the provisioned node; its output:\n" + out
        topic, fr = got
        assert topic == "ne/v1/node/prov-1/hb"
        assert fr.type == FR.HEARTBEAT and fr.sender == "prov-1"
        body = fr.body()
        assert body["board"] == "unix"
        assert origin_hash(pub) in body["keys"]  # the pushed key slot was loaded at boot
    finally:
        if watch:
            watch.close()
        if node is not None:
            _stop(node)


def _boot(board_dir, heap, log_path):
    """Boot the node from the board's folder, as a board runs main.py."""
    with open(log_path, "wb") as log:  # (the child keeps its own copy of the descriptor)
        return subprocess.Popen([micropython_cmd(), "-X", "heapsize=%s" % heap, "main.py"], cwd=str(board_dir),
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def _stop(node):
    if node.poll() is None:
        node.send_signal(signal.SIGINT)
        try:
            node.wait(5)
        except subprocess.TimeoutExpired:
            node.kill()
            node.wait(5)


@needs_socat
def test_provision_romfs_then_boot_from_the_rom_partition(tmp_path, mosquitto):
    """--romfs: real `mpremote romfs deploy` into the virtual board's ROM partition; the node then
    boots from /rom with its bytecode out of the heap, and lib/netedge is gone from the filesystem."""
    board_dir = tmp_path / "board"
    board = VirtualBoard(board_dir, tmp_path / "tty", rom=True).start()
    try:
        # a board provisioned the plain way first: --romfs must take its lib/ away (it comes first)
        P.provision(board.link, "unix", "rom-1", mosquitto.host, mosquitto.port, heartbeat_ms=200)
        assert (board_dir / "lib/netedge/firmware/node.mpy").is_file()
        res = netedge("provision", "--port", board.link, "--board", "unix", "--node", "rom-1", "--romfs",
                      "--broker", "mqtt://%s:%d" % (mosquitto.host, mosquitto.port), "--heartbeat-ms", "200")
        assert res.returncode == 0, res.stdout + res.stderr
        assert "ROMFS image in the ROM partition" in res.stdout and "verified by sha256" in res.stdout
        assert "lib/netedge/firmware/node.mpy" not in res.stderr  # nothing copied to lib/
    finally:
        board.stop()
    assert not (board_dir / "lib" / "netedge").exists(), "lib/netedge must be removed (it would shadow /rom/lib)"
    for rel in ("main.py", "board.py", "netedge.json", fleet.ROM):
        assert (board_dir / rel).is_file(), rel

    watch = HeartbeatWatcher(mosquitto, "rom-1")
    node = _boot(board_dir, fleet.rom_heap(BOOT_HEAP, str(board_dir / fleet.ROM)), tmp_path / "node.log")
    try:
        got = watch.wait(15)
        out = (tmp_path / "node.log").read_text(errors="replace")
        assert got is not None, "no heartbeat from the ROMFS node; its output:\n" + out
        assert "firmware from the ROM partition" in out
        # the bytecode is in the ROM: at the same heap, far more is free than with lib/ (~25 KB at 96K)
        assert got[1].body()["heap"] > fleet.heap_bytes(BOOT_HEAP) * 0.4, got[1].body()
    finally:
        watch.close()
        _stop(node)


def _provision_rom(tmp_path, env):
    """--romfs against a board with a ROM partition set up by `env`: (result, board folder)."""
    board_dir = tmp_path / "board"
    board = VirtualBoard(board_dir, tmp_path / "tty", rom=True, env=env).start()
    try:
        return netedge("provision", "--port", board.link, "--board", "unix", "--node", "n1", "--romfs",
                       "--broker", "mqtt://127.0.0.1"), board_dir
    finally:
        board.stop()


@needs_socat
def test_provision_romfs_image_larger_than_the_partition(tmp_path):
    """A clear error naming the image's size, and nothing else on the board touched."""
    res, board_dir = _provision_rom(tmp_path, {"NETEDGE_ROM_SIZE": "16384"})
    assert res.returncode == 2, res.stdout + res.stderr
    assert "larger than" in res.stderr and "ROM partition" in res.stderr and "without --romfs" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (board_dir / "main.py").exists() and not (board_dir / "netedge.json").exists()


@needs_socat
def test_provision_romfs_partition_that_differs_from_the_image(tmp_path):
    """A worn partition keeps bytes other than those sent: the board's sha256 catches it before the
    firmware in lib/ would be removed."""
    res, board_dir = _provision_rom(tmp_path, {"NETEDGE_ROM_WORN": "1"})
    assert res.returncode == 2, res.stdout + res.stderr
    assert "differs from the image sent" in res.stderr and "Traceback" not in res.stderr
    assert not (board_dir / "main.py").exists() and not (board_dir / "netedge.json").exists()


@needs_socat
def test_provision_romfs_on_a_board_without_a_rom_partition(tmp_path):
    """A clear error, and the board's filesystem untouched (the ROM is deployed first)."""
    board_dir = tmp_path / "board"
    board = VirtualBoard(board_dir, tmp_path / "tty").start()
    try:
        res = netedge("provision", "--port", board.link, "--board", "unix", "--node", "n1", "--romfs",
                      "--broker", "mqtt://127.0.0.1")
    finally:
        board.stop()
    assert res.returncode == 2, res.stdout + res.stderr
    assert "has no ROMFS partition" in res.stderr and "without --romfs" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (board_dir / "main.py").exists() and not (board_dir / "netedge.json").exists()


def test_missing_port_is_a_clear_error(tmp_path):
    res = netedge("provision", "--port", str(tmp_path / "ttyNOPE"), "--board", "unix", "--node", "n1",
                  "--broker", "mqtt://127.0.0.1", timeout=30)
    assert res.returncode == 2
    assert "does not exist" in res.stderr and "Traceback" not in res.stderr


def test_unknown_board_lists_known_ones(tmp_path):
    res = netedge("provision", "--port", str(tmp_path / "tty"), "--board", "esp33", "--node", "n1",
                  "--broker", "mqtt://127.0.0.1", timeout=30)
    assert res.returncode == 2
    assert "unknown board 'esp33'" in res.stderr and "esp32" in res.stderr and "unix" in res.stderr


@pytest.mark.parametrize("node", ["n 1", "", "x" * 33, "a/b", "a+b"])
def test_bad_node_id_refused(node):
    with pytest.raises(P.ProvisionError, match="node id"):
        P.node_config(node, "unix", "127.0.0.1")


def test_wifi_board_needs_wifi_and_broker_urls():
    with pytest.raises(P.ProvisionError, match="wifi-ssid"):
        P.node_config("n1", "esp32", "10.0.0.1")
    cfg = P.node_config("n1", "esp32", "10.0.0.1", wifi={"ssid": "lab", "password": "pw", "country": "de"})
    assert cfg["wifi"] == {"ssid": "lab", "password": "pw", "country": "DE"}
    assert P.parse_broker("mqtt://10.0.0.1:1884") == ("10.0.0.1", 1884, None, None)
    assert P.parse_broker("mqtt://u:p@pi.local") == ("pi.local", 1883, "u", "p")
    assert P.parse_broker("pi.local:1999") == ("pi.local", 1999, None, None)
    for bad in ("mqtts://x", "mqtt://x:port", "mqtt://x:70000", ""):
        with pytest.raises(P.ProvisionError):
            P.parse_broker(bad)


def test_bad_key_slots_refused():
    with pytest.raises(P.ProvisionError, match="public"):
        P.check_keys([{"kind": "counter", "public": "00"}])
