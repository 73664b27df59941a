"""Test harness for a real gateway process (`netedge gateway --config ...`)."""
import os
import signal
import subprocess
import sys
import time

from netedge.gateway.store import Store
from netedge.tools.fleet import write_gateway_config

NETEDGE = [sys.executable, "-m", "netedge.gateway.cli"]


def write_config(path, broker, nodes, gw_id="gw1", embedded=False, deadline_ms=1500, http=None, gateway=None,
                 username=None, password=None):
    return write_gateway_config(path, "mqtt://%s:%d" % (broker.host, broker.port), nodes, gw_id=gw_id,
                                embedded=embedded, deadline_ms=deadline_ms, http=http, gateway=gateway,
                                username=username, password=password)


def cli(config, *args, timeout=60, check=True):
    res = subprocess.run(NETEDGE + list(args) + ["--config", str(config)], capture_output=True, text=True,
                         timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError("netedge %s failed (%d): %s%s" % (" ".join(args), res.returncode, res.stdout, res.stderr))
    return res


class GatewayProc:
    def __init__(self, config):
        self.config = str(config)
        self.dir = os.path.dirname(self.config)
        self.proc = None
        self.log_path = os.path.join(self.dir, "gateway.log")

    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(NETEDGE + ["gateway", "--config", self.config], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        return self

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
        if self.proc:
            self.proc.wait(10)
            self.log.close()
        self.proc = None

    def terminate(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
        self.kill()

    def output(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def store(self):
        return Store(os.path.join(self.dir, "data", "netedge.db"))

    def wait_for(self, cond, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            if os.path.exists(os.path.join(self.dir, "data", "netedge.db")):
                st = self.store()
                try:
                    if cond(st):
                        return
                finally:
                    st.close()
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting for %s; gateway log:\n%s" % (what, self.output()[-3000:]))
            time.sleep(0.1)


def deploy(config, kind, node):
    """`netedge daemon deploy` through the running gateway; returns the new daemon's origin."""
    import re
    out = cli(config, "daemon", "deploy", "--kind", kind, "--node", node).stdout
    m = re.search(r"deployed ([0-9a-f]{8})", out)
    assert m, out
    return int(m.group(1), 16)
