"""Topics (shared/topics.py, shared/topic_types.py, docs/PROTOCOL.md §11): the strict origin
parser and the frame types each topic carries.  Expectations are written out here, not taken
from the code."""
from netedge.shared import topics as T
from netedge.shared.topic_types import frame_types
from golden import eq


def check(case):
    kind = case["kind"]
    if kind == "origin":
        try:
            got = T.parse_origin(case["text"])
        except ValueError as e:
            if "origin" in case:
                raise AssertionError("refused %r: %s" % (case["text"], e))
            eq("error", type(e).__name__, case["error"])
            return
        if "origin" not in case:
            raise AssertionError("accepted %r as %08x" % (case["text"], got))
        eq("origin", got, case["origin"])
        eq("round trip", T.daemon(got, "in"), "ne/v1/d/%s/in" % case["text"])
    elif kind == "frame_types":
        levels = T.split(case["topic"])
        got = None if levels is None else frame_types(levels)
        eq("types", None if got is None else list(got), case["types"])
    else:
        raise AssertionError("unknown kind " + kind)


def generate():
    import re
    cases = []
    texts = ["1a2b3c4d", "00000000", "ffffffff", "deadbeef",
             "0x12345", "0x123456", " 1234567", "1234567 ", "1_234567", "1A2B3C4D", "DEADBEEF", "1a2b3c4", "1a2b3c4d0",
             "", "+1234567", "-1234567", "1a2b3c4g", "\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668",
             "\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18", "1a2b\n3c4"]
    for t in texts:
        c = {"name": "origin %r" % t, "kind": "origin", "text": t}
        if re.fullmatch("[0-9a-f]{8}", t):
            c["origin"] = int(t, 16)
        else:
            c["error"] = "ValueError"
        cases.append(c)
    # docs/PROTOCOL.md §11, by frame type code: INPUT 1, CHAIN_EVENT 2, HEARTBEAT 3, STATUS 4,
    # ERROR 5, FORK_RECORD 7, DISCONTINUITY 8, CONTROL 9, MIGRATION 10
    table = [("ne/v1/d/1a2b3c4d/in", [1]), ("ne/v1/d/1a2b3c4d/chain", [2]), ("ne/v1/d/1a2b3c4d/status", [4]),
             ("ne/v1/d/1a2b3c4d/continuity", [8, 7]), ("ne/v1/node/n1/status", [4]), ("ne/v1/node/n1/hb", [3]),
             ("ne/v1/node/n1/err", [5]), ("ne/v1/node/n1/ctl", [9]), ("ne/v1/node/n1/mig", [10]),
             ("ne/v1/gw/gw1/status", [4]), ("ne/v1/gw/gw1/req/cli-1", [9]), ("ne/v1/gw/gw1/rep/cli-1", [4]),
             ("ne/v1/d/1a2b3c4d/other", None), ("ne/v1/x/y/in", None), ("ne/v2/d/1a2b3c4d/in", None),
             ("elsewhere/d/1a2b3c4d/in", None)]
    for topic, types in table:
        cases.append({"name": "types %s" % topic, "kind": "frame_types", "topic": topic, "types": types})
    return cases
