"""unix port: the host's network is already up.

It has no ROM partition either, so a virtual board keeps one in the file rom.bin of its folder
(its flash): `netedge provision --romfs` deploys the firmware's ROMFS image there with mpremote
(rom_partition.py makes the REPL answer `vfs.rom_ioctl`).  Importing this module mounts that
image at /rom, as a board with a ROM partition does at power-up, so the node runs its bytecode
from there.  A board maps the partition into its address space; this port has to read the image
into one bytearray, allocated here before anything else.  A virtual board is therefore started
with a heap larger by exactly that allocation (netedge.tools.fleet.rom_cost)."""
import sys

ROM = "rom.bin"


def network_up(cfg, timeout_ms=0):
    return "host"


def image_size(head):
    """Length of the ROMFS image that starts with `head` (its first 8 bytes), else 0."""
    if head[:3] != b"\xd2\xcd\x31":
        return 0
    n = i = 0
    for i in range(3, len(head)):
        n = (n << 7) | (head[i] & 0x7F)
        if not head[i] & 0x80:
            return i + 1 + n
    return 0


def mount_rom(path=ROM):
    try:
        f = open(path, "rb")
    except OSError:
        return False  # no partition: the firmware is in lib/
    try:
        size = image_size(f.read(8))
        if not size:
            return False  # an erased or foreign partition
        rom = bytearray(size)
        f.seek(0)
        f.readinto(rom)
    finally:
        f.close()
    import vfs
    vfs.mount(vfs.VfsRom(rom), "/rom")
    sys.path.append("/rom/lib")  # after lib/, as on a board: a firmware copied to lib/ comes first
    print("netedge: firmware from the ROM partition (%d bytes)" % size)
    return True


if sys.implementation.name == "micropython":  # (CPython imports it for image_size: tools/fleet.py)
    mount_rom()
