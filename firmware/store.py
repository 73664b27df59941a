"""Durable records on flash: write-new-then-rename, with a checksum.

File = b"NER1" | body length u32 LE | body (canonical CBOR) | first 8 bytes of SHA-256(body).
A torn write leaves either the old file or a `.new` file; boot takes whichever is valid, newest
first.  A file that exists but fails its checks is CORRUPT: reported (it becomes a Corruption
discontinuity at the gateway), kept aside as `.bad` for inspection, and never silently reset.
"""
import hashlib
import os
import struct

from ..shared import cbor
from . import CorruptRecord

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

MAX_RECORD = const(69632)  # a record holds a daemon state of up to 64 KiB (config max_state)


def _read(path):
    """An intact record's object from `path`; None when there is no file; ValueError with the
    reason when the bytes are not one intact record."""
    try:
        size = os.stat(path)[6]
    except OSError:
        return None
    if size > MAX_RECORD + 16:
        raise ValueError("file of %d bytes is larger than any record" % size)
    with open(path, "rb") as f:
        data = f.read(size)
    if len(data) < 16 or data[:4] != b"NER1":
        raise ValueError("bad magic or too short (%d bytes)" % len(data))
    n = struct.unpack("<I", data[4:8])[0]
    if n > MAX_RECORD or len(data) != 16 + n:
        raise ValueError("length field %d does not match file size %d" % (n, len(data)))
    body = data[8:8 + n]
    if hashlib.sha256(body).digest()[:8] != data[8 + n:]:
        raise ValueError("checksum mismatch")
    try:
        return cbor.loads(body)
    except MemoryError:
        raise  # a short heap, not a damaged record: never quarantine a good record for it
    except Exception as e:
        raise ValueError("undecodable body: %s" % e)


def _remove(*paths):
    for p in paths:
        try:
            os.remove(p)
        except OSError:
            pass


class RecordStore:
    """A folder of named records (one per hosted daemon, plus the node's own)."""

    def __init__(self, root):
        self.root = root.rstrip("/") or "."
        self.sizes = {}  # name -> bytes of its last record written (heartbeats report them)
        try:
            os.mkdir(self.root)
        except OSError:
            pass  # exists

    def save(self, name, obj):
        """Write a record atomically; obj None deletes it (a core's Ready may ask for either)."""
        if obj is None:
            return self.delete(name)
        path = "%s/%s.rec" % (self.root, name)
        body = cbor.dumps(obj, True)
        if len(body) > MAX_RECORD:
            raise ValueError("record of %d bytes exceeds %d" % (len(body), MAX_RECORD))
        self.sizes[name] = len(body)
        tmp = path + ".new"
        with open(tmp, "wb") as f:  # closed = committed (littlefs/FAT on boards; page cache on unix)
            # (written in pieces: no concatenated copy of the record in the heap)
            f.write(b"NER1")
            f.write(struct.pack("<I", len(body)))
            f.write(body)
            f.write(hashlib.sha256(body).digest()[:8])
        del body
        try:
            os.rename(tmp, path)
        except OSError:
            # FAT on some ports refuses to rename over a file: remove first; a crash here leaves
            # only the .new file, which load() accepts.
            os.remove(path)
            os.rename(tmp, path)

    def load(self, name):
        """The record, or None when there is none; CorruptRecord when one exists but is damaged."""
        path = "%s/%s.rec" % (self.root, name)
        tmp = path + ".new"
        errors = []
        for p in (tmp, path):  # a complete .new is newer than the main file
            try:
                obj = _read(p)
            except ValueError as e:
                errors.append((p, str(e)))
                continue
            if obj is None:
                continue
            if p == tmp:
                try:
                    os.rename(tmp, path)
                except OSError:
                    pass
            return obj
        if not errors:
            return None
        bad_path, why = errors[-1]
        if bad_path == tmp and len(errors) == 1:
            # only a torn .new (crash mid-write) and no main file: nothing was ever committed
            os.remove(tmp)
            return None
        raise CorruptRecord(bad_path, why)

    def quarantine(self, name):
        """Move a corrupt record aside (`.bad`) once it has been reported."""
        path = "%s/%s.rec" % (self.root, name)
        for p in (path, path + ".new"):
            try:
                os.rename(p, p + ".bad")
            except OSError:
                pass  # (no such file)

    def delete(self, name):
        path = "%s/%s.rec" % (self.root, name)
        _remove(path, path + ".new")

    def names(self):
        """Every record's name, sorted; one set aside by quarantine() as "<name>.bad"."""
        out = set()
        for n in os.listdir(self.root):
            if n.endswith(".rec"):
                out.add(n[:-4])
            elif n.endswith(".rec.bad") or n.endswith(".rec.new.bad"):
                out.add(n[:n.index(".rec")] + ".bad")
        return sorted(out)

    def commit(self, ready):
        """Perform every flash write a NodeCore Ready lists, in its order: set damaged records
        aside, then save (a None record deletes).  Then the Ready lists none: what is on flash
        is never written twice (a MemoryError midway leaves it listing them all)."""
        for name in ready.quarantine:
            self.quarantine(name)
        for name, obj in ready.persist:
            self.save(name, obj)
        ready.quarantine = ready.persist = ()
