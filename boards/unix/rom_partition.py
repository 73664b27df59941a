"""A ROM partition for a virtual board's REPL: `micropython -i rom_partition.py` (behind a pty).

The unix port has no `vfs.rom_ioctl`; this gives its REPL one, backed by the file rom.bin in the
board's folder, so the real `mpremote romfs query|deploy` (and `netedge provision --romfs`) work
against a virtual board.  board.py mounts what was deployed when the node boots.  The ioctl
numbers are MicroPython's (docs: vfs.rom_ioctl): 1 partitions, 2 the partition's buffer,
3 prepare (erase) for writing, 4 write, 5 writes done, 6 block size.

Two settings from the environment, for tests of what a real partition can do to a deploy:
NETEDGE_ROM_SIZE (bytes, default 256 KB: a small partition) and NETEDGE_ROM_WORN (set: a worn
flash, each write lands with its first byte inverted)."""
import os
import sys
import vfs as _vfs

SIZE = int(os.getenv("NETEDGE_ROM_SIZE") or 256 * 1024)
WORN = bool(os.getenv("NETEDGE_ROM_WORN"))
PATH = "rom.bin"


class _Partition:
    def __init__(self):
        self.buf = bytearray(b"\xff" * SIZE)  # erased flash
        try:
            with open(PATH, "rb") as f:
                f.readinto(self.buf)
        except OSError:
            pass

    def ioctl(self, op, rom_id=0, *args):
        if op == 1:
            return 1
        if rom_id != 0:
            return -19  # ENODEV
        if op == 2:
            return memoryview(self.buf)
        if op == 3:  # (rom_id, length): erase, then writes of at least 4 bytes
            for i in range(SIZE):
                self.buf[i] = 0xFF
            return 4
        if op == 4:  # (rom_id, offset, data)
            offset, data = args
            self.buf[offset:offset + len(data)] = data
            if WORN and data:
                self.buf[offset] ^= 0xFF
            return 0
        if op == 5:  # writes done: "flash" them
            with open(PATH, "wb") as f:
                f.write(self.buf)
            return 0
        if op == 6:
            return 0  # no erase blocks: the whole partition at once
        return -22  # EINVAL


class _VfsWithRom:
    """The built-in vfs module plus rom_ioctl (a built-in module cannot gain attributes)."""

    def __init__(self, part):
        for name in ("mount", "umount", "VfsRom", "VfsPosix"):
            setattr(self, name, getattr(_vfs, name))
        self.rom_ioctl = part.ioctl


sys.modules["vfs"] = _VfsWithRom(_Partition())
