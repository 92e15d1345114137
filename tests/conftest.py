"""Shared fixtures: a generated test site on a real HTTP server, and a
helper that runs the ``images`` spider as a subprocess.

Fixtures
--------
``site_server`` (function scope) / ``site_server_module`` (module scope)
    A :class:`SiteServer`: the site from :mod:`sitegen` served by
    :class:`httpserver.HTTPTestServer` on 127.0.0.1 (``.url``, ``.site``,
    ``.log``, ``.server``) plus, when 127.0.0.2 can be bound, a second
    "other site" server (``.other``) hosting a CDN image and an external
    page. Stopped afterwards.
``run_crawl`` (session scope)
    ``run_crawl(args, store=None, out_dir=None, env=None, timeout=120,
    log_level="INFO") -> CrawlResult``: runs ``python -m scrapy crawl
    images *args -s IMAGES_STORE=<store> -O <out_dir>/items.jsonl -s
    LOG_LEVEL=INFO`` in the project root and parses the items.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

TESTS_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = TESTS_DIR.parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

from httpserver import HTTPTestServer, RecordedRequest, RequestLog  # noqa: E402
from sitegen import Site, generate_site  # noqa: E402

__all__ = ["SiteServer", "CrawlResult", "serve_site", "run_crawl_subprocess", "PROJECT_ROOT"]


# ---------------------------------------------------------------------------
# Site + server
# ---------------------------------------------------------------------------


@dataclass
class SiteServer:
    url: str  # start URL, http://127.0.0.1:PORT/
    site: Site
    server: HTTPTestServer
    other: HTTPTestServer | None  # the "other site" on 127.0.0.2, if available
    root: Path  # the start site's directory

    @property
    def log(self) -> RequestLog:
        return self.server.log

    def clear_logs(self) -> None:
        self.server.log.clear()
        if self.other is not None:
            self.other.log.clear()

    def all_requests(self) -> list[RecordedRequest]:
        """Requests seen by both servers (start site first)."""
        out = self.server.log.snapshot()
        if self.other is not None:
            out += self.other.log.snapshot()
        return out

    def requests_for(self, url: str, requests: list[RecordedRequest] | None = None) -> list[RecordedRequest]:
        """Recorded requests for ``url`` (path and query must match; host
        must be one of our servers)."""
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        servers = {self.server.netloc: self.server}
        if self.other is not None:
            servers[self.other.netloc] = self.other
        if parts.netloc not in servers:
            return []
        target = servers[parts.netloc]
        if requests is None:
            requests = target.log.snapshot()
        else:
            requests = [r for r in requests if r.host == target.netloc]
        want = self.site.request_path(url)
        return [r for r in requests if r.path == want]


def _closed_port() -> int:
    """Port 9 if nothing listens there, else some other closed port."""
    for port in (9, None):
        if port is None:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        with socket.socket() as s:
            s.settimeout(1)
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError("no closed port found")


@contextlib.contextmanager
def serve_site(tmp: Path, latency: float = 0.0, other_site: bool = True) -> Iterator[SiteServer]:
    """Generate the site under ``tmp`` and serve it until the block ends."""
    tmp = Path(tmp)
    root, other_root = tmp / "site", tmp / "other-site"
    root.mkdir(parents=True, exist_ok=True)
    server = HTTPTestServer(root, latency=latency).start()
    other = None
    try:
        if other_site:
            other_root.mkdir(parents=True, exist_ok=True)
            try:
                other = HTTPTestServer(other_root, host="127.0.0.2").start()
            except OSError:
                other = None
        site = generate_site(
            root,
            base_url=server.url,
            unreachable_url=f"http://127.0.0.1:{_closed_port()}/x.jpg",
            other_url=other.url if other else None,
            other_root=other_root if other else None,
        )
        yield SiteServer(url=server.url, site=site, server=server, other=other, root=root)
    finally:
        server.stop()
        if other is not None:
            other.stop()


@pytest.fixture
def site_server(tmp_path) -> Iterator[SiteServer]:
    with serve_site(tmp_path / "www") as srv:
        yield srv


@pytest.fixture(scope="module")
def site_server_module(tmp_path_factory) -> Iterator[SiteServer]:
    with serve_site(tmp_path_factory.mktemp("www")) as srv:
        yield srv


# ---------------------------------------------------------------------------
# Running the spider
# ---------------------------------------------------------------------------

_PROXY_VARS = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
# A log/CLI error line: "... ERROR: msg", "error: msg", "CRITICAL: msg". Stats
# lines such as "'log_count/ERROR': 1," do not match.
_ERROR_LINE = re.compile(r"(?i)\b(error|critical)\b\s*:")


@dataclass
class CrawlResult:
    proc: subprocess.CompletedProcess
    args: list[str]
    store: Path | str  # a directory, or a URI such as s3://bucket/prefix
    items_path: Path
    items: list[dict]
    duration: float

    @property
    def returncode(self) -> int:
        return self.proc.returncode

    @property
    def stdout(self) -> str:
        return self.proc.stdout

    @property
    def stderr(self) -> str:
        return self.proc.stderr

    @property
    def output(self) -> str:
        return self.proc.stdout + self.proc.stderr

    def by_url(self) -> dict[str, dict]:
        """Items keyed by URL (if a URL has several items, the last wins)."""
        return {item.get("url"): item for item in self.items}

    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if _ERROR_LINE.search(line)]

    def tail(self, n: int = 40) -> str:
        """The end of stderr without the stats dump, for assertion messages."""
        lines, in_stats = [], False
        for line in self.stderr.splitlines():
            if "Dumping Scrapy stats:" in line:
                in_stats = True
                continue
            if in_stats:
                if line.rstrip().endswith("}"):
                    in_stats = False
                continue
            lines.append(line)
        return "\n".join(lines[-n:])

    def stored_files(self) -> list[Path]:
        """Every file in the store (metadata folder .imgscraper and the gallery's index.html excluded)."""
        if not self.store.exists():
            return []
        return sorted(
            p for p in self.store.rglob("*")
            if p.is_file() and ".imgscraper" not in p.relative_to(self.store).parts and p != self.store / "index.html"
        )

    def __repr__(self) -> str:
        return f"<CrawlResult rc={self.returncode} items={len(self.items)} args={self.args}>"


def _read_items(path: Path) -> list[dict]:
    if not path.exists():
        return []
    items = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise AssertionError(f"{path}:{n}: bad JSON line {line!r}: {exc}") from exc
    return items


def run_crawl_subprocess(
    args: list[str],
    *,
    store: Path | str | None = None,
    out_dir: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    log_level: str | None = "INFO",
    base_dir: Path | None = None,
) -> CrawlResult:
    """Run ``python -m scrapy crawl images *args`` in the project root.

    Adds ``-s IMAGES_STORE=<store>`` (default ``<out_dir>/store``), ``-O
    <out_dir>/items.jsonl`` and ``-s LOG_LEVEL=<log_level>``; ``out_dir``
    defaults to a new directory under ``base_dir`` (or the system temp
    dir). ``env`` entries are added to a copy of the environment (proxy
    variables removed).
    """
    if out_dir is None:
        out_dir = Path(tempfile.mkdtemp(prefix="crawl-", dir=base_dir))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if store is None:
        store = out_dir / "store"
    elif "://" not in str(store):  # a URI (s3://bucket/prefix) stays as given
        store = Path(store)
    items_path = out_dir / "items.jsonl"
    if items_path.exists():
        items_path.unlink()
    cmd = [sys.executable, "-m", "scrapy", "crawl", "images", *args,
           "-s", f"IMAGES_STORE={store}", "-O", str(items_path)]
    if log_level:
        cmd += ["-s", f"LOG_LEVEL={log_level}"]
    full_env = {k: v for k, v in os.environ.items() if k.lower() not in _PROXY_VARS}
    full_env["PYTHONUNBUFFERED"] = "1"
    full_env.update(env or {})
    started = time.monotonic()
    proc = subprocess.run(
        cmd, cwd=PROJECT_ROOT, env=full_env, capture_output=True, text=True,
        encoding="utf-8", errors="replace", timeout=timeout,
    )
    duration = time.monotonic() - started
    return CrawlResult(proc=proc, args=list(args), store=store, items_path=items_path,
                       items=_read_items(items_path), duration=duration)


@pytest.fixture(scope="session")
def run_crawl(tmp_path_factory):
    """``run_crawl(args, store=None, out_dir=None, env=None, ...) -> CrawlResult``."""
    return functools.partial(run_crawl_subprocess, base_dir=tmp_path_factory.mktemp("crawls"))
