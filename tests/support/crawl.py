"""The ``images`` spider run as a user runs it: ``python -m scrapy crawl images`` in the project
root, as a subprocess.

:func:`run_crawl` runs one crawl to its end and returns a :class:`CrawlResult`: the exit status,
the items, the stats, the stored files and the log. Tests that interrupt a crawl start it
themselves from :func:`crawl_command` and :func:`crawl_environment`; :func:`parse_stats` reads the
stats of any crawl's log.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from tests.support.httpserver import HTTPTestServer, RecordedRequest
from tests.support.needs import require_marker

__all__ = ["PROJECT_ROOT", "CrawlResult", "crawl_command", "crawl_environment", "parse_stats", "run_crawl"]

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# A log/CLI error line: "... ERROR: msg", "error: msg", "CRITICAL: msg". Stats
# lines such as "'log_count/ERROR': 1," do not match.
_ERROR_LINE = re.compile(r"(?i)\b(error|critical)\b\s*:")
_STATS_DUMP = "Dumping Scrapy stats:"
_STAT_LINE = re.compile(r"^[{ ]'(?P<name>[^']+)': (?P<value>.*?)[,}]$")


def crawl_command(args: Iterable[str], *, store: Path | str | None = None, items: Path | None = None,
                  log_level: str | None = "INFO") -> list[str]:
    """``python -m scrapy crawl images *args``, then ``-s IMAGES_STORE=store``, ``-O items`` and
    ``-s LOG_LEVEL=log_level`` for those given. Run it in :data:`PROJECT_ROOT`."""
    require_marker("crawl", "a crawl")
    cmd = [sys.executable, "-m", "scrapy", "crawl", "images", *args]
    if store is not None:
        cmd += ["-s", f"IMAGES_STORE={store}"]
    if items is not None:
        cmd += ["-O", str(items)]
    if log_level:
        cmd += ["-s", f"LOG_LEVEL={log_level}"]
    return cmd


def crawl_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without proxy variables, with unbuffered output, and ``extra``."""
    env = {name: value for name, value in os.environ.items() if not name.lower().endswith("_proxy")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def parse_stats(log: str) -> dict[str, object]:
    """The stats Scrapy dumped last in ``log``: numbers as numbers, strings as strings, anything
    else (datetimes) as its text. Empty when the log holds no stats."""
    _, found, dump = log.rpartition(_STATS_DUMP)
    stats: dict[str, object] = {}
    if not found:
        return stats
    for line in dump.splitlines()[1:]:
        match = _STAT_LINE.match(line)
        if match:
            try:
                stats[match["name"]] = ast.literal_eval(match["value"])
            except (SyntaxError, ValueError):
                stats[match["name"]] = match["value"]
        if line.endswith("}"):
            break
    return stats


@dataclass
class CrawlResult:
    """What one crawl left: its process, items, stats, store and the requests the servers saw."""

    proc: subprocess.CompletedProcess
    args: list[str]
    store: Path | str  # a directory, or a URI such as s3://bucket/prefix
    items_path: Path
    items: list[dict]
    duration: float
    stats: dict[str, object] = field(default_factory=dict)
    #: The requests the servers given to :func:`run_crawl` saw during the crawl, server by server.
    requests: list[RecordedRequest] = field(default_factory=list)

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
    def log(self) -> str:
        """The crawl's log (Scrapy logs to stderr)."""
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
        """The end of the log without the stats dump, for assertion messages."""
        lines, in_stats = [], False
        for line in self.stderr.splitlines():
            if _STATS_DUMP in line:
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


def run_crawl(
    args: list[str],
    *,
    store: Path | str | None = None,
    out_dir: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    log_level: str | None = "INFO",
    base_dir: Path | None = None,
    servers: Iterable[HTTPTestServer] = (),
) -> CrawlResult:
    """Run ``python -m scrapy crawl images *args`` in the project root until it ends.

    Adds ``-s IMAGES_STORE=<store>`` (default ``<out_dir>/store``), ``-O <out_dir>/items.jsonl``
    and ``-s LOG_LEVEL=<log_level>``; ``out_dir`` defaults to a new directory under ``base_dir``
    (or the system temp dir). ``env`` entries are added to :func:`crawl_environment`. The request
    logs of ``servers`` are cleared before the crawl and, once the servers are idle, are the
    result's :attr:`~CrawlResult.requests`.
    """
    servers = list(servers)
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
    cmd = crawl_command(args, store=store, items=items_path, log_level=log_level)
    for server in servers:
        server.log.clear()
    started = time.monotonic()
    proc = subprocess.run(
        cmd, cwd=PROJECT_ROOT, env=crawl_environment(env), capture_output=True, text=True,
        encoding="utf-8", errors="replace", timeout=timeout,
    )
    duration = time.monotonic() - started
    for server in servers:
        server.log.wait_idle()
    return CrawlResult(proc=proc, args=list(args), store=store, items_path=items_path,
                       items=_read_items(items_path), duration=duration, stats=parse_stats(proc.stderr),
                       requests=[request for server in servers for request in server.log.snapshot()])
