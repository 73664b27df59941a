"""docs/PROTOCOL.md's worked examples are the vectors' bytes.

Convention in the doc: a line naming "vector `family.json` / `case`" is followed by a ``` block
whose first line is the hex dump of that case's primary bytes field (fields split by `|`).
"""
import json
import os
import re

from conftest import REPO

DOC = os.path.join(REPO, "docs", "PROTOCOL.md")
PRIMARY = ("bytes", "proof", "frame", "record", "encoded", "hex")


def examples():
    text = open(DOC).read()
    for m in re.finditer(r"vector `([a-z_]+)\.json` / `([^`]+)`[^\n]*\n(?:[^\n]*\n)*?```[a-z]*\n([^\n]+)\n", text):
        yield m.group(1), m.group(2), m.group(3)


def test_doc_has_worked_examples():
    assert len(list(examples())) >= 2


def test_worked_examples_match_vectors():
    for family, name, line in examples():
        with open(os.path.join(REPO, "tests", "vectors", family + ".json")) as f:
            cases = {c["name"]: c for c in json.load(f)["cases"]}
        assert name in cases, (family, name)
        case = cases[name]
        field = next((k for k in PRIMARY if k in case), None)
        assert field, "case %s/%s has no primary bytes field" % (family, name)
        dump = "".join(re.findall(r"[0-9a-f]{2}", line.replace("|", " ").lower()))
        assert dump == case[field].lower(), "%s/%s: doc %s != vector %s" % (family, name, dump, case[field])
