#!/usr/bin/env bash
# Build a 32-bit MicroPython unix port (x86: a board's word size) from a MicroPython source archive.
#
# usage: tools/build_micropython32.sh ARCHIVE OUT_DIR
#   ARCHIVE  a MicroPython release source archive (.tar.gz / .tar.xz, e.g. micropython-1.28.0.tar.xz
#            from micropython.org, or third_party/micropython-1.28.0-unix-src.tar.gz in this repo)
#   OUT_DIR  gets `micropython` (32-bit, asyncio frozen in) and `mpy-cross` (the compiler of the
#            same version: tools/firmware.py builds the virtual boards' .mpy files with it)
# Then run the nodes on it:  NETEDGE_MICROPYTHON=OUT_DIR/micropython make test32   (README.md)
#
# Needs make, python3 and a C compiler that can build 32-bit code (Debian/Ubuntu:
# apt-get install -y gcc-multilib).  ~20-30 s on 2 cores.  Left out: btree, ssl/TLS and ffi (their
# sources are git submodules, which a unix-port-only archive lacks; the node uses none of them).
# Kept: asyncio, socket, select, hashlib, struct, json, vfs with VfsRom (the ROM partition), os, time.
set -euo pipefail
if [ $# -ne 2 ]; then
    echo "usage: $0 ARCHIVE OUT_DIR" >&2
    exit 2
fi
archive=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
[ -f "$archive" ] || { echo "no such archive: $1" >&2; exit 2; }
out=$(mkdir -p "$2" && cd "$2" && pwd)
jobs=$(nproc 2>/dev/null || echo 2)

cc=${CC:-gcc}
if ! echo 'int main(void){return 0;}' | "$cc" -m32 -x c - -o /dev/null 2>/dev/null; then
    echo "$cc cannot build 32-bit programs: install a multilib toolchain (apt-get install -y gcc-multilib)" >&2
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar xf "$archive" -C "$work"
unix_mk=$(find "$work" -maxdepth 4 -path '*/ports/unix/Makefile' | head -1)
[ -n "$unix_mk" ] || { echo "$archive holds no MicroPython source (ports/unix/Makefile)" >&2; exit 1; }
src=$(cd "$(dirname "$unix_mk")/../.." && pwd)

# The unix port's Makefile checks that this submodule is there; nothing of it is frozen here.
if [ ! -e "$src/lib/micropython-lib/README.md" ]; then
    mkdir -p "$src/lib/micropython-lib" && echo "not used" > "$src/lib/micropython-lib/README.md"
fi
echo 'include("$(MPY_DIR)/extmod/asyncio")' > "$work/manifest.py"

log() { echo "  building $1"; }
log "mpy-cross"
make -s -C "$src/mpy-cross" -j"$jobs" >"$work/mpy-cross.log" 2>&1 || { tail -30 "$work/mpy-cross.log"; exit 1; }
log "unix port, 32-bit"
make -s -C "$src/ports/unix" -j"$jobs" MICROPY_FORCE_32BIT=1 MICROPY_PY_BTREE=0 MICROPY_PY_SSL=0 \
     MICROPY_PY_FFI=0 FROZEN_MANIFEST="$work/manifest.py" >"$work/unix.log" 2>&1 \
     || { tail -30 "$work/unix.log"; exit 1; }

cp "$src/ports/unix/build-standard/micropython" "$out/micropython.new"
cp "$src/mpy-cross/build/mpy-cross" "$out/mpy-cross.new"
"$out/micropython.new" -c "import sys; assert sys.maxsize == 2**31 - 1, 'not a 32-bit build'"
mv "$out/mpy-cross.new" "$out/mpy-cross"
mv "$out/micropython.new" "$out/micropython"  # last: its presence means a complete build
"$out/micropython" -c "import sys; print('32-bit MicroPython v%d.%d.%d, .mpy v%d' % (sys.implementation.version[:3] + (sys.implementation._mpy & 0xFF,)))"
echo "  -> $out/micropython, $out/mpy-cross ($("$out/mpy-cross" --version))"
