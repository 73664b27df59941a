"""netedge trace — watch (or replay) the MQTT traffic, one decoded line per message."""
import os
import queue
import sys
import time

from . import CliError

EXAMPLES = """\
examples:
  netedge trace --broker mqtt://127.0.0.1:1883          everything under ne/v1/#, until Ctrl-C
  netedge trace --config netedge.toml --node n1         node n1's topics + the chain events it sends
  netedge trace --daemon 1a2b3c4d --json                one daemon's inbox/chain/status, as JSON lines
  netedge trace --broker mqtt://pi:1883 --count 20 --timeout 30
  netedge trace --broker mqtt://pi:1883 --record run.jsonl     watch and keep a capture
  netedge trace --file run.jsonl --node n1                     replay a capture, filtered

One line per message: time, sender, frame type, topic (after ne/v1/), #counter, then the decoded
body (links as origin/epoch/seq/parent, chain payloads as in=sender/counter ok|failed out=[...],
proofs, fork and discontinuity records field by field). A payload that is not a valid frame is
shown as MALFORMED (or UNKNOWN_TYPE) with the decoder's typed error; nothing stops the trace.
--json prints the same record as one JSON object per line (bytes as hex).

Capture format (--record writes it, --file reads it): JSON lines
  {"t": <epoch s>, "topic": "...", "payload": "<hex>", "qos": 1, "retain": true?}

Exit status: 0 (Ctrl-C, --count reached, --timeout over, end of --file), 1 when --count was not
reached before --timeout, 2 on errors (broker unreachable, unreadable capture)."""


def register(sub):
    import argparse
    p = sub.add_parser("trace", help="watch the MQTT traffic, decoded (debugging)",
                       description="Subscribe to the netedge topics (ne/v1/#, or narrowed to a node or daemon) "
                                   "and print every message as it arrives, decoded, until Ctrl-C.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--broker", metavar="URL", help="mqtt://host[:port] (default: the --config broker, "
                                                     "else mqtt://127.0.0.1:1883)")
    src.add_argument("--file", metavar="CAPTURE", help="replay a capture (JSONL, see below) instead of subscribing")
    p.add_argument("--config", help="the gateway's TOML config: its [broker] url and credentials")
    p.add_argument("--node", action="append", metavar="N", default=[],
                   help="only node N: ne/v1/node/N/# and the chain events N sends (repeatable)")
    p.add_argument("--daemon", action="append", metavar="ORIGIN", default=[],
                   help="only daemon ORIGIN (8 hex digits): ne/v1/d/ORIGIN/# (repeatable)")
    p.add_argument("--group", metavar="G",
                   help="only group G's topics; v1 has no group topics yet, so today this filters nothing")
    p.add_argument("--json", action="store_true", help="one JSON object per message (bytes as hex)")
    p.add_argument("--count", type=int, metavar="N", help="stop after N messages")
    p.add_argument("--timeout", type=float, metavar="S", help="stop after S seconds")
    p.add_argument("--record", metavar="CAPTURE", help="also append each raw message to this JSONL capture")
    p.add_argument("--utc", action="store_true", help="UTC timestamps (default: local time)")
    p.set_defaults(func=run)


class Filter:
    """What to show: MQTT subscription filters plus a per-message check."""

    def __init__(self, nodes=(), daemons=(), group=None):
        from ...shared import topics as T
        self.rules = []  # (mqtt filter, sender or None)
        for n in nodes:
            if not n or any(c in n for c in "/+#"):
                raise CliError("--node %r: a node id is a plain name (no / + #)" % n)
            self.rules.append((T.node(n, "#"), None))
            self.rules.append((T.ROOT + "/d/+/chain", n))
        for d in daemons:
            try:
                origin = T.parse_origin(d)
            except ValueError:
                raise CliError("--daemon %r: expected 8 lowercase hex digits, as `netedge daemon list` shows" % d)
            self.rules.append((T.daemon(origin, "#"), None))
        if not self.rules:
            self.rules.append((T.ALL, None))
        self.group = group  # no group topics in v1: nothing to filter (yet)

    def subscriptions(self):
        seen = []
        for f, _ in self.rules:
            if f not in seen:
                seen.append(f)
        return seen

    def accepts(self, topic, rec):
        from paho.mqtt.client import topic_matches_sub
        for f, sender in self.rules:
            try:
                if topic_matches_sub(f, topic) and (sender is None or rec.get("sender") == sender):
                    return True
            except Exception:
                return False
        return False


class Printer:
    def __init__(self, args):
        from ...tools import trace as TR
        self.TR = TR
        self.json = args.json
        self.utc = args.utc
        self.recorder = TR.Recorder(args.record) if args.record else None
        self.shown = 0

    def show(self, topic, payload, t, meta, flt):
        rec = self.TR.describe(topic, payload, t, meta)
        if not flt.accepts(topic, rec):
            return False
        if self.recorder:
            self.recorder.write(topic, payload, t, meta.get("qos"), meta.get("retain"),
                                **{k: v for k, v in meta.items() if k in ("synthetic", "note")})
        line = self.TR.to_json(rec) if self.json else self.TR.format_line(rec, self.utc)
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
        self.shown += 1
        return True

    def close(self):
        if self.recorder:
            self.recorder.close()


def broker_of(args):
    """(host, port, username, password, url) from --broker, --config or the default."""
    from ..config import BrokerConfig, load
    if args.broker:
        b = BrokerConfig(args.broker)
        if args.config:
            c = load(args.config).broker
            b.username, b.password = c.username, c.password
        return b
    if args.config:
        b = load(args.config).broker
        if b.embedded and not b.port:
            raise CliError("%s names no [broker] url: the gateway's embedded broker picks a port at start. "
                           "Set [broker] url in the config, or pass --broker mqtt://host:port" % args.config)
        return b
    return BrokerConfig("mqtt://127.0.0.1:1883")


def run(args):
    if args.count is not None and args.count < 1:
        raise CliError("--count must be at least 1")
    if args.timeout is not None and args.timeout <= 0:
        raise CliError("--timeout must be positive")
    flt = Filter(args.node, args.daemon, args.group)
    try:  # a body may hold any text: never die on a terminal's encoding
        sys.stdout.reconfigure(errors="backslashreplace")
    except (AttributeError, ValueError):
        pass
    if args.group:
        print("netedge trace: note: --group %s filters nothing yet (netedge v1 has no group topics)" % args.group,
              file=sys.stderr)
    try:
        out = Printer(args)
    except OSError as e:
        raise CliError("cannot write the capture %s: %s" % (args.record, e))
    try:
        if args.file:
            return replay(args, flt, out)
        return live(args, flt, out)
    except KeyboardInterrupt:  # Ctrl-C outside the main loop (e.g. while connecting): still a clean exit
        return 0
    except BrokenPipeError:  # `netedge trace | head`: the reader left; that is not an error
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
    finally:
        out.close()


def replay(args, flt, out):
    from ...tools.trace import CaptureError, read_capture
    try:
        f = open(args.file, encoding="utf-8")
    except OSError as e:
        raise CliError("cannot read the capture %s: %s" % (args.file, e.strerror or e))
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    try:
        with f:
            for topic, payload, t, meta in read_capture(f):
                if out.show(topic, payload, t, meta, flt) and args.count and out.shown >= args.count:
                    break
                if deadline is not None and time.monotonic() > deadline:
                    break
    except CaptureError as e:
        raise CliError("%s: %s (expected JSON lines {\"t\", \"topic\", \"payload\": hex} as --record writes)"
                       % (args.file, e))
    except KeyboardInterrupt:
        pass
    return 0


def live(args, flt, out):
    import paho.mqtt.client as paho
    b = broker_of(args)
    msgs = queue.Queue()
    state = {"connack": None, "down": False, "closing": False}

    def on_connect(client, userdata, flags, reason_code, properties=None):
        state["connack"] = reason_code
        if reason_code.is_failure:
            return
        if state["down"]:
            print("netedge trace: reconnected to %s" % b.url, file=sys.stderr)
            state["down"] = False
        for f in flt.subscriptions():
            client.subscribe(f, qos=1)

    def on_disconnect(client, userdata, flags, reason_code, properties=None):
        if state["connack"] is not None and not state["down"] and not state["closing"]:
            state["down"] = True
            print("netedge trace: lost the broker at %s (%s); retrying..." % (b.url, reason_code), file=sys.stderr)

    def on_message(client, userdata, msg):
        msgs.put((msg.topic, msg.payload, time.time(), {"qos": msg.qos, "retain": bool(msg.retain)}))

    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="netedge-trace-%d-%x" % (os.getpid(), os.urandom(3)[0]),
                    clean_session=True)
    if b.username:
        c.username_pw_set(b.username, b.password)
    c.on_connect, c.on_disconnect, c.on_message = on_connect, on_disconnect, on_message
    c.reconnect_delay_set(0.5, 5)
    try:
        c.connect(b.host, b.port, keepalive=30)
    except (OSError, ValueError) as e:
        raise CliError("cannot reach the broker at %s: %s. Is the broker (Mosquitto, or `netedge gateway` with "
                       "its embedded broker) running there? Pass --broker mqtt://host:port or --config "
                       "netedge.toml." % (b.url, getattr(e, "strerror", None) or e))
    c.loop_start()
    try:
        deadline = None if args.timeout is None else time.monotonic() + args.timeout
        connack_by = time.monotonic() + 10
        try:
            while True:
                rc = state["connack"]
                if rc is None and time.monotonic() > connack_by:
                    raise CliError("the broker at %s accepted the connection but never answered CONNECT: "
                                   "is it an MQTT broker?" % b.url)
                if rc is not None and rc.is_failure:
                    raise CliError("the broker at %s refused the connection: %s (check [broker] username/"
                                   "password in --config)" % (b.url, rc))
                wait = 0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic()))
                try:
                    topic, payload, t, meta = msgs.get(timeout=wait)
                except queue.Empty:
                    if deadline is not None and time.monotonic() >= deadline:
                        break
                    continue
                if out.show(topic, payload, t, meta, flt) and args.count and out.shown >= args.count:
                    return 0
                if deadline is not None and time.monotonic() >= deadline:
                    break
        except KeyboardInterrupt:
            if sys.stderr.isatty():
                sys.stderr.write("\n")
            print("netedge trace: stopped (%d messages)" % out.shown, file=sys.stderr)
            return 0
        if args.count and out.shown < args.count:
            print("netedge trace: %d of %d messages in %gs" % (out.shown, args.count, args.timeout), file=sys.stderr)
            return 1
        return 0
    finally:
        state["closing"] = True
        c.loop_stop()
        try:
            c.disconnect()
        except Exception:
            pass
