# A small node for tests/test_node_mqtt.py, run by the MicroPython unix port (works on CPython).
# usage: micropython -X heapsize=96K tests/mp/mqtt_node.py <import-dir> '<json config>'
# Prints one JSON object per line on stdout: {"ev": ...}.
# Subscribes to <p>/in/0 (QoS 0) and <p>/in/1 (QoS 1) and echoes each message to <p>/out/<q>
# at QoS q. <p>/ctl accepts b"stats" (print stats) and b"quit" (clean disconnect, exit).
# With "count": N, publishes N QoS 1 messages b"<seq>" to <p>/seq every "interval_ms".
import sys
import gc
import json

sys.path.insert(0, sys.argv[1])
cfg = json.loads(sys.argv[2])
gc.collect()
free0 = gc.mem_free() if hasattr(gc, "mem_free") else 0
import asyncio
from netedge.firmware import mqtt
gc.collect()
free1 = gc.mem_free() if hasattr(gc, "mem_free") else 0


def out(**kw):
    print(json.dumps(kw))
    try:
        sys.stdout.flush()
    except AttributeError:
        pass


P = cfg.get("prefix", "t")
done = asyncio.Event()
client = None


def on_message(topic, payload, retained):
    if topic == P + "/ctl":
        if payload == b"quit":
            done.set()
        elif payload == b"stats":
            out(ev="stats", stats=client.stats, inflight=client.inflight)
        return
    q = int(topic[-1])
    return client.publish(P + "/out/%d" % q, payload, q)  # async: the reader awaits it


def on_connect(sp):
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
        await client.wait_connected()
        codes = await client.subscribe([(P + "/in/0", 0), (P + "/in/1", 1), (P + "/ctl", 1)])
        out(ev="subscribed", codes=list(codes) if codes else None)
    gc.collect()
    out(ev="ready", free_start=free0, free_import=free1,
        free_connected=gc.mem_free() if hasattr(gc, "mem_free") else 0)
    n = cfg.get("count", 0)
    if n:
        for i in range(n):
            await client.publish(P + "/seq", b"%d" % i, 1)
            await asyncio.sleep_ms(cfg.get("interval_ms", 10)) if hasattr(asyncio, "sleep_ms") \
                else await asyncio.sleep(cfg.get("interval_ms", 10) / 1000)
        await client.flush(cfg.get("flush_timeout", 20))
        out(ev="published", n=n, stats=client.stats)
    try:
        await asyncio.wait_for(done.wait(), cfg.get("run_for", 30))
    except asyncio.TimeoutError:
        pass
    out(ev="stats", stats=client.stats, inflight=client.inflight)
    await client.disconnect()
    out(ev="bye")


asyncio.run(main())
