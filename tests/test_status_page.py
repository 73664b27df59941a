"""The live status page (`netedge gateway --http`): rendering from a store with fixture rows, the
in-process server's routes, and headless Chromium watching a real migration."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

import pytest

from netedge.gateway import http as H
from netedge.gateway.store import Store
from netedge.gateway.control.state import MigratedRecord, MigrationState

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARTIFACTS = os.path.join(REPO, "test-artifacts")
CHROMIUM = shutil.which("chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ORIGIN = 0x1234abcd


# -- rendering, no browser ------------------------------------------------------------------------

@pytest.fixture
def store(tmp_path):
    st = Store(str(tmp_path / "netedge.db"))
    st.upsert_node("n1", "online", {"board": "unix<script>", "heap": 90000, "kinds": ["counter"],
                                    "daemons": [{"origin": ORIGIN}]}, last_seen=time.time())
    st.upsert_node("n2", "suspect", {"board": "esp32", "heap": 120000}, last_seen=time.time() - 3)
    st.add_daemon(ORIGIN, "counter", b"k" * 32, host_node="n1", epoch=1, status="active")
    st.add_daemon(0x00000001, "echo&co", b"j" * 32, host_node="n2", epoch=2, status="active")
    st.save_state(ORIGIN, MigrationState(m=7, origin=ORIGIN, kind="counter", source="n1", target="n2", epoch=1,
                                         step="replay", at=time.time(), tries=0, phases=[], client=None, rid=None,
                                         started=time.time()))
    st.save_state(1, MigratedRecord(kind="Migrated", migration_seq=42, source_node="n1", target_node="n2", m=3,
                                    at=time.time() - 1))
    st.add_record("discontinuity", ORIGIN, b"\xff<not cbor>", b"s" * 64, b"\x01" * 32)
    yield st
    st.close()


def test_phase_mapping_follows_the_superposition_module():
    assert H.superposition_phase(None) is None
    assert H.superposition_phase("snapshot") == "Localized"
    assert H.superposition_phase("transfer") == H.superposition_phase("restore") == "Spreading"
    assert H.superposition_phase("replay") == "Superposed"
    assert H.superposition_phase("cutover") == "Collapsed"
    assert H.superposition_phase("complete") == "Resolved"
    assert H.superposition_phase("warp") == "Unknown(warp)"
    assert H.parse_bind(":8080") == ("127.0.0.1", 8080)
    assert H.parse_bind("8080") == ("127.0.0.1", 8080)
    assert H.parse_bind("0.0.0.0:9") == ("0.0.0.0", 9)
    assert H.parse_bind("[::1]:80") == ("::1", 80)
    for bad in (":http", "1:99999", None):
        with pytest.raises(ValueError):
            H.parse_bind(bad)


def test_render_from_fixture_rows(store):
    hist = H.History()
    hist.sample(store)
    snap = H.build_status(store, hist)
    json.dumps(snap)  # /api/status is plain JSON
    a, b = {d["origin"]: d for d in snap["daemons"]}["%08x" % ORIGIN], {d["origin"]: d for d in snap["daemons"]}["00000001"]
    assert (a["phase"], a["migration"]["step"], a["migrated"]) == ("Superposed", "replay", None)
    assert (b["phase"], b["migrated"]) == (None, "Migrated{migration_seq=42, source=n1, target=n2}")
    assert [m["kind"] for m in hist.get()["00000001"]["markers"]] == ["migration"]
    assert snap["records"][0]["summary"].startswith("UNDECODABLE")
    page = H.render_page(snap, "gw<1>")
    assert page.count("<script>") == 1 and "unix<script>" not in page  # only the page's own script
    assert "unix&lt;script&gt;" in page and "echo&amp;co" in page and "gw&lt;1&gt;" in page
    assert re.search(r'<tr id="daemon-%08x"[^>]* data-phase="Superposed"' % ORIGIN, page)
    assert 'data-migrated="Migrated{migration_seq=42, source=n1, target=n2}"' in page
    assert 'id="node-n2" data-node="n2" data-status="suspect"' in page
    assert '<svg class="chain" data-origin="00000001"' in page and 'class="marker migration"' in page
    assert 'data-kind="discontinuity"' in page


def _get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.headers.get("Content-Type"), r.read()


def test_server_routes(store):
    srv = H.StatusServer(store.path, "127.0.0.1:0", gateway_id="gw1", sample_s=0.1).start()
    try:
        code, ctype, body = _get(srv.url)
        assert code == 200 and ctype.startswith("text/html") and b'data-phase="Superposed"' in body
        code, ctype, body = _get(srv.url + "api/status")
        snap = json.loads(body)
        assert ctype == "application/json" and {d["origin"] for d in snap["daemons"]} == {"%08x" % ORIGIN, "00000001"}
        with urllib.request.urlopen(srv.url + "events", timeout=5) as r:
            assert r.headers.get("Content-Type") == "text/event-stream"
            data = [r.readline() for _ in range(6)]
        ev = json.loads(next(x for x in data if x.startswith(b"data: "))[6:])
        assert set(ev["html"]) == {"nodes", "daemons", "groups", "records", "chains", "updated"}
        assert 'data-phase="Superposed"' in ev["html"]["daemons"]
        with pytest.raises(urllib.error.HTTPError) as ex:
            _get(srv.url + "nope")
        assert ex.value.code == 404
    finally:
        srv.stop()


# -- headless Chromium against a real gateway while a migration runs --------------------------

needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (CI installs Debian's "
                                                             "`chromium` package in .ci/run)")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chromium(*args, timeout=30):
    with tempfile.TemporaryDirectory(prefix="chromium-") as prof:
        res = subprocess.run([CHROMIUM] + CHROMIUM_FLAGS + ["--user-data-dir=" + prof] + list(args),
                             capture_output=True, timeout=timeout)
    return res


class Dumper:
    """Launches `chromium --dump-dom URL` every `every` s (up to `limit` in flight, since one run
    takes longer than the period) and keeps the DOMs in arrival order."""

    def __init__(self, url, every=0.1, limit=1):
        self.url, self.every, self.limit, self.sem = url, every, limit, threading.Semaphore(limit)
        self.doms = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _one(self):
        try:
            res = chromium("--dump-dom", self.url)
            with self.lock:
                self.doms.append((time.monotonic(), res.stdout.decode(errors="replace")))
        finally:
            self.sem.release()

    def _run(self):
        while not self.stop.is_set():
            self.sem.acquire()
            threading.Thread(target=self._one, daemon=True).start()
            self.stop.wait(self.every)

    def close(self):
        """Stop launching and let the run in flight finish (it removes its profile folder)."""
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(5)
        for _ in range(self.limit):
            if self.sem.acquire(timeout=35):
                self.sem.release()

    def wait(self, cond, timeout, what):
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            with self.lock:
                new, seen = self.doms[seen:], len(self.doms)
            for _, dom in new:
                m = cond(dom)
                if m:
                    return m
            time.sleep(0.05)
        with self.lock:
            last = self.doms[-1][1] if self.doms else "(no DOM dumped)"
        raise AssertionError("timed out waiting for %s; last DOM:\n%s" % (what, last[-3000:]))


def daemon_row(dom, origin):
    m = re.search(r'<tr id="daemon-%08x"[^>]*>' % origin, dom)
    return m.group(0) if m else None


def attr(tag, name):
    m = re.search(r'\b%s="([^"]*)"' % name, tag or "")
    return m.group(1) if m else None


def hold_target(c, origin, proc, hold_s, timeout=30):
    st = c.gw.store()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = st.load_state(MigrationState, origin)
            if m is not None and m.step in ("snapshot", "transfer", "restore"):  # the target is not needed yet
                proc.send_signal(signal.SIGSTOP)
                try:
                    time.sleep(hold_s)
                finally:
                    proc.send_signal(signal.SIGCONT)
                return
            time.sleep(0.005)
    finally:
        st.close()


@needs_chromium
def test_chromium_watches_a_migration(tmp_path, firmware):
    from cluster import Cluster, Stream, check_chain, deploy

    port = _free_port()

    # (the firmware from the ROM partition, as a board runs it: from lib/, a 64-bit node at 96K
    # has ~6 KB left with a frozen daemon's buffer and its kept events, too little for the release)
    c = Cluster(tmp_path, firmware, ["n1", "n2"], http=":%d" % port, romfs=True)
    url = "http://127.0.0.1:%d/" % port
    dumper = None
    try:
        a = deploy(c.cfg, "counter", "n1")
        assert daemon_row(chromium("--dump-dom", url).stdout.decode(), a), "the page does not list %08x" % a
        # inputs keep flowing through the migration, slowly enough that the buffers (64 inputs on
        # the frozen source / holding target, firmware/migrate.py MIG_CAP) survive the held target
        n = 200
        s = Stream(c.obs, a, 1, n, rate=25)
        s.start()
        c.wait_events(a, 50)
        dumper = Dumper(url)
        dumper.thread.start()
        # A migration on idle unix-port nodes can finish between two Chromium runs (~0.6 s each), so
        # the test makes the target slow: SIGSTOP it as the source freezes (before the restore), for
        # less than the heartbeat deadline (1.5 s, so it is not declared suspect), then SIGCONT.
        slow = threading.Thread(target=hold_target, args=(c, a, c.nodes["n2"].proc, 1.0), daemon=True)
        slow.start()
        result = {}
        mig = threading.Thread(target=lambda: result.update(out=c.migrate(a, "n2").stdout), daemon=True)
        mig.start()

        def in_superposition(dom):
            row = daemon_row(dom, a)
            phase = attr(row, "data-phase")
            return phase if phase and phase != "Resolved" else None
        phase = dumper.wait(in_superposition, 60, "a superposition phase on the page")
        print("page showed %08x in phase %s" % (a, phase))
        assert phase in ("Localized", "Spreading", "Superposed", "ReadyToCollapse", "Collapsed"), phase

        want = "Migrated{migration_seq="

        def migrated(dom):
            row = daemon_row(dom, a)
            m = attr(row, "data-migrated") or ""
            return m if m.startswith(want) and attr(row, "data-phase") == "" else None
        final = dumper.wait(migrated, 60, "the Migrated status on the page")
        assert final.endswith(", source=n1, target=n2}"), final
        dumper.close()
        slow.join(10)
        mig.join(60)
        assert "migrated %08x from n1 to n2" % a in result.get("out", ""), result
        s.join(60)
        assert s.error is None and not s.is_alive()
        c.wait_events(a, n)
        check_chain(c, a, n, 2, "n2")

        dom = chromium("--dump-dom", url).stdout.decode()
        row = daemon_row(dom, a)
        assert attr(row, "data-host") == "n2" and attr(row, "data-epoch") == "2" and attr(row, "data-head") == str(n)
        assert attr(row, "data-continuity") == "Continuous"
        assert re.search(r'<svg class="chain" data-origin="%08x".*?class="marker migration"' % a, dom, re.S), \
            "the chain picture does not mark the migration"
        # (the live swap from /events is not checked here: --virtual-time-budget never settles with
        # an open event stream; test_server_routes checks the stream and its fragments)

        os.makedirs(ARTIFACTS, exist_ok=True)
        png = os.path.join(ARTIFACTS, "status-page.png")
        if os.path.exists(png):
            os.remove(png)
        res = chromium("--screenshot=" + png, "--window-size=1200,900", "--hide-scrollbars", url)
        assert os.path.exists(png), res.stderr.decode(errors="replace")[-2000:]
        with open(png, "rb") as f:
            head = f.read(8)
        assert head == b"\x89PNG\r\n\x1a\n" and os.path.getsize(png) > 10000, os.path.getsize(png)
    except Exception:
        print(c.gw.output()[-5000:])
        raise
    finally:
        if dumper is not None:
            dumper.close()
        c.close()
