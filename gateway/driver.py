"""Running the control plane's entry points: the Ready rule, shared by service.py and the simulator.

An entry point of GatewayCore (on_message, tick, keys_pushed, broker_back) reads the store and
stages its writes; it returns Effects (frames to publish, key slots to push).  `run` wraps the
entry point in ONE store transaction: every write it made commits together, BEFORE the driver
publishes anything it returned or acknowledges the message that caused it (etcd raft's Ready
rule: persist, then send).  A crash at any instant therefore loses nothing that was
acknowledged, and publishes nothing that was not stored.

When the writes cannot be committed (disk full, the database locked past its timeout), nothing
of the entry point happened: the driver publishes nothing, does NOT acknowledge the message (the
broker keeps it: invariant 8, pushed back rather than dropped), rebuilds the core from the store,
since the core's memory already moved on (`Outcome.rebuild`), and runs the same message again
after a doubling backoff (STORE_RETRY_MIN_S to STORE_RETRY_MAX_S) until it is stored, the next
messages waiting behind it, in order; deaf meanwhile (broker_lost), so no heartbeat deadline
blames a node for the gateway's own outage (broker_back once stored).  Any other exception out of the core is a gateway bug: the transaction is
rolled back and the core rebuilt too, but the message is acknowledged (a message that always
crashes the core must not come back for ever).
"""
import logging

log = logging.getLogger("netedge.gateway")

# A message whose writes did not commit is retried in place after this backoff, doubling, instead
# of dropping the connection (a reconnect storm: every unacknowledged message would come again at
# once).  Under the broker's keepalive allowance (1.5 x 10 s) for the whole outage; a longer one
# costs a reconnection, nothing more.
STORE_RETRY_MIN_S, STORE_RETRY_MAX_S = 0.05, 2.0


class Outcome:
    """What the driver does next: publish `effects` (None: nothing), `ack` the message,
    `rebuild` the core from the store; `error` is the exception, if any."""

    def __init__(self, effects=None, ack=True, rebuild=False, error=None):
        self.effects, self.ack, self.rebuild, self.error = effects, ack, rebuild, error

    @property
    def store_failed(self):
        return self.error is not None and not self.ack


def run(store, entry, *args, store_errors=()):
    """entry(*args) inside one store transaction -> Outcome.  `store_errors`: the exception
    types of the store's backend that mean it failed (sqlite3.Error for the real store)."""
    try:
        with store.transaction():
            effects = entry(*args)
    except Exception as e:  # (the transaction rolled back: none of the entry point's writes stayed)
        if isinstance(e, tuple(store_errors)):
            log.error("store write failed (%s: %s): nothing published, the message is not acknowledged "
                      "(redelivered after the next connection); control state reloaded from the store",
                      type(e).__name__, e)
            return Outcome(None, ack=False, rebuild=True, error=e)
        log.exception("internal error in the control plane: gateway bug, please report")
        return Outcome(None, ack=True, rebuild=True, error=e)
    return Outcome(effects)
