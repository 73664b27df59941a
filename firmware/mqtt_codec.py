# netedge node MQTT 3.1.1 packet codec: bytes in, packet tuples out; no socket, no asyncio, no
# clock (sans-I/O), so CPython tests drive it directly.  The client (mqtt_client.py) frames
# packets off its socket and hands their bodies here.
#
#   encode(str or bytes)      an MQTT string: 2-byte big-endian length + the bytes (UTF-8)
#   pack(first_byte, body)    the whole packet: first byte + remaining length + body (bytearray)
#   decode(first_byte, body)  a server->client packet (a refused PUBLISH included), as a tuple;
#                             MalformedPacket(first byte), a DecodeError, for anything else
#
# Written for heap, like the client: every function, class and global of a module a node
# imports costs RAM even when its bytecode stays in a ROM partition.
from netedge.shared.errors import DecodeError


class MalformedPacket(DecodeError):
    pass


def encode(s):
    # an MQTT string: 2-byte big-endian length + UTF-8
    if isinstance(s, str):
        s = bytes(s, "utf-8")
    n = len(s)
    return bytes((n >> 8, n & 255)) + s


def pack(s, payload):
    # first byte s + remaining length + payload, as a bytearray
    n = len(payload)  # (< 2**28: callers cap their packets far below)
    h = bytearray((s,))
    while True:
        h.append(n & 127 | (n > 127) << 7)
        n >>= 7
        if not n:
            return h + payload


def decode(n, payload):
    # A server->client packet after the handshake, from its first byte n and body (bytes):
    #   (3, topic, payload, qos, retain, pid)   PUBLISH (pid 0 for QoS 0)
    #   (3, None, size, qos, retain, pid)       a PUBLISH the client cannot take (its topic empty,
    #                                           cut short or not UTF-8) but can acknowledge: refused
    #   (9, pid, codes)                         SUBACK
    #   (4|5|6|7|11, pid)                       PUBACK PUBREC PUBREL PUBCOMP UNSUBACK
    #   (13,)                                   PINGRESP
    # Anything else (CONNACK, unknown type, reserved flags, bad lengths, packet id 0 or missing,
    # QoS 3) raises MalformedPacket(first byte).
    b = payload
    t = n >> 4
    try:
        if t == 3:
            q = n >> 1 & 3
            i = 2 + (b[0] << 8 | b[1])
            p = 0
            if q:
                p = b[i] << 8 | b[i + 1]
            if q < 3 and (p or not q):
                if 2 < i <= len(b):
                    try:
                        return (3, str(b[2:i], "utf-8"), b[i + (q and 2):], q, n & 1, p)
                    except ValueError:  # (UnicodeError)
                        pass
                return (3, None, len(b), q, n & 1, p)
        elif n == 0xD0:
            if not b:
                return (13,)
        elif n in b"@Pbp\x90\xb0":  # the other server packets, with their fixed flags
            p = b[0] << 8 | b[1]
            if p and (len(b) > 2 if t == 9 else len(b) == 2):
                return (t, p, b[2:]) if t == 9 else (t, p)
    except IndexError:  # a short body
        pass
    raise MalformedPacket(n)
