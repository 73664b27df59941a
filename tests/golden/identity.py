"""origin_hash and replica_seed (DESIGN §4)."""
from netedge.shared import identity as I
from golden import unhex, eq, outcome as _err


def check(case):
    kind = case["kind"]
    if kind == "origin":
        eq("origin", I.origin_hash(unhex(case["public_key"])), case["origin"])
    elif kind == "replica":
        seed = I.replica_seed(unhex(case["group_seed"]), case["index"])
        eq("seed", seed.hex(), case["seed"])
        # the keypair step (seed -> ed25519 public key) is PyNaCl's, recorded by generate()
        eq("origin", I.origin_hash(unhex(case["public_key"])), case["origin"])
    elif kind == "origin_error":
        eq("error", _err(I.origin_hash, unhex(case["public_key"])), case["error"])
    elif kind == "replica_error":
        eq("error", _err(I.replica_seed, unhex(case["group_seed"]), case["index"]), case["error"])
    else:
        raise AssertionError("unknown kind " + kind)


def generate():
    import hashlib
    import struct
    from nacl.signing import SigningKey

    def origin(pk):
        return struct.unpack("<I", hashlib.sha256(b"netedge/origin/v1" + pk).digest()[:4])[0]

    cases = []
    for name, pk in [("zero-key", bytes(32)), ("counting-key", bytes(range(32))), ("ff-key", b"\xff" * 32)]:
        cases.append({"name": name, "kind": "origin", "public_key": pk.hex(), "origin": origin(pk)})
    gs = bytes(range(100, 132))
    for name, g, idx in [("group-a-0", gs, 0), ("group-a-1", gs, 1), ("group-a-258", gs, 258),
                         ("group-a-max", gs, 65535), ("zero-group-0", bytes(32), 0)]:
        seed = hashlib.sha256(b"netedge/replica/v1" + g + struct.pack("<H", idx)).digest()
        pk = bytes(SigningKey(seed).verify_key)
        cases.append({"name": name, "kind": "replica", "group_seed": g.hex(), "index": idx,
                      "seed": seed.hex(), "public_key": pk.hex(), "origin": origin(pk)})
    for name, pk in [("empty-key", b""), ("short-key-31", bytes(31)), ("long-key-33", bytes(33)),
                     ("signature-sized-64", bytes(64))]:
        cases.append({"name": name, "kind": "origin_error", "public_key": pk.hex(), "error": "InvalidPublicKey"})
    for name, g, idx, err in [("index-negative", gs, -1, "InvalidReplicaIndex"),
                              ("index-65536", gs, 65536, "InvalidReplicaIndex"),
                              ("group-seed-31", gs[:31], 0, "InvalidGroupSeed"),
                              ("group-seed-33", gs + b"\0", 0, "InvalidGroupSeed"),
                              ("group-seed-empty", b"", 0, "InvalidGroupSeed")]:
        cases.append({"name": name, "kind": "replica_error", "group_seed": g.hex(), "index": idx, "error": err})
    return cases
