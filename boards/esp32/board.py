"""ESP32: join the configured WiFi network as a station."""
import network

import wifi


def network_up(cfg, timeout_ms=20000):
    return wifi.join(network.WLAN(network.STA_IF), cfg, timeout_ms)
