"""The gateway process: paho-mqtt + SQLite + timers around GatewayCore.

One thread runs the MQTT loop, the core and the timers (no locks in the protocol logic); slow
provisioning (mpremote over USB) runs in a worker thread and reports back through a queue.
Messages are acknowledged (manual ack) only after the core has stored them.
"""
import json
import logging
import os
import queue
import random
import signal
import socket
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import paho.mqtt.client as paho

from ..shared import topics as T
from . import driver
from .control.core import GatewayCore
from .control.state import StoreOutage
from .keystore import Keystore
from .store import STORE_FAULT_SUFFIX, STORE_OUTAGE_KEY, Store

log = logging.getLogger("netedge.gateway")
TICK_S = 0.05
REDIAL_MIN_S, REDIAL_MAX_S = 0.2, 5.0  # backoff between attempts to reach a lost broker


def core_sources():
    """What a GatewayCore takes from the world: the wall clock, a frame counter start above any a
    previous run used (milliseconds of the wall clock, 30 bits), unpredictable operation ids."""
    return {"wall": time.time, "counter_start": int(time.time() * 1000) & 0x3FFFFFFF, "rng": random.SystemRandom()}


def setup_logging(level="INFO"):
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s.%(msecs)03d %(levelname)-7s %(name)s %(message)s", datefmt="%H:%M:%S")


def nodelay(client):
    try:
        client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (AttributeError, OSError):
        pass


def write_keys_dir(path, slots):
    """A unix-port board's flash is a folder: write keys.json there atomically."""
    import json
    if not os.path.isdir(path):
        raise RuntimeError("board folder %s does not exist" % path)
    tmp = os.path.join(path, "keys.json.new")
    with open(tmp, "w") as f:
        json.dump(slots, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(path, "keys.json"))


class KeyPusher:
    """Delivers key slots to a node out of band: a board folder (unix port) or USB (mpremote)."""

    def __init__(self, nodes):
        self.nodes = nodes

    def local(self, node):
        """A board folder: one small atomic file write, quick enough to do in the loop."""
        return bool((self.nodes.get(node) or {}).get("path"))

    def push(self, node, slots):
        spec = self.nodes.get(node)
        if spec is None:
            raise RuntimeError("no provisioning path for node %s: add [nodes.%s] port/path to the config" % (node, node))
        if spec.get("path"):
            write_keys_dir(spec["path"], slots)
        else:
            from ..tools import provision
            provision.push_keys(spec["port"], slots)


class GatewayService:
    def __init__(self, cfg, pusher=None):
        self.cfg = cfg
        self.pusher = pusher or KeyPusher(cfg.nodes)
        self.broker = None
        self.store = None
        self.client = None
        self.core = None
        self.done = queue.Queue()
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="provision")
        self.stopping = threading.Event()
        self.connected = threading.Event()
        self.http = None
        self.redial = [0.0, REDIAL_MIN_S]  # [next attempt (monotonic), the backoff after it]

    def open(self):
        os.makedirs(self.cfg.data_dir, mode=0o700, exist_ok=True)
        self.store = Store(self.cfg.db_path)
        self.keystore = Keystore(self.store, self.cfg.kek_path)
        self.core = self._new_core()
        if self.cfg.http:
            self._start_http()
        b = self.cfg.broker
        if b.embedded:
            from .broker import EmbeddedBroker
            self.broker = EmbeddedBroker(port=b.port).start()
            b.host, b.port = self.broker.host, self.broker.port
        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=self.cfg.id, clean_session=False,
                        manual_ack=True)
        if b.username:
            c.username_pw_set(b.username, b.password)
        topic, data, qos, retain = self.core.status_frame(False)
        c.will_set(topic, data, qos, retain)
        c.on_connect = self._on_connect
        c.on_disconnect = lambda *a: (self.connected.clear(), self.core.broker_lost(),
                                      log.warning("broker connection lost"))
        c.on_message = self._on_message
        self.client = c
        log.info("gateway starting id=%s db=%s broker=%s%s", self.cfg.id, self.cfg.db_path, b.url,
                 " (embedded)" if b.embedded else "")
        try:
            c.connect(b.host, b.port, keepalive=10)
            nodelay(c)
        except OSError as e:  # (started before the broker, e.g. at boot): step() dials again
            self.redial = [time.monotonic() + REDIAL_MIN_S, REDIAL_MIN_S * 2]
            log.warning("broker unreachable (%s): next attempt in %.1f s", e, REDIAL_MIN_S)
        return self

    def _new_core(self, old=None):
        """A GatewayCore over the store: at start, and to rebuild one whose memory went ahead of a
        transaction that did not commit (driver.py).  What only memory knows carries over (GatewayCore.carry_over)."""
        core = GatewayCore(self.store, self.keystore, self.cfg.id, self.cfg.deadline_ms, self.cfg.input_log_max,
                           **core_sources())
        core.provisionable = self.cfg.nodes.__contains__  # (nodes with a [nodes.X] entry)
        if old is not None:
            core.carry_over(old)
        return core

    def _run(self, entry, *args):
        """One entry point of the core under the Ready rule (driver.py): its writes committed in one
        transaction, then its frames published.  Returns the Outcome (its `ack` for a message)."""
        out = driver.run(self.store, entry, *args, store_errors=(sqlite3.Error,))
        if out.error is not None:
            self.core.counters["internal_errors"] += not out.store_failed
            self.core = self._new_core(self.core)
        if out.effects is not None:
            self._do(out.effects)
        return out

    def _start_http(self):
        from .errors import OperatorError as CliError
        from .http import StatusServer
        try:
            self.http = StatusServer(self.cfg.db_path, self.cfg.http, gateway_id=self.cfg.id).start()
        except ValueError as e:
            raise CliError("status page: %s" % e)
        except OSError as e:
            raise CliError("status page: cannot listen on %r (%s): pick another port with --http HOST:PORT"
                           % (self.cfg.http, e.strerror or e))

    def _on_connect(self, client, userdata, flags, rc, props=None):
        if rc != 0:
            log.error("broker refused the gateway: %s", rc)
            return
        nodelay(client)
        client.subscribe([(T.ALL, 1)])
        self._publish(self.core.status_frame(True))
        self._run(self.core.broker_back, time.monotonic(), bool(getattr(flags, "session_present", False)))
        self.connected.set()
        log.info("connected to broker session_present=%s", getattr(flags, "session_present", flags))

    def _on_message(self, client, userdata, msg):
        try:
            topic = msg.topic
        except UnicodeDecodeError:  # (paho decodes lazily): not a topic we ever subscribe to by name
            log.warning("bad frame: a topic that is not UTF-8 (%d bytes): dropped", len(msg.payload or b""))
            self.core.counters["malformed"] += 1
            topic = None
        # The core refuses bad frames itself; an exception out of it is a gateway bug: paho would
        # re-raise it out of loop() and stop the whole control plane, so driver.run logs it with its
        # traceback and we keep serving (invariant 5).
        out = self._run(self.core.on_message, topic, msg.payload, time.monotonic()) if topic is not None else None
        if out is not None and not out.ack:
            out = self._store_retry(topic, msg.payload, out)
        if out is not None and not out.ack:
            # not stored and stopping: the broker must keep it.  Unacknowledged, it comes again on
            # the next connection of our persistent session
            client.disconnect()
            return
        if msg.qos:
            client.ack(msg.mid, msg.qos)  # stored (or rejected) first: only now may the broker forget it

    def _store_retry(self, topic, payload, out):
        """The store refused this message's writes: not acknowledged (the broker keeps it), the
        same message again after a doubling backoff until it is stored, in order (the next
        messages wait in the socket).  The outage is counted (`store_faults`), shown by `netedge
        status` and the status page (a file beside the database while it lasts, then the store),
        and the gateway is deaf meanwhile: no heartbeat deadline blames a node for it."""
        t0, delay, tries = time.time(), driver.STORE_RETRY_MIN_S, 0
        self.core.counters["store_faults"] += 1
        self.core.broker_lost()  # (blind: see GatewayCore.broker_lost; broker_back ends it)
        while not out.ack and not self.stopping.is_set():
            tries += 1
            self._store_fault({"since": t0, "error": "%s: %s" % (type(out.error).__name__, out.error),
                               "retries": tries, "faults": self.core.counters["store_faults"]})
            time.sleep(delay)
            delay = min(delay * 2, driver.STORE_RETRY_MAX_S)
            out = self._run(self.core.on_message, topic, payload, time.monotonic())
        if out.ack:
            outage = {"at": t0, "seconds": round(time.time() - t0, 3), "retries": tries,
                      "faults": self.core.counters["store_faults"], "error": self._store_fault(None)}
            log.warning("store writable again after %.1f s and %d retries: the message is stored", outage["seconds"],
                        tries)
            self._run(self.core.broker_back, time.monotonic())
            try:
                with self.store.transaction():
                    self.store.save_state(STORE_OUTAGE_KEY, StoreOutage(**outage))
            except sqlite3.Error:
                pass  # (shown again at the next outage; the counter has it)
        return out

    def _store_fault(self, fault):
        """Write (or, with None, remove) the live store fault beside the database; returns the
        error text the file held."""
        path = self.store.path + STORE_FAULT_SUFFIX
        try:
            if fault is None:
                with open(path) as f:
                    was = json.load(f).get("error")
                os.remove(path)
                return was
            with open(path + ".new", "w") as f:
                json.dump(fault, f)
            os.replace(path + ".new", path)
        except (OSError, ValueError):
            return None

    def _publish(self, item):
        topic, data, qos, retain = item
        self.client.publish(topic, data, qos, retain)

    def _do(self, acts):
        for item in acts.publish:
            self._publish(item)
        for node, slots, key in acts.push_keys:
            if getattr(self.pusher, "local", lambda n: False)(node):
                # done now, not at the next loop round (up to TICK_S later): a migration to a
                # board that lacks the key slot waits for this
                self._run(self.core.keys_pushed, key, self._push(node, slots), time.monotonic())
            else:  # USB provisioning takes seconds: a worker thread, reported through `done`
                self.pool.submit(self._push_later, node, slots, key)

    def _push_later(self, node, slots, key):
        self.done.put((key, self._push(node, slots)))

    def _push(self, node, slots):
        """Deliver the key slots; returns None, or the error to report."""
        try:
            self.pusher.push(node, slots)
        except Exception as e:
            log.error("key provisioning failed node=%s: %s", node, e)
            return str(e) or type(e).__name__

    def step(self):
        """One round of the loop: network, finished provisioning, timers."""
        if self.client.loop(timeout=TICK_S) != paho.MQTT_ERR_SUCCESS:
            self._redial()  # (paho's loop() never reconnects by itself)
        now = time.monotonic()
        while True:
            try:
                key, err = self.done.get_nowait()
            except queue.Empty:
                break
            self._run(self.core.keys_pushed, key, err, now)
        self._run(self.core.tick, now)

    def _redial(self):
        """The broker is gone (restarted, upgraded, the network): dial it again with a backoff.
        The persistent session brings back the subscription and every QoS 1 message the broker
        kept meanwhile; the timers go on, what they publish waits in paho's queue."""
        now = time.monotonic()
        if now < self.redial[0]:
            time.sleep(TICK_S)  # (loop() returns at once while disconnected: no busy loop)
            return
        try:
            self.client.reconnect()
            nodelay(self.client)
            self.redial = [0.0, REDIAL_MIN_S]
        except (OSError, ValueError) as e:
            wait = self.redial[1]
            self.redial = [now + wait, min(wait * 2, REDIAL_MAX_S)]
            log.warning("broker unreachable (%s): next attempt in %.1f s", e, wait)

    def run(self):
        while not self.stopping.is_set():
            self.step()

    def close(self):
        try:
            if self.client is not None:
                self._publish(self.core.status_frame(False))
                self.client.loop(0.1)
                self.client.disconnect()
        finally:
            self.pool.shutdown(wait=False)
            if self.http is not None:
                self.http.stop()
            if self.store is not None:
                self.store.close()
            if self.broker is not None:
                self.broker.stop()
        log.info("gateway stopped")


def serve(cfg):
    """`netedge gateway`: run until SIGTERM/SIGINT, then shut down cleanly."""
    svc = GatewayService(cfg)

    def _stop(signum, frame):
        log.info("signal %d: shutting down", signum)
        svc.stopping.set()
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    svc.open()
    try:
        svc.run()
    finally:
        svc.close()
    return 0
