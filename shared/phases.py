"""Migration phases (DESIGN §7), in order.  The gateway's migration table (its states are these
phases: gateway/control/migration.py PHASES), the status page and SuperpositionState use them, so
a phase number means one thing everywhere.  A node needs none: it answers the protocol's commands."""
try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

SNAPSHOT = const(0)
TRANSFER = const(1)
RESTORE = const(2)
REPLAY = const(3)
CUTOVER = const(4)
COMPLETE = const(5)

MIGRATION_PHASE_NAMES = ("Snapshot", "Transfer", "Restore", "Replay", "Cutover", "Complete")


def migration_phase_name(phase):
    if isinstance(phase, int) and 0 <= phase < len(MIGRATION_PHASE_NAMES):
        return MIGRATION_PHASE_NAMES[phase]
    return "Unknown(%r)" % (phase,)
