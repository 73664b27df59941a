"""Raspberry Pi Pico W: join the configured WiFi network (CYW43) as a station."""
import network

import wifi


def network_up(cfg, timeout_ms=20000):
    country = (cfg.get("wifi") or {}).get("country")
    if country:
        import rp2
        rp2.country(country)
    sta = network.WLAN(network.STA_IF)
    sta.active(True)
    sta.config(pm=0xA11140)  # power-save off: keeps MQTT round trips short
    return wifi.join(sta, cfg, timeout_ms)
