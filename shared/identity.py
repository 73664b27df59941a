"""Daemon identity derivations (DESIGN §4).  No ed25519 here: nodes never generate keys.

origin_hash(pub)            = u32 LE of SHA-256(b"netedge/origin/v1" || pub)[0:4]
replica_seed(group, index)  = SHA-256(b"netedge/replica/v1" || group_seed || index u16 LE)
The replica seed is an ed25519 seed: same group seed + index -> same keypair -> same origin, on any
node, which is what lets a ReplicaGroup respawn a member elsewhere under the same identity.
"""
import hashlib
import struct

from .errors import DecodeError, NetedgeError

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

PUBLIC_KEY_SIZE = const(32)
GROUP_SEED_SIZE = const(32)  # fixed, so group_seed || index is unambiguous across implementations
MAX_REPLICA_INDEX = const(0xFFFF)
_ORIGIN_TAG = b"netedge/origin/v1"
_REPLICA_TAG = b"netedge/replica/v1"


class InvalidPublicKey(DecodeError):
    """Not a 32-byte ed25519 public key."""


class InvalidGroupSeed(DecodeError):
    """Not a 32-byte replica group seed."""


class InvalidReplicaIndex(NetedgeError):
    """Replica index outside u16."""


def _exact(data, size, err, what):
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise err("%s: expected bytes" % what)
    if len(data) != size:
        raise err("%s: expected %d bytes, got %d" % (what, size, len(data)))
    return bytes(data)


def origin_hash(public_key):
    """The u32 origin of a daemon whose ed25519 public key is `public_key` (32 bytes)."""
    h = hashlib.sha256(_ORIGIN_TAG)
    h.update(_exact(public_key, PUBLIC_KEY_SIZE, InvalidPublicKey, "public key"))
    return struct.unpack("<I", h.digest()[:4])[0]


def replica_seed(group_seed, index):
    """The 32-byte ed25519 seed of replica `index` (0..65535) of the group `group_seed`."""
    seed = _exact(group_seed, GROUP_SEED_SIZE, InvalidGroupSeed, "group seed")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index <= MAX_REPLICA_INDEX:
        raise InvalidReplicaIndex("replica index must be an int in 0..%d" % MAX_REPLICA_INDEX)
    h = hashlib.sha256(_REPLICA_TAG)
    h.update(seed)
    h.update(struct.pack("<H", index))
    return h.digest()
