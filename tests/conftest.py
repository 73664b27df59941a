import os
import pathlib
import subprocess
import sys

import pytest

from netedge.tools.fleet import micropython_cmd  # noqa: F401  (tests import it from here)

TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS)
sys.path.insert(0, TESTS)  # tests/golden checkers


@pytest.fixture(scope="session")
def micropython():
    return micropython_cmd()


@pytest.fixture(scope="session")
def mp_staged():
    from netedge.tools.mpstage import stage
    return stage()


# What the MicroPython unix ports (PyPI's, and the 32-bit one tools/build_micropython32.sh builds)
# print when bytes meet str in ==, `in` or a dict lookup: always False, and silently so on a board,
# where it hides a bug.  No run may print it.
BYTES_STR = "Comparison between bytes and str"


def assert_no_bytes_str_warning(text, where):
    assert BYTES_STR not in text, "%s printed %r %d times" % (where, BYTES_STR, text.count(BYTES_STR))


def run_micropython(script, *args, heap="96K", timeout=120, cwd=None):
    res = subprocess.run([micropython_cmd(), "-X", "heapsize=" + heap, script, *args],
                         capture_output=True, text=True, timeout=timeout, cwd=cwd)
    assert_no_bytes_str_warning(res.stdout + res.stderr, os.path.basename(script))
    return res


@pytest.fixture(autouse=True)
def no_bytes_str_warning_in_logs(request):
    """After each test: no log in its tmp_path (a virtual board's node.log, ...) holds BYTES_STR."""
    yield
    tmp = request.node.funcargs.get("tmp_path")
    if tmp is None:
        return
    for log in pathlib.Path(tmp).rglob("*.log"):
        if log.is_file():
            assert_no_bytes_str_warning(log.read_text(errors="replace"), str(log))


@pytest.fixture
def mosquitto(tmp_path):
    """A private Mosquitto (anonymous, TCP_NODELAY, no persistence) on a free 127.0.0.1 port.
    Build others with `tests/mosquitto.py` directly (passwords, ACL, persistence)."""
    from mosquitto import Mosquitto
    broker = Mosquitto(tmp_path / "mosquitto").start()
    try:
        yield broker
    finally:
        broker.kill()


@pytest.fixture(scope="session")
def firmware(tmp_path_factory):
    """The node firmware compiled to .mpy once per test session (what a board runs)."""
    from netedge.tools.firmware import build
    return build("unix", str(tmp_path_factory.mktemp("fw") / "unix"))
