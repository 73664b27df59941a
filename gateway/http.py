"""The live status page: `netedge gateway --http :8080` (or `[gateway] http = ":8080"`).

A read-only view of the gateway's store, served by the stdlib (`http.server`, one
ThreadingHTTPServer in a daemon thread): no build toolchain, no external assets.

  /             server-rendered HTML: nodes, daemons (host, epoch, chain head, ContinuityStatus,
                the SuperpositionPhase while a migration runs, Migrated{...} afterwards), recent
                signed records and a chain-health picture (an inline SVG per daemon: head sequence
                over time, completed migrations and epoch changes marked).
  /events       Server-Sent Events: every 0.5 s the /api/status JSON plus the page's fragments
                rendered server-side (`html`); the page's few lines of JS swap them in, so the
                escaping and layout live in one place (here).
  /api/status   the same snapshot as JSON.

Bind address: "HOST:PORT", ":PORT" or "PORT"; a bare port listens on 127.0.0.1 only (the page
has no authentication: expose it deliberately, e.g. "0.0.0.0:8080").  Port 0 picks a free port.

The server opens its own Store on the database file (the gateway's writes go through another
connection; WAL lets it read meanwhile) and never writes.  The chain-health history is a ring of
samples taken by a sampler thread every 0.5 s while the page is served (the store keeps no head
history); migration markers come from the last completed migration the store records
(`migrated:<origin>`, time `at`) and epoch changes the sampler sees (migration cutovers and
promotions).  The history starts when the gateway starts.
"""
import collections
import html
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ..shared import phases as P
from ..shared import records as R
from ..shared import superposition as SP
from .control.state import MigratedRecord, MigrationState
from .status_view import snapshot
from .store import Store

log = logging.getLogger("netedge.gateway.http")

SAMPLE_S = 0.5
HISTORY = 240               # samples kept per daemon: two minutes at 0.5 s
RECENT_RECORDS = 20
DEFAULT_HOST = "127.0.0.1"

# The orchestrator's persisted step is its phase's name (gateway/control/migration.py PHASES:
# shared/phases.py's names in lower case); the SuperpositionPhase is then shared/superposition.py's
# mapping.  "request": the instant before the first phase.
STEP_TO_MIGRATION_PHASE = dict({name.lower(): n for n, name in enumerate(P.MIGRATION_PHASE_NAMES)},
                               request=P.SNAPSHOT)


def parse_bind(spec):
    """"HOST:PORT" | ":PORT" | "PORT" -> (host, port); a bare port binds 127.0.0.1."""
    if isinstance(spec, int) and not isinstance(spec, bool):
        host, port = "", str(spec)
    elif isinstance(spec, str):
        host, sep, port = spec.strip().rpartition(":")
        if not sep:
            host, port = "", spec.strip()
    else:
        raise ValueError("http must be \"HOST:PORT\" or \":PORT\", got %r" % (spec,))
    host = host.strip("[]") or DEFAULT_HOST
    try:
        p = int(port)
    except ValueError:
        raise ValueError("http %r: the port must be a number (e.g. \":8080\")" % (spec,))
    if not 0 <= p <= 65535:
        raise ValueError("http %r: port out of range" % (spec,))
    return host, p


def superposition_phase(step):
    """The SuperpositionPhase name for an orchestrator step, or None (not migrating)."""
    if step is None:
        return None
    mp = STEP_TO_MIGRATION_PHASE.get(step)
    if mp is None:
        return "Unknown(%s)" % step
    return SP.phase_name(SP.from_migration(mp))


def migrated_text(m):
    return "Migrated{migration_seq=%s, source=%s, target=%s}" % (m["migration_seq"], m["source_node"],
                                                                m["target_node"])


def continuity_text(c):
    fields = ", ".join("%s=%s" % (k, c[k]) for k in sorted(c) if k != "kind")
    return "%s{%s}" % (c.get("kind"), fields)


def record_rows(store, limit=RECENT_RECORDS):
    from .records import envelope_of, summary
    rows = []
    for rec in store.records()[-limit:][::-1]:
        try:
            kind, body, _, _, _ = R.decode_signed(envelope_of(rec))
            text = summary(kind, body)
        except Exception as e:  # evidence is shown as stored, even when it does not decode
            text = "UNDECODABLE: %s" % e
        rows.append({"id": rec.id, "kind": rec.kind, "origin": "%08x" % rec.origin, "created": rec.created,
                     "signer": rec.signer.hex()[:16], "summary": text})
    return rows


class History:
    """Head sequence samples per daemon, plus markers (migrations, epoch changes)."""

    def __init__(self, size=HISTORY, clock=time.time):
        self.size = size
        self.clock = clock
        self.samples = {}     # origin hex -> deque[(t, seq)]
        self.markers = {}     # origin hex -> deque[{t, kind, label}]
        self._epochs = {}
        self._migrations = {}
        self._promotions = {}
        self.lock = threading.Lock()

    def sample(self, store):
        now = self.clock()
        snap = snapshot(store)
        groups = {"%08x" % g["origin"]: g for g in snap["groups"]}
        with self.lock:
            for d in snap["daemons"]:
                o = d["origin"]
                self.samples.setdefault(o, collections.deque(maxlen=self.size)).append((round(now, 2), d["head_seq"]))
                marks = self.markers.setdefault(o, collections.deque(maxlen=32))
                last_epoch = self._epochs.get(o)
                if last_epoch is not None and d["epoch"] != last_epoch:
                    marks.append({"t": round(now, 2), "kind": "epoch",
                                  "label": "epoch %d -> %d" % (last_epoch, d["epoch"])})
                self._epochs[o] = d["epoch"]
                g = groups.get(o)
                p = g["last_promotion"] if g else None
                if p is not None and self._promotions.get(o) != p["at"]:
                    self._promotions[o] = p["at"]
                    marks.append({"t": round(p["at"], 2), "kind": "promotion",
                                  "label": "promoted %s (%s -> %s) epoch %d" % (p["to"], p["from"], p["to"], p["epoch"])})
                done = store.load_state(MigratedRecord, int(o, 16))
                if done is not None and self._migrations.get(o) != done.m:
                    self._migrations[o] = done.m
                    marks.append({"t": round(done.at, 2), "kind": "migration",
                                  "label": "%s -> %s at seq %s" % (done.source_node, done.target_node,
                                                                   done.migration_seq)})

    def get(self):
        with self.lock:
            return {o: {"samples": [list(s) for s in self.samples[o]],
                        "markers": list(self.markers.get(o, ()))} for o in self.samples}


def build_status(store, history=None, clock=time.time):
    """The page's data: `netedge status`'s snapshot plus phases, Migrated text, records, history."""
    snap = snapshot(store)
    for d in snap["daemons"]:
        st = store.load_state(MigrationState, int(d["origin"], 16)) if d["migrating"] else None
        d["phase"] = superposition_phase(d["migrating"])
        d["migration"] = None if st is None else {"m": st.m, "source": st.source, "target": st.target,
                                                  "step": st.step}
        d["continuity_text"] = continuity_text(d["continuity"])
        d["migrated"] = None if d["last_migration"] is None else migrated_text(d["last_migration"])
    snap["records"] = record_rows(store)
    snap["history"] = history.get() if history is not None else {}
    snap["now"] = round(clock(), 2)
    return snap


# -- rendering ---------------------------------------------------------------------------------

def e(x):
    return html.escape("" if x is None else str(x), quote=True)


def render_nodes(snap):
    rows = ["<tr><th>node</th><th>status</th><th>board</th><th>heap</th><th>daemons</th><th>seen</th></tr>"]
    for n in snap["nodes"]:
        rows.append('<tr id="node-%s" data-node="%s" data-status="%s"><td>%s</td><td class="st-%s">%s</td>'
                    "<td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>" % (
                        e(n["node"]), e(n["node"]), e(n["status"]), e(n["node"]), e(n["status"]), e(n["status"]),
                        e(n["board"] or "-"), e(n["heap"]), e(n["daemons"]),
                        "-" if n["seen_s_ago"] is None else e("%ss ago" % n["seen_s_ago"])))
    if not snap["nodes"]:
        rows.append('<tr><td colspan="6" class="none">no nodes yet: they appear with their first heartbeat</td></tr>')
    return "".join(rows)


def render_daemons(snap):
    rows = ["<tr><th>origin</th><th>kind</th><th>host</th><th>epoch</th><th>status</th><th>head</th>"
            "<th>continuity</th><th>superposition</th><th>last migration</th></tr>"]
    for d in snap["daemons"]:
        o = e(d["origin"])
        mig = d["migration"]
        phase = ('<span class="phase">%s</span> <small>(%s %s&rarr;%s)</small>' % (
            e(d["phase"]), e(mig["step"]), e(mig["source"]), e(mig["target"])) if mig else e(d["phase"] or "-"))
        rows.append(
            '<tr id="daemon-%s" data-origin="%s" data-host="%s" data-epoch="%s" data-head="%s" '
            'data-continuity="%s" data-phase="%s" data-migrated="%s">'
            "<td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td>"
            '<td class="cont" title="%s">%s</td><td id="phase-%s">%s</td><td id="migrated-%s">%s</td></tr>' % (
                o, o, e(d["host"]), e(d["epoch"]), e(d["head_seq"]), e(d["continuity"].get("kind")),
                e(d["phase"] or ""), e(d["migrated"] or ""),
                o, e(d["kind"]), e(d["host"]), e(d["epoch"]), e(d["status"]), e(d["head_seq"]),
                e(d["continuity_text"]), e(d["continuity"].get("kind")), o, phase, o, e(d["migrated"] or "-")))
    if not snap["daemons"]:
        rows.append('<tr><td colspan="9" class="none">no daemons</td></tr>')
    return "".join(rows)


def render_records(snap):
    rows = ["<tr><th>id</th><th>kind</th><th>origin</th><th>created</th><th>signer</th><th>summary</th></tr>"]
    for r in snap["records"]:
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["created"]))
        rows.append('<tr id="record-%s" data-record="%s" data-kind="%s"><td>%s</td><td>%s</td><td>%s</td><td>%s</td>'
                    "<td><code>%s</code></td><td>%s</td></tr>" % (
                        e(r["id"]), e(r["id"]), e(r["kind"]), e(r["id"]), e(r["kind"]), e(r["origin"]), e(created),
                        e(r["signer"]), e(r["summary"])))
    if not snap["records"]:
        rows.append('<tr><td colspan="6" class="none">no discontinuity or fork records</td></tr>')
    return "".join(rows)


def render_chain_svg(origin, hist, now, span=None, w=560, h=110):
    """Head sequence over the sampled window (10 s .. 2 min); migrations (blue) and epoch changes
    (orange dashed) as vertical lines."""
    pad_l, pad_r, pad_t, pad_b = 46, 8, 8, 18
    if span is None:
        first = hist["samples"][0][0] if hist.get("samples") else now
        span = int(min(HISTORY * SAMPLE_S, max(10.0, now - first + 1)))
    samples = [s for s in hist.get("samples", []) if s[0] >= now - span]
    top = max([s[1] for s in samples] + [1])
    t0 = now - span

    def x(t):
        return pad_l + (w - pad_l - pad_r) * max(0.0, min(1.0, (t - t0) / span))

    def y(seq):
        return h - pad_b - (h - pad_t - pad_b) * seq / top
    parts = ['<svg class="chain" data-origin="%s" width="%d" height="%d" viewBox="0 0 %d %d" role="img" '
             'aria-label="chain head of %s over time">' % (e(origin), w, h, w, h, e(origin)),
             '<rect x="%d" y="%d" width="%d" height="%d" class="plot"/>' % (
                 pad_l, pad_t, w - pad_l - pad_r, h - pad_t - pad_b),
             '<text x="%d" y="%d" class="ax" text-anchor="end">%d</text>' % (pad_l - 4, pad_t + 9, top),
             '<text x="%d" y="%d" class="ax" text-anchor="end">0</text>' % (pad_l - 4, h - pad_b),
             '<text x="%d" y="%d" class="ax">-%ds</text>' % (pad_l, h - 4, span),
             '<text x="%d" y="%d" class="ax" text-anchor="end">now</text>' % (w - pad_r, h - 4)]
    for m in hist.get("markers", []):
        if m["t"] < t0:
            continue
        parts.append('<line class="marker %s" data-kind="%s" x1="%.1f" x2="%.1f" y1="%d" y2="%d"><title>%s</title>'
                     "</line>" % (e(m["kind"]), e(m["kind"]), x(m["t"]), x(m["t"]), pad_t, h - pad_b, e(m["label"])))
    if samples:
        pts = " ".join("%.1f,%.1f" % (x(t), y(s)) for t, s in samples)
        parts.append('<polyline class="head" points="%s"/>' % pts)
    else:
        parts.append('<text x="%d" y="%d" class="ax">no samples yet</text>' % (pad_l + 6, h // 2))
    parts.append("</svg>")
    return "".join(parts)


def render_groups(snap):
    rows = ["<tr><th>group</th><th>kind</th><th>state</th><th>members (role, keeps seq)</th><th>last sync</th>"
            "<th>last promotion</th></tr>"]
    for g in snap["groups"]:
        members = ", ".join("%s %s%s seq %s" % (n, m["role"], "" if m["up"] else " DOWN",
                                                "-" if m["seq"] is None else m["seq"])
                            for n, m in sorted(g["members"].items(), key=lambda x: (x[1]["role"] != "active", x[0])))
        p = g["last_promotion"]
        rows.append("<tr><td>%08x</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>" % (
            g["origin"], e(g["kind"]), e(g["step"]), e(members),
            e("seq %d" % g["last_sync"]["seq"] if g["last_sync"] else "-"),
            e("%s -> %s, epoch %d, %d ms (%s)" % (p["from"], p["to"], p["epoch"], p["ms"], p["why"]) if p else "-")))
    if not snap["groups"]:
        rows.append('<tr><td colspan="6" class="none">no standby groups</td></tr>')
    return "".join(rows)


def render_chains(snap):
    out = []
    for d in snap["daemons"]:
        hist = snap["history"].get(d["origin"], {})
        out.append('<div class="chainbox" id="chain-%s"><div>%s <small>%s on %s, head %s</small></div>%s</div>' % (
            e(d["origin"]), e(d["origin"]), e(d["kind"]), e(d["host"]), e(d["head_seq"]),
            render_chain_svg(d["origin"], hist, snap["now"])))
    return "".join(out) or '<p class="none">no daemons</p>'


def fragments(snap):
    return {"nodes": render_nodes(snap), "daemons": render_daemons(snap), "records": render_records(snap),
            "groups": render_groups(snap),
            "chains": render_chains(snap),
            "updated": e(time.strftime("%H:%M:%S", time.localtime(snap["now"])))}


STYLE = """
body{font:14px system-ui,sans-serif;margin:1.2em;color:#222}
h1{font-size:1.3em}h2{font-size:1.05em;margin:1.2em 0 .4em}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f2f2f2}.none{color:#888}.st-online{color:#070}.st-suspect{color:#a60}.st-offline{color:#b00}
.phase{font-weight:bold;color:#06c}.chainbox{display:inline-block;margin:0 1em 1em 0}
svg .plot{fill:#fafafa;stroke:#ccc}svg .head{fill:none;stroke:#222;stroke-width:1.5}
svg .ax{font-size:10px;fill:#666}svg .marker{stroke-width:2}svg .migration{stroke:#06c}
svg .epoch{stroke:#e80;stroke-dasharray:3 2}svg .promotion{stroke:#c00}
"""

SCRIPT = """
(function(){
  if (!window.EventSource) return;
  var n = 0, es = new EventSource("/events");
  es.onmessage = function(ev){
    var s = JSON.parse(ev.data);
    for (var k in s.html) { var el = document.getElementById(k); if (el) el.innerHTML = s.html[k]; }
    document.body.setAttribute("data-updates", String(++n));
  };
  es.onerror = function(){ document.getElementById("updated").textContent = "disconnected, retrying"; };
})();
"""


def render_page(snap, gateway_id=""):
    f = fragments(snap)
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>netedge %s status</title>"
            "<style>%s</style></head><body data-updates=\"0\">"
            "<h1>netedge gateway %s</h1><p>updated <span id=\"updated\">%s</span> "
            "<small>(live: server-sent events every %.1f s)</small></p>"
            "<h2>Nodes</h2><table id=\"nodes\">%s</table>"
            "<h2>Daemons</h2><table id=\"daemons\">%s</table>"
            "<h2>Standby groups</h2><table id=\"groups\">%s</table>"
            "<h2>Chain health</h2><p><small>head sequence over time; blue: completed migration, red: standby "
            "promotion, orange dashed: epoch change (cutover or promotion)</small></p><div id=\"chains\">%s</div>"
            "<h2>Recent signed records</h2><table id=\"records\">%s</table>"
            "<script>%s</script></body></html>\n") % (
        e(gateway_id), STYLE, e(gateway_id), f["updated"], SAMPLE_S, f["nodes"], f["daemons"], f["groups"], f["chains"],
        f["records"], SCRIPT)


# -- the server ------------------------------------------------------------------------------

class StatusServer:
    def __init__(self, db_path, bind, gateway_id="", sample_s=SAMPLE_S):
        self.host, port = parse_bind(bind)
        self.db_path = db_path
        self.gateway_id = gateway_id
        self.sample_s = sample_s
        self.stopping = threading.Event()
        self.store = None
        self.history = History()
        self.httpd = _Server((self.host, port), _Handler)
        self.httpd.status = self
        self.threads = []

    @property
    def port(self):
        return self.httpd.server_address[1]

    @property
    def url(self):
        host = "[%s]" % self.host if ":" in self.host else self.host
        return "http://%s:%d/" % (host, self.port)

    def start(self):
        self.store = Store(self.db_path)
        for target, name in ((self.httpd.serve_forever, "http"), (self._sample_loop, "http-sampler")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self.threads.append(t)
        log.info("status page at %s", self.url)
        return self

    def _sample_loop(self):
        while not self.stopping.is_set():
            try:
                self.history.sample(self.store)
            except Exception:
                log.exception("status page: sampling the store failed")
            self.stopping.wait(self.sample_s)

    def status(self):
        return build_status(self.store, self.history)

    def stop(self):
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        for t in self.threads:
            t.join(2)
        if self.store is not None:
            self.store.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Handler(BaseHTTPRequestHandler):
    server_version = "netedge-status"

    def log_message(self, fmt, *args):
        log.debug("http %s " + fmt, self.address_string(), *args)

    def _send(self, code, ctype, body):
        data = body.encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        srv = self.server.status
        path = self.path.split("?", 1)[0]
        try:
            if path == "/":
                self._send(200, "text/html; charset=utf-8", render_page(srv.status(), srv.gateway_id))
            elif path == "/api/status":
                self._send(200, "application/json", json.dumps(srv.status(), sort_keys=True))
            elif path == "/events":
                self._events(srv)
            else:
                self._send(404, "text/plain; charset=utf-8", "not found: try / or /api/status or /events\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as ex:
            log.exception("status page: %s failed", path)
            try:
                self._send(500, "text/plain; charset=utf-8", "status page error: %s\n" % ex)
            except OSError:
                pass

    def _events(self, srv):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.close_connection = True
        if self.command == "HEAD":
            return
        self.wfile.write(b"retry: 1000\n\n")
        while not srv.stopping.is_set():
            snap = srv.status()
            snap["html"] = fragments(snap)
            self.wfile.write(b"data: " + json.dumps(snap, sort_keys=True).encode("utf-8") + b"\n\n")
            self.wfile.flush()
            srv.stopping.wait(srv.sample_s)
