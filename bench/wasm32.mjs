// A 32-bit MicroPython for bench/node_memory.py: the official WebAssembly port (npm package
// @micropython/micropython-webassembly-pyscript), with a fixed starting heap, running a script with
// the files of a folder copied into its in-memory filesystem.
//   node wasm32.mjs PACKAGE_DIR FOLDER HEAP_BYTES SCRIPT [ARG...]
import fs from "fs";
import path from "path";
import { pathToFileURL } from "url";

const [pkg, folder, heap, script, ...args] = process.argv.slice(2);
const { loadMicroPython } = await import(pathToFileURL(path.join(pkg, "micropython.mjs")).href);
const mp = await loadMicroPython({ heapsize: parseInt(heap, 10), linebuffer: true,
                                   stdout: (line) => process.stdout.write(line + "\n") });

function copy(from, to) {
  for (const e of fs.readdirSync(from, { withFileTypes: true })) {
    const src = path.join(from, e.name);
    const dst = to + "/" + e.name;
    if (fs.statSync(src).isDirectory()) {
      mp.FS.mkdirTree(dst);
      copy(src, dst);
    } else {
      mp.FS.writeFile(dst, fs.readFileSync(src));
    }
  }
}
mp.FS.mkdirTree("/board");
copy(folder, "/board");
try {
  // (the port's sys.argv cannot be set: the script finds its arguments in ARGV)
  mp.runPython("import gc, os\nos.chdir('/board')\nARGV = " + JSON.stringify([script, ...args]));
  mp.runPython(fs.readFileSync(script, "utf8"));
  // The script's STEPS, if it has any, one call each: this port collects garbage only between
  // two calls into it (within one it grows the heap instead), so each step's heap in use is
  // measured after its call.
  for (;;) {
    mp.runPython("L = next(STEPS, None) if globals().get('STEPS') is not None else None");
    if (mp.globals.get("L") === null) break;
    mp.runPython("gc.collect()\nprint(L, gc.mem_alloc())");
  }
} catch (e) {
  process.stdout.write(String(e.message || e) + "\n");
  process.exit(1);
}
