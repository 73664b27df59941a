"""Message bodies of docs/PROTOCOL.md §11: an INPUT frame, a chain event's payload and its
CHAIN_EVENT frame (with the input it consumed), the gateway's `stored` mark and gap request.  Expectations come from cbor2 and hashlib, not from the code under test."""
from netedge.shared import frame as FR
from netedge.shared.event import encode as event_payload
from golden import unhex, eq


def check(case):
    kind = case["kind"]
    if kind == "input":
        eq("frame", FR.encode(FR.INPUT, case["sender"], case["counter"], {"p": unhex(case["p"])}).hex(), case["hex"])
        f = FR.decode(unhex(case["hex"]))
        eq("body", f.body()["p"], unhex(case["p"]))
    elif kind == "event_payload":
        outs = [unhex(o) for o in case["outputs"]]
        eq("payload", event_payload(case["sender"], case["counter"], unhex(case["input"]), case["status"], outs).hex(),
           case["hex"])
    elif kind == "chain_event":
        body = {"o": case["origin"], "e": case["epoch"], "l": unhex(case["link"]), "p": unhex(case["payload"])}
        if "input" in case:
            body["i"] = unhex(case["input"])
        eq("frame", FR.encode(FR.CHAIN_EVENT, case["sender"], case["counter"], body).hex(), case["hex"])
        eq("body", FR.decode(unhex(case["hex"])).body(), body)
    elif kind == "stored_mark":
        body = {"cmd": "stored", "origin": case["origin"], "epoch": case["epoch"], "seq": case["seq"]}
        for flag in ("resend", "release"):
            if case.get(flag):
                body[flag] = True
        eq("frame", FR.encode(FR.CONTROL, case["sender"], case["counter"], body).hex(), case["hex"])
        eq("body", FR.decode(unhex(case["hex"])).body(), body)
    else:
        raise AssertionError("unknown kind " + kind)


def generate():
    import cbor2
    from golden import _ref as R

    def frame(ftype, sender, counter, body):
        return cbor2.dumps([1, ftype, sender, counter, cbor2.dumps(body, canonical=True)], canonical=True)

    cases = [{"name": "input-42", "kind": "input", "sender": "sensor-7", "counter": 7, "p": b"42".hex(),
              "hex": frame(1, "sensor-7", 7, {"p": b"42"}).hex()}]
    payload = cbor2.dumps(["sensor-7", 7, R.h8(b"42"), 0, [b"42"]], canonical=True)
    cases.append({"name": "counter-event", "kind": "event_payload", "sender": "sensor-7", "counter": 7,
                  "input": b"42".hex(), "status": 0, "outputs": [b"42".hex()], "hex": payload.hex()})
    err = cbor2.dumps(["sensor-7", 8, R.h8(b"x"), 1, [b"ValueError"]], canonical=True)
    cases.append({"name": "error-event", "kind": "event_payload", "sender": "sensor-7", "counter": 8,
                  "input": b"x".hex(), "status": 1, "outputs": [b"ValueError".hex()],
                  "hex": err.hex()})
    origin = 0x12345678
    link = R.link(origin, 0, 1, R.h8(R.link(origin, 0, 0, 0)))
    cases.append({"name": "chain-event-1", "kind": "chain_event", "sender": "n1", "counter": 1025, "origin": origin,
                  "epoch": 1, "link": link.hex(), "payload": payload.hex(),
                  "hex": frame(2, "n1", 1025, {"o": origin, "e": 1, "l": link, "p": payload}).hex()})
    cases.append({"name": "chain-event-1-with-input", "kind": "chain_event", "sender": "n1", "counter": 1026,
                  "origin": origin, "epoch": 1, "link": link.hex(), "payload": payload.hex(), "input": b"42".hex(),
                  "hex": frame(2, "n1", 1026, {"o": origin, "e": 1, "l": link, "p": payload, "i": b"42"}).hex()})
    cases.append({"name": "stored-mark", "kind": "stored_mark", "sender": "gw1", "counter": 9, "origin": origin,
                  "epoch": 1, "seq": 1,
                  "hex": frame(9, "gw1", 9, {"cmd": "stored", "origin": origin, "epoch": 1, "seq": 1}).hex()})
    cases.append({"name": "gap-request", "kind": "stored_mark", "sender": "gw1", "counter": 10, "origin": origin,
                  "epoch": 2, "seq": 41, "resend": True,
                  "hex": frame(9, "gw1", 10, {"cmd": "stored", "origin": origin, "epoch": 2, "seq": 41,
                                              "resend": True}).hex()})
    cases.append({"name": "release-mark", "kind": "stored_mark", "sender": "gw1", "counter": 11,
                  "origin": origin, "epoch": 2, "seq": 57, "release": True,
                  "hex": frame(9, "gw1", 11, {"cmd": "stored", "origin": origin, "epoch": 2, "seq": 57,
                                              "release": True}).hex()})
    return cases
