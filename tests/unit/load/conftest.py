"""Fixtures of the load engine tests; the servers live in load_echo_servers.py."""

from load_echo_servers import faulty, refusing_port, socat_echo, socat_echo2

__all__ = ["faulty", "refusing_port", "socat_echo", "socat_echo2"]
