"""Operator requests (the netedge CLI over MQTT): ONE table of request kinds, each with its
fields, the rules its shape must meet, and the handler that runs it.

A request is a CONTROL frame on `ne/v1/gw/<gw>/req/<client>`, body `{"cmd", "id", ...}`; the
reply goes to `ne/v1/gw/<gw>/rep/<client>` with the same `id`.  A body of the wrong shape is a
BadRequest: refused with an error reply and counted as malformed.  A well-formed request the
gateway cannot honour (an unknown node, a daemon that is not active, ...) is only refused.
Either way nothing changed.
"""
import logging

from ...shared import topics as T
from ...shared.errors import NetedgeError
from .standby import GroupError, SYNC_EVERY_N, SYNC_EVERY_S

log = logging.getLogger("netedge.gateway")

MAX_NAME = 64             # daemon kinds, node names and request ids: short, so every reply fits a frame
MAX_MEMBERS = 16          # a standby group's size, at most
REQUIRED = object()       # (a field without a default)


class BadRequest(ValueError):
    """An operator request of the wrong shape: refused with an error reply and counted as malformed
    (a well-formed request the gateway cannot honour is only refused)."""


def is_int(v):
    return type(v) is int  # not bool


def is_name(v):
    return isinstance(v, str) and 0 < len(v) <= MAX_NAME


def is_u32(v):
    return is_int(v) and 0 <= v <= 0xFFFFFFFF


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class RequestKind:
    """One row of the table: `fields` (name -> default, or REQUIRED: absent is None), `rules`
    ((predicate over the fields, the refusal when it fails), in order) and the handler, a
    Requests method taking (acts, client, rid, fields, now)."""

    def __init__(self, name, fields, rules, handler):
        self.name, self.fields, self.rules, self.handler = name, fields, rules, handler

    def parse(self, body):
        """The request's fields from `body`; BadRequest at the first rule they break."""
        args = {f: body.get(f, None if d is REQUIRED else d) for f, d in self.fields.items()}
        for ok, why in self.rules:
            if not ok(args):
                raise BadRequest(why)
        return args


REQUESTS = {k.name: k for k in (
    RequestKind("deploy", {"kind": REQUIRED, "node": REQUIRED}, [
        (lambda a: is_name(a["kind"]) and is_name(a["node"]),
         "deploy needs 'kind' and 'node': names of at most %d characters" % MAX_NAME),
    ], "_deploy"),
    RequestKind("stop", {"origin": REQUIRED}, [
        (lambda a: is_u32(a["origin"]), "stop needs 'origin': the daemon's origin hash as an integer (u32)"),
    ], "_stop"),
    RequestKind("migrate", {"origin": REQUIRED, "to": REQUIRED, "auto": False}, [
        # `auto`: start_migration_auto, the gateway picks the target
        (lambda a: (a["auto"] is True and a["to"] is None) or (is_int(a["origin"]) and is_name(a["to"])),
         "migrate needs 'origin' (u32) and 'to': a node name of at most %d characters (or 'auto': true)" % MAX_NAME),
        (lambda a: is_u32(a["origin"]), "migrate needs 'origin' (u32)"),
    ], "_migrate"),
    RequestKind("fork", {"origin": REQUIRED, "to": REQUIRED}, [
        (lambda a: is_u32(a["origin"]) and is_name(a["to"]),
         "fork needs 'origin' (u32) and 'to': a node name of at most %d characters" % MAX_NAME),
    ], "_fork"),
    RequestKind("group_create", {"kind": REQUIRED, "members": REQUIRED, "nodes": REQUIRED,
                                 "sync_every": SYNC_EVERY_N, "sync_seconds": SYNC_EVERY_S}, [
        (lambda a: is_name(a["kind"]) and is_int(a["members"]) and 2 <= a["members"] <= MAX_MEMBERS,
         "group_create needs 'kind' (a name) and 'members' (2..%d)" % MAX_MEMBERS),
        (lambda a: a["nodes"] is None or (isinstance(a["nodes"], list) and len(a["nodes"]) == a["members"]
                                          and all(is_name(n) for n in a["nodes"])),
         "group_create 'nodes' must list exactly 'members' node names"),
        (lambda a: is_int(a["sync_every"]) and a["sync_every"] >= 1 and is_number(a["sync_seconds"])
         and a["sync_seconds"] > 0,
         "group_create 'sync_every' must be an int >= 1 and 'sync_seconds' a number > 0"),
    ], "_group_create"),
    RequestKind("group_sync", {"origin": REQUIRED}, [], "_group_sync"),
)}


class Requests:
    """Runs REQUESTS: the shape first (BadRequest), then the handler of the request's kind."""

    def __init__(self, ctx, gateway_id, deployer, migrations, forks, standby):
        self.ctx = ctx            # narrow collaborators (control/collaborators.py)
        self.gateway_id = gateway_id
        self.deployer, self.migrations, self.forks, self.standby = deployer, migrations, forks, standby

    def handle(self, acts, client, body, now):
        """A decoded request `body` from `client`: exactly one reply, whatever happens."""
        op, rid = body.get("cmd"), body.get("id")
        try:
            if not (rid is None or is_int(rid) or (isinstance(rid, str) and len(rid) <= MAX_NAME)):
                rid = None
                raise BadRequest("request 'id' must be an int or a name of at most %d characters" % MAX_NAME)
            kind = REQUESTS.get(op) if isinstance(op, str) else None
            if kind is None:
                raise BadRequest("unknown request %r: expected %s" % (op, ", ".join("'%s'" % k for k in REQUESTS)))
            getattr(self, kind.handler)(acts, client, rid, kind.parse(body), now)
        except BadRequest as e:
            self.ctx.count("malformed")
            log.warning("bad frame topic=%s error=BadRequest: %s", T.gateway(self.gateway_id, "req", client), e)
            self.ctx.reply(acts, client, rid, False, error=str(e))
        except (NetedgeError, ValueError) as e:
            self.ctx.reply(acts, client, rid, False, error=str(e))

    # -- the handlers (REQUESTS) -----------------------------------------------------------------

    def _deploy(self, acts, client, rid, a, now):
        self.deployer.start(acts, client, rid, a["kind"], a["node"], now)

    def _stop(self, acts, client, rid, a, now):
        busy = self.migrations.busy(a["origin"])
        if busy is not None:
            raise ValueError("%08x cannot stop now: %s" % (a["origin"], busy))
        self.deployer.stop(acts, client, rid, a["origin"])

    def _migrate(self, acts, client, rid, a, now):
        if self.standby.is_grouped(a["origin"]):
            raise ValueError("%08x is a standby group's daemon: its group moves it (promotion), not "
                             "`netedge migrate`" % a["origin"])
        self.migrations.start(acts, client, rid, a["origin"], a["to"], now)

    def _fork(self, acts, client, rid, a, now):
        self.forks.start(acts, client, rid, a["origin"], a["to"])

    def _group_create(self, acts, client, rid, a, now):
        try:
            self.standby.create(acts, client, rid, a["kind"], a["members"], a["nodes"], a["sync_every"],
                                float(a["sync_seconds"]))
        except GroupError as e:
            raise ValueError(str(e))

    def _group_sync(self, acts, client, rid, a, now):
        origin = a["origin"]
        st = self.standby.groups.get(origin) if is_int(origin) else None
        if st is None:
            raise ValueError("%r is not the origin of a standby group (see `netedge status`)" % (origin,))
        if not self.standby.sync(acts, st):
            raise ValueError("group %08x cannot sync now: it is %s%s" % (
                origin, st.step, " (a sync is in flight)" if st.sync else ""))
        self.ctx.reply(acts, client, rid, True, result={"origin": origin, "active": st.active})
