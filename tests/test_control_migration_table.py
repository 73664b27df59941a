"""The migration's phase table: the code's (gateway/control/migration.py PHASES) is the one
docs/PROTOCOL.md §16 prints, row by row; the phases are shared/phases.py's, in order, each mapped
to its SuperpositionPhase by shared/superposition.py; every transition names a phase and a side."""
from netedge.gateway.control import migration as M
from netedge.shared import phases as P
from netedge.shared import superposition as SP

import protocol_doc


def doc_rows():
    """The cells of the six-phase table in §16 (the one whose header starts `| phase | start condition`)."""
    return protocol_doc.table(16, "| phase | start condition |")


def code_rows():
    return [["`%s`" % p.name, p.starts, p.sends, p.ends, "-" if p.timeout_s is None else "%g s" % p.timeout_s,
             p.on_timeout, p.superposition] for p in M.PHASES]


def test_the_protocol_prints_the_code_table():
    assert doc_rows() == code_rows()


def test_the_phases_are_the_shared_ones_in_order():
    assert [p.number for p in M.PHASES] == [P.SNAPSHOT, P.TRANSFER, P.RESTORE, P.REPLAY, P.CUTOVER, P.COMPLETE]
    assert [p.name for p in M.PHASES] == [n.lower() for n in P.MIGRATION_PHASE_NAMES]
    assert [p.superposition for p in M.PHASES] == [SP.phase_name(SP.from_migration(p.number)) for p in M.PHASES]
    assert [p.superposition for p in M.PHASES] == ["Localized", "Spreading", "Spreading", "Superposed",
                                                   "Collapsed", "Resolved"]
    assert M.PRE_BUMP == ("snapshot", "transfer", "restore")
    for p in M.PHASES:  # a timeout per phase (but the last, which ends at once)
        assert (p.timeout_s is None) == (p.name == "complete")
        assert (p.retry is not None) == (p.on_timeout == M.RESEND)


def test_every_transition_names_a_phase_a_side_and_a_handler():
    for (phase, op), (side, handler) in M.TRANSITIONS.items():
        assert phase in M.BY_NAME and isinstance(op, str)
        assert side in ("source", "target")
        assert callable(getattr(M.MigrationOrchestrator, handler))
    # the phases a reply can end, and the ones a timer or a node's fate ends
    assert {ph for ph, _ in M.TRANSITIONS} == {"snapshot", "transfer", "restore", "replay", "cutover"}
