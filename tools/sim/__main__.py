"""`python -m netedge.tools.sim --seeds N [--seed S] [--steps K] [--jobs J] [--trace]`

Runs seeds S, S+1, ... S+N-1 (across J processes) and prints seeds/s, the faults injected by
kind and the violations by kind; a failing seed is shrunk to a minimal plan and its trace
printed.  Exit status 1 when any seed failed.
"""
import argparse
import sys
import time
from collections import Counter

from .run import DEFAULT_STEPS, Summary, run_many, run_seed, shrink


def _runs(args, skip):
    """A Summary of every seed, in order."""
    seeds = range(args.seed, args.seed + args.seeds)
    if not args.trace:
        yield from run_many(seeds, args.steps, args.jobs, skip)
        return
    for seed in seeds:
        r = run_seed(seed, args.steps, trace=True, mask=skip)
        print("== seed %d ==" % seed)
        print("\n".join(r.trace))
        yield Summary(r)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m netedge.tools.sim", description=__doc__.split("\n\n")[1])
    ap.add_argument("--seeds", type=int, default=100, help="how many seeds to run (default 100)")
    ap.add_argument("--seed", type=int, default=0, help="the first seed (default 0)")
    ap.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="steps per seed (default %d)" % DEFAULT_STEPS)
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (default 1; a run is the same either way)")
    ap.add_argument("--skip", default="", help="plan steps to leave out, e.g. 3,7 (a shrunk run)")
    ap.add_argument("--trace", action="store_true", help="print each seed's trace, every message included")
    ap.add_argument("--no-shrink", action="store_true", help="report a failing seed without shrinking it")
    ap.add_argument("--shrink-budget", type=float, default=120.0, help="seconds spent shrinking each failure")
    ap.add_argument("--progress", type=int, default=0, metavar="N",
                    help="print a progress line every N seeds (a long run)")
    args = ap.parse_args(argv)

    skip = frozenset(int(x) for x in args.skip.split(",") if x.strip())
    faults, kinds, seeds_by_kind, failed, stats = Counter(), Counter(), {}, [], Counter()
    events = sim_time = done = 0
    t0 = time.monotonic()
    for r in _runs(args, skip):
        done += 1
        faults.update(r.faults)
        stats.update(r.stats)
        events += r.events
        sim_time += r.sim_time
        if not r.ok:
            failed.append(r.seed)
            kinds.update(r.kinds())
            for k in r.kinds():
                seeds_by_kind.setdefault(k, []).append(r.seed)
            print("seed %d FAILED: %s" % (r.seed, "; ".join(text for _, text in r.violations)), flush=True)
        if args.progress and done % args.progress == 0:
            dt = time.monotonic() - t0
            print("... %d seeds in %.0f s (%.2f seeds/s), %d failed" % (done, dt, done / dt, len(failed)), flush=True)
    dt = time.monotonic() - t0
    print("%d seeds x %d steps in %.1f s with %d job(s): %.2f seeds/s (%.0f simulated s, %d events)" % (
        args.seeds, args.steps, dt, max(args.jobs, 1), args.seeds / dt if dt else 0.0, sim_time, events))
    print("faults injected: %s" % (", ".join("%s %d" % kv for kv in sorted(faults.items())) or "none"))
    print("broker queue drops %d, wills %d, QoS 1 duplicates (redelivered or resent) %d, signed records %d, "
          "failed store commits (not acknowledged, redelivered) %d" % (
              stats["queue_drops"], stats["wills"], stats["redelivered"], stats["records"], stats["store_failures"]))
    print("violations: %d seed(s)%s" % (len(failed), "" if not kinds else " - " + ", ".join(
        "%s %d" % kv for kv in sorted(kinds.items()))))
    for kind, seeds in sorted(seeds_by_kind.items()):
        print("  %s: seeds %s%s" % (kind, " ".join(map(str, seeds[:30])), " ..." if len(seeds) > 30 else ""))
    for seed in failed[:3]:
        r = run_seed(seed, args.steps, mask=skip)
        small = r if args.no_shrink else shrink(r, args.shrink_budget, log=print)
        print("\n== seed %d: minimal failing run, %d steps, %d left out ==" % (seed, small.steps, len(small.mask)))
        print("replay: python -m netedge.tools.sim --seeds 1 --seed %d --steps %d%s --trace" % (
            seed, small.steps, " --skip " + ",".join(map(str, sorted(small.mask))) if small.mask else ""))
        for kind, text in small.violations:
            print("VIOLATION %s: %s" % (kind, text))
        print("\n".join(line for line in small.trace))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
