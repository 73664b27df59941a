"""netedge gateway: the CPython control plane (orchestration, durable store, keystore, CLI)."""
try:
    from importlib.metadata import version as _version
    __version__ = _version("netedge")
except Exception:  # running from a source tree without an install
    __version__ = "0.1.0"
