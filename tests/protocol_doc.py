"""Tables of docs/PROTOCOL.md, cell by cell, for the tests that check the code's tables against them."""
import os

DOC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "PROTOCOL.md")


def table(section, header):
    """The cells of the table in section `section` (e.g. 16) whose header line starts with `header`."""
    lines = open(DOC, encoding="utf-8").read().split("## %d." % section, 1)[1].split("\n## ", 1)[0].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows
