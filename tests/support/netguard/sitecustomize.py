"""Test-only network guard, loaded by every Python process started with this folder on
``PYTHONPATH`` (``sitecustomize`` is imported at start-up).

With ``IMGSCRAPER_TEST_CONNECT_LOG=FILE`` set, a socket connection to any address outside
127.0.0.0/8 and ::1 is refused (``ECONNREFUSED``, nothing is sent) and recorded in FILE, one
``host port`` line per attempt: tests assert that FILE stays empty, which proves that no
connection to a private or link-local address was even attempted.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket

_LOG = os.environ.get("IMGSCRAPER_TEST_CONNECT_LOG")


def _refused(address: object) -> bool:
    if not isinstance(address, tuple) or not address or not isinstance(address[0], str):
        return False  # a Unix socket path, or a form we do not know
    try:
        ip = ipaddress.ip_address(address[0].partition("%")[0])
    except ValueError:
        return True  # a name: the resolver should have resolved it; refuse to be sure
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return False
    with open(_LOG, "a", encoding="utf-8") as log:
        log.write(f"{address[0]} {address[1] if len(address) > 1 else ''}\n")
    return True


if _LOG:
    _connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex

    def connect(self: socket.socket, address: object) -> None:
        if _refused(address):
            raise ConnectionRefusedError(errno.ECONNREFUSED, "refused by the test network guard")
        return _connect(self, address)

    def connect_ex(self: socket.socket, address: object) -> int:
        if _refused(address):
            return errno.ECONNREFUSED
        return _connect_ex(self, address)

    socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
