"""Real Redis and S3 (moto) servers on 127.0.0.1 for the tests.

``redis_server(tmp)`` runs Debian's ``redis-server`` on a free port with no
persistence; ``s3_server()`` runs moto's ``moto_server``. Both are context
managers yielding a URL and stopping the server afterwards. When the
program is missing the test is skipped, except in CI (``CI=true``) where it
fails: CI must run these tests (``make test`` installs the programs). Each
refuses to start in a test not marked ``services``.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

from tests.support.needs import require_marker, require_program

__all__ = ["free_port", "redis_server", "s3_client", "s3_server", "S3_ENV"]

#: Credentials moto accepts (any); the region botocore needs.
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with status {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{proc.args[0]} did not listen on port {port} within {timeout} s")


@contextlib.contextmanager
def _running(cmd: list[str], port: int, cwd: Path | None = None) -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(port, proc)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def redis_server(tmp: Path) -> Iterator[str]:
    """A throw-away ``redis-server`` (no RDB, no AOF); yields ``redis://127.0.0.1:PORT/0``."""
    require_marker("services", "redis-server")
    program = require_program("redis-server")
    port = free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    cmd = [program, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp),
           "--save", "", "--appendonly", "no", "--daemonize", "no"]
    with _running(cmd, port, cwd=tmp):
        yield f"redis://127.0.0.1:{port}/0"


@contextlib.contextmanager
def s3_server() -> Iterator[str]:
    """moto's S3 server; yields its endpoint URL ``http://127.0.0.1:PORT``."""
    require_marker("services", "moto_server")
    program = require_program(str(Path(sys.executable).with_name("moto_server")))
    port = free_port()
    with _running([program, "-H", "127.0.0.1", "-p", str(port)], port):
        yield f"http://127.0.0.1:{port}"


def s3_client(endpoint: str):
    """A botocore S3 client for ``endpoint``."""
    import botocore.session

    session = botocore.session.get_session()
    return session.create_client(
        "s3", endpoint_url=endpoint, region_name=S3_ENV["AWS_DEFAULT_REGION"],
        aws_access_key_id=S3_ENV["AWS_ACCESS_KEY_ID"], aws_secret_access_key=S3_ENV["AWS_SECRET_ACCESS_KEY"],
    )

