"""Typed errors of the shared core.  Every decoder raises a DecodeError subclass, never a bare
struct/Index/Unicode error, so a driver can count, log and answer it (invariant 5)."""


class NetedgeError(ValueError):
    """Base of every error the shared core raises on purpose."""


class DecodeError(NetedgeError):
    """Bytes that are not a valid encoding of what the caller asked for."""
