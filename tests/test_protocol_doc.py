"""docs/PROTOCOL.md's worked examples are the vectors' bytes.

Convention in the doc: a line naming a vector — "vector `family.json` / `case`" or
"vector `family/case`" — followed within a few lines by a ``` block whose hex dump (each line's
hex tokens before any annotation column, i.e. before a run of 3+ spaces; lines not starting with
hex are skipped) is that case's primary bytes field.
"""
import json
import os
import re

from conftest import REPO

DOC = os.path.join(REPO, "docs", "PROTOCOL.md")
PRIMARY = ("bytes", "proof", "frame", "record", "encoded", "hex")
MARKER = re.compile(r"vector `([a-z_]+)(?:\.json` / `|/)([^`]+)`")
HEX = re.compile(r"^[0-9a-fA-F]+$")


def examples():
    lines = open(DOC).read().splitlines()
    for i, line in enumerate(lines):
        m = MARKER.search(line)
        if not m:
            continue
        for j in range(i + 1, min(i + 5, len(lines))):
            if lines[j].startswith("```"):
                block = []
                for k in range(j + 1, len(lines)):
                    if lines[k].startswith("```"):
                        break
                    block.append(lines[k])
                yield m.group(1), m.group(2), block
                break


def dump_hex(block):
    out = []
    for line in block:
        data = re.split(r"\s{3,}", line.strip())[0]
        tokens = [t for t in re.split(r"[\s|]+", data) if t]
        if not tokens or not HEX.match(tokens[0]):
            continue
        out.extend(t for t in tokens if HEX.match(t))
    return "".join(out).lower()


def test_doc_has_worked_examples():
    assert len(list(examples())) >= 5


def test_worked_examples_match_vectors():
    for family, name, block in examples():
        with open(os.path.join(REPO, "tests", "vectors", family + ".json")) as f:
            cases = {c["name"]: c for c in json.load(f)["cases"]}
        assert name in cases, (family, name)
        case = cases[name]
        field = next((k for k in PRIMARY if k in case), None)
        assert field, "case %s/%s has no primary bytes field" % (family, name)
        assert dump_hex(block) == case[field].lower(), "%s/%s: doc %s != vector %s" % (
            family, name, dump_hex(block), case[field])
