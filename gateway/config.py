"""Gateway configuration: a TOML file (`netedge gateway --config netedge.toml`).

    [gateway]
    id = "gw1"                        # MQTT client id and frame sender; one per gateway
    data_dir = "/var/lib/netedge"     # netedge.db (SQLite) and kek (0600) live here
    heartbeat_deadline_ms = 1500      # a node silent this long is suspect (brokers notice late)
    input_log_max = 100000            # inputs kept per daemon for replay; beyond, the oldest go
    http = ":8080"                    # optional status page

    [broker]                          # omit the section to run the embedded broker (amqtt)
    url = "mqtt://127.0.0.1:1883"     # add `embedded = true` to run the embedded broker on this address
    username = "gateway"
    password = "..."

    [nodes.n1]                        # how keys reach a node out of band (never over MQTT):
    port = "/dev/ttyUSB0"             #   USB serial, through mpremote
    # path = "/srv/netedge/boards/n1" #   or the flash folder of a unix-port (virtual) board
"""
import os
import tomllib
from urllib.parse import urlparse

from .errors import OperatorError

DEFAULT_PORT = 1883


class ConfigError(OperatorError):
    """A config file or broker url that cannot be used: the message says which setting and why."""


class BrokerConfig:
    def __init__(self, url=None, username=None, password=None, embedded=None):
        # no url: embedded broker on a free port; url + embedded = true: embedded, listening there
        self.embedded = url is None or bool(embedded)
        self.host, self.port = "127.0.0.1", 0
        if url is not None:
            u = urlparse(url)
            if u.scheme not in ("mqtt", "tcp") or not u.hostname:
                raise ConfigError("broker url %r: expected mqtt://host[:port]" % url)
            self.host, self.port = u.hostname, u.port or DEFAULT_PORT
        self.username = username
        self.password = password

    @property
    def url(self):
        return "mqtt://%s:%d" % (self.host, self.port)


class GatewayConfig:
    def __init__(self, d=None, base_dir="."):
        d = d or {}
        g = d.get("gateway", {})
        self.id = g.get("id", "gw1")
        if not isinstance(self.id, str) or not self.id or "/" in self.id or "+" in self.id or "#" in self.id:
            raise ConfigError("gateway.id must be a plain name (it is an MQTT topic level)")
        self.data_dir = os.path.join(base_dir, g.get("data_dir", "netedge-data"))
        self.deadline_ms = int(g.get("heartbeat_deadline_ms", 1500))
        self.input_log_max = g.get("input_log_max", 100000)
        if type(self.input_log_max) is not int or self.input_log_max < 1:
            raise ConfigError("gateway.input_log_max must be an integer >= 1")
        self.http = g.get("http")
        b = d.get("broker")
        try:
            self.broker = BrokerConfig(**b) if b else BrokerConfig()
        except TypeError:
            raise ConfigError("[broker] takes url, username, password, embedded")
        self.nodes = {}
        for node, spec in (d.get("nodes") or {}).items():
            if not isinstance(spec, dict) or not (spec.get("port") or spec.get("path")):
                raise ConfigError("nodes.%s needs `port` (USB serial) or `path` (virtual board folder)" % node)
            self.nodes[node] = spec

    @property
    def db_path(self):
        return os.path.join(self.data_dir, "netedge.db")

    @property
    def kek_path(self):
        return os.path.join(self.data_dir, "kek")


def load(path=None):
    if path is None:
        return GatewayConfig()
    try:
        with open(path, "rb") as f:
            d = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError("config file %s not found (see docs/examples/netedge.toml)" % path)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("config file %s is not valid TOML: %s" % (path, e))
    try:
        return GatewayConfig(d, os.path.dirname(os.path.abspath(path)))
    except (TypeError, ValueError) as e:
        raise ConfigError("config file %s: %s" % (path, e))
