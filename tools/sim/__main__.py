"""`python -m netedge.tools.sim --seeds N [--seed S] [--steps K] [--trace]`

Runs seeds S, S+1, ... S+N-1 and prints seeds/s, the faults injected by kind and every
violation; a failing seed is shrunk to a minimal plan and its trace printed.  Exit status 1 when
any seed failed.
"""
import argparse
import sys
import time
from collections import Counter

from .run import DEFAULT_STEPS, run_seed, shrink


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m netedge.tools.sim", description=__doc__.split("\n\n")[1])
    ap.add_argument("--seeds", type=int, default=100, help="how many seeds to run (default 100)")
    ap.add_argument("--seed", type=int, default=0, help="the first seed (default 0)")
    ap.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="steps per seed (default %d)" % DEFAULT_STEPS)
    ap.add_argument("--skip", default="", help="plan steps to leave out, e.g. 3,7 (a shrunk run)")
    ap.add_argument("--trace", action="store_true", help="print each seed's trace, every message included")
    ap.add_argument("--no-shrink", action="store_true", help="report a failing seed without shrinking it")
    ap.add_argument("--shrink-budget", type=float, default=120.0, help="seconds spent shrinking each failure")
    args = ap.parse_args(argv)

    skip = {int(x) for x in args.skip.split(",") if x.strip()}
    faults, kinds, failed, stats = Counter(), Counter(), [], Counter()
    events = sim_time = 0
    t0 = time.monotonic()
    for seed in range(args.seed, args.seed + args.seeds):
        r = run_seed(seed, args.steps, trace=args.trace, mask=skip)
        faults.update(r.faults)
        stats.update({k: r.stats[k] for k in ("queue_drops", "acked_after_store_error", "records", "wills")})
        events += r.events
        sim_time += r.sim_time
        if args.trace:
            print("== seed %d ==" % seed)
            print("\n".join(r.trace))
        if not r.ok:
            failed.append(r)
            kinds.update(r.kinds())
            print("seed %d FAILED: %s" % (seed, "; ".join(text for _, text in r.violations[:3])), flush=True)
    dt = time.monotonic() - t0
    print("%d seeds x %d steps in %.1f s: %.2f seeds/s (%.0f simulated s, %d events)" % (
        args.seeds, args.steps, dt, args.seeds / dt if dt else 0.0, sim_time, events))
    print("faults injected: %s" % (", ".join("%s %d" % kv for kv in sorted(faults.items())) or "none"))
    print("broker queue drops %d, wills %d, signed records %d, messages the gateway acked after a failed "
          "store write %d" % (stats["queue_drops"], stats["wills"], stats["records"], stats["acked_after_store_error"]))
    print("violations: %d seed(s)%s" % (len(failed), "" if not kinds else " - " + ", ".join(
        "%s %d" % kv for kv in sorted(kinds.items()))))
    for r in failed[:3]:
        small = r if args.no_shrink else shrink(r, args.shrink_budget, log=print)
        print("\n== seed %d: minimal failing run, %d steps, %d left out ==" % (
            r.seed, small.steps, len(small.mask)))
        print("replay: python -m netedge.tools.sim --seeds 1 --seed %d --steps %d%s --trace" % (
            r.seed, small.steps, " --skip " + ",".join(map(str, sorted(small.mask))) if small.mask else ""))
        for kind, text in small.violations:
            print("VIOLATION %s: %s" % (kind, text))
        print("\n".join(line for line in small.trace))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
