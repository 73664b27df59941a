"""Measure the false-positive rate of the 32-bit, k = 3 horizon bloom (shared/horizon.py).

For each n: observe n random distinct origins, then ask might_contain() for `probes` random origins
that were NOT observed; FPR = hits / probes, over `trials` independent blooms.  Also prints the
textbook estimate (1 - (1 - 1/32)^(3n))^3 for comparison.  Deterministic for a given --seed.

usage: python bench/horizon_fpr.py [--trials 2000] [--probes 200] [--seed 1]
"""
import argparse
import random

from netedge.shared.horizon import ObservedHorizon, might_contain

NS = (1, 2, 4, 8, 16, 24)


def measure(n, trials, probes, rng):
    hits = 0
    asked = 0
    set_bits = 0
    for _ in range(trials):
        origins = set()
        while len(origins) < n:
            origins.add(rng.getrandbits(32))
        hz = ObservedHorizon()
        for o in origins:
            hz.observe(o, 1)
        enc = hz.encode()
        set_bits += bin(enc).count("1")
        for _ in range(probes):
            o = rng.getrandbits(32)
            if o in origins:
                continue
            asked += 1
            hits += might_contain(enc, o)
    return hits / asked, set_bits / trials


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=2000)
    ap.add_argument("--probes", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    print("horizon bloom: m=32 bits, k=3; %d blooms x %d probes per n (seed %d)" % (a.trials, a.probes, a.seed))
    print("| n origins | bits set (mean) | measured FPR | estimate (1-(1-1/32)^3n)^3 |")
    print("|---:|---:|---:|---:|")
    for n in NS:
        fpr, bits = measure(n, a.trials, a.probes, rng)
        est = (1 - (1 - 1 / 32) ** (3 * n)) ** 3
        print("| %d | %.1f | %.2f %% | %.2f %% |" % (n, bits, fpr * 100, est * 100))


if __name__ == "__main__":
    main()
