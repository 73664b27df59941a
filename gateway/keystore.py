"""Keystore: daemon ed25519 keypairs and the gateway's identity key, encrypted at rest.

Secrets (32-byte ed25519 seeds) are sealed with `nacl.secret.SecretBox` (XSalsa20-Poly1305,
random nonce; stored as nonce || ciphertext) under a key-encryption key (KEK): 32 random bytes
in a file only the gateway's user may read.  The sealed seeds live in the store's `keys` and
`gateway_identity` tables, so a copied database file alone reveals no private key.

A daemon's origin is origin_hash(public key), 32 bits: collisions are expected around 65k
daemons, so a keypair whose origin is already taken (by a key or a registered daemon) is
refused - `generate` draws again, `import_keypair` (caller-chosen seed, e.g. a replica seed)
raises OriginTaken.  The gateway identity key is created on first open and signs the records
the gateway issues; unsealing it at open also proves the KEK matches this database.
"""
import os
import stat
import time
from dataclasses import dataclass

import nacl.exceptions
import nacl.secret
import nacl.signing
import nacl.utils

from netedge.shared.errors import NetedgeError
from netedge.shared.identity import origin_hash

KEK_SIZE = nacl.secret.SecretBox.KEY_SIZE  # 32
SEED_SIZE = 32
GENERATE_ATTEMPTS = 8  # P(8 collisions in a row) is negligible even with a full u32 space


class KeystoreError(NetedgeError):
    """Base of the keystore's deliberate errors."""


class KekError(KeystoreError):
    """The KEK file is missing, unsafe or unusable; the message says what the operator must do."""


class WrongKek(KeystoreError):
    """The KEK does not decrypt this database's secrets."""


class OriginTaken(KeystoreError):
    def __init__(self, origin, public_key):
        self.origin, self.public_key = origin, public_key
        super().__init__("OriginTaken: origin %08x is already used by another key or daemon" % origin)


class UnknownKey(KeystoreError, KeyError):
    def __init__(self, origin):
        self.origin = origin
        super().__init__("no key for origin %08x" % origin)

    def __str__(self):  # KeyError would repr() the message
        return self.args[0]


class CorruptKey(KeystoreError):
    """A sealed seed that does not decrypt, or decrypts to a key other than its row's."""


@dataclass(frozen=True)
class KeyInfo:
    origin: int
    public_key: bytes
    kind: str


def _random_seed():
    """A fresh ed25519 seed (a module function so tests can force collisions)."""
    return nacl.utils.random(SEED_SIZE)


def _fsync_dir(path):
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_kek(path, create=False):
    """Read the 32-byte KEK from `path` (creating it with mode 0600 when asked).

    Refuses a file readable or writable by group/others: a KEK anyone can read protects nothing.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        if not create:
            raise KekError("KEK file %s does not exist" % path)
        key = nacl.utils.random(KEK_SIZE)
        # O_EXCL: never clobber a KEK another process just created; mode 0600 from birth.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, key)
            os.fsync(fd)
        finally:
            os.close(fd)
        _fsync_dir(path)  # the KEK must be durable before any secret sealed with it is
        return key
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise KekError("KEK %s is not a regular file" % path)
    if st.st_mode & 0o077:
        raise KekError("KEK file %s has mode %03o: it must be private to the gateway user. "
                       "Run: chmod 600 %s" % (path, stat.S_IMODE(st.st_mode), path))
    with open(path, "rb") as f:
        key = f.read(KEK_SIZE + 1)
    if len(key) != KEK_SIZE:
        raise KekError("KEK file %s must hold exactly %d bytes, found %d" % (path, KEK_SIZE, len(key)))
    return key


def verify(public_key, message, signature):
    """True iff `signature` is a valid ed25519 signature of `message` by `public_key`.
    Strict and total: wrong types or lengths, bad points, any flipped bit -> False, never raises."""
    try:
        if not all(isinstance(x, (bytes, bytearray, memoryview)) for x in (public_key, message, signature)):
            return False
        if len(public_key) != 32 or len(signature) != 64:
            return False
        nacl.signing.VerifyKey(bytes(public_key)).verify(bytes(message), bytes(signature))
        return True
    except Exception:  # BadSignatureError, CryptoError on an invalid point, ...
        return False


class Keystore:
    def __init__(self, store, kek_path, create_kek=True, clock=time.time, seed_source=None):
        """`seed_source`: () -> 32 random bytes for new keypairs (default: the OS's, through
        PyNaCl); a simulation passes a seeded one so that its origins repeat run after run."""
        self.store = store
        self._clock = clock
        self._seed_source = seed_source
        has_secrets = store.query("SELECT EXISTS (SELECT 1 FROM gateway_identity)"
                                  " OR EXISTS (SELECT 1 FROM keys)")[0][0]
        if has_secrets and not os.path.exists(kek_path):
            # A new KEK could never open the existing secrets: make the operator restore the file.
            raise KekError("KEK file %s is missing but %s holds sealed keys: restore the original KEK file "
                           "(a new one cannot decrypt them)" % (kek_path, store.path))
        self._box = nacl.secret.SecretBox(load_kek(kek_path, create=create_kek))
        self._identity = self._load_identity()

    # -- sealing -------------------------------------------------------------------------

    def _seal(self, seed):
        return bytes(self._box.encrypt(seed))  # nonce (24 B) || ciphertext + MAC

    def _unseal(self, sealed, public_key, what):
        try:
            seed = self._box.decrypt(bytes(sealed))
        except nacl.exceptions.CryptoError:
            raise CorruptKey("%s: sealed seed does not decrypt under this KEK" % what) from None
        # Binds the ciphertext to its row: a sealed seed moved to another row is caught here.
        if bytes(nacl.signing.SigningKey(seed).verify_key) != bytes(public_key):
            raise CorruptKey("%s: sealed seed belongs to another public key" % what)
        return seed

    # -- gateway identity ----------------------------------------------------------------

    def _load_identity(self):
        row = self.store.query("SELECT public_key, sealed FROM gateway_identity WHERE id = 1")
        if not row:
            seed = self._new_seed()
            pk = bytes(nacl.signing.SigningKey(seed).verify_key)
            # OR IGNORE: another process may have created it first; we then load theirs.
            self.store.execute("INSERT OR IGNORE INTO gateway_identity (id, public_key, sealed, created)"
                               " VALUES (1, ?, ?, ?)", (pk, self._seal(seed), self._clock()))
            row = self.store.query("SELECT public_key, sealed FROM gateway_identity WHERE id = 1")
        pk, sealed = row[0]
        try:
            seed = self._unseal(sealed, pk, "gateway identity")
        except CorruptKey:
            raise WrongKek("the KEK does not decrypt the keys in %s: use the KEK file this database was "
                           "created with" % self.store.path) from None
        return nacl.signing.SigningKey(seed)

    @property
    def gateway_public_key(self):
        return bytes(self._identity.verify_key)

    def sign(self, message):
        """The gateway's 64-byte ed25519 signature of `message` (records it issues)."""
        return bytes(self._identity.sign(bytes(message)).signature)

    # -- daemon keys ---------------------------------------------------------------------

    def _new_seed(self):
        seed = _random_seed() if self._seed_source is None else bytes(self._seed_source())
        if len(seed) != SEED_SIZE:
            raise KeystoreError("the seed source gave %d bytes, an ed25519 seed is %d" % (len(seed), SEED_SIZE))
        return seed

    def _holder(self, origin):
        """(kind, public_key) of whoever holds `origin` - a key or a registered daemon - or None."""
        r = self.store.query("SELECT kind, public_key FROM keys WHERE origin = ?", (origin,)) or \
            self.store.query("SELECT kind, public_key FROM daemons WHERE origin = ?", (origin,))
        return (r[0][0], bytes(r[0][1])) if r else None

    def _insert(self, seed, kind):
        """Store the keypair of `seed` unless its origin is taken.  Call inside a transaction."""
        pk = bytes(nacl.signing.SigningKey(seed).verify_key)
        origin = origin_hash(pk)
        holder = self._holder(origin)
        if holder is not None:
            return KeyInfo(origin, pk, kind), holder
        self.store.execute("INSERT INTO keys (origin, kind, public_key, sealed, created) VALUES (?, ?, ?, ?, ?)",
                           (origin, kind, pk, self._seal(seed), self._clock()))
        return KeyInfo(origin, pk, kind), None

    def generate(self, kind, attempts=GENERATE_ATTEMPTS):
        """A new keypair for a daemon of `kind`, with an origin no key or daemon holds."""
        if attempts < 1:
            raise KeystoreError("attempts must be >= 1")
        for _ in range(attempts):
            with self.store.transaction():  # check + insert atomically, across threads and processes
                info, holder = self._insert(self._new_seed(), kind)
            if holder is None:
                return info
        raise OriginTaken(info.origin, info.public_key)

    def import_keypair(self, seed, kind):
        """Store the keypair of a caller-chosen seed (replica seeds).  Re-importing the same
        seed for the same kind is a no-op; an origin held by another key raises OriginTaken."""
        if not isinstance(seed, (bytes, bytearray)) or len(seed) != SEED_SIZE:
            raise KeystoreError("an ed25519 seed is %d bytes" % SEED_SIZE)
        with self.store.transaction():
            info, holder = self._insert(bytes(seed), kind)
            if holder is not None and holder == (kind, info.public_key):
                if not self.store.query("SELECT 1 FROM keys WHERE origin = ?", (info.origin,)):
                    # A registered daemon whose key we lack (e.g. deleted): take the seed back.
                    self.store.execute("INSERT INTO keys (origin, kind, public_key, sealed, created)"
                                       " VALUES (?, ?, ?, ?, ?)",
                                       (info.origin, kind, info.public_key, self._seal(bytes(seed)), self._clock()))
                return info
        if holder is not None:
            raise OriginTaken(info.origin, info.public_key)
        return info

    def _row(self, origin):
        r = self.store.query("SELECT kind, public_key, sealed FROM keys WHERE origin = ?", (origin,))
        if not r:
            raise UnknownKey(origin)
        return r[0]

    def public_key(self, origin):
        return bytes(self._row(origin)[1])

    def seed(self, origin):
        """The daemon's private seed, decrypted.  Only USB provisioning may call this: private keys
        never travel in MQTT frames (invariant 4)."""
        _, pk, sealed = self._row(origin)
        return self._unseal(sealed, pk, "key %08x" % origin)

    def delete(self, origin):
        """Forget a daemon's secret; True if there was one.  A registered daemon keeps the origin."""
        return self.store.execute("DELETE FROM keys WHERE origin = ?", (origin,)).rowcount == 1

    def list(self):
        return [KeyInfo(o, bytes(pk), k) for o, pk, k in
                self.store.query("SELECT origin, public_key, kind FROM keys ORDER BY origin")]
