"""Node memory benchmark: free heap reported by a running node (real Mosquitto, real unix-port
`micropython`, compiled firmware) after boot with 0, 1, 4 and 8 hosted counter daemons, under
several heap sizes (and whether it then processes inputs); and the per-daemon overhead.  Then where the heap goes: each resident module
imported in a fresh interpreter (heap bytes vs its .mpy bytes), the qstr pool, the runtime's own
objects; and an ESTIMATE for a 32-bit board derived from those measurements.

usage: python bench/node_memory.py [--heaps 64K,80K,96K,128K] [--daemons 0,1,4,8] [--layout files,romfs]
Both firmware layouts are measured: .mpy files in lib/, and the ROMFS image a board runs from its
ROM partition (tools/fleet.py: how a virtual board emulates that partition, and why the heap
figures are a board's).
Note: the unix port is a 64-bit build: pointers, object headers and the GC block (32 B, 16 B on
a 32-bit port) are twice an ESP32's, so the same firmware needs noticeably less heap there.
The body of imports() is the MicroPython side (`--child`).
"""
import os
import sys
import time

# The modules a running node holds, in the order it loads them (firmware/main.py: the key
# slots first, then the runtime; asyncio loads its parts on first use); the parser (config,
# identity) is unloaded after boot.
RESIDENT = ("asyncio", "asyncio.event", "asyncio.lock", "asyncio.funcs", "asyncio.stream", "netedge", "netedge.shared", "netedge.shared.errors", "netedge.shared.failures",
            "netedge.firmware", "netedge.firmware.registry", "netedge.firmware.main", "netedge.shared.cbor",
            "netedge.shared.frame", "netedge.shared.topics", "netedge.shared.dedup", "netedge.shared.link",
            "netedge.firmware.daemon", "netedge.firmware.host", "netedge.firmware.store", "netedge.firmware.node",
            "netedge.firmware.mqtt", "netedge.firmware.daemons", "netedge.firmware.daemons.counter")
TARGET_FREE = 24576
INPUTS = 10  # per daemon, after boot: a node that boots but cannot process them is marked


def imports():
    """MicroPython side: `name heap_bytes mpy_bytes` per resident module, then the qstr pool."""
    import gc
    import micropython

    def free():
        gc.collect()
        return gc.mem_free()
    if sys.argv[2:] == ["rom"]:
        sys.path.insert(0, "")  # (the board folder: this script runs from bench/)
        import board  # noqa: F401  (mounts the folder's ROM partition: boards/unix/board.py)
    else:
        sys.path.insert(0, "lib")  # run in a board folder: __file__ names as on a board
    for name in RESIDENT:
        f = free()
        __import__(name)
        try:
            size = os.stat(sys.modules[name].__file__)[6]
        except OSError:  # frozen into the port (asyncio): no file, no bytecode in the heap
            size = 0
        print(name, f - free(), size)
    micropython.qstr_info()  # "qstr pool: n_pool=.., n_qstr=.., n_str_data_bytes=.., n_total_bytes=.."


def measure(fw, root, broker, obs, heap, n, romfs=False):
    """(free heap after boot or None, whether it then processed INPUTS inputs per daemon, note)."""
    from nodes import NodeProc, daemon_origin
    node_id = "m%s%s-%d" % ("r" if romfs else "", heap.lower(), n)
    names = ["d%s%s-%d-%d" % ("r" if romfs else "", heap, n, i) for i in range(n)]
    node = NodeProc(fw, root, node_id, broker, daemons=[("counter", x) for x in names], hosted=names, heap=heap,
                    heartbeat_ms=200, romfs=romfs).start()
    try:
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and node.alive():
            hb = obs.heartbeats.get(node_id)
            if hb and len(hb.get("daemons", [])) == n:
                time.sleep(0.5)  # a few heartbeats: settle after boot
                free = obs.heartbeats[node_id]["heap"]
                try:  # booting is not hosting: each daemon must also process inputs
                    for _ in range(INPUTS):
                        for x in names:
                            obs.send_input(daemon_origin(x), b"1")
                    for x in names:
                        obs.wait_seq(daemon_origin(x), INPUTS, timeout=5)
                    return free, True, None
                except AssertionError as e:
                    return free, False, "boots, then %s" % ("dies" if not node.alive() else str(e)[:70])
            time.sleep(0.05)
        out = node.output().strip().splitlines()
        return None, False, (out[-1] if out else "no heartbeat")
    finally:
        node.kill()


def _child(fw, tmp, rom):
    """[(module, heap B, .mpy B)] and the qstr pool figures, from a fresh interpreter in a board
    folder holding the firmware in lib/ or (rom) in its ROM partition."""
    import shutil
    import subprocess
    from conftest import micropython_cmd
    from netedge.tools import fleet
    from netedge.tools import firmware as FW
    board = os.path.join(tmp, "imports-rom" if rom else "imports")
    os.makedirs(board)
    if rom:
        shutil.copy(os.path.join(fw, FW.ROMFS), os.path.join(board, fleet.ROM))
        shutil.copy(os.path.join(FW.BOARDS, "unix", "board.py"), os.path.join(board, "board.py"))
    else:
        os.symlink(os.path.join(fw, "lib"), os.path.join(board, "lib"))
    out = subprocess.run([micropython_cmd(), "-X", "heapsize=512K", os.path.abspath(__file__), "--child"]
                         + (["rom"] if rom else []), cwd=board, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError((out.stderr or out.stdout).strip()[-300:])
    lines = [ln for ln in out.stdout.strip().splitlines() if not ln.startswith("netedge:")]
    rows = [(n, int(h), int(s)) for n, h, s in (ln.split() for ln in lines[:-1])]
    return rows, dict(kv.split("=") for kv in lines[-1].split(": ")[1].split(", "))


def breakdown(fw, tmp, used, used_rom):
    """Print where the heap goes; `used` / `used_rom` = {daemons: heap - free} from the largest
    heap that booted every count, firmware in lib/ and in the ROM partition."""
    try:
        rows, q = _child(fw, tmp, False)
        rom_rows = dict((n, h) for n, h, _ in _child(fw, tmp, True)[0])
    except RuntimeError as e:
        print("import measurement failed:", e)
        return
    mods, mpy = sum(r[1] for r in rows), sum(r[2] for r in rows)
    mods_rom = sum(rom_rows.values())
    print()
    print("where the heap goes (64-bit unix port; each module imported in a fresh interpreter, in boot order;")
    print("a module's figure includes any qstr pool its names made the interpreter grow)")
    print("%-34s %8s %8s %8s" % ("module", "lib/ B", "ROMFS B", ".mpy B"))
    for n, h, s in rows:
        print("%-34s %8d %8d %8s" % (n, h, rom_rows.get(n, 0), s or "frozen"))
    print("%-34s %8d %8d %8d   (heap / .mpy = %.1f from lib/)" % ("resident modules", mods, mods_rom, mpy,
                                                                   mods / max(mpy, 1)))
    print("  of which the qstr pool: %s B for %s names (%s B of their text: in the heap from lib/, in the"
          " ROM from ROMFS)" % (q["n_total_bytes"], q["n_qstr"], q["n_str_data_bytes"]))
    counts = sorted(used)
    print("runtime objects, 0 daemons (used - modules): %d B   (MQTT client, tasks, NodeCore, registry, the"
          " parser's names)"
          % (used[counts[0]] - mods) if counts[0] == 0 else "")
    # The estimate: byte data (bytecode, names, constants: what the .mpy files hold) keeps its size
    # on a 32-bit port; everything else is words and GC blocks (objects, dicts, function and code
    # structures, pointer tables), which halve.  A derivation, not a measurement.
    print()
    print("ESTIMATE for a 32-bit board (ESP32/RP2040), derived from the figures above, not measured:")
    print("  lib/:  used_32 ~= .mpy bytes + (used_64 - .mpy bytes) / 2   (words and GC blocks halve; bytecode"
          " does not)")
    for n in counts:
        est = mpy + (used[n] - mpy) / 2
        print("  %d daemons: used_64 %6d B -> used_32 ~%6.0f B -> free in a 64 KB heap ~%6.0f B  (target >= %d)"
              % (n, used[n], est, 65536 - est, TARGET_FREE))
    if used_rom:
        # From the ROM partition the modules' heap is structures (words) only; the runtime objects
        # are counted at full size, as if they were all bytes: an upper bound on the 32-bit heap.
        print("  ROMFS: used_32 <= modules_64 / 2 + (used_64 - modules_64)   (module structures halve; the"
              " runtime's objects counted as if all bytes)")
        for n in sorted(used_rom):
            est = mods_rom / 2 + (used_rom[n] - mods_rom)
            print("  %d daemons: used_64 %6d B -> used_32 <=%6.0f B -> free in a 64 KB heap >=%6.0f B  (target >= %d)"
                  % (n, used_rom[n], est, 65536 - est, TARGET_FREE))


def main():
    import argparse
    import tempfile
    from mosquitto import Mosquitto
    from nodes import Observer
    from netedge.tools.firmware import build
    from netedge.tools.fleet import heap_bytes
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--heaps", default="64K,80K,96K,128K")
    ap.add_argument("--daemons", default="0,1,4,8")
    ap.add_argument("--layout", default="files,romfs", help="files (.mpy in lib/), romfs (ROM image), or both")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="netedge-bench-")
    fw = build("unix", os.path.join(tmp, "fw"))
    broker = Mosquitto(os.path.join(tmp, "broker")).start()
    obs = Observer(broker, "bench")
    counts = [int(x) for x in args.daemons.split(",")]
    used, used_rom, met = {}, {}, {}
    try:
        for layout in args.layout.split(","):
            romfs = layout == "romfs"
            print()
            print("free heap (bytes) reported by a connected node, by -X heapsize and hosted counter daemons;")
            print("firmware %s" % ("in a ROMFS image (a board's ROM partition: bytecode runs in place)" if romfs
                                   else "as .mpy files in lib/ (each import loads its bytecode into the heap)"))
            print("%-8s" % "heap" + "".join("%12s" % ("%d daemons" % n) for n in counts) + "   per daemon")
            for heap in args.heaps.split(","):
                row, frees, worked, notes = [], {}, {}, []
                for n in counts:
                    free, works, err = measure(fw, os.path.join(tmp, "boards"), broker, obs, heap, n, romfs)
                    frees[n], worked[n] = free, works
                    row.append("%12s" % ("FAILS" if free is None else "%d%s" % (free, "" if works else "*")))
                    if err:
                        notes.append("%d daemons: %s" % (n, err[:90]))
                ok = [n for n in counts if frees[n] is not None]
                per = ""
                if len(ok) >= 2 and ok[-1] != ok[0]:
                    per = "%.0f B" % ((frees[ok[0]] - frees[ok[-1]]) / (ok[-1] - ok[0]))
                if len(ok) == len(counts):
                    (used_rom if romfs else used).update({n: heap_bytes(heap) - frees[n] for n in counts})
                if 4 in frees and heap.upper() == "64K":
                    met[layout] = frees[4] is not None and frees[4] >= TARGET_FREE and worked[4]
                print("%-8s" % heap + "".join(row) + "   " + per)
                for note in notes:
                    print("         ! " + note)
        print("* boots, but does not process %d inputs per daemon (one at a time) within 5 s" % INPUTS)
        print("target (issue 3): runtime + 4 small daemons in 64K with >= %d B free" % TARGET_FREE)
        for layout, ok in met.items():
            print("  %-6s -> %s" % (layout, "MET" if ok else "NOT MET"))
    finally:
        obs.close()
        broker.kill()
    if used:
        breakdown(fw, tmp, used, used_rom)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        imports()
    else:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
        sys.exit(main())
