"""SuperpositionState: phase mapping, auto ReadyToCollapse, replay gap, proofs across the two heads
(upstream superposition.rs scenario list), plus our stricter rules and the status object."""
import pytest
from hypothesis import given, settings, strategies as st

from netedge.shared import phases as P
from netedge.shared import superposition as S
from netedge.shared.errors import NetedgeError
from netedge.shared.chain import OriginMismatch
from netedge.shared.link import CausalLink, ChainBuilder
from netedge.shared.log import ChainEvent, EntityLog
from netedge.shared.proof import ContinuityProof

O = 0x0A0B0C0D


def chain(n, origin=O):
    """Links 1..n (index i = seq i; index 0 = genesis) and an EntityLog holding events 1..n."""
    b = ChainBuilder(origin)
    links = [b.head]
    log = EntityLog(origin)
    for i in range(1, n + 1):
        lk = b.append(b"ev%d" % i)
        links.append(lk)
        log.append(ChainEvent(lk, b"ev%d" % i))
    return links, log


def test_mapping_matches_reference():
    want = {P.SNAPSHOT: S.LOCALIZED, P.TRANSFER: S.SPREADING, P.RESTORE: S.SPREADING,
            P.REPLAY: S.SUPERPOSED, P.CUTOVER: S.COLLAPSED, P.COMPLETE: S.RESOLVED}
    for mp, sp in want.items():
        assert S.from_migration(mp) == S.SuperpositionPhase.from_migration(mp) == sp
    for bad in (-1, 6, None, "Replay"):
        with pytest.raises(S.UnknownPhase):
            S.from_migration(bad)
    assert S.SuperpositionPhase.name(S.READY_TO_COLLAPSE) == "ReadyToCollapse"
    assert P.migration_phase_name(P.CUTOVER) == "Cutover" and "Unknown" in P.migration_phase_name(9)


def test_lifecycle():
    links, _ = chain(12)
    st_ = S.SuperpositionState(O, links[10])
    assert st_.phase == S.LOCALIZED and st_.target_head == links[10] and st_.target_replayed_through == 10
    assert not st_.is_superposed() and not st_.is_collapsed()
    st_.advance(P.SNAPSHOT)
    st_.advance(P.TRANSFER)
    assert st_.phase == S.SPREADING
    st_.advance(P.RESTORE)
    st_.advance(P.REPLAY)
    assert st_.phase == S.SUPERPOSED and st_.is_superposed()
    st_.target_replayed(links[12])
    assert st_.phase == S.READY_TO_COLLAPSE and st_.is_superposed()
    st_.collapse()
    assert st_.phase == S.COLLAPSED and st_.is_collapsed() and not st_.is_superposed()
    st_.resolve()
    assert st_.phase == S.RESOLVED and st_.is_collapsed()


def test_spreading_to_ready_and_replay_message_does_not_undo_it():
    links, _ = chain(15)
    st_ = S.SuperpositionState(O, links[10])
    st_.advance(P.TRANSFER)
    st_.source_advanced(links[12])
    assert st_.replay_gap() == 2 and st_.source_observed_since == 2 and not st_.caught_up()
    st_.target_replayed(links[12])  # catch-up before advance(Replay)
    assert st_.phase == S.READY_TO_COLLAPSE
    assert st_.advance(P.REPLAY) is False and st_.phase == S.READY_TO_COLLAPSE  # reference would drop to Superposed
    st_.source_advanced(links[13])
    assert st_.phase == S.SUPERPOSED and st_.replay_gap() == 1


def test_replay_gap_and_collapse_guard():
    links, _ = chain(20)
    st_ = S.SuperpositionState(O, links[10])
    st_.advance(P.REPLAY)
    st_.source_advanced(links[15])
    st_.target_replayed(links[12])
    assert st_.replay_gap() == 3 and st_.phase == S.SUPERPOSED
    with pytest.raises(S.NotCaughtUp):
        st_.advance(P.CUTOVER)
    assert st_.phase == S.SUPERPOSED
    st_.target_replayed(links[16])  # target ahead: gap saturates at 0
    assert st_.replay_gap() == 0 and st_.caught_up() and st_.phase == S.READY_TO_COLLAPSE
    st_.collapse()
    with pytest.raises(S.PhaseRegression):
        st_.source_advanced(links[17])  # the source let go at cutover
    with pytest.raises(S.PhaseRegression):
        st_.abort()
    st_.target_replayed(links[20])  # the target keeps running
    assert st_.target_replayed_through == 20 and st_.phase == S.COLLAPSED


def test_late_and_duplicate_phase_messages_are_no_ops():
    st_ = S.SuperpositionState(O, CausalLink(O, 0, 3, 1))
    assert st_.advance(P.REPLAY) is True
    assert st_.advance(P.TRANSFER) is False and st_.advance(P.SNAPSHOT) is False
    assert st_.advance(P.REPLAY) is False and st_.phase == S.SUPERPOSED


def test_abort_returns_to_localized_and_allows_retry():
    links, _ = chain(12)
    st_ = S.SuperpositionState(O, links[10])
    st_.advance(P.REPLAY)
    st_.source_advanced(links[11])
    st_.abort()
    assert st_.phase == S.LOCALIZED and st_.target_head == links[11] and st_.replay_gap() == 0
    st_.advance(P.TRANSFER)
    assert st_.phase == S.SPREADING


def test_link_checks():
    links, _ = chain(12)
    other, _ = chain(12, origin=O + 1)
    st_ = S.SuperpositionState(O, links[10])
    with pytest.raises(OriginMismatch):
        st_.target_replayed(other[11])
    with pytest.raises(OriginMismatch):
        st_.source_advanced(other[11])
    with pytest.raises(S.StaleLink):
        st_.target_replayed(links[9])
    with pytest.raises(S.StaleLink):
        st_.source_advanced(CausalLink(O, 0, 10, links[10].parent_hash ^ 1))  # same seq, other link
    st_.source_advanced(links[10])  # same link again: harmless
    with pytest.raises(NetedgeError):
        S.SuperpositionState(O, other[3])


def test_proof_seqs_104_109_and_round_trip_through_entity_log():
    links, log = chain(112)
    st_ = S.SuperpositionState(O, links[105])
    st_.target_replayed(links[110])
    proof = st_.continuity_proof()
    assert (proof.from_seq, proof.to_seq) == (104, 109)
    back = ContinuityProof.from_bytes(proof.to_bytes())
    back.verify_against(log)  # walks every link 104..109 of the gateway's own copy
    # heads swapped (target behind the source) give the same proof
    st2 = S.SuperpositionState(O, links[105])
    st2.source_advanced(links[110])
    assert st2.continuity_proof() == proof


def test_proof_genesis_and_seq1_edges():
    links, log = chain(5)
    genesis = ChainEvent(links[0], b"")
    for src in (0, 1):
        st_ = S.SuperpositionState(O, links[src])
        st_.target_replayed(links[5])
        p = st_.continuity_proof()
        # the reference puts parent 0 in from_hash for a seq-0 head; ours is H8(genesis || b"")
        assert (p.from_seq, p.to_seq) == (0, 4) and p.from_hash == genesis.forward
        p.verify_events(O, [genesis] + log.range(1, 4))
    both = S.SuperpositionState(O, links[0]).continuity_proof()
    assert (both.from_seq, both.to_seq, both.from_hash, both.to_hash) == (0, 0, genesis.forward, genesis.forward)


def test_to_obj_round_trip_and_strictness():
    links, _ = chain(12)
    st_ = S.SuperpositionState(O, links[10])
    st_.advance(P.TRANSFER)
    st_.source_advanced(links[12])
    st_.target_replayed(links[11])
    obj = st_.to_obj()
    assert obj["phase_name"] == "Spreading" and obj["replay_gap"] == 1 and obj["source_head"] == links[12].to_bytes()
    assert S.SuperpositionState.from_obj(obj).to_obj() == obj
    for k, v in [("phase", 9), ("phase_name", "Superposed"), ("replay_gap", 0), ("replayed_through", 12),
                 ("origin", O + 1), ("source_head", b"\0" * 23), ("base_phase", S.SUPERPOSED),
                 ("phase", S.READY_TO_COLLAPSE)]:
        with pytest.raises(S.SuperpositionDecodeError):
            S.SuperpositionState.from_obj(dict(obj, **{k: v}))
    with pytest.raises(S.SuperpositionDecodeError):
        S.SuperpositionState.from_obj(dict(obj, extra=1))


OPS = st.lists(st.one_of(
    st.tuples(st.just("advance"), st.integers(-1, 6)),
    st.tuples(st.just("source"), st.integers(0, 30)),
    st.tuples(st.just("target"), st.integers(0, 30)),
    st.tuples(st.just("abort"), st.just(0))), max_size=25)


@settings(max_examples=150)
@given(OPS)
def test_random_drives_keep_invariants(ops):
    links, _ = chain(30)
    st_ = S.SuperpositionState(O, links[5])
    for op, arg in ops:
        before = st_.phase
        try:
            if op == "advance":
                st_.advance(arg)
            elif op == "abort":
                st_.abort()
            else:
                (st_.source_advanced if op == "source" else st_.target_replayed)(links[arg])
        except (S.SuperpositionError, NetedgeError):
            assert st_.phase == before
        # only abort, or ReadyToCollapse falling back when the source moves ahead, goes backwards
        if st_.phase < before:
            assert op == "abort" or (op == "source" and before == S.READY_TO_COLLAPSE and not st_.caught_up())
        assert st_.replay_gap() >= 0
        if st_.phase >= S.READY_TO_COLLAPSE:
            assert st_.caught_up()
        assert S.SuperpositionState.from_obj(st_.to_obj()).to_obj() == st_.to_obj()


obj_values = st.one_of(st.none(), st.booleans(), st.integers(-1, 2 ** 64), st.binary(max_size=30), st.text(max_size=20))


@given(st.dictionaries(st.sampled_from(["origin", "phase", "phase_name", "base_phase", "source_head", "target_head",
                                        "replayed_through", "replay_gap"]), obj_values, min_size=6))
def test_fuzz_from_obj_typed_errors_only(obj):
    try:
        S.SuperpositionState.from_obj(obj)
    except S.SuperpositionDecodeError:
        pass
