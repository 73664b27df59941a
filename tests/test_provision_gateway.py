"""The whole out-of-band key path on a virtual board: `netedge provision` over the pty, the node
boots from that folder and joins a real gateway, then `netedge daemon deploy` makes the gateway
push the new daemon's key slot over the same pty (mpremote) and activate it over MQTT."""
import os
import re
import subprocess
import time

import pytest

from conftest import micropython_cmd
from gateways import GatewayProc, cli
from mosquitto import Mosquitto
from nodes import NODE_HEAP, Observer
from test_provision import VirtualBoard, needs_socat, netedge


@needs_socat
def test_provisioned_board_joins_gateway_and_gets_a_daemon(tmp_path):
    broker = Mosquitto(tmp_path / "broker", persistence=True).start()
    board = VirtualBoard(tmp_path / "board", tmp_path / "ttyV0").start()
    cfg = tmp_path / "netedge.toml"
    cfg.write_text('[gateway]\nid = "gw1"\ndata_dir = "data"\n\n[broker]\nurl = "mqtt://%s:%d"\n\n'
                   '[nodes.v1]\nport = "%s"\n' % (broker.host, broker.port, board.link))
    gw = GatewayProc(cfg)
    node = None
    try:
        res = netedge("provision", "--port", board.link, "--board", "unix", "--node", "v1",
                      "--broker", "mqtt://%s:%d" % (broker.host, broker.port), "--heartbeat-ms", "200")
        assert res.returncode == 0, res.stdout + res.stderr
        gw.start()
        log = open(tmp_path / "node.log", "wb")
        # the board boots its node from the provisioned files (the unix port has no main.py autorun)
        node = subprocess.Popen([micropython_cmd(), "-X", "heapsize=" + NODE_HEAP, "main.py"], cwd=board.folder,
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        gw.wait_for(lambda st: any(n.node_id == "v1" and n.status == "online" and "kinds" in n.info
                                   for n in st.nodes()), 20, "provisioned node online at the gateway")
        out = cli(cfg, "daemon", "deploy", "--kind", "counter", "--node", "v1", timeout=90).stdout
        origin = int(re.search(r"deployed ([0-9a-f]{8})", out).group(1), 16)
        assert os.path.exists(os.path.join(board.folder, "keys.json"))  # written through the pty
        obs = Observer(broker, "pub")
        try:
            for i in range(1, 11):
                obs.send_input(origin, b"%d" % i)
            gw.wait_for(lambda st: st.event_count(origin) == 10, 20, "events logged")
        finally:
            obs.close()
        assert "Continuous" in cli(cfg, "status").stdout
    except Exception:
        print(gw.output()[-3000:])
        print((tmp_path / "node.log").read_text(errors="replace")[-2000:] if (tmp_path / "node.log").exists() else "")
        raise
    finally:
        if node is not None:
            node.kill()
            node.wait(5)
        gw.kill()
        board.stop()
        broker.kill()
