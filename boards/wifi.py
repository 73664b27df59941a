"""WiFi station join shared by the WiFi boards (copied to the board next to its board.py)."""
import time


def join(sta, cfg, timeout_ms):
    wifi = cfg.get("wifi") or {}
    if not wifi.get("ssid"):
        raise OSError("config has no wifi.ssid: re-provision with --wifi-ssid")
    sta.active(True)
    if not sta.isconnected():
        sta.connect(wifi["ssid"], wifi.get("password", ""))
        t0 = time.ticks_ms()
        while not sta.isconnected():
            if time.ticks_diff(time.ticks_ms(), t0) > timeout_ms:
                raise OSError("WiFi %r not joined within %d ms (status %r)" % (wifi["ssid"], timeout_ms, sta.status()))
            time.sleep_ms(100)
    return sta.ifconfig()[0]
