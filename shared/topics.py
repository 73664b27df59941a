"""MQTT topic names (docs/PROTOCOL.md "Topics").  One place, so trace filters and ACLs agree.

Daemons are addressed by origin hash (8 lowercase hex digits), nodes by node id.
"""
ROOT = "ne/v1"


def node_status(node):
    return "%s/node/%s/status" % (ROOT, node)      # retained; the last will says offline


def node_heartbeat(node):
    return "%s/node/%s/hb" % (ROOT, node)


def node_control(node):
    return "%s/node/%s/ctl" % (ROOT, node)          # gateway -> node commands


def node_errors(node):
    return "%s/node/%s/err" % (ROOT, node)          # error frames a node reports


def daemon_inbox(origin):
    return "%s/d/%08x/in" % (ROOT, origin)


def daemon_chain(origin):
    return "%s/d/%08x/chain" % (ROOT, origin)


def parse_origin(text):
    """'1a2b3c4d' -> int; ValueError unless exactly 8 hex digits."""
    if len(text) != 8:
        raise ValueError("origin must be 8 hex digits")
    return int(text, 16)


ALL = ROOT + "/#"


def daemon_status(origin):
    return "%s/d/%08x/status" % (ROOT, origin)      # retained: host, epoch, ContinuityStatus, phase


def gateway_status(gw):
    return "%s/gw/%s/status" % (ROOT, gw)           # retained; the last will says offline


def gateway_requests(gw, client="+"):
    return "%s/gw/%s/req/%s" % (ROOT, gw, client)   # operator CLI -> gateway


def gateway_replies(gw, client):
    return "%s/gw/%s/rep/%s" % (ROOT, gw, client)   # gateway -> operator CLI


def split(topic):
    """('node', id, leaf) | ('d', origin_hex, leaf) | ('gw', id, leaf, client?) or None."""
    parts = topic.split("/")
    if len(parts) < 5 or parts[0] + "/" + parts[1] != ROOT:
        return None
    return tuple(parts[2:])
