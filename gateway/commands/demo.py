"""netedge demo — the whole system on this machine, narrated, each step timed: the options;
the scenario harness is netedge.tools.demo."""
import argparse

DESCRIPTION = """\
Run the whole system on this machine and narrate a scenario, each step with its
measured time: an MQTT broker, the gateway and three virtual boards (MicroPython
unix port, the firmware in a ROM partition and 96 KB of heap each) in a temporary folder, then

  deploy a counter daemon on n1 (new ed25519 identity, keys pushed out of band)
  stream inputs to it, and migrate it live to n2 while they keep coming
  check every input was processed exactly once, in order
  show its ContinuityStatus, make a 36-byte ContinuityProof over the whole chain
  and verify it link by link
  fork it into a new identity with a signed, verifiable lineage
  run a second counter in a standby group of 3, kill -9 its active's node under
  a stream and watch a standby take over at a new epoch: same chain, no input lost
  print every ContinuityStatus and every signed record, verified

and end with a summary table.  Exit 0 when every step passed; otherwise the failing
step says why, everything is stopped and the exit status is 1 (130 on Ctrl-C)."""

EPILOG = """\
examples:
  netedge demo                                   embedded broker, clean up at the end
  netedge demo --keep                            then keep it all running to explore
  netedge demo --broker mqtt://127.0.0.1:1883    use a running broker (e.g. Mosquitto)
  netedge demo --inputs 2000 --rate 150

With --broker the nodes and the gateway get names unique to this run (dXXXX-n1, ...),
and at the end their retained messages and persistent sessions are removed from the
broker, so a shared broker is left as it was."""


def register(sub):
    p = sub.add_parser("demo", help="run a gateway, a broker and 3 virtual boards here, and narrate a scenario",
                       description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--broker", metavar="URL", help="mqtt://host[:port] of a running broker to use instead of the "
                                                   "embedded one")
    p.add_argument("--keep", action="store_true",
                   help="after the scenario leave everything running (and the work folder in place) until Ctrl-C, "
                        "and print how to explore it: netedge status, netedge trace, the status page")
    p.add_argument("--http", metavar="[HOST]:PORT",
                   help="with --keep: where to serve the live status page (default: a free port on 127.0.0.1)")
    p.add_argument("--inputs", type=int, default=500, metavar="N", help="inputs to stream (default 500)")
    p.add_argument("--rate", type=int, default=100, metavar="R", help="inputs per second (default 100)")
    p.set_defaults(func=run)


def run(args):
    from ...tools import demo as harness
    opts = harness.DemoOptions(broker=args.broker, keep=args.keep, http=args.http, inputs=args.inputs,
                               rate=args.rate)  # (refuses options that cannot work, before anything starts)
    return harness.run(opts)
