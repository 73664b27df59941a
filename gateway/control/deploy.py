"""Deploy and stop: a new daemon identity on a node, and a daemon's end (sans-I/O, like the
orchestrators).

`netedge deploy KIND --to NODE`: the gateway generates the identity (keystore), registers the
daemon `provisioning` on NODE, pushes its key slot (the driver: USB or a board folder), then
sends `activate` every DEPLOY_RETRY_S until NODE's heartbeat lists the daemon at epoch 1; the
daemon is then `active` and the operator answered.  DEPLOY_TIMEOUT_S after the request without
that heartbeat, the deploy fails (the daemon is marked `failed`).  Its state is a DeployState
record (control/state.py), so a restarted gateway carries on.
"""
import logging

from ...shared import frame as FR
from ...shared import topics as T
from .state import DeployState

log = logging.getLogger("netedge.gateway")

DEPLOY_RETRY_S = 1.0
DEPLOY_TIMEOUT_S = 30.0
NODE_ONLINE = "online"
PREFIX = "deploy:"  # (the key push tag, and the clock's name for a deploy's start)


def tag_of(origin):
    return "%s%08x" % (PREFIX, origin)


def key_slots(store, node, group_slots):
    """Every key slot `node` should hold: its daemons' public keys (never the secrets: nodes
    verify nothing with them and a stolen board then leaks no signing key), and those of the
    standby groups it belongs to (`group_slots`)."""
    slots = [{"kind": d.kind, "public": d.public_key.hex()}
             for d in store.daemons(host_node=node) if d.status != "stopped"] + group_slots
    return [s for i, s in enumerate(slots) if s not in slots[:i]]


class Deployer:
    def __init__(self, ctx):
        self.ctx = ctx            # narrow collaborators (control/collaborators.py)
        self.store = ctx.store
        self.clock = ctx.clock
        self.pending = {}         # push tag -> `now` of the last activation sent (None: send at the next tick)

    def start(self, acts, client, rid, kind, node, now):
        """A well-formed deploy request (control/requests.py checked its shape)."""
        n = self.store.node(node)
        if n is None:
            raise ValueError("unknown node %r: it has never sent a heartbeat" % node)
        if n.status != NODE_ONLINE:
            raise ValueError("node %r is %s" % (node, n.status))
        if "kinds" not in n.info:
            raise ValueError("node %r has not sent a heartbeat yet: retry in a moment" % node)
        if kind not in (n.info.get("kinds") or []):
            raise ValueError("node %r cannot host kind %r (it has %s)" % (node, kind, n.info.get("kinds")))
        info = self.ctx.keystore.generate(kind)
        self.store.add_daemon(info.origin, kind, info.public_key, host_node=node, epoch=1, status="provisioning")
        tag = tag_of(info.origin)
        self.store.save_state(info.origin, DeployState(origin=info.origin, kind=kind, node=node, epoch=1,
                                                       step="push_keys", client=client, rid=rid,
                                                       started=self.clock.stamp(tag + ":started")))
        self.pending[tag] = now
        log.info("deploy origin=%08x kind=%s node=%s", info.origin, kind, node)
        acts.push_keys.append((node, self.ctx.slots(node), self.ctx.push_tag(tag, self)))

    def keys_pushed(self, acts, tag, error):
        """The driver finished the key push of deploy `tag`."""
        st = self.store.load_state(DeployState, int(tag[len(PREFIX):], 16))
        if st is None:
            return
        if error:
            self.store.drop_state(DeployState, st.origin)
            self.store.update_daemon(st.origin, status="failed")
            self.ctx.reply(acts, st.client, st.rid, False, error="provisioning failed: %s" % error)
            return
        st.step = "activate"
        self.store.save_state(st.origin, st)
        self.pending[tag] = None  # send the activation at the next tick

    def tick(self, acts, now):
        """Activations re-sent; a deploy past DEPLOY_TIMEOUT_S fails."""
        for origin, st in self.store.states(DeployState):
            if st.step != "activate":
                continue
            tag = tag_of(origin)
            last = self.pending.get(tag)
            if self.clock.age(tag + ":started", st.started) > DEPLOY_TIMEOUT_S:
                self.clock.forget(tag + ":started")
                self.store.drop_state(DeployState, origin)
                self.store.update_daemon(origin, status="failed")
                self.pending.pop(tag, None)
                self.ctx.reply(acts, st.client, st.rid, False,
                               error="node %s did not activate %08x in %ds" % (st.node, origin, DEPLOY_TIMEOUT_S))
                continue
            if last is None or now - last >= DEPLOY_RETRY_S:
                self.pending[tag] = now
                body = {"cmd": "activate", "origin": origin, "kind": st.kind, "epoch": st.epoch}
                acts.publish.append((T.node(st.node, "ctl"), self.ctx.frame(FR.CONTROL, body), 1, False))

    def on_heartbeat(self, acts, node, hb):
        """A node's heartbeat lists the daemons it hosts: a deploy whose daemon it lists at its
        epoch is done."""
        hosted = {d.get("origin"): d.get("epoch") for d in hb.get("daemons") or [] if isinstance(d, dict)}
        for origin, st in self.store.states(DeployState):
            if st.node == node and hosted.get(origin) == st.epoch:
                tag = tag_of(origin)
                self.store.drop_state(DeployState, origin)
                self.pending.pop(tag, None)
                self.clock.forget(tag + ":started")
                self.store.update_daemon(origin, status="active")
                self.ctx.changed(origin)
                log.info("deployed origin=%08x node=%s epoch=%d", origin, node, st.epoch)
                self.ctx.reply(acts, st.client, st.rid, True,
                               result={"origin": origin, "node": node, "epoch": st.epoch, "kind": st.kind})

    def stop(self, acts, client, rid, origin):
        """`netedge stop ORIGIN`: the host stops it; the daemon is `stopped` (its key slot is no
        longer pushed to the node)."""
        d = self.store.daemon(origin)
        if d is None:
            raise ValueError("unknown daemon %08x" % origin)
        body = {"cmd": "stop", "origin": origin}
        acts.publish.append((T.node(d.host_node, "ctl"), self.ctx.frame(FR.CONTROL, body), 1, False))
        self.store.update_daemon(origin, status="stopped")
        self.ctx.changed(origin)
        self.ctx.reply(acts, client, rid, True, result={"origin": origin, "node": d.host_node})
