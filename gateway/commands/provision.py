"""`netedge provision`: flash the node firmware and its config onto a board over USB (mpremote)."""
import argparse
import json
import os
import sys

from netedge.gateway.commands import CliError

HELP = "copy the node firmware and its config to a board over USB (mpremote)"

DESCRIPTION = """\
Build the node firmware for BOARD (compiled to .mpy with mpy-cross), copy it to the
board on PORT with mpremote, write the node's netedge.json (node id, broker,
heartbeat, WiFi) and verify every file by SHA-256 on the board.

The board must already run MicroPython (flash it once with esptool / a UF2 file).
Only files that differ are copied, stale netedge modules are removed, and the
board's state/ folder (the daemons' chain records) is never touched, so
re-provisioning is safe and fast.  Daemon keys are NOT given here: the gateway
pushes them over USB when it deploys a daemon (keys.json); use --keys-file only
when running without a gateway."""

EPILOG = """\
examples:
  # an ESP32 on USB, joining WiFi, talking to the broker on the gateway Pi
  netedge provision --port /dev/ttyUSB0 --board esp32 --node kitchen-1 \\
      --broker mqtt://192.168.1.10:1883 --wifi-ssid lab --wifi-password secret --wifi-country DE

  # a Pico W, broker with a password (read from $NETEDGE_MQTT_PASSWORD if not given)
  netedge provision --port /dev/ttyACM0 --board rp2_pico_w --node pico-2 \\
      --broker mqtt://pi.local --username pico-2 --wifi-ssid lab --wifi-password secret

  # the firmware in the ROM partition instead (MicroPython >= 1.25 built with one): the node
  # runs its bytecode from flash and has about twice the free heap for daemons
  netedge provision --port /dev/ttyUSB0 --board esp32 --node kitchen-1 --romfs \
      --broker mqtt://192.168.1.10:1883 --wifi-ssid lab --wifi-password secret --wifi-country DE

  # a virtual board: the MicroPython unix port behind a pty, its flash = the folder it runs in
  mkdir board1 && cd board1 && socat PTY,link=/tmp/board1,raw,echo=0 \\
      EXEC:micropython,pty,raw,echo=0 &
  netedge provision --port /tmp/board1 --board unix --node n1 --broker mqtt://127.0.0.1
  (cd board1 && micropython -X heapsize=256K main.py)     # boot it as a board would

exit status: 0 done, 2 bad arguments / board not reachable / copy failed."""


def register(subparsers):
    p = subparsers.add_parser("provision", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", required=True,
                   help="serial port of the board (/dev/ttyUSB0, /dev/ttyACM0, COM3) or a virtual "
                        "board's pty link; anything `mpremote connect` accepts")
    p.add_argument("--board", required=True, help="board type, a folder of boards/ (esp32, rp2_pico_w, unix)")
    p.add_argument("--node", required=True, metavar="NODE_ID",
                   help="node id: 1..32 letters, digits, '-' or '_' (an MQTT topic level)")
    p.add_argument("--broker", required=True, metavar="URL",
                   help="MQTT broker as the BOARD reaches it: mqtt://host[:port] (default port 1883)")
    p.add_argument("--username", help="MQTT user name for this node")
    p.add_argument("--password", help="MQTT password (default: $NETEDGE_MQTT_PASSWORD)")
    w = p.add_argument_group("WiFi (required for esp32 and rp2_pico_w)")
    w.add_argument("--wifi-ssid", metavar="SSID")
    w.add_argument("--wifi-password", metavar="PASSWORD")
    w.add_argument("--wifi-country", metavar="CC", help="two-letter regulatory domain, e.g. DE, US")
    p.add_argument("--heartbeat-ms", type=int, default=500, metavar="N",
                   help="heartbeat period in milliseconds, 50..60000 (default 500)")
    p.add_argument("--keys-file", metavar="FILE",
                   help='write these key slots as keys.json: a JSON list of {"kind", "public", '
                        '"secret"?} (hex); without a gateway only')
    p.add_argument("--romfs", action="store_true",
                   help="put the firmware in the board's ROM partition (mpremote romfs deploy; MicroPython "
                        ">= 1.25 built with one) instead of lib/: its bytecode then runs from flash, which "
                        "leaves the node about twice the free heap")
    p.add_argument("--no-resume", dest="resume", action="store_false",
                   help="let mpremote soft-reset the board before copying (the unix port cannot)")
    r = p.add_mutually_exclusive_group()
    r.add_argument("--reset", dest="reset", action="store_true", default=None,
                   help="hard-reset the board when done so it boots the node (default for real boards)")
    r.add_argument("--no-reset", dest="reset", action="store_false", help="leave the board at its REPL")
    p.add_argument("--mpremote", metavar="EXE", help="mpremote executable (default: the one next to Python)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.set_defaults(func=run)
    return p


def _keys(path):
    if path is None:
        return None
    try:
        with open(path) as f:
            keys = json.load(f)
    except OSError as e:
        raise CliError("cannot read --keys-file %s: %s" % (path, e.strerror))
    except ValueError as e:
        raise CliError("--keys-file %s is not valid JSON: %s" % (path, e))
    if not isinstance(keys, list):
        raise CliError('--keys-file %s: expected a JSON list of {"kind", "public", "secret"?} slots' % path)
    return keys


def run(args):
    from netedge.tools import provision as P
    try:
        host, port, user, password = P.parse_broker(args.broker)
        user = args.username if args.username is not None else user
        password = args.password if args.password is not None else password
        if password is None:
            password = os.environ.get("NETEDGE_MQTT_PASSWORD") or None
        wifi = None
        if args.wifi_ssid or args.wifi_password or args.wifi_country:
            if not args.wifi_ssid:
                raise CliError("--wifi-password/--wifi-country need --wifi-ssid")
            wifi = {"ssid": args.wifi_ssid, "password": args.wifi_password, "country": args.wifi_country}
        report = P.provision(
            args.port, args.board, args.node, host, port, username=user, password=password, wifi=wifi,
            keys=_keys(args.keys_file), heartbeat_ms=args.heartbeat_ms,
            progress=None if args.quiet else P.progress_bar(sys.stderr),
            mpremote=args.mpremote, resume=args.resume, reset=args.reset, romfs=args.romfs)
    except P.ProvisionError as e:
        raise CliError(str(e))
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
        return 0
    cfg = report["config"]
    b = cfg["broker"]
    sec = report["seconds"]
    print("provisioned node %s (%s) on %s in %.1f s (build %.1f s)" % (
        report["node_id"], report["board"], report["port"], sec["total"], sec["build"]))
    print("  files:     %d on the board, %d copied (%.1f KB), %d unchanged, %d stale removed; "
          "verified by %s" % (len(report["files"]), len(report["copied"]), report["bytes_written"] / 1024.0,
                              len(report["unchanged"]), len(report["removed"]), report["verified"]))
    print("  config:    netedge.json  node_id=%s broker=%s:%d%s heartbeat_ms=%d%s" % (
        cfg["node_id"], b["host"], b["port"], " user=%s" % b["username"] if "username" in b else "",
        cfg["heartbeat_ms"], " wifi=%s" % cfg["wifi"]["ssid"] if "wifi" in cfg else ""))
    if report["romfs"]:
        print("  firmware:  ROMFS image in the ROM partition, %.1f KB; verified by %s" % (
            report["romfs"]["bytes"] / 1024.0, report["romfs"]["verified"]))
    print("  keys:      keys.json %s" % report["keys"])
    if report["reset"]:
        print("  the board was reset: it boots the node now (watch ne/v1/node/%s/status)" % report["node_id"])
    elif report["board"] == "unix":
        print("  boot it:   micropython -X heapsize=256K main.py   (in the board's folder)")
    else:
        print("  boot it:   press reset, or `mpremote connect %s reset`" % report["port"])
    return 0
