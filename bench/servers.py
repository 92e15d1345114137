"""nginx with a private configuration on 127.0.0.1, and a proxy adding latency."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

__all__ = ["free_port", "ensure_nginx", "nginx", "LatencyProxy"]

NGINX_CONF = """\
worker_processes 2;
{user}
pid {run}/nginx.pid;
error_log {run}/error.log warn;
daemon off;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 100000;
    types {{
        text/html html; text/plain txt; image/jpeg jpg; image/png png;
        image/gif gif; image/webp webp; image/svg+xml svg;
    }}
    default_type application/octet-stream;
    client_body_temp_path {run}/body;
    proxy_temp_path {run}/proxy;
    fastcgi_temp_path {run}/fastcgi;
    uwsgi_temp_path {run}/uwsgi;
    scgi_temp_path {run}/scgi;
    server {{
        {listen}
        root {root};
        index index.html;
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_nginx() -> str:
    """The nginx binary; installs Debian's nginx-light when missing."""
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)
    if found:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(["apt-get", "install", "-y", "nginx-light"], env=env).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, check=True)
        subprocess.run(["apt-get", "install", "-y", "nginx-light"], env=env, check=True)
    # The package may start the system's nginx on port 80: not ours to keep.
    subprocess.run(["service", "nginx", "stop"], capture_output=True)
    return shutil.which("nginx") or "/usr/sbin/nginx"


def _wait_listening(port: int, timeout: float = 10, address: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex((address, port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {address}:{port}")


@contextmanager
def nginx(root: Path, run_dir: Path, addresses: tuple[str, ...] = ("127.0.0.1",)) -> Iterator[int]:
    """Serve ``root`` with nginx on ``addresses`` (one port) until the block ends; yields the port."""
    binary = ensure_nginx()
    run_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = run_dir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(
        user="user root;" if os.geteuid() == 0 else "",
        run=run_dir, listen=" ".join(f"listen {address}:{port};" for address in addresses), root=root.resolve(),
    ))
    proc = subprocess.Popen([binary, "-p", str(run_dir), "-e", str(run_dir / "error.log"), "-c", str(conf)])
    try:
        for address in addresses:
            _wait_listening(port, address=address)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class LatencyProxy:
    """A TCP proxy on 127.0.0.1 that holds each request ``delay`` seconds.

    Every chunk a client sends (one HTTP request, for clients that do not
    pipeline) reaches the upstream server ``delay`` seconds later, so every
    response comes ``delay`` later. Responses are moved with ``splice(2)``
    (no copy through Python), so the proxy costs little CPU.
    """

    def __init__(self, upstream_port: int, delay: float):
        self.upstream_port = upstream_port
        self.delay = delay
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
        self.port: int = self.listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> "LatencyProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._requests, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._responses, args=(upstream, client), daemon=True).start()

    def _requests(self, client: socket.socket, upstream: socket.socket) -> None:
        try:
            while data := client.recv(65536):
                time.sleep(self.delay)
                upstream.sendall(data)
        except OSError:
            pass
        finally:
            _shutdown(upstream)

    @staticmethod
    def _responses(upstream: socket.socket, client: socket.socket) -> None:
        read_end, write_end = os.pipe()
        try:
            while n := os.splice(upstream.fileno(), write_end, 1 << 20):
                while n:
                    n -= os.splice(read_end, client.fileno(), n)
        except OSError:
            pass
        finally:
            os.close(read_end)
            os.close(write_end)
            try:
                client.shutdown(socket.SHUT_RDWR)  # also wakes the request thread
            except OSError:
                pass
            upstream.close()
            client.close()


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass
