"""Who answers what: node replies routed by operation id, finished key pushes by their tag.

Every operation id an orchestrator issues, and every key push it asks for, is registered here
with the orchestrator as its owner; a MIGRATION reply then goes to the owner of its `m`, a
finished push to the owner of its tag.  The map is memory: a restarted core registers the ids
its orchestrators persisted (`open_op_ids()`), and a reply to an id no longer known (one a
previous run issued and did not persist, e.g. a standby's `keep`) goes to the owner of its
origin (`owner_of_origin`), which checks it as it checks any reply.
"""

MAX_ROUTES = 4096  # ids remembered (oldest forgotten first): far more than operations in flight


class Routes:
    def __init__(self):
        self._ops = {}     # operation id -> owner
        self._pushes = {}  # key push tag -> owner

    def op(self, m, owner):
        self._ops.pop(m, None)
        self._ops[m] = owner
        while len(self._ops) > MAX_ROUTES:
            del self._ops[next(iter(self._ops))]
        return m

    def owner_of_op(self, m):
        return self._ops.get(m) if type(m) is int else None

    def push(self, tag, owner):
        self._pushes[tag] = owner
        return tag

    def take_push(self, tag):
        """The owner of a finished key push (None: not one this core asked for)."""
        return self._pushes.pop(tag, None)
