"""The standby group's and the fork's state tables: the code's (gateway/control/standby.py and
fork.py: STEPS, TRANSITIONS) are the ones docs/PROTOCOL.md §17 prints, row by row; every
transition names a step, a party and a handler the orchestrator has."""
from netedge.gateway.control import fork as K
from netedge.gateway.control import standby as S

import protocol_doc

def doc_table(header):
    """The cells of the table in §17 whose header line is `header`."""
    return protocol_doc.table(17, header)


def timeout(t):
    return "-" if t is None else "%g s" % t


def test_the_protocol_prints_the_group_tables():
    assert doc_table("| step | start condition | timeout | on timeout |") == [
        ["`%s`" % s.name, s.starts, timeout(s.timeout_s), s.on_timeout] for s in S.STEPS]
    assert doc_table("| in steps | event | from | handler | leads to |") == [
        [", ".join("`%s`" % x for x in r.steps), r.event, r.party, "`%s`" % r.handler, r.then]
        for r in S.TRANSITION_ROWS]


def test_the_protocol_prints_the_fork_tables():
    assert doc_table("| fork step | start condition | the gateway sends | end condition | timeout |") == [
        ["`%s`" % s.name, s.starts, s.sends, s.ends, timeout(s.timeout_s)] for s in K.STEPS]
    assert doc_table("| fork step | event | from | handler |") == [
        ["`%s`" % st, ev, p, "`%s`" % h] for (st, ev), (p, h) in K.TRANSITIONS.items()]


def test_every_group_transition_names_a_step_a_party_and_a_handler():
    names = {s.name for s in S.STEPS}
    for (step, event), t in S.TRANSITIONS.items():
        assert step in names and isinstance(event, str)
        assert t.party in ("driver", "active", "member", "promoted")
        assert callable(getattr(S.StandbyOrchestrator, t.handler))
    # a timeout per step, but the two a node's heartbeat ends (or nothing does)
    assert [s.name for s in S.STEPS if s.timeout_s is None] == ["orphaned", "lost"]
    # every step but the final one is left by some transition
    assert {step for step, _ in S.TRANSITIONS} == names


def test_every_fork_transition_names_a_step_a_party_and_a_handler():
    names = {s.name for s in K.STEPS}
    for (step, event), (party, handler) in K.TRANSITIONS.items():
        assert step in names and party in ("host", "node", "driver")
        assert callable(getattr(K.ForkOrchestrator, handler))
    assert all(s.timeout_s for s in K.STEPS)
    assert {step for step, ev in K.TRANSITIONS if ev != "failed"} == names
