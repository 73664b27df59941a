"""Running seeds: one seed's run and result, and shrinking a failing one to a minimal plan."""
import logging
import multiprocessing
import time
import traceback
from collections import Counter

from .world import World, plan_for

DEFAULT_STEPS = 40


class Result:
    def __init__(self, seed, steps, world, plan, mask):
        self.seed = seed
        self.steps = steps
        self.violations = list(world.checker.violations)
        self.faults = Counter(world.faults)
        self.trace = list(world.trace)
        self.digest = world.digest.hexdigest()
        self.sim_time = world.sched.now
        self.events = world.sched.events
        self.stats = dict(world.broker.stats)
        self.stats.update({"redelivered": world.broker.stats["redelivered"] + world.broker.stats["resent"],
                           "store_failures": world.gateway.stats["store_failures"],
                           "records": world.checker.records_checked,
                           "daemons": len(world.daemons)})
        self.plan = plan
        self.mask = mask

    @property
    def ok(self):
        return not self.violations

    def kinds(self):
        return sorted({k for k, _ in self.violations})


def run_seed(seed, steps=DEFAULT_STEPS, trace=False, mask=(), stop_early=True):
    """One seed: its plan's first `steps` steps (minus the indices in `mask`), the settle phase,
    the final checks.  The same arguments give the same Result, byte for byte."""
    # the gateway's log lines would bury the report; the trace says what happened
    logging.getLogger("netedge").setLevel(logging.INFO if trace else logging.CRITICAL)
    settings, plan = plan_for(seed, steps)
    world = World(seed, settings, trace=trace)
    tap = None
    if trace:  # the gateway's log lines in the trace, at their simulated time
        tap = _TraceLog(world)
        logging.getLogger("netedge").addHandler(tap)
        logging.getLogger("netedge").propagate = False
    try:
        try:
            world.start()
            for i, step in enumerate(plan):
                if i in mask:
                    continue
                world.say("step %d: %s" % (i, step.kind))
                world.apply(step)
                world.run_for(step.dt)
                world.checker.check_store(world.sched.now)
                if stop_early and world.checker.violations:
                    break
            if not (stop_early and world.checker.violations):
                if world.settle():
                    world.final_check()
        except Exception as e:  # (a node's code, or the simulator's: the seed fails, the run goes on)
            where = traceback.extract_tb(e.__traceback__)[-1]
            world.checker.now = world.sched.now
            world.checker.violation("exception", "%s: %s at %s:%d" % (type(e).__name__, e, where.filename, where.lineno))
        return Result(seed, steps, world, plan, set(mask))
    finally:
        if tap is not None:
            logging.getLogger("netedge").removeHandler(tap)
            logging.getLogger("netedge").propagate = True
        world.close()


class _TraceLog(logging.Handler):
    def __init__(self, world):
        super().__init__(logging.INFO)
        self.world = world

    def emit(self, record):
        self.world.say("  log %s: %s" % (record.levelname.lower(), record.getMessage()))


def shrink(result, budget_s=120.0, log=None):
    """A smaller run that still fails: fewer steps (the shortest failing prefix), then each
    fault and each workload step left out in turn while the run still fails."""
    t0 = time.monotonic()
    best = result
    lo, hi = 0, result.steps
    while lo < hi and time.monotonic() - t0 < budget_s:  # shortest failing prefix
        mid = (lo + hi) // 2
        r = run_seed(result.seed, mid, mask=best.mask)
        if not r.ok:
            hi, best = mid, r
        else:
            lo = mid + 1
    if best.steps != hi:
        best = run_seed(result.seed, hi, mask=best.mask)
    order = sorted(range(best.steps), key=lambda i: (not best.plan[i].is_fault(), -i))
    for i in order:
        if time.monotonic() - t0 > budget_s:
            break
        if i in best.mask:
            continue
        r = run_seed(result.seed, best.steps, mask=best.mask | {i})
        if not r.ok:
            best = r
            if log:
                log("  shrink: step %d (%s) is not needed" % (i, best.plan[i].kind))
    return best


SUMMARY_STATS = ("queue_drops", "store_failures", "records", "wills", "redelivered")
CHUNK = 8  # seeds a worker process takes at a time (small: the run's end is not one slow worker)


class Summary:
    """What a report needs of one seed's run (a Result without its trace, small to pass between
    processes)."""

    def __init__(self, r):
        self.seed, self.steps, self.ok = r.seed, r.steps, r.ok
        self._kinds = r.kinds()
        self.violations = r.violations[:3]  # (the first few, for the report)
        self.faults = dict(r.faults)
        self.stats = {k: r.stats[k] for k in SUMMARY_STATS}
        self.events, self.sim_time = r.events, r.sim_time

    def kinds(self):
        return self._kinds


def _summary(args):
    seed, steps, mask = args
    return Summary(run_seed(seed, steps, mask=mask))


def run_many(seeds, steps=DEFAULT_STEPS, jobs=1, mask=()):
    """Summary of each seed's run, in seed order, across `jobs` worker processes (forked: what
    the caller patched into the modules holds in the workers too).  The same as one by one."""
    work = [(seed, steps, frozenset(mask)) for seed in seeds]
    if jobs <= 1:
        yield from map(_summary, work)
        return
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        yield from pool.imap(_summary, work, CHUNK)
