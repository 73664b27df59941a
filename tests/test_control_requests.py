"""The operator requests' table (gateway/control/requests.py) and the orchestrators' narrow
collaborators: one table names every request kind with its fields, rules and handler; a request
that breaks a rule is refused with that rule's words and counted as malformed, nothing changed;
and no orchestrator reaches into GatewayCore (control/collaborators.py is all they get)."""
import ast
import os

import pytest

from netedge.gateway.control import requests as Q
from netedge.shared import topics as T

from test_gateway_badinput import rid_frame, rig  # noqa: F401 (the rig fixture)

REQ = T.gateway("gw1", "req", "cli-1")

CONTROL = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "gateway", "control")
ORCHESTRATORS = ("migration.py", "standby.py", "fork.py", "deploy.py", "requests.py")


def test_every_request_kind_has_fields_rules_and_a_handler():
    assert set(Q.REQUESTS) == {"deploy", "stop", "migrate", "fork", "group_create", "group_sync"}
    for name, kind in Q.REQUESTS.items():
        assert kind.name == name and kind.fields
        assert callable(getattr(Q.Requests, kind.handler))
        for ok, why in kind.rules:
            assert callable(ok) and isinstance(why, str) and why


@pytest.mark.parametrize("body,why", [
    ({"cmd": "deploy", "kind": "counter"}, "deploy needs 'kind' and 'node'"),
    ({"cmd": "deploy", "kind": "x" * 65, "node": "n1"}, "deploy needs 'kind' and 'node'"),
    ({"cmd": "stop", "origin": True}, "stop needs 'origin'"),
    ({"cmd": "stop", "origin": 1 << 32}, "stop needs 'origin'"),
    ({"cmd": "migrate", "origin": 5}, "migrate needs 'origin' (u32) and 'to'"),
    ({"cmd": "migrate", "auto": True, "origin": -1}, "migrate needs 'origin' (u32)"),
    ({"cmd": "fork", "origin": 5, "to": ""}, "fork needs 'origin' (u32) and 'to'"),
    ({"cmd": "group_create", "kind": "counter", "members": 17}, "'members' (2..16)"),
    ({"cmd": "group_create", "kind": "counter", "members": 2, "nodes": ["a"]}, "'nodes' must list exactly"),
    ({"cmd": "group_create", "kind": "counter", "members": 2, "sync_seconds": 0}, "'sync_seconds' a number > 0"),
    ({"cmd": "reboot_everything"}, "unknown request 'reboot_everything': expected 'deploy', 'stop'"),
    ({"cmd": ["deploy"]}, "unknown request"),
])
def test_a_request_of_the_wrong_shape_is_refused_by_its_rule(rig, body, why):
    # (counted malformed, nothing changed, exactly one error reply: Rig.rejected checks it)
    (reply,) = rig.rejected(REQ, rid_frame(rig, dict(body, id=9)), replies=True)
    assert reply["id"] == 9 and why in reply["error"], reply


def test_no_orchestrator_reaches_into_the_core():
    for name in ORCHESTRATORS:
        tree = ast.parse(open(os.path.join(CONTROL, name), encoding="utf-8").read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                assert node.attr != "core", "%s uses .core (line %d)" % (name, node.lineno)
            if isinstance(node, ast.ImportFrom):
                assert node.module != "core", "%s imports the core" % name
