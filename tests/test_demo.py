"""`netedge demo` run exactly as a user runs it: the installed console script, in a subprocess,
nothing else started for it (its embedded broker), then against the tests' Mosquitto.  It must
exit 0 after printing every scenario step and the summary, and never leave a process behind:
not on success, not on a failing step, not on Ctrl-C, not even when it is killed with -9."""
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import paho.mqtt.client as paho
import pytest

from netedge.tools.demo import SCENARIO

NETEDGE = os.path.join(os.path.dirname(sys.executable), "netedge")


def demo(*args, cwd, timeout=300):
    return subprocess.run([NETEDGE, "demo"] + list(args), capture_output=True, text=True, timeout=timeout, cwd=cwd)


def heading(i, fn):
    return "[%d/%d] %s%s" % (i, len(SCENARIO), fn.title[0].upper(), fn.title[1:])


def node_pids(out):
    return [int(p) for p in re.findall(r"micropython -X heapsize=\S+, pid (\d+)", out)]


def gone(pid, within=5.0):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # a zombie is gone too: its parent has not reaped it yet
        try:
            with open("/proc/%d/stat" % pid) as f:
                if f.read().split(")")[-1].split()[0] == "Z":
                    return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


def check_success(res):
    out = res.stdout
    assert res.returncode == 0, out + res.stderr
    for i, fn in enumerate(SCENARIO, 1):
        assert heading(i, fn) + "\n" in out, "missing step line %r in:\n%s" % (heading(i, fn), out)
        # the summary row: number, title, ok, the measured time, a result
        assert re.search(r"^  %d\s+%s\s+ok\s+\d+(\.\d+)? m?s  \S" % (i, re.escape(fn.title)), out, re.M), out
    assert "SUMMARY" in out and "%d of %d steps passed in " % (len(SCENARIO), len(SCENARIO)) in out
    assert "FAILED" not in out
    assert re.search(r"VALID: \d+ links walked", out) and "Continuous{" in out and "Migrated{migration_seq=" in out
    pids = node_pids(out)
    assert len(pids) == 3 and all(gone(p) for p in pids), pids
    work = re.search(r"^work folder: (\S+)$", out, re.M).group(1)
    assert not os.path.exists(work), "the work folder %s was left behind" % work
    return out


def test_demo_embedded_broker(tmp_path):
    out = check_success(demo(cwd=tmp_path))
    assert "embedded broker (amqtt, in this process)" in out
    assert "500/500 exactly once, in order" in out
    print(out)


def test_demo_with_mosquitto(tmp_path, mosquitto):
    out = check_success(demo("--broker", "mqtt://127.0.0.1:%d" % mosquitto.port, "--inputs", "300", cwd=tmp_path))
    assert "broker at mqtt://127.0.0.1:%d" % mosquitto.port in out
    names = re.findall(r"^      (d[0-9a-f]{4}-n[123]) online", out, re.M)
    assert len(names) == 3, out  # names of this run only: a shared broker has real n1, n2, n3
    # and the shared broker is left as it was: no retained status of ours stays behind
    retained = []
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="check-retained", clean_session=True)
    c.on_message = lambda cl, u, m: retained.append(m.topic) if m.retain else None
    c.connect("127.0.0.1", mosquitto.port)
    c.loop_start()
    try:
        c.subscribe("ne/v1/#", qos=1)
        time.sleep(1.0)
    finally:
        c.loop_stop()
        c.disconnect()
    assert retained == [], retained


def test_demo_failing_step_stops_everything(tmp_path):
    # a broker that is not there: the gateway cannot start; the step says so, the rest is not run
    from netedge.gateway.broker import free_port
    res = demo("--broker", "mqtt://127.0.0.1:%d" % free_port(), cwd=tmp_path, timeout=120)
    assert res.returncode == 1, res.stdout + res.stderr
    out = res.stdout
    assert re.search(r"FAILED after .*: cannot start the gateway with the broker at mqtt://127\.0\.0\.1:\d+", out), out
    assert re.search(r"^  2\s+start the broker and the gateway\s+FAILED", out, re.M), out
    assert re.search(r"^  3\s+boot 3 virtual boards\s+not run", out, re.M), out
    assert "netedge demo: step 2 (start the broker and the gateway) failed" in out
    work = re.search(r"^work folder: (\S+)$", out, re.M).group(1)
    assert os.path.isdir(work)  # kept for its logs, as the message says
    shutil.rmtree(work)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_demo_interrupted_leaves_no_process(tmp_path, sig):
    """Ctrl-C: the demo stops its nodes and exits 130.  kill -9 gives it no chance to: the nodes
    were started to die with it (PR_SET_PDEATHSIG)."""
    p = subprocess.Popen([NETEDGE, "demo", "--rate", "50"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, cwd=tmp_path)
    out = []
    try:
        for line in p.stdout:  # until the stream runs: nodes, gateway and broker all up
            out.append(line)
            if line.startswith("[5/"):
                break
        text = "".join(out)
        pids = node_pids(text)
        assert len(pids) == 3, text
        p.send_signal(sig)
        rest = p.stdout.read()
        rc = p.wait(30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert all(gone(pid) for pid in pids), (pids, text + rest)
    work = re.search(r"^work folder: (\S+)$", text, re.M).group(1)
    if sig == signal.SIGINT:
        assert rc == 130, text + rest
        assert "interrupted, stopping everything" in rest and "SUMMARY" in rest, rest
        assert not os.path.exists(work)
    else:
        assert rc == -signal.SIGKILL
        shutil.rmtree(work, ignore_errors=True)


def test_demo_keep_leaves_it_running_to_explore(tmp_path):
    """--keep: after the summary the printed commands work against the running system, the
    status page answers, and Ctrl-C then stops it all (exit 0), keeping the work folder."""
    import urllib.request
    p = subprocess.Popen([NETEDGE, "demo", "--keep", "--inputs", "100"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    out = []
    try:
        for line in p.stdout:
            out.append(line)
            if line.startswith("  the boards' flash folders"):
                break
        text = "".join(out)
        assert "Everything keeps running (--keep) until Ctrl-C" in text, text
        status = re.search(r"^  (\S+ status --config \S+)$", text, re.M).group(1).split()
        res = subprocess.run(status, capture_output=True, text=True, timeout=60)
        assert res.returncode == 0 and "Continuous{" in res.stdout and "host=n2" in res.stdout, res.stdout + res.stderr
        trace = re.search(r"^  (\S+ trace --config \S+)$", text, re.M).group(1).split()
        res = subprocess.run(trace + ["--count", "1", "--timeout", "20"], capture_output=True, text=True, timeout=60)
        assert res.returncode == 0 and "STATUS" in res.stdout, res.stdout + res.stderr
        url = re.search(r"^  status page: (\S+)$", text, re.M).group(1)
        with urllib.request.urlopen(url, timeout=10) as r:
            assert r.status == 200 and b"daemon-" in r.read()
        pids = node_pids(text)
        p.send_signal(signal.SIGINT)
        rest = p.stdout.read()
        assert p.wait(30) == 0, text + rest
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert all(gone(pid) for pid in pids), pids
    work = re.search(r"^work folder kept: (\S+)$", rest, re.M).group(1)
    assert os.path.exists(os.path.join(work, "netedge.toml"))
    shutil.rmtree(work)
