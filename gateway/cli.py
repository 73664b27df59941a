"""`netedge` — the operator's command line.

Subcommands arrive with the features they drive (gateway, daemon, migrate, demo, trace, ...);
this file only wires them up.  Errors say what went wrong and what to do, and exit non-zero.
"""
import argparse
import importlib
import sys

from netedge.gateway import __version__
from netedge.gateway.errors import OperatorError

# subcommand modules under netedge.gateway.commands, in --help order
COMMANDS = ("demo", "gateway", "daemon", "group", "migrate", "fork", "status", "proof", "record", "provision", "trace")

DESCRIPTION = """\
netedge: daemons that survive node failures, on microcontrollers.

MicroPython boards host small stateful daemons with ed25519 identities and
hash-chained event histories; this gateway orchestrates them over MQTT."""

EPILOG = """\
The shared continuity core (links, proofs, records) is usable from Python:
  python -c "import netedge.shared.proof as p; help(p)"
Docs: README.md and docs/PROTOCOL.md in the source tree."""


def build_parser():
    parser = argparse.ArgumentParser(
        prog="netedge", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version="netedge " + __version__)
    if COMMANDS:
        sub = parser.add_subparsers(title="commands", metavar="COMMAND")
        for name in COMMANDS:
            importlib.import_module("netedge.gateway.commands." + name).register(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except OperatorError as e:  # (CliError included)
        print("netedge: error: %s" % e, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("netedge: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
