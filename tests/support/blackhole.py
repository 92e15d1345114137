"""A host that accepts connections and never answers: a dying CDN, a firewalled mirror.

:class:`BlackHole` listens on ``host`` (a free port unless given) from a
background thread, accepts every connection, reads nothing and writes
nothing, and keeps the connections open until it is closed. ``accepted`` is
how many connections it took so far, ``requested_paths()`` what they asked for.
"""

from __future__ import annotations

import socket
import threading

__all__ = ["BlackHole"]


class BlackHole:
    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, port))
        self._listener.listen(128)
        self.host, self.port = self._listener.getsockname()
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name=f"BlackHole-{self.port}", daemon=True)
        self._thread.start()

    @property
    def netloc(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def accepted(self) -> int:
        with self._lock:
            return len(self._connections)

    def requested_paths(self) -> list[str]:
        """The path of each request sent so far, read without taking it off the connection."""
        paths = []
        with self._lock:
            for connection in self._connections:
                try:
                    sent = connection.recv(65536, socket.MSG_PEEK | socket.MSG_DONTWAIT)
                except OSError:  # nothing sent yet
                    continue
                request_line = sent.partition(b"\r\n")[0].split()
                if len(request_line) == 3:
                    paths.append(request_line[1].decode("latin-1"))
        return paths

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                self._connections.append(connection)

    def close(self) -> None:
        """Stop listening and drop every connection (the port is free again)."""
        # shutdown() wakes the accept() blocked in the thread; close() alone may not.
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        self._thread.join(5)
        with self._lock:
            for connection in self._connections:
                connection.close()

    def __enter__(self) -> "BlackHole":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
