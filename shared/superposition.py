"""Superposition: where a migrating daemon lives, as observers see it (DESIGN §7, reference §4).

Phases in order: Localized (source only) -> Spreading (snapshot taken, target restoring) ->
Superposed (both hold it, target replaying) -> ReadyToCollapse (target caught up with the source
head) -> Collapsed (routing switched, source draining) -> Resolved (source cleaned up).
Migration phase -> superposition phase: Snapshot->Localized, Transfer->Spreading, Restore->Spreading,
Replay->Superposed, Cutover->Collapsed, Complete->Resolved.

Where we are stricter than the reference (which overwrites the phase unconditionally):
- phases never move backwards: a late or duplicate phase message (MQTT QoS 1 redelivers) is a no-op,
  so ReadyToCollapse reached during Spreading survives advance(Restore) and advance(Replay);
- collapsing requires the target to be caught up (NotCaughtUp), so a cutover can never drop events;
- ReadyToCollapse falls back (to Spreading or Superposed) if the source head moves past the target;
- abort() before cutover returns to Localized (the daemon keeps running on the source); after
  cutover abort() and a moving source head raise PhaseRegression (the source has let go).
"""
from .errors import DecodeError, NetedgeError
from .chain import OriginMismatch
from .link import CausalLink
from . import phases as P

# Plain ints, not const(): MicroPython would substitute the names inside SuperpositionPhase's body too.
LOCALIZED = 0
SPREADING = 1
SUPERPOSED = 2
READY_TO_COLLAPSE = 3
COLLAPSED = 4
RESOLVED = 5
PHASE_NAMES = ("Localized", "Spreading", "Superposed", "ReadyToCollapse", "Collapsed", "Resolved")
_FROM_MIGRATION = (LOCALIZED, SPREADING, SPREADING, SUPERPOSED, COLLAPSED, RESOLVED)  # by migration phase


class SuperpositionPhase:
    """Namespace for the phase constants (mission vocabulary)."""
    LOCALIZED = LOCALIZED
    SPREADING = SPREADING
    SUPERPOSED = SUPERPOSED
    READY_TO_COLLAPSE = READY_TO_COLLAPSE
    COLLAPSED = COLLAPSED
    RESOLVED = RESOLVED
    NAMES = PHASE_NAMES

    @staticmethod
    def name(phase):
        return phase_name(phase)

    @staticmethod
    def from_migration(migration_phase):
        return from_migration(migration_phase)


class SuperpositionError(NetedgeError):
    """Base of the superposition state-machine refusals."""


class UnknownPhase(SuperpositionError):
    pass


class PhaseRegression(SuperpositionError):
    pass


class NotCaughtUp(SuperpositionError):
    pass


class StaleLink(SuperpositionError):
    """A head update older than (or conflicting with) the head already known."""


class SuperpositionDecodeError(DecodeError):
    pass


def phase_name(phase):
    if isinstance(phase, int) and 0 <= phase < len(PHASE_NAMES):
        return PHASE_NAMES[phase]
    return "Unknown(%r)" % (phase,)


def from_migration(migration_phase):
    if not isinstance(migration_phase, int) or not 0 <= migration_phase < len(_FROM_MIGRATION):
        raise UnknownPhase("unknown migration phase %r" % (migration_phase,))
    return _FROM_MIGRATION[migration_phase]


class SuperpositionState:
    def __init__(self, origin_hash, source_head):
        if not isinstance(source_head, CausalLink) or source_head.origin_hash != origin_hash:
            raise NetedgeError("SuperpositionState: source_head must be a link of this origin")
        self.origin_hash = origin_hash
        self.source_head = source_head
        self.target_head = source_head
        self.phase = LOCALIZED
        self.base_phase = LOCALIZED  # phase the migration itself is in (READY_TO_COLLAPSE overlays it)
        self.target_replayed_through = source_head.sequence
        self.source_observed_since = 0  # source events beyond what the target has replayed

    # -- phase ------------------------------------------------------------------------------
    def advance(self, migration_phase):
        """Follow the migration into `migration_phase`.  Returns True when the phase changed."""
        want = from_migration(migration_phase)
        cur = self.phase
        if want == cur:
            return False
        if cur == READY_TO_COLLAPSE and want in (SPREADING, SUPERPOSED):
            if want > self.base_phase:  # catch-up preceded the Restore/Replay message: keep it
                self.base_phase = want
            return False
        if want < cur:
            return False  # late or duplicate (QoS 1 redelivers): phases never move backwards
        if want >= COLLAPSED and cur < COLLAPSED and not self.caught_up():
            raise NotCaughtUp("collapse with replay gap %d" % self.replay_gap())
        self.phase = want
        self.base_phase = want
        return True

    def collapse(self):
        return self.advance(P.CUTOVER)

    def resolve(self):
        return self.advance(P.COMPLETE)

    def abort(self):
        """Migration abandoned before cutover: the daemon stays (or is again) only on the source."""
        if self.phase >= COLLAPSED:
            raise PhaseRegression("cannot abort after cutover (%s)" % phase_name(self.phase))
        self.phase = LOCALIZED
        self.base_phase = LOCALIZED
        self.target_head = self.source_head
        self.target_replayed_through = self.source_head.sequence
        self.source_observed_since = 0

    # -- heads ------------------------------------------------------------------------------
    def _check(self, link, head):
        if not isinstance(link, CausalLink):
            raise NetedgeError("expected a CausalLink")
        if link.origin_hash != self.origin_hash:
            raise OriginMismatch(self.origin_hash, link.origin_hash)
        if link.sequence < head.sequence or (link.sequence == head.sequence and link != head):
            raise StaleLink("seq %d behind or conflicting with head %d" % (link.sequence, head.sequence))

    def source_advanced(self, link):
        """The source emitted `link` (only possible before cutover: after it the source let go)."""
        self._check(link, self.source_head)
        if self.phase >= COLLAPSED and link != self.source_head:
            raise PhaseRegression("source advanced after cutover")
        self.source_head = link
        self.source_observed_since = self.replay_gap()
        if self.phase == READY_TO_COLLAPSE and not self.caught_up():
            self.phase = self.base_phase

    def target_replayed(self, link):
        """The target processed through `link`; may reach ReadyToCollapse."""
        self._check(link, self.target_head)
        self.target_head = link
        self.target_replayed_through = link.sequence
        self.source_observed_since = self.replay_gap()
        if self.phase in (SPREADING, SUPERPOSED) and self.caught_up():
            self.phase = READY_TO_COLLAPSE

    def replay_gap(self):
        d = self.source_head.sequence - self.target_replayed_through
        return d if d > 0 else 0

    def caught_up(self):
        return self.target_replayed_through >= self.source_head.sequence

    def is_superposed(self):
        return self.phase == SUPERPOSED or self.phase == READY_TO_COLLAPSE

    def is_collapsed(self):
        return self.phase == COLLAPSED or self.phase == RESOLVED

    # -- proof ------------------------------------------------------------------------------
    def proof_bounds(self):
        """(from_seq, to_seq, from_hash, to_hash) spanning the two heads.  A head's parent_hash is
        the forward hash of event seq-1; at seq 0 the forward hash is H8(head || b"") because a
        genesis (or fork genesis) payload is always empty, so seq 0 and 1 both give a sound from."""
        lo, hi = self.source_head, self.target_head
        if hi.sequence < lo.sequence:
            lo, hi = hi, lo
        return (_at(lo)[0], _at(hi)[0], _at(lo)[1], _at(hi)[1])

    def continuity_proof(self):
        from .proof import ContinuityProof  # lazy: nodes that never prove need not load it
        f, t, fh, th = self.proof_bounds()
        return ContinuityProof(self.origin_hash, f, t, fh, th)

    # -- persistence / status ---------------------------------------------------------------
    def to_obj(self):
        """Plain data for status frames and the gateway's persisted state (CBOR-friendly)."""
        return {"origin": self.origin_hash, "phase": self.phase, "phase_name": PHASE_NAMES[self.phase],
                "base_phase": self.base_phase,
                "source_head": self.source_head.to_bytes(), "target_head": self.target_head.to_bytes(),
                "replayed_through": self.target_replayed_through, "replay_gap": self.replay_gap()}

    @classmethod
    def from_obj(cls, obj):
        """Strict inverse of to_obj (derived fields must agree); SuperpositionDecodeError otherwise."""
        try:
            if not isinstance(obj, dict) or len(obj) != 8:
                raise DecodeError("expected an 8-key map")
            src = CausalLink.from_bytes(obj["source_head"])
            tgt = CausalLink.from_bytes(obj["target_head"])
            phase, through, origin = obj["phase"], obj["replayed_through"], obj["origin"]
            if not isinstance(phase, int) or not 0 <= phase < len(PHASE_NAMES):
                raise DecodeError("bad phase")
            if obj["phase_name"] != PHASE_NAMES[phase]:
                raise DecodeError("phase_name disagrees")
            base = obj["base_phase"]
            if not (base == phase != READY_TO_COLLAPSE
                    or (phase == READY_TO_COLLAPSE and base in (SPREADING, SUPERPOSED))):
                raise DecodeError("base_phase disagrees with phase")
            if not isinstance(origin, int) or src.origin_hash != origin or tgt.origin_hash != origin:
                raise DecodeError("head origin disagrees")
            if through != tgt.sequence:
                raise DecodeError("replayed_through disagrees with target head")
            st = cls(origin, src)
            st.target_head = tgt
            st.target_replayed_through = through
            st.source_observed_since = st.replay_gap()
            st.phase = phase
            st.base_phase = base
            if obj["replay_gap"] != st.replay_gap():
                raise DecodeError("replay_gap disagrees")
            if phase >= READY_TO_COLLAPSE and not st.caught_up():
                raise DecodeError("%s with a replay gap" % PHASE_NAMES[phase])
            return st
        except SuperpositionDecodeError:
            raise
        except (NetedgeError, KeyError, TypeError) as e:
            raise SuperpositionDecodeError("SuperpositionState: %s" % (e,))

    def __repr__(self):
        return "SuperpositionState(origin=%08x, %s, source=%d, replayed=%d)" % (
            self.origin_hash, PHASE_NAMES[self.phase], self.source_head.sequence, self.target_replayed_through)


def _at(head):
    if head.sequence == 0:
        return 0, head.forward_hash(b"")
    return head.sequence - 1, head.parent_hash
