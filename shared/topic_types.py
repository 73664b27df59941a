"""The frame types each topic carries (docs/PROTOCOL.md §11), for the gateway and the tools.

Apart from shared/topics.py because every node keeps that module resident and never asks this.
"""
from . import frame as FR

# (topic scope, leaf) -> the frame types allowed there
FRAME_TYPES = {
    ("d", "in"): (FR.INPUT,),
    ("d", "chain"): (FR.CHAIN_EVENT,),
    ("d", "status"): (FR.STATUS,),
    ("d", "continuity"): (FR.DISCONTINUITY, FR.FORK_RECORD),
    ("node", "status"): (FR.STATUS,),
    ("node", "hb"): (FR.HEARTBEAT,),
    ("node", "err"): (FR.ERROR,),
    ("node", "ctl"): (FR.CONTROL,),
    ("node", "mark"): (FR.CONTROL,),
    ("node", "mig"): (FR.MIGRATION,),
    ("gw", "status"): (FR.STATUS,),
    ("gw", "req"): (FR.CONTROL,),
    ("gw", "rep"): (FR.STATUS,),
}


def frame_types(levels):
    """The frame types a topic may carry, from topics.split()'s levels, e.g.
    ('d', '1a2b3c4d', 'in') -> (INPUT,); None for a topic §11 does not name."""
    if not levels or len(levels) < 3:
        return None
    return FRAME_TYPES.get((levels[0], levels[2]))
