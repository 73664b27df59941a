"""Superposition phases: the migration mapping and scripted state-machine scenarios."""
from netedge.shared import superposition as S
from netedge.shared.link import CausalLink
from golden import eq


def _link(origin, seq, parent):
    return CausalLink(origin, 0, seq, parent)


def _run(st, origin, op):
    """Apply one scripted op; return "ok"/True/False or the error class name."""
    try:
        if op[0] == "advance":
            return st.advance(op[1])
        if op[0] == "abort":
            st.abort()
        elif op[0] in ("target", "source"):
            lk = _link(op[3] if len(op) > 3 else origin, op[1], op[2])
            (st.target_replayed if op[0] == "target" else st.source_advanced)(lk)
        else:
            raise AssertionError("unknown op %r" % (op,))
        return "ok"
    except AssertionError:
        raise
    except Exception as e:
        return type(e).__name__


def check(case):
    kind = case["kind"]
    if kind == "mapping":
        try:
            got = S.PHASE_NAMES[S.from_migration(case["migration_phase"])]
        except Exception as e:
            got = type(e).__name__
        eq("phase", got, case["phase"])
    elif kind in ("scenario", "proof"):
        o = case["origin"]
        st = S.SuperpositionState(o, _link(o, case["source"][0], case["source"][1]))
        for i, step in enumerate(case["steps"]):
            op, want = step[0], step[1]
            res = _run(st, o, op)
            got = [res, S.PHASE_NAMES[st.phase], st.replay_gap(), st.caught_up()]
            eq("step %d %r" % (i, op), got, want)
        obj = st.to_obj()
        eq("obj phase", obj["phase_name"], S.PHASE_NAMES[st.phase])
        eq("from_obj", S.SuperpositionState.from_obj(obj).to_obj(), obj)
        if kind == "proof":
            eq("proof", st.continuity_proof().to_bytes().hex(), case["proof"])
    else:
        raise AssertionError("unknown kind " + kind)


def generate():
    import struct
    from golden import _ref as R

    names = ["Localized", "Spreading", "Spreading", "Superposed", "Collapsed", "Resolved"]
    cases = [{"name": "map-%d" % mp, "kind": "mapping", "migration_phase": mp, "phase": names[mp]}
             for mp in range(6)]
    cases += [{"name": "map-unknown-%d" % mp, "kind": "mapping", "migration_phase": mp, "phase": "UnknownPhase"}
              for mp in (-1, 6)]
    O = 0x0A0B0C0D
    P = 0x5555
    # step = [op, [result, phase after, replay_gap, caught_up]]; migration phases: 0 Snapshot 1 Transfer
    # 2 Restore 3 Replay 4 Cutover 5 Complete.  Expectations are written by hand, not computed.
    scen = {
        "lifecycle": [
            [["advance", 0], [False, "Localized", 0, True]],
            [["advance", 1], [True, "Spreading", 0, True]],
            [["advance", 2], [False, "Spreading", 0, True]],
            [["advance", 3], [True, "Superposed", 0, True]],
            [["target", 11, 1], ["ok", "ReadyToCollapse", 0, True]],
            [["advance", 4], [True, "Collapsed", 0, True]],
            [["target", 12, 2], ["ok", "Collapsed", 0, True]],
            [["advance", 5], [True, "Resolved", 0, True]],
            [["advance", 4], [False, "Resolved", 0, True]],
        ],
        "replay-gap-and-fallback": [
            [["advance", 1], [True, "Spreading", 0, True]],
            [["source", 13, 3], ["ok", "Spreading", 3, False]],
            [["advance", 3], [True, "Superposed", 3, False]],
            [["target", 11, 1], ["ok", "Superposed", 2, False]],
            [["advance", 4], ["NotCaughtUp", "Superposed", 2, False]],
            [["target", 13, 3], ["ok", "ReadyToCollapse", 0, True]],
            [["source", 14, 4], ["ok", "Superposed", 1, False]],
            [["target", 14, 4], ["ok", "ReadyToCollapse", 0, True]],
            [["advance", 4], [True, "Collapsed", 0, True]],
            [["source", 15, 5], ["PhaseRegression", "Collapsed", 0, True]],
            [["source", 14, 4], ["ok", "Collapsed", 0, True]],
            [["abort"], ["PhaseRegression", "Collapsed", 0, True]],
        ],
        "ready-during-spreading": [
            [["advance", 1], [True, "Spreading", 0, True]],
            [["source", 12, 2], ["ok", "Spreading", 2, False]],
            [["target", 12, 2], ["ok", "ReadyToCollapse", 0, True]],
            [["advance", 2], [False, "ReadyToCollapse", 0, True]],
            [["source", 13, 3], ["ok", "Spreading", 1, False]],
            [["target", 13, 3], ["ok", "ReadyToCollapse", 0, True]],
            [["advance", 3], [False, "ReadyToCollapse", 0, True]],
            [["source", 14, 4], ["ok", "Superposed", 1, False]],
            [["target", 14, 4], ["ok", "ReadyToCollapse", 0, True]],
            [["advance", 1], [False, "ReadyToCollapse", 0, True]],
            [["advance", 5], [True, "Resolved", 0, True]],
        ],
        "abort-and-retry": [
            [["advance", 1], [True, "Spreading", 0, True]],
            [["source", 11, 1], ["ok", "Spreading", 1, False]],
            [["abort"], ["ok", "Localized", 0, True]],
            [["advance", 0], [False, "Localized", 0, True]],
            [["advance", 1], [True, "Spreading", 0, True]],
            [["advance", 3], [True, "Superposed", 0, True]],
            [["abort"], ["ok", "Localized", 0, True]],
        ],
        "stale-foreign-and-unknown": [
            [["target", 9, 1], ["StaleLink", "Localized", 0, True]],
            [["target", 10, P], ["ok", "Localized", 0, True]],
            [["target", 10, P + 1], ["StaleLink", "Localized", 0, True]],
            [["source", 9, 1], ["StaleLink", "Localized", 0, True]],
            [["target", 11, 1, O + 1], ["OriginMismatch", "Localized", 0, True]],
            [["source", 11, 1, 0], ["OriginMismatch", "Localized", 0, True]],
            [["advance", 6], ["UnknownPhase", "Localized", 0, True]],
            [["target", 11, 1], ["ok", "Localized", 0, True]],
            [["advance", 3], [True, "Superposed", 0, True]],
            [["advance", 0], [False, "Superposed", 0, True]],
        ],
    }
    for name, steps in scen.items():
        cases.append({"name": name, "kind": "scenario", "origin": O, "source": [10, P], "steps": steps})

    def at(seq, parent):  # a head's (seq of the event it proves, forward hash of that event)
        if seq == 0:
            return 0, R.h8(R.link(O, 0, 0, parent))
        return seq - 1, parent

    for name, src, steps, lo, hi in [
        ("proof-104-109", [105, 0xA1], [[["target", 110, 0xB1], ["ok", "Localized", 0, True]]],
         (105, 0xA1), (110, 0xB1)),
        ("proof-target-behind", [10, 0xA1], [[["source", 20, 0xC1], ["ok", "Localized", 10, False]]],
         (10, 0xA1), (20, 0xC1)),
        ("proof-genesis-to-1", [0, 0], [[["target", 1, R.h8(R.link(O, 0, 0, 0))], ["ok", "Localized", 0, True]]],
         (0, 0), (1, R.h8(R.link(O, 0, 0, 0)))),
        ("proof-both-genesis", [0, 0], [], (0, 0), (0, 0)),
    ]:
        f, fh = at(*lo)
        t, th = at(*hi)
        cases.append({"name": name, "kind": "proof", "origin": O, "source": src, "steps": steps,
                      "proof": struct.pack("<IQQQQ", O, f, t, fh, th).hex()})
    return cases
