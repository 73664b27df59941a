"""netedge daemon deploy|list|stop."""
from ...shared import topics as T
from ..config import load
from . import CliError


def register(sub):
    p = sub.add_parser("daemon", help="deploy, list and stop daemons",
                       description="Manage daemons. deploy and stop ask the running gateway; list reads its store.")
    s = p.add_subparsers(title="actions", metavar="ACTION")
    d = s.add_parser("deploy", help="create a daemon (new keypair) and activate it on a node at epoch 1",
                     epilog="example: netedge daemon deploy --kind counter --node n1 --config netedge.toml")
    d.add_argument("--kind", required=True, help="a daemon kind the node can host (see `netedge status`)")
    d.add_argument("--node", required=True, help="node id")
    d.add_argument("--config")
    d.set_defaults(func=deploy)
    ls = s.add_parser("list", help="list daemons")
    ls.add_argument("--config")
    ls.set_defaults(func=list_)
    st = s.add_parser("stop", help="stop a daemon on its host")
    st.add_argument("origin", help="8 hex digits")
    st.add_argument("--config")
    st.set_defaults(func=stop)
    p.set_defaults(func=lambda a: (p.print_help(), 0)[1])


def parse_origin(text):
    try:
        return T.parse_origin(text)
    except ValueError:
        raise CliError("origin %r: expected 8 lowercase hex digits, as `netedge daemon list` shows" % text)


def deploy(args):
    from ..remote import GatewayClient
    gc = GatewayClient(load(args.config))
    try:
        r = gc.request("deploy", kind=args.kind, node=args.node)
    finally:
        gc.close()
    print("deployed %08x (%s) on %s at epoch %d" % (r["origin"], r["kind"], r["node"], r["epoch"]))
    return 0


def stop(args):
    from ..remote import GatewayClient
    origin = parse_origin(args.origin)
    gc = GatewayClient(load(args.config))
    try:
        r = gc.request("stop", origin=origin)
    finally:
        gc.close()
    print("stopped %08x on %s" % (r["origin"], r["node"]))
    return 0


def open_store(cfg):
    import os
    from ..store import Store
    if not os.path.exists(cfg.db_path):
        raise CliError("no gateway store at %s: run `netedge gateway` with this config first" % cfg.db_path)
    return Store(cfg.db_path)


def read_store(config, read):
    """read(store) on the gateway's store of `config` (a path or None), closed afterwards."""
    store = open_store(load(config))
    try:
        return read(store)
    finally:
        store.close()


def list_(args):
    store = open_store(load(args.config))
    try:
        rows = store.daemons()
        print("%-8s  %-10s %-8s %5s  %-12s %8s  %s" % ("ORIGIN", "KIND", "HOST", "EPOCH", "STATUS", "HEAD", "CONTINUITY"))
        for d in rows:
            head = store.head(d.origin)
            cont = (d.continuity or {}).get("kind", "-")
            print("%08x  %-10s %-8s %5d  %-12s %8d  %s" % (d.origin, d.kind, d.host_node or "-", d.epoch, d.status,
                                                           head.sequence if head else 0, cont))
        if not rows:
            print("(no daemons: deploy one with `netedge daemon deploy --kind counter --node NODE`)")
    finally:
        store.close()
    return 0
