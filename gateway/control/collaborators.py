"""What an orchestrator may use of the control plane: narrow collaborators, never GatewayCore.

The migration, standby and fork orchestrators (and deploy) get one Collaborators: the store
view they read and write their records through, the clock, the keystore (new identities and
the gateway's signature), and a handful of functions: build a frame, reply to an operator,
draw an operation id routed back to them, tag a key push routed back to them, the key slots a
node must hold, mark a daemon's retained status for republishing, count a statistic, and ask
whether the driver can push key slots to a node.  They never see the core's dictionaries
(tails, liveness, pending requests) nor each other's internals.
"""


class Collaborators:
    def __init__(self, *, store, clock, keystore, frame, reply, new_op, push_tag, slots, changed, count,
                 can_provision):
        self.store = store                  # the durable store (typed control records: state.py)
        self.clock = clock                  # ControlClock: `now`, wall stamps, step ages
        self.keystore = keystore            # generate(kind), sign(message), gateway_public_key
        self.frame = frame                  # (ftype, body) -> frame bytes from the gateway
        self.reply = reply                  # (acts, client, rid, ok, result=None, error=None)
        self.new_op = new_op                # (owner) -> a fresh operation id, its replies routed to owner
        self.push_tag = push_tag            # (tag, owner) -> tag, the finished push routed to owner
        self.slots = slots                  # (node) -> every key slot the node must hold
        self.changed = changed              # (*origins): their retained status is republished
        self.count = count                  # (name): one more of a counter (`records`, ...)
        self.can_provision = can_provision  # (node) -> True / False / None (unknown)
