"""Core benchmark: links appended/s and proof-verify events/s, on CPython and on the MicroPython
unix port, each as a ratio to a raw sha256 loop over the same bytes measured in the same run.

usage: python bench/core_bench.py [--n N]       (runs itself again under `micropython`)
The body below is portable: the same file is the MicroPython side (`--child`).
"""
import sys
import time

try:
    ticks = time.ticks_us
    def elapsed(t0):
        return time.ticks_diff(time.ticks_us(), t0) / 1e6
except AttributeError:  # CPython
    ticks = time.perf_counter
    def elapsed(t0):
        return time.perf_counter() - t0

PAYLOAD = b"reading=12345678"  # 16 B: a typical small sensor event


def measure(n):
    import hashlib
    from netedge.shared.link import ChainBuilder, LINK_SIZE
    from netedge.shared.log import ChainEvent, EntityLog
    from netedge.shared.proof import ContinuityProof

    blob = bytes(LINK_SIZE) + PAYLOAD  # what one append / one verify step hashes
    t0 = ticks()
    for _ in range(n):
        hashlib.sha256(blob).digest()
    raw = n / elapsed(t0)

    b = ChainBuilder(0x01020304)
    t0 = ticks()
    for _ in range(n):
        b.append(PAYLOAD)
    append = n / elapsed(t0)

    m = min(n, 2000)  # the log holds every event: keep it within a small heap
    b = ChainBuilder(0x01020304)
    log = EntityLog(0x01020304)
    for _ in range(m):
        log.events.append(ChainEvent(b.append(PAYLOAD), PAYLOAD))
    proof = ContinuityProof.from_log(log)
    reps = max(1, n // m)
    t0 = ticks()
    for _ in range(reps):
        # verification recomputes every forward hash from the stored bytes
        proof.verify_events(log.origin_hash, (ChainEvent(e.link, e.payload) for e in log.events))
    verify = reps * m / elapsed(t0)
    return raw, append, verify


def row(name, raw, append, verify):
    return "%-12s %12.0f %14.0f %7.2f %17.0f %7.2f" % (name, raw, append, append / raw, verify, verify / raw)


def main():
    import os
    import subprocess
    n = 20000
    if "--n" in sys.argv:
        n = int(sys.argv[sys.argv.index("--n") + 1])
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.dirname(here))
    from tools.mpstage import stage
    from tools.interpreter import label, micropython_cmd
    staged = stage()
    exe = micropython_cmd()  # (NETEDGE_MICROPYTHON, or this environment's unix port)
    print("core benchmark: %d ops, %d-byte payload, hashing %d bytes per step" % (n, len(PAYLOAD), 24 + len(PAYLOAD)))
    print("%-12s %12s %14s %7s %17s %7s" % ("interpreter", "sha256/s", "links/s", "ratio", "verify events/s", "ratio"))
    print(row("CPython", *measure(n)))
    out = subprocess.run([exe, "-X", "heapsize=4M", os.path.abspath(__file__), "--child", staged, str(n)],
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        print("MicroPython run failed:", out.stderr.strip() or out.stdout.strip())
        return 1
    raw, append, verify = (float(x) for x in out.stdout.split())
    print(row("MicroPython", raw, append, verify) + "   (%s)" % label(exe))
    print("ratio = ops/s divided by raw sha256/s of the same bytes in the same interpreter (1.00 = hashing-bound)")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        sys.path.insert(0, sys.argv[2])
        print("%f %f %f" % measure(int(sys.argv[3])))
    else:
        sys.exit(main())
