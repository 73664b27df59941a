"""unix port: the host's network is already up."""


def network_up(cfg, timeout_ms=0):
    return "host"
