"""DaemonFactoryRegistry: which daemon kinds this node can build, and which identities it holds.

Key slots are filled only by provisioning (USB/mpremote config files, or later a channel sealed
to this node) — never by a migration or snapshot frame (invariant 4).  A daemon can only be
built here for an origin whose slot is present: that is what "the target holds the keypair" means.
"""
from ..shared import failures as F


class KeySlot:
    def __init__(self, kind, public_key, secret=None):
        self.kind = kind
        self.public_key = public_key
        self.secret = secret  # 32-byte ed25519 seed, or None when the node never signs for it
        from ..shared.identity import origin_hash  # boot-time only: the driver unloads it after
        self.origin_hash = origin_hash(public_key)


class DaemonFactoryRegistry:
    def __init__(self):
        self.factories = {}  # kind -> zero-argument callable returning a Daemon, or its 'module.Class' path
        self.slots = {}      # origin_hash -> KeySlot

    def register_kind(self, kind, factory):
        """factory: a callable, or a 'module.Class' path imported when first needed (a kind
        nobody hosts costs a node no heap)."""
        self.factories[kind] = factory

    def kinds(self):
        return sorted(self.factories)

    def provision(self, kind, public_key, secret=None):
        """Fill a key slot (provisioning only).  Returns the origin hash."""
        slot = KeySlot(kind, public_key, secret)
        other = self.slots.get(slot.origin_hash)
        if other is not None and other.public_key != public_key:
            raise F.HostFailure(F.IDENTITY_MISSING, "origin %08x collides with another key" % slot.origin_hash)
        self.slots[slot.origin_hash] = slot
        return slot.origin_hash

    def wipe(self, origin):
        """Forget a key slot (after a migration completes, when configured to)."""
        self.slots.pop(origin, None)

    def check(self, kind, origin):
        """Raise the typed failure the gateway can act on, or return the slot."""
        if not self.factories:
            raise F.HostFailure(F.COMPUTE_NOT_SUPPORTED, "this node hosts no daemons")
        if kind not in self.factories:
            raise F.HostFailure(F.FACTORY_NOT_FOUND, "no factory for kind %r" % kind)
        slot = self.slots.get(origin)
        if slot is None:
            raise F.HostFailure(F.IDENTITY_MISSING, "no provisioned key for origin %08x" % origin)
        if slot.kind != kind:
            raise F.HostFailure(F.IDENTITY_MISSING, "origin %08x is provisioned for kind %r" % (origin, slot.kind))
        return slot

    def create(self, kind, origin):
        self.check(kind, origin)
        f = self.factories[kind]
        if isinstance(f, str):
            mod, _, name = f.rpartition(".")
            try:
                f = getattr(__import__(mod, None, None, [name]), name)
            except (ImportError, AttributeError) as e:
                raise F.HostFailure(F.FACTORY_NOT_FOUND, "kind %r: %s" % (kind, e))
            self.factories[kind] = f
        return f()
