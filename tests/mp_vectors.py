# Runs every golden vector file under the MicroPython unix port (and works on CPython too).
# usage: micropython -X heapsize=512K tests/mp_vectors.py <staged-dir> <tests-dir>
# Prints "<family>: N/N passed" per file, then a total naming the interpreter and its word size;
# exits 1 on any mismatch or missing checker.
import sys
import os
import json
import gc

staged, tests_dir = sys.argv[1], sys.argv[2]
sys.path.insert(0, staged)
sys.path.insert(0, tests_dir)

vec_dir = tests_dir + "/vectors"
failed = 0
total = 0
names = sorted(n for n in os.listdir(vec_dir) if n.endswith(".json"))
for name in names:
    family = name[:-5]
    doc = None
    gc.collect()
    with open(vec_dir + "/" + name) as f:
        doc = json.load(f)
    mod = __import__("golden." + family, None, None, ["check"])
    ok = 0
    cases = doc["cases"]
    for case in cases:
        try:
            mod.check(case)
            ok += 1
        except Exception as e:
            failed += 1
            print("FAIL %s/%s: %s %s" % (family, case.get("name"), type(e).__name__, e))
    total += len(cases)
    print("%s: %d/%d passed" % (family, ok, len(cases)))
impl = sys.implementation
print("%s vectors (v%d.%d.%d, %d-bit): %d files, %d cases, %d failed" % (
    impl.name, impl.version[0], impl.version[1], impl.version[2], 64 if sys.maxsize > 1 << 32 else 32,
    len(names), total, failed))
sys.exit(1 if failed or not names else 0)
