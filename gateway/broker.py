"""The embedded broker (amqtt, pure Python) for `netedge demo` and development: a fresh machine
needs no root and no Mosquitto.  Production uses Mosquitto or any MQTT 3.1.1 broker.

Known limit (FIELD_NOTES): amqtt never drops a frozen client, so the gateway's own heartbeat
deadline is what detects one — as it must with any broker.
"""
import asyncio
import logging
import socket
import threading

log = logging.getLogger("netedge.broker")


def free_port(host="127.0.0.1"):
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


class EmbeddedBroker:
    """amqtt running on its own event loop in a daemon thread."""

    def __init__(self, host="127.0.0.1", port=0):
        self.host = host
        self.port = port or free_port(host)
        self._loop = None
        self._broker = None
        self._thread = None
        self._ready = threading.Event()
        self._error = None

    def start(self, timeout=10):
        self._thread = threading.Thread(target=self._run, name="amqtt", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("embedded broker did not start in %ds" % timeout)
        if self._error:
            raise RuntimeError("embedded broker failed: %s" % self._error)
        log.info("embedded broker listening url=mqtt://%s:%d", self.host, self.port)
        return self

    def _run(self):
        from amqtt.broker import Broker
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        cfg = {"listeners": {"default": {"type": "tcp", "bind": "%s:%d" % (self.host, self.port)}},
               "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}}
        try:
            self._broker = Broker(cfg, loop=self._loop)
            self._loop.run_until_complete(self._broker.start())
        except Exception as e:  # reported by start()
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()

    def stop(self):
        if self._loop is None or self._broker is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop)
        try:
            fut.result(5)
        except Exception:
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
