"""Virtual boards: a fleet of unix-port MicroPython nodes on this machine.

`netedge demo`, the integration tests and the benches all run nodes this way, so there is one
place that knows how a virtual board is laid out and started:

    <root>/<node_id>/              the board's "flash": the process runs in this folder
        netedge.json               node config (firmware/config.py), written here
        keys.json                  key slots, written by the gateway when it deploys a daemon here
        state/                     the daemons' chain records (the node writes them)
        node.log                   what the node printed
    micropython -X heapsize=96K    the compiled firmware (.mpy, built once, shared by every board)

    fw = build_firmware("/tmp/fleet/fw")
    b = VirtualBoard(fw, "/tmp/fleet", "n1", node_config("n1", "127.0.0.1", 1883)).start()
    b.kill()                       # kill -9: what a crash or a pulled plug looks like to the rest
    b.stop()                       # clean stop (Ctrl-C in MicroPython)

It also holds the "sensor" side of a simulated fleet: a QoS 1 publisher of INPUT frames
(`publish_input`, `InputStream`), and the gateway config that lists the boards' folders.
"""
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

from ..shared import frame as FR
from ..shared import topics as T
from . import firmware as FW
from .interpreter import micropython_cmd  # noqa: F401 (the fleet's node interpreter: re-exported)

# Real boards have ~100 KB (ESP32) of free heap; the suites and the demo run the nodes tighter.
NODE_HEAP = os.environ.get("NETEDGE_NODE_HEAP", "96K")
# Where virtual boards run the firmware from by default: .mpy files in lib/, or (set to 1) the
# ROMFS image in their ROM partition, as `netedge provision --romfs` deploys it.
NODE_ROMFS = os.environ.get("NETEDGE_NODE_ROMFS", "") not in ("", "0")
PR_SET_PDEATHSIG = 1


def build_firmware(out):
    """Compile the node firmware for the unix port into `out`; returns that folder."""
    return FW.build("unix", out)


def firmware_modules(fw_dir):
    """How many .mpy modules a firmware build holds (for progress output)."""
    return sum(len([f for f in files if f.endswith(".mpy")]) for _, _, files in os.walk(fw_dir))


def node_config(node_id, host, port, heartbeat_ms=300, keys=(), hosted=(), extra=None, keepalive=5):
    """A node's netedge.json (firmware/config.py): `keys` are key slots, `hosted` 8-hex origins."""
    cfg = {"node_id": node_id, "broker": {"host": host, "port": port, "keepalive": keepalive},
           "heartbeat_ms": heartbeat_ms, "keys": list(keys), "host": list(hosted)}
    cfg.update(extra or {})
    return cfg


def _die_with_parent():
    """Linux: SIGKILL this child when its parent dies, however the parent dies (even kill -9),
    so a demo that is killed leaves no orphan micropython behind.  The libc function is looked
    up before the fork: between fork and exec the child must not import or allocate."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def heap_bytes(heap):
    """'96K' -> 98304 (the -X heapsize syntax, without MicroPython's word-size 'w')."""
    mult = {"K": 1024, "M": 1024 * 1024}.get(heap[-1:].upper(), 1)
    return int(heap[:-1] if mult > 1 else heap) * mult


ROM = "rom.bin"  # a virtual board's ROM partition (boards/unix/board.py, rom_partition.py)


def rom_heap(heap, partition):
    """-X heapsize (bytes) for a virtual board whose ROM partition file is `partition`: `heap`
    plus what holding the image costs this port, so the node gets `heap` as a board would (a board
    maps the partition; the unix port reads it into a bytearray: boards/unix/board.py)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("netedge_unix_board", os.path.join(FW.BOARDS, "unix", "board.py"))
    board = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(board)
    with open(partition, "rb") as f:
        size = board.image_size(f.read(8))
    return heap_bytes(heap) + (rom_cost(size) if size else 0)


def rom_cost(image_bytes):
    """Heap a ROM image costs when the unix port holds it: one bytearray of that size (its object
    and its data rounded up to whole GC blocks, 16 B on a 32-bit port, 32 B on a 64-bit one), plus
    the GC's tables for those blocks.  Asked of the node interpreter itself (once per size): its
    word size and version decide both."""
    exe = micropython_cmd()
    key = (exe, image_bytes)
    if key not in _ROM_COSTS:
        probe = ("import gc\ngc.collect()\na = gc.mem_alloc()\npool = a + gc.mem_free()\n"
                 "b = bytearray(%d)\nprint(gc.mem_alloc() - a, pool)\n" % image_bytes)
        heap = 4 * 1024 * 1024
        out = subprocess.run([exe, "-X", "heapsize=%d" % heap, "-c", probe], capture_output=True, text=True,
                             timeout=30)
        if out.returncode != 0:
            raise RuntimeError("%s could not allocate the ROM image: %s" % (exe, out.stderr.strip()[-200:]))
        alloc, pool = (int(x) for x in out.stdout.split())
        _ROM_COSTS[key] = -(-alloc * heap // pool)  # the tables' share, rounded up
    return _ROM_COSTS[key]


_ROM_COSTS = {}


class VirtualBoard:
    """One virtual board: a folder (its flash) and a micropython process running the firmware."""

    def __init__(self, fw_dir, root, node_id, config, heap=NODE_HEAP, die_with_parent=False, romfs=None):
        """die_with_parent: the node is killed when the process that started it (precisely: the
        thread) ends; for a command like `netedge demo`, whose nodes must never outlive it.
        romfs: run the firmware from the build's ROMFS image (a board's ROM partition) instead
        of from .mpy files in lib/; `heap` is then what the node gets besides the image (default:
        NETEDGE_NODE_ROMFS)."""
        import json
        romfs = NODE_ROMFS if romfs is None else romfs
        self.fw_lib = os.path.join(fw_dir, "lib")
        self.romfs = os.path.join(fw_dir, FW.ROMFS) if romfs else None
        self.dir = os.path.join(str(root), node_id)
        os.makedirs(self.dir, exist_ok=True)
        if romfs:  # deployed to the board's ROM partition, which its board.py mounts at boot
            shutil.copy(self.romfs, os.path.join(self.dir, ROM))
            shutil.copy(os.path.join(FW.BOARDS, "unix", "board.py"), os.path.join(self.dir, "board.py"))
        self.node_id = node_id
        self.heap = heap
        self.proc = None
        self.preexec = _die_with_parent() if die_with_parent else None
        with open(os.path.join(self.dir, "netedge.json"), "w") as f:
            json.dump(config, f)
        self.log_path = os.path.join(self.dir, "node.log")

    def start(self):
        # boots as a board's main.py does: the firmware in ./lib (here a link to the shared build),
        # on sys.path as "lib", so each module's __file__ (a qstr in the heap) is as long as on a board
        lib = os.path.join(self.dir, "lib")
        if os.path.lexists(lib) and (self.romfs or os.readlink(lib) != self.fw_lib):
            os.remove(lib)  # a ROMFS board has no lib/ in its filesystem: nothing loads from files
        if not os.path.lexists(lib) and not self.romfs:
            os.symlink(self.fw_lib, lib)
        code = "import sys; sys.path.insert(0, 'lib'); from netedge.firmware.main import start; start('netedge.json')"
        heap = self.heap
        if self.romfs:  # as a board's main.py: the board adapter first (it mounts the partition)
            code = "import board; from netedge.firmware.main import start; start('netedge.json', board)"
            heap = str(rom_heap(self.heap, os.path.join(self.dir, ROM)))
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([micropython_cmd(), "-X", "heapsize=" + heap, "-c", code],
                                     cwd=self.dir, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, preexec_fn=self.preexec)
        return self

    @property
    def pid(self):
        return self.proc.pid if self.proc is not None else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.proc.pid, sig)

    def kill(self):
        """kill -9 (SIGKILL): no goodbye, the broker publishes the node's last will."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(5)
            self.log.close()
            self.proc = None

    def stop(self):
        """Clean stop: SIGINT raises KeyboardInterrupt in MicroPython, which ends the process."""
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def output(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""


def write_gateway_config(path, broker_url, boards, gw_id="gw1", embedded=False, deadline_ms=1500, http=None,
                         data_dir="data", gateway=None, username=None, password=None):
    """The gateway's TOML config for a fleet of virtual boards: keys reach each one through its
    folder ([nodes.<id>] path).  `embedded`: the gateway runs the broker itself, at `broker_url`.
    `gateway`: more [gateway] keys, as TOML value text (e.g. {"input_log_max": 64}).
    username, password: the gateway's broker credentials."""
    lines = ["[gateway]", 'id = "%s"' % gw_id, 'data_dir = "%s"' % data_dir, "heartbeat_deadline_ms = %d" % deadline_ms]
    lines += ["%s = %s" % (k, v) for k, v in (gateway or {}).items()]
    if http is not None:
        lines.append('http = "%s"' % http)
    lines += ["", "[broker]", 'url = "%s"' % broker_url]
    if username is not None:
        lines += ['username = "%s"' % username, 'password = "%s"' % password]
    if embedded:
        lines.append("embedded = true")
    for b in boards:
        lines += ["", "[nodes.%s]" % b.node_id, 'path = "%s"' % b.dir]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def publish_input(client, origin, payload, sender="client", counter=0, tries=50):
    """Publish one INPUT frame to a daemon's inbox at QoS 1 through a connected paho client and
    wait until the broker accepted it (PUBACK): from then on the input must be processed exactly
    once.  Retries while the client reconnects."""
    data = FR.encode(FR.INPUT, sender, counter, {"p": payload})
    for _ in range(tries):
        info = client.publish(T.daemon(origin, "in"), data, qos=1)
        try:
            info.wait_for_publish(2)
            if info.is_published():
                return counter
        except (RuntimeError, ValueError):
            pass
        time.sleep(0.1)
    raise RuntimeError("the broker never accepted input %d for %08x" % (counter, origin))


class InputStream(threading.Thread):
    """A steady sensor: inputs b"first" .. b"first+n-1" (decimal, for the counter daemon), each
    with its number as input counter, at about `rate` per second, through `send(origin, payload,
    counter=i)` (e.g. functools.partial(publish_input, client)).  `sent` counts the accepted ones."""

    def __init__(self, send, origin, first, n, rate=200):
        super().__init__(daemon=True, name="input-stream")
        self.send, self.origin, self.first, self.n, self.rate = send, origin, first, n, rate
        self.sent = 0
        self.error = None
        self.stopping = threading.Event()

    def run(self):
        try:
            t0 = time.monotonic()
            for i in range(self.first, self.first + self.n):
                if self.stopping.is_set():
                    return
                self.send(self.origin, b"%d" % i, counter=i)
                self.sent += 1
                ahead = (i - self.first + 1) / self.rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
        except Exception as e:  # reported by whoever joins it
            self.error = e

    def stop(self):
        self.stopping.set()
        if self.is_alive():
            self.join(5)
