"""What the outside world does to the installation: sensors publishing inputs to daemons'
inboxes, and an operator running `netedge` commands (the requests gateway/remote.py sends)."""
from ...shared import frame as FR
from ...shared import topics as T
from .broker import Endpoint

OPERATOR = "cli-sim"
KINDS = ("counter", "counter", "echo", "blob")  # (counter twice: its totals make the best audit)


class Publisher(Endpoint):
    """A sensor: INPUT frames at QoS 1 with its own strictly increasing counter."""

    def __init__(self, broker, cid):
        super().__init__(broker, cid, clean=True, keepalive=10, backoff=(0.1, 1.0))
        self.counter = 0

    def send(self, origin, payload):
        self.counter += 1
        self.publish(T.daemon(origin, "in"), FR.encode(FR.INPUT, self.cid, self.counter, {"p": payload}), 1)

    def message(self, topic, payload, retained, token):
        pass


class Operator(Endpoint):
    """The CLI: a request on `gw/<gw>/req/<client>`, its reply on `gw/<gw>/rep/<client>`, both
    QoS 1 over a persistent session (as GatewayClient keeps one while a command runs)."""

    def __init__(self, broker, gateway_id, on_reply):
        super().__init__(broker, OPERATOR, clean=False, keepalive=10, backoff=(0.2, 2.0))
        self.gateway_id = gateway_id
        self.on_reply = on_reply
        self.rid = 0
        self.pending = {}   # request id -> (cmd, args)

    def connected_hook(self, present):
        self.subscribe([(T.gateway(self.gateway_id, "rep", self.cid), 1)])

    def request(self, cmd, **args):
        self.rid += 1
        self.pending[self.rid] = (cmd, args)
        body = dict(args, cmd=cmd, id=self.rid)
        self.publish(T.gateway(self.gateway_id, "req", self.cid), FR.encode(FR.CONTROL, self.cid, self.rid, body), 1)
        return self.rid

    def message(self, topic, payload, retained, token):
        try:
            body = FR.decode(payload).body()
        except FR.FrameError:
            body = None
        self.ack(token)
        if isinstance(body, dict) and body.get("id") in self.pending:
            cmd, args = self.pending.pop(body["id"])
            self.on_reply(cmd, args, body)
