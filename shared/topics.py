"""MQTT topic names (docs/PROTOCOL.md §11).  One place, so nodes, the gateway, trace filters and
ACLs agree.

    ne/v1/node/<node>/{status,hb,ctl,mark,err,mig}   status retained (the last will says offline);
                                            mark: the gateway's stored marks, QoS 0
    ne/v1/d/<origin>/{in,chain,status,continuity}   origin = 8 lowercase hex digits;
                                            status and continuity (signed records) retained
    ne/v1/gw/<gw>/{status,req/<client>,rep/<client>}

Every node keeps this module resident, and at 64 KB of heap one more function here runs a node
out of memory when it reboots with two daemons: what only the gateway and tools need (the frame
types each topic carries) is in shared/topic_types.py.
"""
ROOT = "ne/v1"
ALL = "ne/v1/#"  # (a literal: in a ROM image it costs no heap)


def node(node_id, leaf):
    return "%s/node/%s/%s" % (ROOT, node_id, leaf)


def daemon(origin, leaf):
    return "%s/d/%08x/%s" % (ROOT, origin, leaf)


def gateway(gw, leaf, client=None):
    return "%s/gw/%s/%s" % (ROOT, gw, leaf) + ("/" + client if client else "")


def parse_origin(text):
    """'1a2b3c4d' -> int.  Exactly 8 lowercase hex digits, the one spelling daemon() writes,
    else ValueError: int(x, 16) alone takes "0x12345", " 1234567", "1_234567" and upper case,
    topics no node subscribes to."""
    if type(text) is not str or len(text) != 8 or text.strip("0123456789abcdef"):
        raise ValueError("origin %r: expected 8 lowercase hex digits" % (text,))
    return int(text, 16)


def split(topic):
    """The levels after ROOT, e.g. ('node', 'n1', 'hb'), or None for a foreign topic."""
    parts = topic.split("/")
    if len(parts) < 5 or parts[0] + "/" + parts[1] != ROOT:
        return None
    return tuple(parts[2:])
