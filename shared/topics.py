"""MQTT topic names (docs/PROTOCOL.md "Topics").  One place, so trace filters and ACLs agree.

    ne/v1/node/<node>/{status,hb,ctl,err,mig}   status retained (the last will says offline)
    ne/v1/d/<origin>/{in,chain,status,continuity}   origin = 8 lowercase hex digits;
                                            status and continuity (signed records) retained
    ne/v1/gw/<gw>/{status,req/<client>,rep/<client>}
"""
ROOT = "ne/v1"
ALL = ROOT + "/#"


def node(node_id, leaf):
    return "%s/node/%s/%s" % (ROOT, node_id, leaf)


def daemon(origin, leaf):
    return "%s/d/%08x/%s" % (ROOT, origin, leaf)


def gateway(gw, leaf, client=None):
    return "%s/gw/%s/%s" % (ROOT, gw, leaf) + ("/" + client if client else "")


def parse_origin(text):
    """'1a2b3c4d' -> int; ValueError unless exactly 8 hex digits."""
    if len(text) != 8:
        raise ValueError("origin must be 8 hex digits")
    return int(text, 16)


def split(topic):
    """The levels after ROOT, e.g. ('node', 'n1', 'hb'), or None for a foreign topic."""
    parts = topic.split("/")
    if len(parts) < 5 or parts[0] + "/" + parts[1] != ROOT:
        return None
    return tuple(parts[2:])
