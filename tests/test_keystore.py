"""gateway/keystore.py: KEK file handling, secrets sealed at rest, origin collisions refused,
the gateway identity key, and strict signature verification."""
import os
import sqlite3
import stat

import nacl.signing
import pytest

from netedge.gateway import keystore as ks_mod
from netedge.gateway.keystore import (CorruptKey, KekError, Keystore, KeyInfo, KeystoreError, OriginTaken,
                                      UnknownKey, WrongKek, load_kek, verify)
from netedge.gateway.store import Store
from netedge.shared.identity import origin_hash, replica_seed


@pytest.fixture
def paths(tmp_path):
    return tmp_path / "gateway.db", tmp_path / "kek"


@pytest.fixture
def ks(paths):
    store = Store(paths[0])
    yield Keystore(store, paths[1])
    store.close()


def pk_of_seed(seed):
    return bytes(nacl.signing.SigningKey(seed).verify_key)


def db_bytes(db):
    """The database file plus its WAL: wherever SQLite may have put the rows."""
    out = b""
    for p in (str(db), str(db) + "-wal"):
        if os.path.exists(p):
            with open(p, "rb") as f:
                out += f.read()
    return out


# -- KEK file -------------------------------------------------------------------------------

def test_kek_created_private_and_32_bytes(ks, paths):
    st = os.stat(paths[1])
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_size == 32


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_kek_readable_by_others_is_refused(paths, mode):
    load_kek(paths[1], create=True)
    os.chmod(paths[1], mode)
    with pytest.raises(KekError, match="chmod 600"):
        load_kek(paths[1])
    with Store(paths[0]) as s, pytest.raises(KekError, match="chmod 600"):
        Keystore(s, paths[1])


def test_kek_wrong_size_or_missing(paths):
    fd = os.open(paths[1], os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"short")
    os.close(fd)
    with pytest.raises(KekError, match="exactly 32"):
        load_kek(paths[1])
    with pytest.raises(KekError, match="does not exist"):
        load_kek(paths[1].with_name("nope"))


def test_missing_kek_with_existing_secrets_is_not_recreated(paths):
    with Store(paths[0]) as s:
        Keystore(s, paths[1]).generate("counter")
    os.remove(paths[1])
    with Store(paths[0]) as s, pytest.raises(KekError, match="restore the original"):
        Keystore(s, paths[1])
    assert not os.path.exists(paths[1])


# -- daemon keys ----------------------------------------------------------------------------

def test_generate_lookup_and_list(ks):
    a = ks.generate("counter")
    b = ks.generate("echo")
    assert isinstance(a, KeyInfo) and a.origin == origin_hash(a.public_key) and a.kind == "counter"
    assert ks.public_key(a.origin) == a.public_key
    assert pk_of_seed(ks.seed(a.origin)) == a.public_key
    assert sorted(ks.list(), key=lambda k: k.origin) == sorted([a, b], key=lambda k: k.origin)
    assert ks.delete(a.origin) is True and ks.delete(a.origin) is False
    with pytest.raises(UnknownKey):
        ks.public_key(a.origin)
    with pytest.raises(KeyError):  # UnknownKey is also a KeyError
        ks.seed(a.origin)


def test_secrets_never_in_plaintext_on_disk(ks, paths):
    infos = [ks.generate("counter") for _ in range(5)]
    seeds = [ks.seed(i.origin) for i in infos] + [bytes(ks._identity)]
    data = db_bytes(paths[0])
    assert all(i.public_key in data for i in infos)  # the grep does see the rows
    assert not any(s in data for s in seeds)
    assert not any(s.hex().encode() in data for s in seeds)


def test_same_keypair_twice_is_refused(ks, monkeypatch):
    seed = b"\x11" * 32
    monkeypatch.setattr(ks_mod, "_random_seed", lambda: seed)
    first = ks.generate("counter")
    with pytest.raises(OriginTaken) as e:
        ks.generate("counter")
    assert e.value.origin == first.origin
    assert len(ks.list()) == 1


def test_origin_collision_of_different_keys_is_refused(ks, monkeypatch):
    monkeypatch.setattr(ks_mod, "origin_hash", lambda pk: 0x1234ABCD)
    first = ks.generate("counter")
    calls = []
    real = ks_mod._random_seed
    monkeypatch.setattr(ks_mod, "_random_seed", lambda: calls.append(1) or real())
    with pytest.raises(OriginTaken):
        ks.generate("counter", attempts=4)
    assert len(calls) == 4  # it drew again before giving up
    with pytest.raises(OriginTaken) as e:
        ks.import_keypair(b"\x22" * 32, "replica")
    assert e.value.origin == 0x1234ABCD
    assert ks.list() == [first]


def test_origin_held_by_a_registered_daemon_is_taken(ks):
    seed = b"\x33" * 32
    origin = origin_hash(pk_of_seed(seed))
    ks.store.add_daemon(origin, "counter", b"\x44" * 32)  # same origin, another key
    with pytest.raises(OriginTaken):
        ks.import_keypair(seed, "counter")


def test_import_replica_seed_is_deterministic_and_idempotent(ks, paths):
    seed = replica_seed(b"\x55" * 32, 3)
    a = ks.import_keypair(seed, "replica")
    assert ks.import_keypair(seed, "replica") == a and len(ks.list()) == 1
    with pytest.raises(OriginTaken):
        ks.import_keypair(seed, "counter")  # same key claimed for another kind
    # a registered daemon whose key was deleted gets its seed back
    ks.store.add_daemon(a.origin, "replica", a.public_key)
    ks.delete(a.origin)
    assert ks.import_keypair(seed, "replica") == a and ks.seed(a.origin) == seed
    with pytest.raises(KeystoreError):
        ks.import_keypair(b"short", "replica")


def test_reopen_with_same_kek_decrypts_other_kek_fails_clearly(paths, tmp_path):
    with Store(paths[0]) as s:
        k = Keystore(s, paths[1])
        info, gpk = k.generate("counter"), k.gateway_public_key
        seed = k.seed(info.origin)
    with Store(paths[0]) as s:
        k = Keystore(s, paths[1])
        assert k.seed(info.origin) == seed and k.gateway_public_key == gpk
        assert verify(gpk, b"m", k.sign(b"m"))
    other = tmp_path / "other-kek"
    load_kek(other, create=True)
    with Store(paths[0]) as s, pytest.raises(WrongKek, match="KEK file this database"):
        Keystore(s, other)


def test_swapped_sealed_rows_are_detected(ks, paths):
    a, b = ks.generate("counter"), ks.generate("counter")
    c = sqlite3.connect(paths[0], isolation_level=None)
    sa, sb = (c.execute("SELECT sealed FROM keys WHERE origin = ?", (o,)).fetchone()[0] for o in (a.origin, b.origin))
    c.execute("UPDATE keys SET sealed = ? WHERE origin = ?", (sb, a.origin))
    c.execute("UPDATE keys SET sealed = ? WHERE origin = ?", (sa[:-1] + bytes([sa[-1] ^ 1]), b.origin))
    c.close()
    with pytest.raises(CorruptKey, match="another public key"):
        ks.seed(a.origin)
    with pytest.raises(CorruptKey, match="does not decrypt"):
        ks.seed(b.origin)


# -- gateway identity, sign / verify --------------------------------------------------------

def test_sign_and_strict_verify(ks):
    msg = b"discontinuity record bytes"
    sig = ks.sign(msg)
    pk = ks.gateway_public_key
    assert len(sig) == 64 and len(pk) == 32
    assert verify(pk, msg, sig) is True
    assert verify(pk, bytearray(msg), memoryview(sig)) is True
    for i in (0, 31, 32, 63):
        bad = bytearray(sig)
        bad[i] ^= 0x01
        assert verify(pk, msg, bytes(bad)) is False
    assert verify(pk, msg + b"!", sig) is False
    assert verify(bytes([pk[0] ^ 1]) + pk[1:], msg, sig) is False
    assert verify(pk, msg, sig[:63]) is False and verify(pk, msg, sig + b"\0") is False
    assert verify(pk[:31], msg, sig) is False
    assert verify(b"\xff" * 32, msg, sig) is False  # not a curve point
    assert verify(None, msg, sig) is False and verify(pk, "text", sig) is False
    assert verify(pk, msg, 12) is False


def test_identity_is_created_once(paths):
    with Store(paths[0]) as s:
        a = Keystore(s, paths[1]).gateway_public_key
        b = Keystore(s, paths[1]).gateway_public_key
        assert a == b
        assert s.query("SELECT count(*) FROM gateway_identity")[0][0] == 1
