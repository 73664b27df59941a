"""The gateway's own crash mid-promotion (PROTOCOL §17): the active's node is killed, the
gateway starts promoting a standby, and is itself killed (-9) before the standby answers; it is
restarted from its store.  The group is persisted (its GroupState record), the backlog it was feeding
is not: the restarted gateway carries on with what the broker kept for its session, or times the
promotion out and promotes again.  Either way the group ends running on one active, with every
input processed exactly once and in order on ONE Continuous chain."""
import signal
import time

import pytest

from cluster import Cluster, Stream, check_chain
from test_standby import create_group, group_of, wait_running
from netedge.gateway.control.standby import REPLY_TIMEOUT_S
from netedge.gateway.control.state import GroupState

N = 300


@pytest.mark.parametrize("down", [0.5, REPLY_TIMEOUT_S + 2], ids=["down-briefly", "down-past-the-reply-timeout"])
def test_gateway_killed_while_promoting(tmp_path, firmware, down):
    c = Cluster(tmp_path, firmware, ["n1", "n2", "n3"])
    standbys = [c.nodes["n2"], c.nodes["n3"]]
    try:
        a = create_group(c, "--nodes", "n1,n2,n3", "--sync-every", "40")
        s = Stream(c.obs, a, 1, N, rate=100)
        s.start()
        time.sleep(1.0)
        for n in standbys:  # whichever is promoted, it does not answer before the gateway dies
            n.signal(signal.SIGSTOP)
        c.failed = "n1"
        c.nodes["n1"].kill()
        c.gw.wait_for(lambda st: getattr(st.load_state(GroupState, a), "step", None) == "promoting", 10,
                      "a promotion under way")
        c.gw.kill()
        for n in standbys:
            n.signal(signal.SIGCONT)
        time.sleep(down)
        c.gw.start()
        s.join(60)
        assert s.error is None and not s.is_alive()
        c.wait_events(a, N, timeout=60)
        wait_running(c, a, timeout=30)
        g = group_of(c, a)
        p = g["promotions"][-1]
        assert p["from"] in ("n1", "n2", "n3") and p["to"] in ("n2", "n3"), p
        check_chain(c, a, N, p["epoch"], p["to"])
        assert c.hosts_now(a, ("n2", "n3")) == [p["to"]], c.obs.heartbeats  # one active
    except Exception:
        print(c.gw.output()[-8000:])
        raise
    finally:
        for n in c.nodes.values():
            n.signal(signal.SIGCONT)
        c.close()
