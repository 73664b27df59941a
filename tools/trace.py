"""The sans-I/O core of `netedge trace`: one MQTT message in, one readable record out.

    rec = describe(topic, payload, t=time.time())   # a dict; NEVER raises
    print(format_line(rec))                         # one line per message
    print(to_json(rec))                             # one JSON object per line (bytes as hex)

A record holds: "time" (epoch s), "topic", "size", "where" (the topic levels after ne/v1),
and for a frame "type" (name), "code", "sender", "counter" and "body", the decoded body with the
protocol's binary values expanded into readable fields (docs/PROTOCOL.md):

    24-byte links under "l"/"head"/...  {"origin": "1a2b3c4d", "horizon": "00000000", "seq": 42,
                                          "parent": "0123456789abcdef"}
    chain event payload ("p" of CHAIN_EVENT, §11)  {"sender", "counter", "input_h8", "status": "ok"|"failed",
                                                    "outputs": [bytes...]}
    proofs (36 B, §3), fork records (49 B, §8), discontinuity records (87 B, §9) in PROOF /
    FORK_RECORD / DISCONTINUITY frames (any byte string of that size in the body, or the body itself)
    origins ("o", "origin") as 8 hex digits, hashes ("next", "head_hash", ...) as 16 hex digits

Anything that is not a valid frame becomes a record with "error": {"name": <typed error class>,
"message": ...}; a frame whose body holds a bad link/proof/record keeps its fields and gets an
"error" as well.  Topic/type combinations §11 does not allow (shared/topic_types.py)
are listed under "warnings".

The capture format (`netedge trace --record`, `tests/fixtures/trace_capture.jsonl`) is JSONL, one
raw message a line: {"t": epoch seconds, "topic": ..., "payload": hex, "qos", "retain"} plus optional
"synthetic": true and "note"; lines with a "meta" key describe the capture and are skipped.
"""
import json
import time

from ..shared import cbor
from ..shared.event import OK as EVENT_OK
from ..shared.event_decode import decode as decode_event
from ..shared import frame as FR
from ..shared import topics as T
from ..shared.topic_types import frame_types
from ..shared.link import CausalLink, LINK_SIZE, forward_hash, h8

PROOF_SIZE = 36
FORK_RECORD_SIZE = 49
DISCONTINUITY_SIZE = 87

LINK_KEYS = ("l", "head", "link", "last_verified", "failed_link", "fork_genesis", "source_head", "target_head")
ORIGIN_KEYS = ("o", "origin", "original_origin", "forked_origin")
HASH_KEYS = ("next", "genesis_hash", "head_hash", "original_hash", "fork_hash", "from_hash", "to_hash", "h8",
             "input_h8", "fwd")

# body decoding caps: the gateway may be generous (heartbeats list every daemon)
_MAX_DEPTH = 32
_MAX_ITEMS = 8192


def _err(e):
    return {"name": type(e).__name__, "message": str(e)}


def _hex8(v):
    return "%08x" % v


def _hex16(v):
    return "%016x" % v


def _is_uint(v, bits):
    return type(v) is int and 0 <= v < (1 << bits)


# ---- the binary values ----

def link_fields(data):
    lk = CausalLink.from_bytes(data)
    return {"origin": _hex8(lk.origin_hash), "horizon": _hex8(lk.horizon), "seq": lk.sequence,
            "parent": _hex16(lk.parent_hash)}


def proof_fields(data):
    from ..shared.proof import ContinuityProof
    p = ContinuityProof.from_bytes(data)
    return {"origin": _hex8(p.origin_hash), "from_seq": p.from_seq, "to_seq": p.to_seq,
            "from_hash": _hex16(p.from_hash), "to_hash": _hex16(p.to_hash)}


def fork_fields(data):
    from ..shared.fork import ForkRecord
    r = ForkRecord.from_bytes_unchecked(data)  # layout only: a bad lineage is reported, not hidden
    out = {"original_origin": _hex8(r.original_origin), "forked_origin": _hex8(r.forked_origin),
           "fork_seq": r.fork_seq, "fork_genesis": link_fields(r.fork_genesis.to_bytes()),
           "snapshot_seq": r.snapshot_seq, "verified": r.verify()}
    if not out["verified"]:
        out["problem"] = r.problem()
    return out


def discontinuity_fields(data):
    from ..shared.discontinuity import Discontinuity
    d = Discontinuity.from_bytes(data)
    sub, a, b, c = d.reason.fields()
    reason = {"code": d.reason.code, "name": d.reason.name}
    if d.reason.name == "ChainBreak":
        reason.update(error=type(d.reason.chain_error).__name__, expected=a, got=b)
    elif d.reason.name == "NodeCrash":
        reason.update(last_snapshot_seq=a)
    elif d.reason.name == "ConflictingChains":
        reason.update(seq=a, hash_a=_hex16(b), hash_b=_hex16(c))
    return {"origin": _hex8(d.origin_hash), "last_verified": link_fields(d.last_verified.to_bytes()),
            "failed_link": link_fields(d.failed_link.to_bytes()) if d.failed_link else None,
            "reason": reason, "detected_at": d.detected_at}


def signed_fields(data):
    """A signed record (§15): its body's fields plus who signed it (the signature is checked
    by `netedge record verify`, not here)."""
    from ..shared.records import decode_signed
    kind, body, signer, _sig, _msg = decode_signed(data)
    out = (discontinuity_fields if kind == 1 else fork_fields)(body.to_bytes())
    out["signer"] = signer.hex()[:16]
    return out


RECORDS = {FR.PROOF: (PROOF_SIZE, proof_fields), FR.FORK_RECORD: (FORK_RECORD_SIZE, fork_fields),
           FR.DISCONTINUITY: (DISCONTINUITY_SIZE, discontinuity_fields)}
RECORD_KEYS = {"proof": FR.PROOF, "fork": FR.FORK_RECORD, "fork_record": FR.FORK_RECORD,
               "discontinuity": FR.DISCONTINUITY, "d": FR.DISCONTINUITY}


def event_fields(payload):
    """The chain event payload [sender, counter, H8(input), status, outputs] (§11)."""
    sender, counter, digest, status, outputs = decode_event(payload)
    return {"sender": sender, "counter": counter, "input_h8": _hex16(digest),
            "status": "ok" if status == EVENT_OK else "failed", "outputs": outputs}


# ---- the body walk ----

def _expand(v, key, ftype, problems):
    """A copy of a decoded body value with the binary values expanded; failures go to problems."""
    if isinstance(v, dict):
        return {k: _expand(x, k, ftype, problems) for k, x in v.items()}
    if isinstance(v, list):
        return [_expand(x, key, ftype, problems) for x in v]
    if type(v) is int:
        if key in ORIGIN_KEYS and _is_uint(v, 32):
            return _hex8(v)
        if key in HASH_KEYS and _is_uint(v, 64):
            return _hex16(v)
        return v
    if isinstance(v, bytes):
        how = None
        if key in LINK_KEYS and len(v) == LINK_SIZE:
            how = link_fields
        elif key in LINK_KEYS:
            how = link_fields  # the wrong size: say so
        elif ftype in RECORDS and len(v) == RECORDS[ftype][0]:
            how = RECORDS[ftype][1]
        elif key in RECORD_KEYS and ftype in RECORDS:
            how = RECORDS[RECORD_KEYS[key]][1]
        elif key == "r" and ftype in (FR.DISCONTINUITY, FR.FORK_RECORD):
            how = signed_fields
        if how is not None:
            try:
                return how(v)
            except Exception as e:  # every decoder raises a typed DecodeError; be safe anyway
                problems.append((key, e))
                return {"raw": v, "error": _err(e)}
    return v


def _describe_body(rec, f, where, problems):
    body = f.body(_MAX_DEPTH, _MAX_ITEMS)  # MalformedFrame if the body is not CBOR of the subset
    if f.type in RECORDS and isinstance(body, bytes):
        size, how = RECORDS[f.type]
        try:
            return how(body)
        except Exception as e:
            problems.append((None, e))
            return {"raw": body, "error": _err(e)}
    out = _expand(body, None, f.type, problems)
    if not isinstance(body, dict):
        return out
    if f.type == FR.CHAIN_EVENT:
        p, lk = body.get("p"), body.get("l")
        if isinstance(p, bytes):
            try:
                out["p"] = event_fields(p)
            except Exception as e:
                problems.append(("p", e))
                out["p"] = {"raw": p, "error": _err(e)}
            if isinstance(lk, bytes) and len(lk) == LINK_SIZE:
                out["fwd"] = _hex16(forward_hash(lk, p))  # F(event): the next event's parent
        if where and where[0] == "d" and len(where) == 3 and _is_uint(body.get("o"), 32):
            if where[1] != _hex8(body["o"]):
                rec.setdefault("warnings", []).append("origin %s on the topic of %s" % (_hex8(body["o"]), where[1]))
        if isinstance(out.get("l"), dict) and "origin" in out["l"] and _is_uint(body.get("o"), 32):
            if out["l"]["origin"] != _hex8(body["o"]):
                rec.setdefault("warnings", []).append("link origin %s != o %s" % (out["l"]["origin"], _hex8(body["o"])))
    elif f.type == FR.INPUT and isinstance(body.get("p"), bytes):
        out["h8"] = _hex16(h8(body["p"]))  # what the chain event's input_h8 will say
    return out


def describe(topic, payload, t=None, meta=None):
    """One message -> one record (a dict).  Never raises: errors become record fields."""
    try:
        return _describe(topic, payload, t, meta)
    except Exception as e:  # a bug here must not kill a trace session: say so in the record
        return {"time": t if isinstance(t, (int, float)) else time.time(), "topic": repr(topic),
                "error": {"name": "TraceBug." + type(e).__name__, "message": str(e)}}


def _describe(topic, payload, t, meta):
    if isinstance(topic, (bytes, bytearray)):
        topic = bytes(topic).decode("utf-8", "replace")
    elif not isinstance(topic, str):
        topic = repr(topic)
    rec = {"time": float(t) if isinstance(t, (int, float)) else time.time(), "topic": topic}
    where = T.split(topic)
    rec["where"] = list(where) if where else None
    if isinstance(payload, (bytearray, memoryview)):
        payload = bytes(payload)
    rec["size"] = len(payload) if isinstance(payload, bytes) else None
    if meta:
        rec.update(meta)
    if payload == b"":
        rec["type"] = "CLEARED"  # an empty retained message: the broker forgets the topic's value
        return rec
    try:
        f = FR.decode(payload)
    except FR.UnknownFrameType as e:
        rec["code"] = e.args[0] if e.args else None
        rec["error"] = _err(e)
        _peek_envelope(rec, payload)
        rec["raw"] = payload
        return rec
    except FR.FrameError as e:
        rec["error"] = _err(e)
        rec["raw"] = payload if isinstance(payload, bytes) else None
        return rec
    rec.update(type=f.type_name(), code=f.type, sender=f.sender, counter=f.counter)
    problems = []
    try:
        rec["body"] = _describe_body(rec, f, where, problems)
    except FR.FrameError as e:
        rec["error"] = _err(e)
        rec["raw_body"] = f.body_bytes
        return rec
    if problems:
        rec["error"] = {"name": type(problems[0][1]).__name__, "message": "; ".join(
            "%s%s" % ("%s: " % (k,) if k is not None else "", e if len(problems) == 1 else "%s: %s" % (type(e).__name__, e))
            for k, e in problems)}
    want = frame_types(where)
    if want is not None and f.type not in want:
        rec.setdefault("warnings", []).append("%s on a %s topic (expected %s)" % (
            f.type_name(), where[2], " or ".join(FR.TYPES[t] for t in want)))
    return rec


def _peek_envelope(rec, payload):
    """For an unknown type: the sender and counter still help (best effort)."""
    try:
        a = cbor.loads(payload, 4, 64)
        if type(a) is list and len(a) == 5:
            if isinstance(a[2], str):
                rec["sender"] = a[2]
            if type(a[3]) is int:
                rec["counter"] = a[3]
    except Exception:
        pass


# ---- output ----

def jsonable(v):
    """bytes -> hex, recursively; other non-JSON values -> repr."""
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).hex()
    if isinstance(v, dict):
        return {str(k) if not isinstance(k, (bytes, bytearray)) else bytes(k).hex(): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if v == v and v not in (float("inf"), float("-inf")) else repr(v)
    return repr(v)


def to_json(rec):
    return json.dumps(jsonable(rec), sort_keys=True, separators=(",", ":"))


def clock(t, utc=False):
    """HH:MM:SS.mmm (local time, or UTC)."""
    try:
        tm = time.gmtime(t) if utc else time.localtime(t)
        return "%s.%03d" % (time.strftime("%H:%M:%S", tm), int((t % 1) * 1000))
    except (TypeError, ValueError, OverflowError, OSError):
        return "??:??:??.???"


def _short(v, n=48):
    s = repr(v) if not isinstance(v, str) else v
    return s if len(s) <= n else s[:n - 3] + "..."


def _topic_short(topic):
    return topic[len(T.ROOT) + 1:] if topic.startswith(T.ROOT + "/") else topic


def _kv(d, skip=()):
    return " ".join("%s=%s" % (k, _short(v, 40)) for k, v in d.items() if k not in skip)


def _summary(rec):
    b = rec.get("body")
    typ = rec.get("type")
    where = rec.get("where") or []
    if not isinstance(b, dict):
        return _short(b, 80)
    if typ == "CHAIN_EVENT":
        lk = b.get("l")
        if isinstance(lk, dict) and "seq" in lk:
            parts = ["origin=%s epoch=%s seq=%d parent=%s" % (lk["origin"], b.get("e"), lk["seq"], lk["parent"])]
            if lk["horizon"] != "00000000":
                parts.append("horizon=%s" % lk["horizon"])
        else:
            parts = ["origin=%s epoch=%s link=?" % (b.get("o"), b.get("e"))]
        p = b.get("p")
        if isinstance(p, dict) and "sender" in p:
            parts.append("in=%s/%s %s out=%s" % (p["sender"], p["counter"], p["status"], _short(p["outputs"], 60)))
        if "fwd" in b:
            parts.append("fwd=%s" % b["fwd"])
        return " ".join(parts)
    if typ == "INPUT":
        return "p=%s h8=%s" % (_short(b.get("p"), 60), b.get("h8", "?"))
    if typ == "HEARTBEAT":
        node = where[1] if len(where) > 1 else rec.get("sender")
        ds = b.get("daemons") if isinstance(b.get("daemons"), list) else []
        dtext = ",".join("%s@%s" % (d.get("origin"), d.get("seq")) for d in ds if isinstance(d, dict))
        errs = b.get("errors") if isinstance(b.get("errors"), dict) else {}
        errs = {k: v for k, v in errs.items() if v}
        s = "node=%s" % node
        for k, unit in (("board", ""), ("up", "ms"), ("heap", ""), ("flash", "")):
            if b.get(k) is not None:
                s += " %s=%s%s" % (k, _short(b[k], 24), unit)
        s += " daemons=%d%s" % (len(ds), " [" + dtext + "]" if dtext else "")
        if errs:
            s += " errors=%s" % _short(errs, 60)
        if b.get("corrupt"):
            s += " corrupt=%s" % b["corrupt"]
        return s
    if typ == "STATUS":
        if len(where) >= 3 and where[0] == "d":
            c = b.get("continuity") if isinstance(b.get("continuity"), dict) else {}
            cont = "%s{%s}" % (c.get("kind"), _kv(c, ("kind",)))
            return "daemon=%s kind=%s host=%s epoch=%s status=%s %s" % (
                b.get("origin"), b.get("kind"), b.get("host"), b.get("epoch"), b.get("status"), cont)
        if len(where) >= 3 and where[2] == "rep":
            ok = "ok" if b.get("ok") else "FAILED"
            s = "reply id=%s %s" % (b.get("id"), ok)
            if b.get("result") is not None:
                s += " result=%s" % _short(b.get("result"), 80)
            if b.get("error"):
                s += " error=%s" % _short(b.get("error"), 80)
            return s
        scope = {"node": "node", "gw": "gateway"}.get(where[0] if where else None, "?")
        return "%s=%s %s" % (scope, where[1] if len(where) > 1 else "?", _kv(b))
    if typ == "CONTROL":
        return "cmd=%s %s" % (b.get("cmd"), _kv(b, ("cmd",)))
    if typ == "ERROR":
        return "code=%s at=%s detail=%s" % (b.get("code"), b.get("at"), _short(b.get("detail"), 100))
    if typ == "PROOF":
        pr = next((v for v in b.values() if isinstance(v, dict) and "from_seq" in v), None)
        if pr:
            return "origin=%s %d..%d from=%s to=%s" % (pr["origin"], pr["from_seq"], pr["to_seq"],
                                                       pr["from_hash"], pr["to_hash"])
    if typ == "FORK_RECORD":
        fr = b if "fork_seq" in b else next((v for v in b.values() if isinstance(v, dict) and "fork_seq" in v), None)
        if fr:
            return "%s -> %s at seq=%d snapshot=%s genesis.parent=%s %s" % (
                fr["original_origin"], fr["forked_origin"], fr["fork_seq"], fr["snapshot_seq"],
                fr["fork_genesis"]["parent"], "verified" if fr["verified"] else "NOT VERIFIED: " + fr.get("problem", ""))
    if typ == "DISCONTINUITY":
        d = b if "reason" in b else next((v for v in b.values() if isinstance(v, dict) and "reason" in v), None)
        if d and isinstance(d.get("reason"), dict):
            r = d["reason"]
            return "origin=%s last_verified=%s failed=%s reason=%s{%s} at=%s" % (
                d["origin"], d["last_verified"]["seq"],
                d["failed_link"]["seq"] if d["failed_link"] else "none", r["name"], _kv(r, ("code", "name")),
                d["detected_at"])
    return _kv(b)


# control characters (and Unicode line breaks) from topics, senders or bodies are shown escaped:
# one message is always exactly one line
_ESCAPES = {c: "\\x%02x" % c for c in list(range(32)) + [0x7F, 0x85]}
_ESCAPES.update({0x2028: "\\u2028", 0x2029: "\\u2029", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"})


def format_line(rec, utc=False):
    """One readable line for a record (never raises; never contains a line break)."""
    try:
        line = _format_line(rec, utc)
    except Exception as e:
        line = "%s TRACE-BUG %s %s: %s" % (clock(time.time(), utc), rec.get("topic") if isinstance(rec, dict) else "?",
                                           type(e).__name__, e)
    return line.translate(_ESCAPES)


def _format_line(rec, utc):
    t = clock(rec.get("time", 0), utc)
    topic = _topic_short(rec.get("topic", "?"))
    tags = ""
    if rec.get("retain"):
        tags += " [retained]"
    if rec.get("synthetic"):
        tags += " [synthetic]"
    err = rec.get("error")
    if rec.get("type") == "CLEARED":
        return "%s - CLEARED %s (empty retained message)%s" % (t, topic, tags)
    if "type" not in rec:
        kind = "UNKNOWN_TYPE" if err and err.get("name") == "UnknownFrameType" else "MALFORMED"
        who = " %s #%s" % (rec["sender"], rec.get("counter")) if "sender" in rec else ""
        return "%s %s %s%s %s: %s (%s bytes)%s" % (t, kind, topic, who, err.get("name") if err else "?",
                                                   err.get("message") if err else "?", rec.get("size"), tags)
    line = "%s %s %s %s #%s %s" % (t, rec.get("sender"), rec["type"], topic, rec.get("counter"), _summary(rec))
    if err:
        line += " !! %s: %s" % (err["name"], err["message"])
    for w in rec.get("warnings", ()):
        line += " !! " + w
    return line + tags


# ---- the capture format ----

def capture_row(topic, payload, t, qos=None, retain=None, **extra):
    row = {"t": round(t, 6), "topic": topic, "payload": bytes(payload).hex()}
    if qos is not None:
        row["qos"] = qos
    if retain:
        row["retain"] = True
    row.update(extra)
    return row


class Recorder:
    """Appends raw messages to a JSONL capture, one line each, flushed as they come."""

    def __init__(self, path):
        self.path = path
        self.f = open(path, "a", encoding="utf-8")

    def write(self, topic, payload, t, qos=None, retain=None, **extra):
        self.f.write(json.dumps(capture_row(topic, payload, t, qos, retain, **extra), sort_keys=True) + "\n")
        self.f.flush()

    def meta(self, **info):
        self.f.write(json.dumps({"meta": info}, sort_keys=True) + "\n")
        self.f.flush()

    def close(self):
        self.f.close()


class CaptureError(ValueError):
    pass


def read_capture(lines):
    """Yield (topic, payload, t, meta) from capture lines; a bad line raises CaptureError."""
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        try:
            row = json.loads(line)
            if "meta" in row:
                continue
            topic, payload, t = row["topic"], bytes.fromhex(row["payload"]), float(row["t"])
        except (ValueError, KeyError, TypeError) as e:
            raise CaptureError("line %d: not a capture row (%s: %s)" % (n, type(e).__name__, e))
        meta = {k: row[k] for k in ("qos", "retain", "synthetic", "note") if k in row}
        yield topic, payload, t, meta
