# netedge node MQTT 3.1.1 client, supervised: the node's MQTTClient is the one-connection
# Client (mqtt_client.py; packets: mqtt_codec.py) plus two tasks (micropython-lib's
# umqtt.robust is the model):
#  * the supervisor (run): connects, serves the connection (the Client's reader), and after
#    any failure closes it and reconnects, for ever, with capped, jittered exponential backoff;
#  * its watchdog (watch), every keepalive/4 (at most 0.25 s): the clock of the pair. It sends
#    PINGREQ when nothing was sent or received for a keepalive, and ends (cancels) what the
#    supervisor waits on when it overruns: a connection attempt (connect_timeout), a close (a
#    second), a connection that is dead (nothing from the broker for 1.5 x keepalive, a write
#    stuck that long, a failed write, or drop()); and it ends a SUBACK wait after
#    connect_timeout.  So nothing in the client waits for ever, without asyncio.wait_for.
#
# Policy: a connection that lasted over a second, or a drop we asked for, resets the backoff
# (backoff_min .. backoff_max). A drop we asked for (drop(), or a board short of heap) closes
# with DISCONNECT, so the broker discards the will (the node is not dead), and reconnects at
# once; any other failure is a plain close (the broker sends the will), counted, and the
# on_disconnect hook told why (MQTTError -2 for a dead connection). disconnect() ends it all
# (DISCONNECT: no will). Do not call disconnect() from inside a hook (it cancels the task that
# runs the hook in normal mode). A cancel nobody asked for (no disconnect()) is the watchdog's:
# the supervisor carries on.
#
# The node's heap decides the shape: a module of its own, one class, no new helper names (the
# supervisor's state lives in the Client: task, deadline, redial, backoff_min/max, stats).
import asyncio
from random import getrandbits
from netedge.firmware.mqtt_codec import MalformedPacket
from netedge.firmware.mqtt_client import Client, MQTTError, ticks_ms, ticks_diff, U


class MQTTClient(Client):
    def start(self):
        # the supervisor and its watchdog: connect and reconnect until disconnect(); returns the
        # supervisor's task
        if not self.task:
            t = self.task = asyncio.create_task(self.run())
            asyncio.create_task(self.watch(t))
        return self.task

    async def connect(self):
        # one attempt (see Client.connect; not bounded before start()), then start()
        await Client.connect(self)
        self.start()

    async def disconnect(self):
        # DISCONNECT (the broker discards the will), stop reconnecting, close
        up = self.connected
        await self.send(bytes((0xE0, 0)))
        t = self.task
        self.task = None
        if t:
            t.cancel()
            try:
                await t
            except BaseException:
                pass
        await self.close()
        if up:
            self.stats["disconnects"] += 1
            await self.cb(self.on_disconnect, None)

    def drop(self):
        # ask for a fresh connection at once (the watchdog notices within 0.25 s, the supervisor
        # closes this one and reconnects without backoff; the broker then redelivers every
        # unacked QoS 1 message, in order)
        self.connected = False
        self.redial = True

    async def watch(self, t):
        # the watchdog of supervisor task t (see above); ends with it
        st = self.stats
        ka = self.keepalive * U
        while self.task is t:
            await asyncio.sleep(min(self.keepalive / 4, 0.25) or 0.25)
            try:
                n = ticks_ms()
                for w in self.waiting.values():
                    if ticks_diff(n, w[2]) > self.connect_timeout * U:
                        w[0].set()
                d = self.deadline
                if self.task is not t:
                    break
                if d:  # a connection attempt or a close: its time is up
                    if ticks_diff(n, d[0]) > d[1]:
                        self.deadline = None
                        t.cancel()
                elif self.read:  # serving
                    tk = self.ticks
                    i = ticks_diff(n, tk[0])
                    b = self.busy
                    if not self.connected or ka and (i > ka * 3 / 2 or b is not None and ticks_diff(n, b) > ka * 3 / 2):
                        st["dead"] += 1
                        self.read = None  # (once)
                        t.cancel()
                    elif ka and b is None and (i >= ka or ticks_diff(n, tk[1]) >= ka):
                        st["pings"] += 1
                        asyncio.create_task(self.send(bytes((0xC0, 0))))
            except Exception:  # (short of heap: the next tick tries again)
                pass

    async def run(self):
        # the supervisor task: connect, serve, and after a failure close and reconnect (backoff)
        st = self.stats
        d = self.backoff_min
        while self.task:
            up = e = None
            try:
                if not self.connected:
                    self.deadline = (ticks_ms(), self.connect_timeout * U)
                    await Client.connect(self)
                self.deadline = None
                up = ticks_ms()
                await self.serve()
            except Exception as y:
                e = y
                if isinstance(y, MemoryError):  # the board is short of heap, not dead: reconnect
                    self.redial = True          # cleanly (no last will), the broker redelivers
            except asyncio.CancelledError:
                if not self.task:  # disconnect()
                    raise
                e = MQTTError(-2)  # the watchdog's: an attempt timed out, or the connection is dead
                e.code = -2
            try:  # (short of heap here too: the supervisor must outlive it, or the node goes deaf)
                if isinstance(e, MalformedPacket):
                    st["malformed"] += 1
                if up is None:
                    st["conn_fail"] += 1
                else:
                    self.deadline = (ticks_ms(), U)  # a second to close
                    await self.close()
                    st["disconnects"] += 1
                    asyncio.create_task(self.cb(self.on_disconnect, e))
                    if ticks_diff(ticks_ms(), up) > U or self.redial:
                        d = self.backoff_min
                self.deadline = None
                if self.redial:  # a drop we asked for: reconnect now (after a breath when short of
                    self.redial = False  # heap: the other tasks must run to free it)
                    await asyncio.sleep(0.1 if isinstance(e, MemoryError) else 0)
                    continue
                await asyncio.sleep((d // 2 + (d * getrandbits(8) >> 9)) / 1000)
                d = min(d * 2, self.backoff_max)
            except MemoryError:
                self.redial = True
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                if not self.task:  # disconnect()
                    raise
                self.deadline = None  # (a close cut short by the watchdog: its socket is closed)
