"""The example daemon: adds each input (a decimal integer) to a running total.

Its chain then doubles as an audit trail: every output is the total after that input, so the
final state of a test is exact and easy to check.
"""
from ..daemon import Daemon


class Counter(Daemon):
    KIND = "counter"

    def __init__(self):
        self.total = 0
        self.count = 0

    def process(self, event):
        self.total += int(event.payload)  # ValueError on a non-integer input: the host reports it
        self.count += 1
        return [b"%d" % self.total]

    def snapshot(self):
        return b"%d,%d" % (self.total, self.count)

    def restore(self, data):
        total, count = data.split(b",")
        self.total, self.count = int(total), int(count)
