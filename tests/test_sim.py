"""The deterministic simulator (tools/sim): reproducible runs, a thousand seeds with no violation
beyond the open findings, the fixed bugs' seeds, and proof that it catches bugs: each guard of
the control plane disabled in turn (patched in this test only) makes a seed fail within a
bounded number of seeds, with a violation the same seed does not show with the guard in place."""
import dataclasses
import os
import time
from collections import Counter

import pytest

from netedge.gateway.control import core as gateway_core, migration as gateway_migration
from netedge.shared import dedup
from netedge.shared import frame as FR
from netedge.tools.sim import findings
from netedge.tools.sim.run import run_many, run_seed

CI_SEEDS = 1000
CI_STEPS = 20
GUARD_SEEDS = 200  # the bound: a disabled guard must be caught within this many seeds
GUARD_STEPS = 40
GUARD_BATCH = 25   # seeds run at a time with the guard off (the test stops at the first catch)
JOBS = max(1, min(4, os.cpu_count() or 1))  # worker processes: every seed runs the same either way


def test_same_seed_same_run():
    a, b = run_seed(3, 25, trace=True), run_seed(3, 25, trace=True)
    assert a.trace == b.trace
    assert a.digest == b.digest and a.events == b.events
    assert run_seed(4, 25).digest != a.digest


def test_a_thousand_seeds():
    t0 = time.monotonic()
    faults, kinds, failing = Counter(), Counter(), []
    for r in run_many(range(CI_SEEDS), CI_STEPS, JOBS):
        seed = r.seed
        faults.update(r.faults)
        kinds.update(r.kinds())
        if not r.ok:
            failing.append((seed, r.violations[0][1]))
    dt = time.monotonic() - t0
    print("\n%d seeds x %d steps, %d job(s): %.1f s, %.2f seeds/s; faults %s; violations %s" % (
        CI_SEEDS, CI_STEPS, JOBS, dt, CI_SEEDS / dt, dict(sorted(faults.items())), dict(kinds)))
    for seed, text in failing[:20]:
        print("  seed %d: %s" % (seed, text))
    assert set(faults) >= {"kill_node", "kill_gateway", "broker_restart", "freeze_node", "cut", "slow_link", "store_busy",
                           "disk_full"}
    new = {k: n for k, n in kinds.items() if k not in findings.OPEN}
    assert not new, "violations beyond the open findings (tools/sim/findings.py): %s" % new


@pytest.mark.parametrize("seed,steps,what", findings.FIXED)
def test_fixed_bugs_stay_fixed(seed, steps, what):
    """The seed's run shows no violation but, at most, those of the open findings (a later
    change may make a seed meet one on its way, e.g. a broker queue drop)."""
    r = run_seed(seed, steps)
    new = [v for v in r.violations if v[0] not in findings.OPEN]
    assert not new, "%s: %s" % (what, new)


# -- the guards, one at a time ---------------------------------------------------------------

def _no_fencing(monkeypatch):
    """The core merges chain events from any sender at any epoch."""
    on_chain = gateway_core.GatewayCore._on_chain

    def unfenced(self, acts, origin, payload):
        d = self.store.daemon(origin)
        try:
            f = FR.decode(payload)
            claim = dataclasses.replace(d, host_node=f.sender, epoch=f.body()["e"]) if d is not None else None
        except Exception:
            claim = d
        real = self.store.daemon
        self.store.daemon = lambda o: claim if o == origin else real(o)
        try:
            return on_chain(self, acts, origin, payload)
        finally:
            del self.store.daemon
    monkeypatch.setattr(gateway_core.GatewayCore, "_on_chain", unfenced)


def _no_dedup(monkeypatch):
    """The input window admits every input id again."""
    check = dedup.InputWindow.check
    monkeypatch.setattr(dedup.InputWindow, "check",
                        lambda self, s, c: dedup.NEW if check(self, s, c) == dedup.DUPLICATE else check(self, s, c))


def _no_replay_ack(monkeypatch):
    """A migration's log replay sends every batch and `go` at once, without waiting for `replayed`."""
    replay_next = gateway_migration.MigrationOrchestrator._replay_next

    def unacked(self, acts, origin, b):
        if b is not None:
            return
        while origin in self.replays:
            r = self.replays[origin]
            r["acked"] = r["sent"]
            replay_next(self, acts, origin, None)
    monkeypatch.setattr(gateway_migration.MigrationOrchestrator, "_replay_next", unacked)


def _no_will_hold(monkeypatch):
    """A last will is acted on as it arrives (no hold, so a broker going down fails nodes over)."""
    on_node = gateway_core.GatewayCore._on_node

    def eager(self, acts, node, leaf, payload, now):
        on_node(self, acts, node, leaf, payload, now)
        if node in self.held_wills:
            self._will(acts, node)
    monkeypatch.setattr(gateway_core.GatewayCore, "_on_node", eager)


GUARDS = {"epoch fencing": _no_fencing, "input dedup window": _no_dedup,
          "replay acknowledgement": _no_replay_ack, "will hold": _no_will_hold}


@pytest.mark.parametrize("guard", sorted(GUARDS))
def test_a_disabled_guard_is_caught(guard, monkeypatch):
    for start in range(0, GUARD_SEEDS, GUARD_BATCH):
        with monkeypatch.context() as m:
            GUARDS[guard](m)  # (patched before the workers fork: they run with the guard off)
            failed = [r for r in run_many(range(start, start + GUARD_BATCH), GUARD_STEPS, JOBS) if not r.ok]
        for r in failed:
            caught = sorted(set(r.kinds()) - set(run_seed(r.seed, GUARD_STEPS).kinds()))
            if caught:
                print("\n%s disabled: caught at seed %d (%d seeds run) by %s: %s" % (
                    guard, r.seed, r.seed + 1, ", ".join(caught), r.violations[0][1]))
                return
    pytest.fail("%s disabled: no new violation in %d seeds" % (guard, GUARD_SEEDS))
