"""The invariant checker.  It shares no logic with what it checks: it reads the gateway's SQLite
file with its own connection and SQL, recomputes every hash with hashlib and struct, checks
signatures with PyNaCl, and watches the wire through the broker's tap.  Only the wire decoders
(shared/frame.py, shared/cbor.py) are common code.

After every step (they hold at any instant):
  two_hosts        at most one node emits chain events of a daemon per epoch
  chain_link       every stored event links to the stored one before it (H8 of its link and
                   payload), from genesis (or from its fork sentinel)
  epoch_regress    a stored event never carries an epoch older than an earlier stored event's:
                   a deposed host's frames are refused, never merged
  double_processed no input id (sender, counter) appears in two stored events of one daemon
  bad_record       every signed record verifies under the gateway's key
  false_failover   a standby is promoted only when its active's node failed (killed, frozen,
                   cut off): a broker restart or a slow link is no reason (the active: the node
                   emitting its chain at the highest epoch, or the last that accepted a promotion)
  internal_error   the gateway raised out of an entry point (a bug, whatever the input)
At quiescence (after the fault-free settle phase):
  lost_input       every input the broker accepted for a daemon is in its stored chain
                   exactly once, or a signed discontinuity record of that daemon covers it
  silent_gap       the stored chain reaches the head its host holds
  no_host          an active daemon is processed by exactly one node, the stored host, at the
                   stored epoch
"""
import hashlib
import sqlite3
import struct

import nacl.exceptions
import nacl.signing

from ...shared import cbor
from ...shared import frame as FR

RECORD_DOMAIN = b"netedge/record/v1"   # docs/PROTOCOL.md "Signed records"
RECORD_KINDS = {"discontinuity": 1, "fork": 2}
FAILOVER_EVIDENCE_S = 30.0  # a fault of the active's node this recent explains a promotion
ROOT = "ne/v1/"


def h8(data):
    return struct.unpack("<Q", hashlib.sha256(data).digest()[:8])[0]


def link_fields(link):
    """(origin, horizon, seq, parent) of a 24-byte CausalLink."""
    return struct.unpack("<IIQQ", link)


def fork_sentinel(parent_origin, fork_seq):
    return h8(struct.pack("<IQ", parent_origin, fork_seq) + b"fork")


class Checker:
    def __init__(self, db_path, node_ids, publishers):
        self.db_path = db_path
        self.node_ids = set(node_ids)
        self.publishers = set(publishers)
        self.violations = []
        self.db = None
        self.accepted = {}      # origin -> {(sender, counter): h8 of payload}
        self.emitters = {}      # (origin, epoch) -> node that emitted its chain events
        self.active = {}        # origin -> (node, epoch) latest chain emitter at the highest epoch
        self.promoting = {}     # (origin, node) -> epoch of a promotion sent, until the node accepts
        self.faults = {}        # node -> [sim times of its faults]
        self.chains = {}        # origin -> (seq, forward, epoch) of the last stored event checked
        self.inputs_seen = {}   # origin -> {(sender, counter): seq}
        self.records_checked = 0
        self.covered = set()    # origins with a verified discontinuity record
        self.gateway_key = None
        self.now = 0.0

    def violation(self, kind, text):
        self.violations.append((kind, "t=%.3f %s" % (self.now, text)))

    # -- the wire -----------------------------------------------------------------------

    def fault(self, node, now):
        self.faults.setdefault(node, []).append(now)

    def observe(self, cid, msg, now):
        """Every PUBLISH the broker accepted (and every will it published)."""
        self.now = now
        topic = msg.topic
        if not topic.startswith(ROOT) or not msg.payload:
            return
        parts = topic[len(ROOT):].split("/")
        try:
            if parts[0] == "d" and len(parts) == 3 and parts[2] == "in" and cid in self.publishers:
                f = FR.decode(msg.payload)
                p = f.body().get("p")
                if isinstance(p, bytes):
                    self.accepted.setdefault(int(parts[1], 16), {})[(f.sender, f.counter)] = h8(p)
            elif parts[0] == "d" and len(parts) == 3 and parts[2] == "chain" and cid in self.node_ids:
                body = FR.decode(msg.payload).body()
                origin, epoch = int(parts[1], 16), body["e"]
                who = self.emitters.setdefault((origin, epoch), cid)
                if who != cid:
                    self.violation("two_hosts", "%08x emitted chain events at epoch %d from %s and from %s"
                                   % (origin, epoch, who, cid))
                cur = self.active.get(origin)
                if cur is None or epoch >= cur[1]:
                    self.active[origin] = (cid, epoch)
            elif parts[0] == "node" and len(parts) == 3 and parts[2] == "ctl" and cid not in self.node_ids:
                body = FR.decode(msg.payload).body()
                cmd, origin, epoch = body.get("cmd"), body.get("origin"), body.get("epoch")
                if cmd == "promote":
                    self._promotion(origin, parts[1], now)
                    if type(epoch) is int:  # active once it accepts (a refused promotion changes nothing)
                        self.promoting[(origin, parts[1])] = epoch
                if cmd == "activate" and type(epoch) is int:
                    self._activated(origin, parts[1], epoch)
            elif parts[0] == "node" and len(parts) == 3 and parts[2] == "mig" and cid == parts[1] in self.node_ids:
                body = FR.decode(msg.payload).body()
                epoch = self.promoting.get((body.get("o"), cid))
                if body.get("op") == "restored" and epoch is not None:
                    self._activated(body["o"], cid, epoch)
        except (FR.FrameError, KeyError, TypeError, ValueError, AttributeError):
            pass  # (malformed frames are the gateway's to refuse: not this checker's business)

    def _activated(self, origin, node, epoch):
        cur = self.active.get(origin)
        if cur is None or epoch > cur[1]:
            self.active[origin] = (node, epoch)

    def _promotion(self, origin, to, now):
        cur = self.active.get(origin)
        if cur is None or cur[0] == to:
            return
        recent = [t for t in self.faults.get(cur[0], ()) if now - t <= FAILOVER_EVIDENCE_S]
        if not recent:
            self.violation("false_failover", "%08x promoted on %s while its active %s (epoch %d) had no fault"
                           % (origin, to, cur[0], cur[1]))

    # -- the store ------------------------------------------------------------------------

    def _conn(self):
        if self.db is None:
            self.db = sqlite3.connect("file:%s?mode=ro" % self.db_path, uri=True, isolation_level=None)
        return self.db

    def close(self):
        if self.db is not None:
            self.db.close()
            self.db = None

    def check_store(self, now):
        self.now = now
        try:
            db = self._conn()
            origins = [r[0] for r in db.execute("SELECT origin FROM daemons ORDER BY origin")]
        except sqlite3.OperationalError:
            self.close()
            return  # (not created yet)
        forks = self._forks(db)
        for origin in origins:
            self._check_chain(db, origin, forks)
        self._check_records(db)

    def _forks(self, db):
        out = {}
        for (body,) in db.execute("SELECT body FROM records WHERE kind = 'fork'"):
            body = bytes(body)
            if len(body) == 49:
                original, forked, fork_seq = struct.unpack("<IIQ", body[:16])
                out[forked] = (original, fork_seq)
        return out

    def _check_chain(self, db, origin, forks):
        last = self.chains.get(origin)
        after = -1 if last is None else last[0]
        seen = self.inputs_seen.setdefault(origin, {})
        rows = db.execute("SELECT seq, link, payload, epoch FROM chain_events WHERE origin = ? AND seq > ?"
                          " ORDER BY seq", (origin, after)).fetchall()
        for seq, link, payload, epoch in rows:
            link, payload = bytes(link), bytes(payload)
            o, _, s, parent = link_fields(link)
            if o != origin or s != seq:
                self.violation("chain_link", "%08x row seq %d holds link of %08x seq %d" % (origin, seq, o, s))
                return
            if last is None:
                if seq == 0:
                    lineage = forks.get(origin)
                    want = 0 if lineage is None else fork_sentinel(*lineage)
                elif seq == 1:
                    want = h8(struct.pack("<IIQQ", origin, 0, 0, 0))
                else:
                    self.violation("chain_link", "%08x stored chain starts at seq %d" % (origin, seq))
                    return
            else:
                if seq != last[0] + 1:
                    self.violation("chain_link", "%08x stored chain jumps from seq %d to %d" % (origin, last[0], seq))
                    return
                want = last[1]
                if epoch < last[2]:
                    self.violation("epoch_regress", "%08x seq %d stored at epoch %d after epoch %d"
                                   % (origin, seq, epoch, last[2]))
            if parent != want:
                self.violation("chain_link", "%08x seq %d: parent %016x, H8 of the event before is %016x"
                               % (origin, seq, parent, want))
                return
            if seq > 0:
                try:
                    sender, counter = cbor.loads(payload)[:2]
                    key = (sender, counter)
                    if key in seen:
                        self.violation("double_processed", "%08x input %s/%s in events %d and %d"
                                       % (origin, sender, counter, seen[key], seq))
                    seen[key] = seq
                except (ValueError, TypeError):
                    self.violation("chain_link", "%08x seq %d: payload is not an event payload" % (origin, seq))
            last = self.chains[origin] = (seq, h8(link + payload), epoch)

    def _check_records(self, db):
        if self.gateway_key is None:
            row = db.execute("SELECT public_key FROM gateway_identity WHERE id = 1").fetchone()
            if row is None:
                return
            self.gateway_key = bytes(row[0])
        rows = db.execute("SELECT id, kind, origin, body, signature, signer FROM records WHERE id > ? ORDER BY id",
                          (self.records_checked,)).fetchall()
        for rid, kind, origin, body, sig, signer in rows:
            self.records_checked = rid
            ok = bytes(signer) == self.gateway_key and kind in RECORD_KINDS
            if ok:
                try:
                    msg = RECORD_DOMAIN + bytes((RECORD_KINDS[kind],)) + bytes(body)
                    nacl.signing.VerifyKey(self.gateway_key).verify(msg, bytes(sig))
                except nacl.exceptions.BadSignatureError:
                    ok = False
            if not ok:
                self.violation("bad_record", "record %d (%s of %08x) does not verify" % (rid, kind, origin))
            elif kind == "discontinuity":
                self.covered.add(origin)

    # -- at quiescence ------------------------------------------------------------------------

    def check_final(self, now, nodes):
        """`nodes`: node id -> {origin: (epoch, processing, head seq, head forward)}."""
        self.check_store(now)
        db = self._conn()
        daemons = {r[0]: (r[1], r[2], r[3]) for r in db.execute("SELECT origin, host_node, epoch, status FROM daemons")}
        for origin, ids in sorted(self.accepted.items()):
            d = daemons.get(origin)
            if d is None or d[2] == "stopped" or origin in self.covered:
                continue
            seen = self.inputs_seen.get(origin, {})
            missing = [k for k in ids if k not in seen]
            if missing:
                self.violation("lost_input", "%08x: %d of %d accepted inputs not in its chain, e.g. %s/%s"
                               % (origin, len(missing), len(ids), missing[0][0], missing[0][1]))
        for origin, (host, epoch, status) in sorted(daemons.items()):
            if status != "active" or origin in self.covered:
                continue
            running = [(n, h) for n, hosts in sorted(nodes.items()) for o, h in hosts.items() if o == origin and h[1]]
            at_epoch = [n for n, h in running if h[0] == epoch]
            if at_epoch != [host]:
                self.violation("no_host", "%08x (epoch %d, host %s) is processed at that epoch by %s"
                               % (origin, epoch, host, at_epoch or "no node"))
                continue
            h = nodes[host][origin]
            last = self.chains.get(origin)
            stored = (last[0], last[1]) if last else (0, h8(struct.pack("<IIQQ", origin, 0, 0, 0)))
            if (h[2], h[3]) != stored:
                self.violation("silent_gap", "%08x: host %s is at seq %d, the store at seq %d"
                               % (origin, host, h[2], stored[0]))
