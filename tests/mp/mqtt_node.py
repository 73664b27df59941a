# A small node for tests/test_node_mqtt.py, run by the MicroPython unix port (works on CPython).
# usage: micropython -X heapsize=96K tests/mp/mqtt_node.py <import-dir> '<json config>'
# Prints one JSON object per line on stdout: {"ev": ...}.
# Subscribes to <p>/in/0 (QoS 0) and <p>/in/1 (QoS 1) and echoes each message to <p>/out/<q>
# at QoS q. <p>/ctl accepts b"stats" (print stats), b"quit" (clean disconnect, exit) and
# b"stray" (the supervisor task is cancelled, not by disconnect(): what its watchdog does to a
# dead connection, and what MicroPython's asyncio may do to a task whose helper ran out of heap).
# A message the client refuses (oversize, malformed) prints {"ev": "refused"}.
# With "count": N, publishes N QoS 1 messages b"<seq>" to <p>/seq every "interval_ms".
import sys
import gc
import json

sys.path.insert(0, sys.argv[1])
cfg = json.loads(sys.argv[2])
import asyncio
import netedge.shared.errors  # noqa: F401  (imported by every node before the client)


def free():
    gc.collect()
    return gc.mem_free() if hasattr(gc, "mem_free") else 0


free0 = free()
from netedge.firmware import mqtt  # noqa: E402
free1 = free()


def out(**kw):
    print(json.dumps(kw))
    try:
        sys.stdout.flush()
    except AttributeError:
        pass


P = cfg.get("prefix", "t")
done = asyncio.Event()
up = asyncio.Event()
client = None
count = {"rx": 0, "tx": 0}


def stats():
    s = dict(client.stats)
    s.update(count)
    return s


def on_message(topic, payload, retained):
    count["rx"] += 1
    if type(payload) is int:  # refused by the client (oversize or malformed): it acks it after this
        out(ev="refused", topic=topic, size=payload, retained=retained)
        return
    if topic == P + "/ctl":
        if payload == b"quit":
            done.set()
        elif payload == b"stats":
            out(ev="stats", stats=stats(), inflight=len(client.inflight))
        elif payload == b"stray":
            asyncio.create_task(_stray())
        return
    q = int(topic[-1])
    count["tx"] += 1
    return client.publish(P + "/out/%d" % q, payload, q)  # async: the reader awaits it


async def _stray():
    client.task.cancel()  # (from another task: a task cannot cancel itself)


def on_connect(sp):
    up.set()
    out(ev="connected", sp=sp, n=client.stats["connects"])


def on_disconnect(err):
    out(ev="disconnected", err=repr(err))


async def main():
    global client
    will = cfg.get("will")
    client = mqtt.MQTTClient(cfg.get("id", "node"), "127.0.0.1", cfg["port"],
                             keepalive=cfg.get("keepalive", 10),
                             clean_session=cfg.get("clean", True),
                             will=tuple(will) if will else None,
                             on_message=on_message, on_connect=on_connect,
                             on_disconnect=on_disconnect,
                             max_packet=cfg.get("max_packet", 8192),
                             max_inflight=cfg.get("max_inflight", 8),
                             backoff_min=cfg.get("backoff_min", 0.05),
                             backoff_max=cfg.get("backoff_max", 0.5),
                             connect_timeout=2)
    if cfg.get("supervise"):
        client.start()
    else:
        try:
            await client.connect()
        except Exception as e:
            out(ev="connect_error", type=type(e).__name__, code=getattr(e, "code", None))
            return
    if cfg.get("subscribe", True):
        await up.wait()
        codes = await client.subscribe([(P + "/in/0", 0), (P + "/in/1", 1), (P + "/ctl", 1)])
        out(ev="subscribed", codes=list(codes) if codes else None)
    out(ev="ready", import_cost=free0 - free1, free_import=free1, free_connected=free())
    n = cfg.get("count", 0)
    if n:
        for i in range(n):
            await client.publish(P + "/seq", b"%d" % i, 1)
            await asyncio.sleep(cfg.get("interval_ms", 10) / 1000)
        for _ in range(cfg.get("flush_timeout", 20) * 100):  # until every QoS 1 is acked
            if not client.inflight:
                break
            await asyncio.sleep(0.01)
        out(ev="published", n=n, stats=stats())
    try:
        await asyncio.wait_for(done.wait(), cfg.get("run_for", 30))
    except asyncio.TimeoutError:
        pass
    out(ev="stats", stats=stats(), inflight=len(client.inflight))
    await client.disconnect()
    out(ev="bye")


asyncio.run(main())
