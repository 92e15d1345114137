"""A small, real HTTP/1.1 server for tests.

:class:`HTTPTestServer` serves a directory on ``127.0.0.1`` (ephemeral port)
from a background thread, with proper ``Content-Type``, ``Content-Length``,
``ETag`` and ``Last-Modified`` headers, conditional requests (``304``),
``HEAD`` and keep-alive. Query strings are ignored when looking files up.

Every request is recorded in :attr:`HTTPTestServer.log` (a
:class:`RequestLog`): method, path (with query), status, body bytes sent,
request headers and monotonic start/end times.

Fault injection: :meth:`HTTPTestServer.add_handler` registers a callable
``func(handler) -> bool`` for a path (exact, prefix with a trailing ``*``,
or a predicate); it runs before the file server and returns True when it
has answered the request itself. ``handler`` is the
:class:`http.server.BaseHTTPRequestHandler` instance, with a few helpers
(:meth:`RequestHandler.send_body`, ``url_path``, ``query``, ``record``).

Usage::

    with HTTPTestServer(root) as server:
        urlopen(server.url + "index.html")
        assert server.log.count(path_prefix="/index") == 1
"""

from __future__ import annotations

import hashlib
import http.server
import mimetypes
import os
import posixpath
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import Callable, Iterator, Union
from urllib.parse import unquote, urlsplit

__all__ = ["HTTPTestServer", "RequestLog", "RecordedRequest", "RequestHandler", "CONTENT_TYPES"]

#: Content types by (lower-case) extension; anything else goes through
#: :func:`mimetypes.guess_type`, then ``application/octet-stream``.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".xml": "application/xml",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".bmp": "image/bmp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
}


def content_type_for(path: str) -> str:
    ext = posixpath.splitext(path)[1].lower()
    if ext in CONTENT_TYPES:
        return CONTENT_TYPES[ext]
    guessed, _ = mimetypes.guess_type(path)
    return guessed or "application/octet-stream"


# --------------------------------------------------------------------------
# Request log
# --------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    """One request as the server saw it."""

    method: str
    path: str  # as sent, with the query string
    headers: dict[str, str]
    start: float  # time.monotonic() when the request (line + headers) was read
    #: time.monotonic() when the last write of the response began (so a
    #: client's next request always starts after it), or when the handler
    #: finished if it wrote nothing. None while nothing was written yet.
    end: float | None = None
    done: bool = False  # the handler has finished with this request
    status: int | None = None  # last status sent (None: nothing was sent)
    bytes_sent: int = 0  # body bytes (headers excluded)
    client: tuple = ()
    host: str = ""  # the server's host:port

    @property
    def url_path(self) -> str:
        """The path without the query string (still percent-encoded)."""
        return urlsplit(self.path).path

    @property
    def query(self) -> str:
        return urlsplit(self.path).query

    @property
    def duration(self) -> float | None:
        return None if self.end is None else self.end - self.start

    @property
    def in_flight(self) -> bool:
        return not self.done

    def header(self, name: str, default: str | None = None) -> str | None:
        """A request header, case-insensitively."""
        name = name.lower()
        for key, value in self.headers.items():
            if key.lower() == name:
                return value
        return default


class RequestLog:
    """Thread-safe list of :class:`RecordedRequest` (in arrival order).

    A request is added when it arrives and updated as its response is
    written (``status``, ``bytes_sent``, ``end``); ``done`` is set when the
    handler has finished. A client may see the response a moment before
    ``done`` is set: call :meth:`wait_idle` before inspecting the log
    right after the client finished.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[RecordedRequest] = []

    def _add(self, record: RecordedRequest) -> None:
        with self._lock:
            self._records.append(record)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def snapshot(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._records)

    def __iter__(self) -> Iterator[RecordedRequest]:
        return iter(self.snapshot())

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def __getitem__(self, index):
        with self._lock:
            return self._records[index]

    def requests(
        self,
        path_prefix: str | None = None,
        status: int | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> list[RecordedRequest]:
        """The recorded requests matching every given filter.

        ``path_prefix`` is matched against the path *with* its query;
        ``path`` is an exact match, against the path with its query if it
        contains ``?``, else against the path without the query.
        """
        out = []
        for rec in self.snapshot():
            if path_prefix is not None and not rec.path.startswith(path_prefix):
                continue
            if path is not None:
                if "?" in path:
                    if rec.path != path:
                        continue
                elif rec.url_path != path:
                    continue
            if status is not None and rec.status != status:
                continue
            if method is not None and rec.method != method.upper():
                continue
            out.append(rec)
        return out

    def count(
        self,
        path_prefix: str | None = None,
        status: int | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> int:
        return len(self.requests(path_prefix=path_prefix, status=status, method=method, path=path))

    def paths(self, **filters) -> list[str]:
        """Paths (with query) of the matching requests, in arrival order."""
        return [rec.path for rec in self.requests(**filters)]

    def max_in_flight(self, path_prefix: str | None = None) -> int:
        """Maximum number of requests open at the same time.

        Computed from start/end times; a request still open counts as open
        until now. Back-to-back requests (one ends when the next starts) do
        not overlap.
        """
        events = []
        for rec in self.requests(path_prefix=path_prefix):
            end = rec.end if (rec.done and rec.end is not None) else float("inf")
            events.append((rec.start, 1))
            events.append((end, -1))
        # At equal times, process ends (-1) before starts (+1).
        events.sort()
        current = peak = 0
        for _, delta in events:
            current += delta
            peak = max(peak, current)
        return peak

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no recorded request is in flight; True if so."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(rec.done for rec in self.snapshot()):
                return True
            time.sleep(0.01)
        return False


# --------------------------------------------------------------------------
# Handler
# --------------------------------------------------------------------------


class _CountingWriter:
    """Wraps the handler's ``wfile``: counts bytes and notes write times."""

    def __init__(self, raw) -> None:
        self._raw = raw
        self.count = 0
        self.handler: "RequestHandler | None" = None

    def write(self, data) -> int:
        handler = self.handler
        if handler is not None:
            handler._before_write()
        n = self._raw.write(data)
        n = len(data) if n is None else n
        self.count += n
        if handler is not None:
            handler._after_write(n)
        return n

    def __getattr__(self, name):
        return getattr(self._raw, name)


HandlerFunc = Callable[["RequestHandler"], bool]
Matcher = Union[str, Callable[[str], bool]]


class RequestHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "imgscraper-test-httpd/1.0"
    # Idle keep-alive connections are dropped after this many seconds.
    timeout = 30

    server: "_Server"

    # -- plumbing ----------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        self.wfile = _CountingWriter(self.wfile)
        self.wfile.handler = self
        self._status: int | None = None
        self._in_body = False
        self.record: RecordedRequest | None = None

    def _before_write(self) -> None:
        if self.record is not None:
            self.record.end = time.monotonic()

    def _after_write(self, n: int) -> None:
        if self.record is not None and self._in_body:
            self.record.bytes_sent += n

    def log_message(self, format, *args) -> None:  # noqa: A002 - silence stderr
        pass

    def send_response_only(self, code, message=None) -> None:
        self._status = code
        if self.record is not None:
            self.record.status = code
        super().send_response_only(code, message)

    def end_headers(self) -> None:
        super().end_headers()
        self._in_body = True

    def do_GET(self) -> None:
        self._dispatch()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_OPTIONS = do_PATCH = do_GET

    # -- helpers for custom handlers ------------------------------------------

    @property
    def url_path(self) -> str:
        return urlsplit(self.path).path

    @property
    def query(self) -> str:
        return urlsplit(self.path).query

    def send_body(
        self,
        body: bytes | str = b"",
        status: int = 200,
        content_type: str = "text/plain; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        """Send a complete response (no body on HEAD)."""
        if isinstance(body, str):
            body = body.encode("utf-8")
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    # -- dispatch ------------------------------------------------------------

    def _dispatch(self) -> None:
        record = RecordedRequest(
            method=self.command,
            path=self.path,
            headers=dict(self.headers.items()),
            start=time.monotonic(),
            client=tuple(self.client_address),
            host="%s:%d" % self.server.server_address[:2],
        )
        self._status = None
        self._in_body = False
        self.record = record
        self.server.log._add(record)
        try:
            latency = self.server.owner.latency
            if latency:
                time.sleep(latency)
            for matcher, func in self.server.owner._handlers_snapshot():
                if _matches(matcher, self.url_path) and func(self):
                    break
            else:
                if self.command in ("GET", "HEAD"):
                    self._serve_file()
                else:
                    self.send_error(405)
        except (ConnectionError, socket.timeout, OSError):
            self.close_connection = True
        finally:
            record.status = self._status
            if record.end is None:
                record.end = time.monotonic()
            record.done = True
            self.record = None
            self._in_body = False

    def _serve_file(self) -> None:
        root: Path = self.server.owner.root
        rel = posixpath.normpath(unquote(self.url_path))
        parts = [p for p in rel.split("/") if p and p not in (".", "..")]
        target = root.joinpath(*parts)
        try:
            target.resolve().relative_to(root.resolve())
        except ValueError:
            self.send_error(403)
            return
        if target.is_dir():
            if not self.url_path.endswith("/"):
                location = self.url_path + "/" + (("?" + self.query) if self.query else "")
                self.send_body(b"", status=301, headers={"Location": location})
                return
            target = target / "index.html"
        if not target.is_file():
            self.send_error(404, "Not Found")
            return
        data = target.read_bytes()
        mtime = target.stat().st_mtime
        etag = '"%s"' % hashlib.sha1(data).hexdigest()[:20]
        last_modified = formatdate(mtime, usegmt=True)
        headers = {"ETag": etag, "Last-Modified": last_modified}

        inm = self.headers.get("If-None-Match")
        ims = self.headers.get("If-Modified-Since")
        not_modified = False
        if inm is not None:
            tags = [t.strip() for t in inm.split(",")]
            not_modified = "*" in tags or etag in tags or ("W/" + etag) in tags
        elif ims is not None:
            try:
                since = parsedate_to_datetime(ims).timestamp()
            except (TypeError, ValueError, IndexError, OverflowError):
                since = None
            not_modified = since is not None and int(mtime) <= since
        if not_modified:
            self.send_response(304)
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            return
        self.send_body(data, content_type=content_type_for(target.name), headers=headers)


def _matches(matcher: Matcher, path: str) -> bool:
    if callable(matcher):
        return bool(matcher(path))
    if matcher.endswith("*"):
        return path.startswith(matcher[:-1])
    return path == matcher


# --------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    owner: "HTTPTestServer"
    log: RequestLog

    def handle_error(self, request, client_address) -> None:
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, socket.timeout, TimeoutError)):
            return
        super().handle_error(request, client_address)


class HTTPTestServer:
    """Serve ``root`` over HTTP/1.1 on ``host`` from a background thread.

    ``latency`` (seconds, settable at any time) is slept before every
    response. ``port=0`` picks a free port; :attr:`url` is
    ``http://host:port/``, or ``https://host:port/`` with ``ssl_context``
    (a server-side context, e.g. :func:`tests.support.tls.server_context`).
    """

    def __init__(self, root: os.PathLike | str, host: str = "127.0.0.1", port: int = 0, latency: float = 0.0,
                 ssl_context: ssl.SSLContext | None = None):
        self.root = Path(root)
        self.host = host
        self.latency = latency
        self.log = RequestLog()
        self._handlers: list[tuple[Matcher, HandlerFunc]] = []
        self._handlers_lock = threading.Lock()
        self._httpd = _Server((host, port), RequestHandler)
        if ssl_context is not None:
            self._httpd.socket = ssl_context.wrap_socket(self._httpd.socket, server_side=True)
        self.scheme = "http" if ssl_context is None else "https"
        self._httpd.owner = self
        self._httpd.log = self.log
        self.port: int = self._httpd.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}/"

    @property
    def netloc(self) -> str:
        return f"{self.host}:{self.port}"

    def url_for(self, path: str) -> str:
        return self.url + path.lstrip("/")

    # -- custom handlers ---------------------------------------------------

    def add_handler(self, match: Matcher, func: HandlerFunc) -> HandlerFunc:
        """Register ``func(handler) -> bool`` for requests whose path
        (without query) equals ``match``, starts with ``match[:-1]`` when
        ``match`` ends with ``*``, or satisfies ``match(path)`` when it is
        callable. Handlers are tried in registration order; the first that
        returns True has answered the request. Returns ``func``."""
        with self._handlers_lock:
            self._handlers.append((match, func))
        return func

    def remove_handler(self, func: HandlerFunc) -> None:
        with self._handlers_lock:
            self._handlers = [(m, f) for (m, f) in self._handlers if f is not func]

    def clear_handlers(self) -> None:
        with self._handlers_lock:
            self._handlers.clear()

    def _handlers_snapshot(self) -> list[tuple[Matcher, HandlerFunc]]:
        with self._handlers_lock:
            return list(self._handlers)

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> "HTTPTestServer":
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"HTTPTestServer-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> "HTTPTestServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<HTTPTestServer {self.url} root={self.root}>"
