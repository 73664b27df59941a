import os
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


def run_micropython(script, *args, heap="96K", timeout=120, cwd=None):
    return subprocess.run([micropython_cmd(), "-X", "heapsize=" + heap, script, *args],
                          capture_output=True, text=True, timeout=timeout, cwd=cwd)


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
