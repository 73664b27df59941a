"""Node memory benchmark, at a board's word size.  ESP32 and RP2040 are 32-bit: pointers, object
headers and GC blocks (16 B) are half a 64-bit port's (32 B), so a node's heap figures are
measured on a 32-bit MicroPython unix port (built from source: `make micropython32`) beside the
64-bit one from PyPI, and every figure printed names the word size it was measured at.

For each interpreter: the free heap a connected node reports in its heartbeat (gc.mem_free()
after a collection; real Mosquitto, compiled firmware, a virtual board: tools/fleet.py) after
boot with 0, 1, 4 and 8 hosted counter daemons, by -X heapsize and firmware layout (.mpy files in
lib/, or the ROMFS image a board runs from its ROM partition), and whether it then processes
inputs; the per-daemon cost by the size of the daemon's state (blob daemons); where the heap
goes, module by module.  A ROMFS virtual board gets its -X heapsize enlarged by exactly what
holding the image costs that port (tools/fleet.py: rom_heap), so it has the heap a board has.

usage: python bench/node_memory.py [--interpreters PATH,...] [--heaps 48K,64K,96K]
           [--daemons 0,1,4,8] [--layout romfs,files] [--states 0,1024,4096] [--no-modules]
--interpreters: MicroPython binaries to measure.  Default: the node interpreter
(NETEDGE_MICROPYTHON, else this environment's 64-bit unix port) and the 32-bit port
.build/mp32/micropython if it was built (`make micropython32`).
The generator import_steps() is the MicroPython side (`--child`).
"""
import os
import sys
import time

# The modules a running node holds, in the order it loads them (firmware/main.py: the key
# slots first, then the runtime; asyncio loads its parts on first use, and a node uses neither
# asyncio.Lock nor wait_for: no asyncio.lock, no asyncio.funcs); the parser (config, identity)
# is unloaded after boot.
RESIDENT = ("asyncio", "asyncio.event", "asyncio.stream", "netedge", "netedge.shared", "netedge.shared.errors", "netedge.shared.failures",
            "netedge.firmware", "netedge.firmware.registry", "netedge.firmware.main", "netedge.shared.cbor",
            "netedge.shared.frame", "netedge.shared.topics", "netedge.shared.dedup", "netedge.shared.link",
            "netedge.firmware.daemon", "netedge.firmware.host", "netedge.firmware.store", "netedge.firmware.node",
            "netedge.firmware.mqtt_codec", "netedge.firmware.mqtt_client",
            "netedge.firmware.mqtt", "netedge.firmware.daemons", "netedge.firmware.daemons.counter")
TARGET_FREE = 24576  # runtime + 4 small daemons in a 64 KB heap must leave this much
INPUTS = 10  # per daemon, after boot: a node that boots but cannot process them is marked
MP32 = (".build", "mp32", "micropython")  # under the repository: `make micropython32` builds it there
BLOB_KINDS = {"counter": "netedge.firmware.daemons.counter.Counter", "blob": "netedge.firmware.daemons.blob.Blob"}


def import_steps(rom=False):
    """MicroPython side: a step per resident module, `module name mpy_bytes` (mpy_bytes -1: the
    port has no such module, 0: frozen into it), after a `start` step; then the qstr pool."""
    import micropython
    if rom:
        sys.path.insert(0, "")  # (the board folder: this script runs from bench/)
        import board  # noqa: F401  (mounts the folder's ROM partition: boards/unix/board.py)
    else:
        sys.path.insert(0, "lib")  # run in a board folder: __file__ names as on a board
    yield "start"
    for name in RESIDENT:
        try:
            __import__(name)
        except ImportError:
            yield "module %s -1" % name
            continue
        try:
            size = os.stat(sys.modules[name].__file__)[6]
        except (OSError, AttributeError):  # frozen into the port (asyncio): no bytecode in the heap
            size = 0
        yield "module %s %d" % (name, size)
    micropython.qstr_info()  # "qstr pool: n_pool=.., n_qstr=.., n_str_data_bytes=.., n_total_bytes=.."


def run_steps(steps):
    """MicroPython side: each step's label and the heap in use after it (collected)."""
    import gc
    for label in steps:
        gc.collect()
        print(label, gc.mem_alloc())


# ---- CPython side ----

def measure(fw, root, broker, obs, tag, heap, n, romfs=False, state=0):
    """(free heap of the connected node after boot or None, whether it then processed INPUTS
    inputs per daemon, note).  state > 0: blob daemons holding `state` bytes each."""
    from nodes import NodeProc, daemon_origin
    kind = "blob" if state else "counter"
    node_id = "m%s-%s%s-%d-%d" % (tag, "r" if romfs else "f", heap.lower(), n, state)
    names = ["%s-%d" % (node_id, i) for i in range(n)]
    extra = {"kinds": BLOB_KINDS, "max_state": max(4096, state + 256)} if state else None
    node = NodeProc(fw, root, node_id, broker, daemons=[(kind, x) for x in names], hosted=names, heap=heap,
                    heartbeat_ms=200, romfs=romfs, extra=extra).start()
    origins = [daemon_origin(x) for x in names]
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and node.alive():
            hb = obs.heartbeats.get(node_id)
            if hb and len(hb.get("daemons", [])) == n:
                break
            time.sleep(0.05)
        else:
            out = node.output().strip().splitlines()
            return None, False, (out[-1] if out else "no heartbeat")
        sent = 0
        try:
            if state:  # the blob daemons take their state first: its heap counts as resident
                for o in origins:
                    obs.send_input(o, b"=%d" % state)
                for o in origins:
                    obs.wait_seq(o, 1, timeout=10)
                sent = 1
            time.sleep(0.5)  # settle after boot, then two fresh heartbeats
            for _ in range(2):
                obs.heartbeats.pop(node_id, None)
                obs.wait(lambda: node_id in obs.heartbeats, 5, "a heartbeat of %s" % node_id)
            free = obs.heartbeats[node_id]["heap"]
        except AssertionError as e:
            return None, False, "boots, then %s" % ("dies" if not node.alive() else str(e)[:70])
        try:  # booting is not hosting: each daemon must also process inputs
            for _ in range(INPUTS):
                for o in origins:
                    obs.send_input(o, b"1")
            for o in origins:
                obs.wait_seq(o, sent + INPUTS, timeout=5)
            return free, True, None
        except AssertionError as e:
            return free, False, "boots, then %s" % ("dies" if not node.alive() else str(e)[:70])
    finally:
        node.kill()


def _run(board, *args, heap="512K", script=None):
    """stdout of this script's MicroPython side (args), or of `script`, run in the folder `board`
    by the node interpreter."""
    import subprocess
    from netedge.tools.interpreter import micropython_cmd
    script = script or os.path.abspath(__file__)
    cmd = [micropython_cmd(), "-X", "heapsize=%s" % heap, script]
    out = subprocess.run(cmd + list(args), cwd=board, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError((out.stderr or out.stdout).strip()[-300:])
    return out.stdout


def modules(fw, tmp, rom):
    """[(module, heap B, .mpy B)] and the qstr pool figures, from a fresh interpreter in a board
    folder holding the firmware in lib/ or (rom) in its ROM partition."""
    import shutil
    from netedge.tools import fleet
    from netedge.tools import firmware as FW
    board = os.path.join(tmp, "imports-%s" % ("rom" if rom else "lib"))
    os.makedirs(board)
    if rom:
        shutil.copy(os.path.join(fw, FW.ROMFS), os.path.join(board, fleet.ROM))
        shutil.copy(os.path.join(FW.BOARDS, "unix", "board.py"), os.path.join(board, "board.py"))
    else:
        os.symlink(os.path.join(fw, "lib"), os.path.join(board, "lib"))
    rows, q, last = [], {}, None
    for ln in _run(board, "--child", *(["rom"] if rom else [])).splitlines():
        w = ln.split()
        if w[:1] == ["start"]:
            last = int(w[1])
        elif w[:1] == ["module"]:
            rows.append((w[1], int(w[3]) - last, int(w[2])))
            last = int(w[3])
        elif ln.startswith("qstr pool: "):
            q = dict(kv.split("=") for kv in ln.split(": ")[1].split(", "))
    return rows, q


def interpreter_heap(tmp, heap):
    """(heap in use, heap for objects) of an interpreter that has run nothing but the measurement
    itself (the heap for objects: what -X heapsize leaves after the GC's tables)."""
    board = os.path.join(tmp, "empty")
    os.makedirs(board, exist_ok=True)
    path = os.path.join(board, "empty.py")
    with open(path, "w") as f:
        f.write("import gc\ngc.collect()\nprint(gc.mem_alloc(), gc.mem_free() + gc.mem_alloc())\n")
    w = _run(board, heap=heap, script=path).split()
    return int(w[-2]), int(w[-1])


def fmt(free, works):
    return "FAILS" if free is None else "%d%s" % (free, "" if works else "*")


def port_section(tag, fw, tmp, broker, obs, args, counts):
    """The live-node table of the current interpreter: {(layout, heap, n): (free, works)}."""
    from netedge.tools.interpreter import label
    results = {}
    print()
    print("%s: free heap (B) of a connected node by -X heapsize, firmware layout and hosted counter"
          " daemons" % label())
    print("%-7s %-6s %-12s" % ("layout", "heap", "heap for objects") +
          "".join("%11s" % ("%d daemons" % n) for n in counts) + "   per daemon")
    for layout in args.layout.split(","):
        romfs = layout == "romfs"
        for heap in args.heaps.split(","):
            row, frees, notes = [], {}, []
            for n in counts:
                free, works, err = measure(fw, os.path.join(tmp, "boards"), broker, obs, tag, heap, n, romfs)
                frees[n] = free
                results[(layout, heap.upper(), n)] = (free, works)
                row.append("%11s" % fmt(free, works))
                if err:
                    notes.append("%d daemons: %s" % (n, err[:90]))
            ok = [n for n in counts if frees[n] is not None]
            per = ""
            if len(ok) >= 2 and ok[-1] != ok[0]:
                per = "%.0f B" % ((frees[ok[0]] - frees[ok[-1]]) / (ok[-1] - ok[0]))
            print("%-7s %-6s %-12d" % ("ROMFS" if romfs else "lib/", heap, interpreter_heap(tmp, heap)[1])
                  + "".join(row) + "   " + per)
            for note in notes:
                print("         ! " + note)
    return results


def state_section(tag, fw, tmp, broker, obs, states, heap="96K"):
    """Per-daemon heap by the size of its state (blob daemons, ROMFS): {state: B per daemon}."""
    from netedge.tools.interpreter import label
    print()
    print("%s: free heap (B) of a connected node with 1 and 4 daemons by the size of each daemon's state"
          " (ROMFS, %s heap; state 0: counter daemons)" % (label(), heap))
    print("%-9s %11s %11s   per daemon" % ("state B", "1 daemon", "4 daemons"))
    per = {}
    for state in states:
        r = [measure(fw, os.path.join(tmp, "boards"), broker, obs, tag, heap, n, True, state) for n in (1, 4)]
        if r[0][0] is not None and r[1][0] is not None:
            per[state] = (r[0][0] - r[1][0]) / 3.0
        print("%-9d %11s %11s   %s" % (state, fmt(*r[0][:2]), fmt(*r[1][:2]),
                                       "%.0f B" % per[state] if state in per else ""))
        for free, works, err in r:
            if err:
                print("         ! " + err[:90])
    return per


def modules_section(fws, tmp):
    """Where the heap goes: each resident module's heap per interpreter and layout."""
    from netedge.tools.interpreter import label
    cols, mpy, pools = [], {}, []
    for exe, fw in fws:
        os.environ["NETEDGE_MICROPYTHON"] = exe
        bits = label().split()[0]
        for rom in (False, True):
            d = os.path.join(tmp, "mods-%s-%s" % (bits, "rom" if rom else "lib"))
            try:
                rows, q = modules(fw, d, rom)
            except RuntimeError as e:
                print("import measurement failed on %s: %s" % (label(), e))
                return
            cols.append(("%s %s" % (bits, "ROMFS" if rom else "lib/"), dict((n, h) for n, h, _ in rows)))
            mpy.update((n, s) for n, _, s in rows)
            if not rom:
                pools.append("%s: %s B for %s names (%s B of text)" % (bits, q.get("n_total_bytes"), q.get("n_qstr"),
                                                                       q.get("n_str_data_bytes")))
    print()
    print("where the heap goes: each resident module imported in a fresh interpreter, in boot order (heap B;"
          " a module's figure includes any qstr pool growth its names caused)")
    print("%-34s" % "module" + "".join("%14s" % c for c, _ in cols) + "%9s" % ".mpy B")
    for name in RESIDENT:
        print("%-34s" % name + "".join("%14s" % col.get(name, "") for _, col in cols)
              + "%9s" % (mpy.get(name) or "frozen"))
    print("%-34s" % "resident modules" + "".join("%14d" % sum(col.values()) for _, col in cols)
          + "%9d" % sum(v for v in mpy.values() if v > 0))
    print("  the qstr pool (lib/; from ROMFS the names' text stays in the ROM): " + "; ".join(pools))


def interpreters(arg):
    """The binaries to measure: --interpreters, else the node interpreter and the 32-bit build."""
    from netedge.tools.interpreter import micropython_cmd
    if arg:
        return [os.path.abspath(p) for p in arg.split(",")]
    out = [micropython_cmd()]
    mp32 = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), *MP32)
    if os.path.exists(mp32) and os.path.realpath(mp32) != os.path.realpath(out[0]):
        out.insert(0, mp32)
    return out


def main():
    import argparse
    import tempfile
    from mosquitto import Mosquitto
    from nodes import Observer
    from netedge.tools.firmware import build
    from netedge.tools.interpreter import describe, label
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--interpreters", help="micropython binaries, comma-separated (default: see above)")
    ap.add_argument("--heaps", default="48K,64K,96K")
    ap.add_argument("--daemons", default="0,1,4,8")
    ap.add_argument("--layout", default="romfs,files", help="romfs (ROM image), files (.mpy in lib/), or both")
    ap.add_argument("--states", default="0,1024,4096", help="state sizes for the per-daemon cost ('' to skip)")
    ap.add_argument("--no-modules", action="store_true", help="skip the module-by-module breakdown")
    args = ap.parse_args()
    exes = interpreters(args.interpreters)
    saved = os.environ.get("NETEDGE_MICROPYTHON")
    tmp = tempfile.mkdtemp(prefix="netedge-bench-")
    broker = Mosquitto(os.path.join(tmp, "broker")).start()
    obs = Observer(broker, "bench", marks=True)
    counts = [int(x) for x in args.daemons.split(",")]
    states = [int(x) for x in args.states.split(",") if x.strip()]
    results, per_state, fws = {}, {}, []
    print("node memory: free heap = gc.mem_free() after a collection, in the heartbeat of a node connected to"
          " Mosquitto;")
    print("* = boots, but does not process %d inputs per daemon (one at a time) within 5 s; FAILS = no heartbeat"
          % INPUTS)
    try:
        for exe in exes:
            os.environ["NETEDGE_MICROPYTHON"] = exe  # the virtual boards, the build's mpy-cross, _run
            bits = describe()[0]
            fw = build("unix", os.path.join(tmp, "fw%d" % bits))
            fws.append((exe, fw))
            results[bits] = (label(), port_section(str(bits), fw, tmp, broker, obs, args, counts))
            if bits == 32 and states:
                per_state[bits] = state_section(str(bits), fw, tmp, broker, obs, states)
        if not args.no_modules:
            modules_section(fws, tmp)
    finally:
        if saved is None:
            os.environ.pop("NETEDGE_MICROPYTHON", None)
        else:
            os.environ["NETEDGE_MICROPYTHON"] = saved
        obs.close()
        broker.kill()
    summary(results, per_state)
    return 0


def summary(results, per_state):
    """The figures that matter for a board, each with its word size."""
    print()
    print("SUMMARY (every figure names the word size it was measured at; ESP32 and RP2040 are 32-bit)")
    print("target: runtime + 4 small daemons in a 64 KB heap with >= %d B free" % TARGET_FREE)
    if 32 not in results:
        print("  32-bit: not measured (no 32-bit interpreter: `make micropython32` builds one)")
    for bits in sorted(results):
        name, res = results[bits]
        for layout, heap in (("romfs", "64K"), ("romfs", "48K"), ("files", "64K"), ("files", "48K")):
            if (layout, heap, 4) not in res:
                continue
            free, works = res[(layout, heap, 4)]
            verdict = ""
            if heap == "64K":
                verdict = " -> target %s" % ("MET" if free is not None and works and free >= TARGET_FREE else "NOT MET")
            print("  %d-bit, %-5s %s heap, 4 daemons: %s%s   (%s)" % (
                bits, "ROMFS" if layout == "romfs" else "lib/", heap,
                "FAILS (no heartbeat)" if free is None else "%s B free" % fmt(free, works), verdict, name))
    for bits, per in per_state.items():
        if per:
            print("  %d-bit, per daemon by state size (ROMFS): %s" % (
                bits, ", ".join("%d B state: %.0f B" % (s, b) for s, b in sorted(per.items()))))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        run_steps(import_steps(sys.argv[2:] == ["rom"]))
    else:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
        sys.exit(main())
