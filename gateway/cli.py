"""`netedge` — the operator's command line.

Subcommands arrive with the features they drive (gateway, daemon, migrate, demo, trace, ...);
this file only wires them up.  Errors say what went wrong and what to do, and exit non-zero.
"""
import argparse
import sys

from netedge.gateway import __version__

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
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
