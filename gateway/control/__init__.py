"""The gateway's control plane: pure logic, driven by gateway/service.py (or a simulator).

Nothing here reads a clock, draws unseeded randomness, or touches the network: the driver
passes its monotonic `now` to every entry point and gives the core, at construction, its wall
clock, the frame counter's start and a random source for operation ids.
"""
