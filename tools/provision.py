"""Provision a board over USB with `mpremote`: firmware, node config, key slots.

    from netedge.tools.provision import provision, push_keys, progress_bar
    report = provision("/dev/ttyUSB0", "esp32", "n1", "192.168.1.10",
                       wifi={"ssid": "lab", "password": "..."}, progress=progress_bar())
    push_keys("/dev/ttyUSB0", [{"kind": "counter", "public": "<64 hex>", "secret": "<64 hex>"}])

What lands on the board (its filesystem root; the unix port: the micropython process's cwd):

    main.py, board.py (+ wifi.py)     from netedge.tools.firmware.build(board)
    lib/netedge/**.mpy                compiled for the board's arch (boards/<board>/board.json)
    netedge.json                      node_id, broker, board, heartbeat_ms, wifi (firmware/config.py)
    keys.json                         key slots [{"kind", "public", "secret"?}] -- only when given

`state/` (the node's flash records) is never touched, so re-provisioning keeps the daemons' chains.

With `romfs=True` (`netedge provision --romfs`) the firmware goes to the board's ROM partition
instead, as the build's ROMFS image (`mpremote romfs deploy`, MicroPython >= 1.25 on a board with
such a partition); lib/netedge is then removed from the filesystem.  The node runs its bytecode in
place from flash, which leaves it about twice the free heap (bench/node_memory.py).

Three mpremote invocations (each connect costs time): one inventory (creates folders, hashes
what is already there), one that copies only what differs and removes stale `.mpy` files, then
re-hashes everything for the verification (plus an optional hard reset so a real board boots the
node).  `resume` is used by default: it skips mpremote's soft reset, which the unix port cannot do
and real boards do not need.  Connecting still interrupts a running program (Ctrl-C), so a real
board stops its node while being provisioned: reset it afterwards (`reset=True`, the default for
every board except `unix`).
"""
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from netedge.firmware import config as C
from netedge.tools import firmware as FW

LIB = "lib/netedge"
MARK = "NETEDGE-FS "


class ProvisionError(RuntimeError):
    """An operator-facing failure: says what went wrong and what to do."""


# ---------------------------------------------------------------------------------- helpers

def known_boards():
    root = os.path.join(FW.REPO, "boards")
    return sorted(d for d in os.listdir(root) if os.path.exists(os.path.join(root, d, "board.json")))


def board_info(board):
    try:
        return FW.board_info(board)
    except FW.BuildError as e:
        raise ProvisionError(str(e))


def progress_bar(stream=None, width=24):
    """A `progress(i, n, what)` callback drawing `[#####.....] 12/31 lib/netedge/shared/cbor.mpy`.

    On a terminal the bar redraws in place; into a file or pipe it writes one line per step."""
    stream = stream or sys.stderr
    tty = hasattr(stream, "isatty") and stream.isatty()
    last = [0]

    def cb(i, n, what):
        fill = width * i // n if n else width
        line = "[%s%s] %d/%d %s" % ("#" * fill, "." * (width - fill), i, n, what)
        if tty:
            stream.write("\r" + line + " " * max(0, last[0] - len(line)))
            last[0] = len(line)
            if i >= n:
                stream.write("\n")
        else:
            stream.write(line + "\n")
        stream.flush()
    return cb


def parse_broker(url):
    """'mqtt://[user[:password]@]host[:port]', 'host:port' or 'host' -> (host, port, user, password)."""
    if not isinstance(url, str) or not url.strip():
        raise ProvisionError("broker: expected mqtt://host[:port]")
    u = url.strip()
    m = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://(.*)$", u)
    if m:
        if m.group(1).lower() != "mqtt":
            raise ProvisionError("broker %r: only plain mqtt:// is supported by the node firmware "
                                 "(no TLS or websockets yet)" % url)
        u = m.group(2)
    u = u.rstrip("/")
    user = password = None
    if "@" in u:
        cred, u = u.rsplit("@", 1)
        user, _, pw = cred.partition(":")
        password = pw if _ else None
    host, port = u, 1883
    if u.startswith("["):  # [v6]:port
        host, _, rest = u[1:].partition("]")
        if rest:
            port = rest.lstrip(":")
    elif u.count(":") == 1:
        host, port = u.split(":")
    try:
        port = int(port)
    except ValueError:
        raise ProvisionError("broker %r: port %r is not a number" % (url, port))
    if not host or not 0 < port < 65536:
        raise ProvisionError("broker %r: expected mqtt://host[:port] with a port in 1..65535" % url)
    return host, port, user or None, password


def node_config(node_id, board, broker_host, broker_port=1883, username=None, password=None, wifi=None,
                heartbeat_ms=500):
    """The `netedge.json` dict, checked by the node's own parser (same rules as on the board)."""
    info = board_info(board)
    cfg = {"node_id": node_id, "board": board, "heartbeat_ms": heartbeat_ms,
           "broker": {"host": broker_host, "port": broker_port}}
    if username is not None:
        cfg["broker"]["username"] = username
    if password is not None:
        cfg["broker"]["password"] = password
    if wifi:
        w = {k: v for k, v in wifi.items() if v is not None}
        if not isinstance(w.get("ssid"), str) or not w["ssid"]:
            raise ProvisionError("wifi: an ssid is required")
        if "country" in w and not re.match(r"^[A-Z]{2}$", str(w["country"]).upper()):
            raise ProvisionError("wifi country %r: expected a two-letter code such as DE or US" % w["country"])
        if "country" in w:
            w["country"] = w["country"].upper()
        cfg["wifi"] = w
    elif info.get("network") == "wifi":
        raise ProvisionError("board %r joins WiFi: give the network (--wifi-ssid, --wifi-password)" % board)
    try:
        C.parse(cfg)
    except C.ConfigError as e:
        raise ProvisionError(str(e).replace("config field 'node_id'", "node id %r" % (node_id,)))
    return cfg


def check_keys(keys):
    """Validate key slots like the node does; returns a JSON-ready list."""
    try:
        C.parse_keys(list(keys), C.DEFAULT_KINDS, "keys")
    except C.ConfigError as e:
        raise ProvisionError(str(e))
    return [dict(k) for k in keys]


def _mpremote_cmd(mpremote):
    if mpremote:
        return list(mpremote) if isinstance(mpremote, (list, tuple)) else [mpremote]
    if importlib.util.find_spec("mpremote") is not None:
        return [sys.executable, "-m", "mpremote"]
    exe = shutil.which("mpremote", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    if not exe:
        raise ProvisionError("mpremote not found: pip install mpremote")
    return [exe]


def _check_port(port):
    if not port:
        raise ProvisionError("no serial port given (e.g. /dev/ttyUSB0; list them with `mpremote connect list`)")
    if (port.startswith("/") or port.startswith(".")) and not os.path.exists(port):
        raise ProvisionError("serial port %s does not exist: is the board plugged in (and powered)? "
                             "List ports with `mpremote connect list`" % port)


def _sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# Runs ON THE BOARD (MicroPython): create folders, hash files, list stale ones; one JSON line.
_REMOTE = """\
import os, json
try:
    import hashlib, binascii
except ImportError:
    hashlib = None
def _h(p):
    try:
        s = os.stat(p)
    except OSError:
        return None
    if s[0] & 0x4000:
        return 'dir'
    if hashlib is None:
        return s[6]
    h = hashlib.sha256()
    b = bytearray(512)
    m = memoryview(b)
    with open(p, 'rb') as f:
        while True:
            n = f.readinto(b)
            if not n:
                break
            h.update(m[:n])
    return binascii.hexlify(h.digest()).decode()
def _walk(d, out):
    try:
        es = [e[0] for e in os.ilistdir(d)]
    except OSError:
        return
    for n in es:
        p = d + '/' + n
        if os.stat(p)[0] & 0x4000:
            _walk(p, out)
        else:
            out.append(p)
for d in %(dirs)r:
    try:
        os.mkdir(d)
    except OSError:
        pass
_f = %(files)r
_all = []
if %(lib)r:
    _walk(%(lib)r, _all)
for p in _all:
    if p not in _f:
        _f.append(p)
print(%(mark)r + json.dumps(dict((p, _h(p)) for p in _f)))
"""


_ROM_HASH = """
import vfs, hashlib, binascii
try:
    _m = memoryview(vfs.rom_ioctl(2, 0))
    _h = hashlib.sha256()
    for _i in range(0, %(n)d, 1024):
        _h.update(_m[_i:min(_i + 1024, %(n)d)])
    print(%(mark)r + binascii.hexlify(_h.digest()).decode())
except Exception as e:  # a partition behind a block device: not readable as memory
    print(%(mark)r + '?')
"""
ROM_MARK = "NETEDGE-ROM "

# lib/netedge taken away whole once the firmware is in the ROM partition: even an empty folder
# would shadow /rom/lib/netedge (a folder without __init__ imports as a namespace package)
_RMTREE = """
import os
def _rm(d):
    for e in os.ilistdir(d):
        p = d + '/' + e[0]
        if e[1] == 0x4000:
            _rm(p)
        else:
            os.remove(p)
    os.rmdir(d)
try:
    _rm(%r)
except OSError:
    pass
""" % LIB


def _deploy_rom(cmd, port, image, resume, timeout, progress):
    """`mpremote romfs deploy` the image to ROM partition 0, then hash the partition on the board.
    Returns "sha256" when the board's copy matched, "unread" when the board cannot show it."""
    size = os.path.getsize(image)
    head = ["resume"] if resume else []
    if progress:
        progress(0, 1, "deploying the ROMFS image (%d bytes)" % size)
    run = _Run(cmd, port, head + ["romfs", "deploy", image, "+", "exec", _ROM_HASH % {"n": size, "mark": ROM_MARK}],
               _timeout(size, timeout))
    try:
        lines = run.run()
    except ProvisionError as e:
        low = str(e).lower()
        if "romfs is not enabled" in low or "partition not found" in low:
            raise ProvisionError("%s has no ROMFS partition (it needs MicroPython 1.25 or later, built with "
                                 "one): provision without --romfs to copy the firmware to lib/ instead\n  %s"
                                 % (port, str(e).splitlines()[-1].strip()))
        lines = run.lines  # (a too big image is one of mpremote's exit-1 cases: said just below)
        if not any("too big for the target partition" in ln for ln in lines):
            raise
    if any("too big for the target partition" in ln for ln in lines):
        raise ProvisionError("the ROMFS image (%d bytes) is larger than %s's ROM partition: provision "
                             "without --romfs" % (size, port))
    got = [ln[len(ROM_MARK):] for ln in lines if ln.startswith(ROM_MARK)]
    if not got:
        raise ProvisionError("%s did not confirm the ROMFS image\n  output: %s" % (port, " | ".join(lines[-5:])))
    if got[0] == "?":
        return "unread"
    if got[0] != _sha(image):
        raise ProvisionError("the ROM partition of %s differs from the image sent: deploy again" % port)
    if progress:
        progress(1, 1, "ROMFS image verified")
    return "sha256"


def _remote_script(files, dirs=(), walk=True):
    """Hash `files` (and, with walk, every file under lib/netedge) after creating `dirs`."""
    return _REMOTE % {"dirs": list(dirs), "files": list(files), "lib": LIB if walk else "", "mark": MARK}


class _Run:
    """One mpremote invocation: streams stdout lines to `on_line`, enforces a timeout."""

    def __init__(self, cmd, port, args, timeout, on_line=None):
        self.argv = cmd + ["connect", port] + args
        self.port = port
        self.timeout = timeout
        self.on_line = on_line
        self.lines = []

    def run(self):
        try:
            p = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, errors="replace")
        except OSError as e:
            raise ProvisionError("cannot run mpremote (%s): pip install mpremote" % e)
        err = []
        t = threading.Thread(target=lambda: err.append(p.stderr.read()), daemon=True)
        t.start()
        timed_out = []

        def kill():
            timed_out.append(1)
            p.kill()
        killer = threading.Timer(self.timeout, kill)
        killer.start()
        try:
            for line in p.stdout:
                line = line.rstrip("\n")
                self.lines.append(line)
                if self.on_line:
                    self.on_line(line)
            rc = p.wait()
        finally:
            killer.cancel()
            if p.poll() is None:
                p.kill()
                p.wait()
        t.join(5)
        if timed_out:
            raise ProvisionError("mpremote on %s did not finish within %.0f s: is the board answering? "
                                 "Reset it and retry" % (self.port, self.timeout))
        if rc != 0:
            raise ProvisionError(_explain(self.port, rc, "".join(err), self.lines))
        return self.lines


def _explain(port, rc, stderr, lines):
    text = stderr.strip().splitlines()
    msg = ""
    for line in reversed(text + lines):
        line = line.strip()
        if line.startswith("mpremote:") or "Error" in line.split(":")[0]:
            msg = line
            break
    if not msg and text:
        msg = text[-1].strip()
    low = (stderr + "\n".join(lines)).lower()
    if "failed to access" in low:
        hint = ("cannot open %s: unplugged, or in use by another program (a serial monitor, "
                "`mpremote repl`, a running gateway)? Close it and retry" % port)
    elif "could not enter raw repl" in low:
        hint = ("%s does not answer as a MicroPython REPL: is MicroPython flashed on the board "
                "(esptool / UF2) and is this its port? Press reset and retry" % port)
    elif "no device found" in low:
        hint = "no USB serial device found: give --port explicitly"
    else:
        hint = "mpremote failed on %s (exit %d)" % (port, rc)
    return "%s\n  mpremote said: %s" % (hint, msg or "(nothing)")


def _timeout(nbytes, timeout):
    return timeout if timeout else 30.0 + nbytes / 2000.0  # even a slow UART does > 2 KB/s


def _want_reset(board, reset):
    return (board_info(board).get("port") != "unix") if reset is None else bool(reset)


def _upload(cmd, port, files, verify, resume, reset, timeout, progress, stale=(), drop_lib=False):
    """One mpremote run: copy `files` [(local, remote)], remove `stale` remote paths (or with
    drop_lib all of lib/netedge), then hash every file of `verify` [(local, remote)] on the board
    and compare.  Returns the board's hashes."""
    head = ["resume"] if resume else []
    args = list(head)
    for local, remote in files:
        args += ["fs", "cp", "-f", local, ":" + remote, "+"]
    for remote in () if drop_lib else stale:
        args += ["fs", "rm", ":" + remote, "+"]
    if drop_lib:
        args += ["exec", _RMTREE, "+"]
    args += ["exec", _remote_script([r for _, r in verify], walk=False)]
    if reset:
        args += ["+", "reset"]
    n = len(files)
    names = dict((":" + r, r) for _, r in files)
    done = [0]

    def on_line(line):
        if line.startswith("cp "):
            dest = line.rsplit(" ", 1)[-1]
            if progress:
                progress(done[0], n, names.get(dest, dest.lstrip(":")))
            done[0] += 1

    nbytes = sum(os.path.getsize(lp) for lp, _ in files)
    lines = _Run(cmd, port, args, _timeout(nbytes, timeout), on_line).run()
    if progress and n:
        progress(n, n, "verifying")
    hashes = _parse_inventory(port, lines)
    bad = []
    for local, remote in verify:
        got = hashes.get(remote)
        want = _sha(local) if isinstance(got, str) or got is None else os.path.getsize(local)
        if got != want:
            bad.append(remote)
    if bad:
        raise ProvisionError("verification failed on %s: %s differ from what was sent "
                             "(flash full? run `mpremote connect %s df`)" % (port, ", ".join(bad), port))
    return hashes


def _parse_inventory(port, lines):
    for line in lines:
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    raise ProvisionError("%s answered without a file inventory: is it running MicroPython?\n  output: %s"
                         % (port, " | ".join(lines[-5:])))


def _write_json(folder, name, value):
    path = os.path.join(folder, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # keys.json may hold secrets
    with os.fdopen(fd, "w") as f:
        json.dump(value, f, sort_keys=True, separators=(",", ":"))
        f.write("\n")
    return path


# ---------------------------------------------------------------------------------- API

def provision(port, board, node_id, broker_host, broker_port=1883, username=None, password=None, wifi=None,
              keys=None, heartbeat_ms=500, progress=None, mpremote=None, resume=True, reset=None,
              timeout=None, romfs=False):
    """Build the firmware for `board`, copy it and the node's config to the board on `port`.

    romfs: deploy the firmware as a ROMFS image to the board's ROM partition instead of lib/
    (lib/netedge is then removed: it would come first on sys.path).
    keys: key slots for keys.json; None leaves an existing keys.json alone (the gateway pushes keys
    on deploy with `push_keys`), [] clears it.  reset: hard-reset the board at the end so it boots
    the node (None: yes, except for the unix port).  Returns a report dict; raises ProvisionError."""
    t0 = time.monotonic()
    cfg = node_config(node_id, board, broker_host, broker_port, username, password, wifi, heartbeat_ms)
    slots = check_keys(keys) if keys is not None else None
    do_reset = _want_reset(board, reset)
    cmd = _mpremote_cmd(mpremote)
    _check_port(port)
    with tempfile.TemporaryDirectory(prefix="netedge-prov-") as tmp:
        try:
            out = FW.build(board, out=os.path.join(tmp, "fw"))
        except FW.BuildError as e:
            raise ProvisionError("firmware build failed: %s" % e)
        t_build = time.monotonic() - t0
        image = os.path.join(out, FW.ROMFS)
        rom = _deploy_rom(cmd, port, image, resume, timeout, progress) if romfs else None
        files = []
        for root, _, names in os.walk(out):
            for name in sorted(names):
                local = os.path.join(root, name)
                remote = os.path.relpath(local, out).replace(os.sep, "/")
                if local != image and not (romfs and remote.startswith(LIB + "/")):
                    files.append((local, remote))
        files.sort(key=lambda f: (f[1].count("/") == 0, f[1]))  # lib first, main.py last-ish
        dirs = set()
        for _, r in files:
            parts = r.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                dirs.add("/".join(parts[:i]))
        dirs = sorted(dirs, key=lambda d: (d.count("/"), d))
        files.append((_write_json(tmp, "netedge.json", cfg), "netedge.json"))
        if slots is not None:
            files.append((_write_json(tmp, "keys.json", slots), "keys.json"))

        # 1. inventory: folders created, what is there already
        head = ["resume"] if resume else []
        lines = _Run(cmd, port, head + ["exec", _remote_script([r for _, r in files], dirs)],
                     _timeout(0, timeout)).run()
        before = _parse_inventory(port, lines)
        t_inv = time.monotonic() - t0 - t_build
        todo, same = [], []
        for local, remote in files:
            got = before.get(remote)
            if isinstance(got, str) and got == _sha(local):
                same.append(remote)
            elif isinstance(got, int) and got == os.path.getsize(local) and remote.startswith(LIB):
                same.append(remote)  # a board without hashlib: same size, same compiled module
            else:
                todo.append((local, remote))
        wanted = set(r for _, r in files)
        stale = sorted(p for p in before if p.startswith(LIB + "/") and p not in wanted)

        # 2. copy what differs, remove stale modules, verify everything (+ reset)
        if progress:
            progress(0, len(todo), "connecting to %s" % port)
        after = _upload(cmd, port, todo, files, resume, do_reset, timeout, progress, stale, drop_lib=romfs)
        written = sum(os.path.getsize(lp) for lp, _ in todo)
        total = sum(os.path.getsize(lp) for lp, _ in files)
        rom = {"bytes": os.path.getsize(image), "verified": rom} if romfs else None
    shown = json.loads(json.dumps(cfg))
    if "password" in shown["broker"]:
        shown["broker"]["password"] = "***"
    if "wifi" in shown and "password" in shown["wifi"]:
        shown["wifi"]["password"] = "***"
    return {
        "port": port, "board": board, "node_id": node_id,
        "files": sorted(wanted), "copied": [r for _, r in todo], "unchanged": same, "removed": stale,
        "bytes_written": written, "bytes_total": total,
        "verified": "sha256" if all(isinstance(after.get(r), str) for r in wanted) else "size",
        "keys": "written (%d slots)" % len(slots) if slots is not None else "untouched",
        "romfs": rom,
        "reset": do_reset, "config": shown,
        "seconds": {"build": round(t_build, 2), "inventory": round(t_inv, 2),
                    "total": round(time.monotonic() - t0, 2)},
    }


def push_keys(port, keys, progress=None, mpremote=None, resume=True, reset=False, timeout=None):
    """Rewrite only `keys.json` on the board (the gateway does this when it deploys a daemon there).

    reset=True hard-resets the board afterwards: needed on a real board, whose running node the
    mpremote connection interrupts; a running node can also re-read the file on its own command."""
    t0 = time.monotonic()
    slots = check_keys(keys)
    cmd = _mpremote_cmd(mpremote)
    _check_port(port)
    with tempfile.TemporaryDirectory(prefix="netedge-keys-") as tmp:
        path = _write_json(tmp, "keys.json", slots)
        _upload(cmd, port, [(path, "keys.json")], [(path, "keys.json")], resume, reset, timeout, progress)
    return {"port": port, "keys": len(slots), "file": "keys.json", "reset": bool(reset),
            "seconds": round(time.monotonic() - t0, 2)}
