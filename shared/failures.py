"""Typed failures a node answers the gateway with, and their wire codes (docs/PROTOCOL.md).

Only NOT_READY is retriable: the others need an operator or another target.
"""
from .errors import NetedgeError

NOT_READY = 1            # the node is up but not yet able to host (booting, reconnecting)
FACTORY_NOT_FOUND = 2    # the node has no factory for this daemon kind
COMPUTE_NOT_SUPPORTED = 3  # the node hosts no daemons at all (a sensor-only board)
STATE_FAILED = 4         # snapshot/restore/process of the daemon's state failed, or a cap was hit
ALREADY_MIGRATING = 5
IDENTITY_MISSING = 6     # no provisioned keypair slot for this origin (keys never ride MQTT)
TIMEOUT = 7

NAMES = {NOT_READY: "not_ready", FACTORY_NOT_FOUND: "factory_not_found",
         COMPUTE_NOT_SUPPORTED: "compute_not_supported", STATE_FAILED: "state_failed",
         ALREADY_MIGRATING: "already_migrating", IDENTITY_MISSING: "identity_missing", TIMEOUT: "timeout"}


class HostFailure(NetedgeError):
    """A failure with a wire code (retriable only when code == NOT_READY).  Nodes raise it:
    kept small (no methods beyond __init__)."""

    def __init__(self, code, detail=""):
        self.code = code
        self.detail = detail
        super().__init__("%s: %s" % (NAMES.get(code, "code %d" % code), detail))
