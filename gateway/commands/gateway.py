"""netedge gateway — run the control plane."""
from ..config import load


def register(sub):
    p = sub.add_parser("gateway", help="run the gateway service (control plane)",
                       description="Run the gateway: connects to the broker in the config (or starts an embedded "
                                   "one), keeps the durable log, watches nodes, verifies every chain. "
                                   "Stops cleanly on SIGTERM / Ctrl-C.",
                       epilog="example: netedge gateway --config /etc/netedge/netedge.toml --http :8080")
    p.add_argument("--config", help="TOML config file (default: embedded broker, data in ./netedge-data)")
    p.add_argument("--http", metavar="[HOST]:PORT",
                   help="serve the live status page (e.g. :8080; a bare port binds 127.0.0.1 only, "
                        "use 0.0.0.0:8080 to expose it); overrides [gateway] http in the config")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    p.set_defaults(func=run)


def run(args):
    from ..service import serve, setup_logging
    setup_logging(args.log_level)
    cfg = load(args.config)
    if args.http:
        cfg.http = args.http
    return serve(cfg)
