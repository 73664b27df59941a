"""Node configuration: one JSON file on the board (`netedge.json`), written by provisioning.

    {"node_id": "n1",
     "broker": {"host": "192.168.1.10", "port": 1883, "username": "n1", "password": "...",
                "keepalive": 10},
     "board": "esp32",
     "heartbeat_ms": 500,
     "max_state": 4096,               # bytes of state a daemon may hold (its snapshot)
     "state_dir": "state",
     "kinds": {"counter": "netedge.firmware.daemons.counter.Counter"},
     "keys": [{"kind": "counter", "public": "<64 hex>", "secret": "<64 hex, optional>"}],
     "host": ["<8-hex origin>", ...]}

`keys` (and the separate `keys.json`, a list of the same slot objects, which provisioning
rewrites when the gateway deploys a daemon here) are the key slots — never sent over MQTT.  `host` lists daemons this node
activates at first boot (epoch 1) when it has no record for them; after that, flash records
decide.  Errors name the field and say what is expected.
"""
import json


class ConfigError(ValueError):
    pass


DEFAULT_KINDS = {
    "counter": "netedge.firmware.daemons.counter.Counter",
    "echo": "netedge.firmware.daemons.echo.Echo",
}


def _want(cond, field, what):
    if not cond:
        raise ConfigError("config field %r: %s" % (field, what))


def _hex(s, n, field):
    _want(isinstance(s, str) and len(s) == 2 * n, field, "expected %d hex digits" % (2 * n))
    try:
        return bytes.fromhex(s)
    except ValueError:
        raise ConfigError("config field %r: not hexadecimal" % field)


def _node_id(v):
    ok = isinstance(v, str) and 0 < len(v) <= 32
    if ok:
        for c in v:
            if not (c.isalpha() or c.isdigit() or c in "-_"):
                ok = False
    _want(ok, "node_id", "1..32 characters of letters, digits, '-' or '_' (it is an MQTT topic level)")
    return v


class Settings:
    """The parsed configuration.  No methods on purpose: it must not keep this module alive,
    so the node can unload the parser after boot (a few KB of a board's heap)."""


def parse(d):
    self = Settings()
    _want(isinstance(d, dict), "(top)", "expected a JSON object")
    self.node_id = _node_id(d.get("node_id"))
    b = d.get("broker")
    _want(isinstance(b, dict), "broker", "expected an object with host and port")
    self.broker_host = b.get("host")
    _want(isinstance(self.broker_host, str) and self.broker_host, "broker.host", "expected a host name or address")
    self.broker_port = b.get("port", 1883)
    _want(isinstance(self.broker_port, int) and 0 < self.broker_port < 65536, "broker.port", "expected 1..65535")
    self.username = b.get("username")
    self.password = b.get("password")
    _want(self.username is None or isinstance(self.username, str), "broker.username", "expected text")
    _want(self.password is None or isinstance(self.password, str), "broker.password", "expected text")
    self.keepalive = b.get("keepalive", 10)
    _want(isinstance(self.keepalive, int) and 1 <= self.keepalive <= 600, "broker.keepalive", "seconds, 1..600")
    self.raw = d  # board adapters read their own fields (e.g. wifi)
    self.board = d.get("board", "unix")
    _want(isinstance(self.board, str), "board", "expected a board name")
    self.queue_max = d.get("queue_max", 32)
    _want(isinstance(self.queue_max, int) and 1 <= self.queue_max <= 64, "queue_max",
          "inputs held unprocessed at most, 1..64 (more than the broker's in-flight cap avoids resyncs)")
    self.max_state = d.get("max_state", 4096)
    _want(isinstance(self.max_state, int) and 256 <= self.max_state <= 65536, "max_state",
          "bytes of daemon state (snapshot) a daemon may hold, 256..65536")
    self.heartbeat_ms = d.get("heartbeat_ms", 500)
    _want(isinstance(self.heartbeat_ms, int) and 50 <= self.heartbeat_ms <= 60000, "heartbeat_ms",
          "milliseconds, 50..60000")
    self.state_dir = d.get("state_dir", "state")
    _want(isinstance(self.state_dir, str) and self.state_dir, "state_dir", "expected a folder name")
    kinds = d.get("kinds", DEFAULT_KINDS)
    _want(isinstance(kinds, dict), "kinds", "expected an object kind -> module.Class")
    for k, path in kinds.items():
        _want(isinstance(path, str) and "." in path, "kinds." + str(k), "expected 'module.Class'")
    self.kinds = kinds
    self.keys = parse_keys(d.get("keys", []), kinds, "keys")
    host = d.get("host", [])
    _want(isinstance(host, list), "host", "expected a list of 8-hex-digit origins")
    self.hosted = []
    for i, o in enumerate(host):
        _want(isinstance(o, str) and len(o) == 8, "host[%d]" % i, "expected 8 hex digits")
        try:
            self.hosted.append(int(o, 16))
        except ValueError:
            raise ConfigError("config field 'host[%d]': not hexadecimal" % i)
    return self


def parse_keys(keys, kinds, field="keys"):
    """Key slots [{"kind", "public", "secret"?}] -> [(kind, public32, secret32 or None)]."""
    _want(isinstance(keys, list), field, "expected a list of key slots")
    out = []
    for i, k in enumerate(keys):
        f = "%s[%d]" % (field, i)
        _want(isinstance(k, dict), f, "expected an object with kind and public")
        _want(k.get("kind") in kinds, f + ".kind", "unknown kind %r (not in kinds)" % k.get("kind"))
        pub = _hex(k.get("public"), 32, f + ".public")
        sec = _hex(k["secret"], 32, f + ".secret") if k.get("secret") is not None else None
        out.append((k["kind"], pub, sec))
    return out


def load_keys(kinds, path="keys.json"):
    """The key slots provisioning wrote over USB (`keys.json`); [] when there is none yet."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return []
    try:
        d = json.loads(text)
    except ValueError as e:
        raise ConfigError("key file %r is not valid JSON: %s" % (path, e))
    return parse_keys(d, kinds, path)


def load(path="netedge.json"):
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        raise ConfigError("no config file %r: provision this board first (netedge provision)" % path)
    try:
        d = json.loads(text)
    except ValueError as e:
        raise ConfigError("config file %r is not valid JSON: %s" % (path, e))
    cfg = parse(d)
    cfg.keys += load_keys(cfg.kinds)
    return cfg


def load_class(path):
    """'pkg.mod.Class' -> the class (works on MicroPython, which lacks importlib)."""
    mod_name, _, cls_name = path.rpartition(".")
    mod = __import__(mod_name, None, None, [cls_name])
    return getattr(mod, cls_name)
