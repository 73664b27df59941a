"""Talking to a running gateway from the CLI: requests over MQTT (the gateway is the only
writer of orchestration state), replies on a per-client topic."""
import os
import sys
import threading
import time

import paho.mqtt.client as paho

from ..shared import frame as FR
from ..shared import topics as T
from .errors import OperatorError
from .service import nodelay


def ask(config_path, cmd, **body):
    """One request to the gateway named by the config at `config_path`; its result (RemoteError on refusal)."""
    from .config import load
    gc = GatewayClient(load(config_path))
    try:
        return gc.request(cmd, **body)
    finally:
        gc.close()


class RemoteError(OperatorError):
    """The gateway could not be reached, did not answer, or refused the request (its reason)."""


class GatewayClient:
    def __init__(self, cfg, timeout=10):
        b = cfg.broker
        if b.embedded and not b.port:
            raise RemoteError("the config names no [broker]: the CLI needs the broker url the gateway uses "
                           "(the embedded broker picks a port at start; set [broker] url to talk to it)")
        self.cfg = cfg
        self.name = "cli-%d" % os.getpid()
        self.replies = {}
        self.cond = threading.Condition()
        self.counter = int(time.time() * 1000) & 0x3FFFFFFF
        # A persistent session while the command runs: a broker restarted meanwhile (with its
        # persistence) keeps our subscription and the gateway's reply for us; paho reconnects.
        # close() removes it.
        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=self.name, clean_session=False)
        if b.username:
            c.username_pw_set(b.username, b.password)
        c.on_message = self._on_message
        subscribed = threading.Event()
        c.on_subscribe = lambda *a: subscribed.set()
        reply_to = T.gateway(cfg.id, "rep", self.name)
        # (again on every connection: a broker without persistence forgot it)
        c.on_connect = lambda cl, u, flags, rc, p=None: (nodelay(cl), cl.subscribe(reply_to, qos=1)) if rc == 0 else None
        try:
            c.connect(b.host, b.port, keepalive=10)
        except OSError as e:
            raise RemoteError("cannot reach the broker at %s: %s (is it running?)" % (b.url, e))
        c.loop_start()
        self.client = c
        subscribed.wait(timeout)  # a reply must not be published before the broker routes it to us

    def _on_message(self, client, userdata, msg):
        try:
            body = FR.decode(msg.payload).body()
        except FR.FrameError:
            return
        with self.cond:
            self.replies[body.get("id")] = body
            self.cond.notify_all()

    def request(self, cmd, timeout=45, progress=True, **args):
        self.counter += 1
        rid = self.counter
        body = dict(args, cmd=cmd, id=rid)
        self.client.publish(T.gateway(self.cfg.id, "req", self.name), FR.encode(FR.CONTROL, self.name, rid, body), 1)
        deadline = time.monotonic() + timeout
        spin = "|/-\\"
        i = 0
        with self.cond:
            while rid not in self.replies:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RemoteError("no answer from gateway %s in %ds: is `netedge gateway` running?" % (self.cfg.id, timeout))
                self.cond.wait(min(left, 0.2))
                if progress and sys.stderr.isatty():
                    sys.stderr.write("\r%s waiting for the gateway (%s)... " % (spin[i % 4], cmd))
                    sys.stderr.flush()
                    i += 1
        if progress and sys.stderr.isatty():
            sys.stderr.write("\r" + " " * 50 + "\r")
        rep = self.replies.pop(rid)
        if not rep.get("ok"):
            raise RemoteError(rep.get("error") or "the gateway refused %s" % cmd)
        return rep.get("result")

    def close(self):
        # disconnect first: it wakes the network thread, which loop_stop() would otherwise wait
        # for until its select() times out (about a second of every CLI command)
        self.client.disconnect()
        self.client.loop_stop()
        # then forget the session: a clean CONNECT discards it at the broker (no loop needed:
        # paho writes CONNECT and DISCONNECT at once)
        b = self.cfg.broker
        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=self.name, clean_session=True)
        if b.username:
            c.username_pw_set(b.username, b.password)
        try:
            c.connect(b.host, b.port, keepalive=10)
            c.disconnect()
        except OSError:
            pass  # (the broker keeps it until it expires: nothing is waiting on it)
