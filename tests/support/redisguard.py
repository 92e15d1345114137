"""A Scrapy extension for tests: which Redis calls a crawl makes, and from which thread.

Enabled with ``-s EXTENSIONS={"redisguard.RedisCalls": 0}`` (``tests/`` on the
``PYTHONPATH``) and ``-s REDISGUARD_DIR=<directory>``. From the moment the spider
is open until it is closed, it counts the commands sent with redis-py's
synchronous client (``redis.Redis``: each one waits for Redis with the thread
stopped) on the reactor's thread, with the first one's stack, and those sent
with its asyncio client; at the end it writes them, and the spider's finish reason, to
``<directory>/<pid>.json`` (a local worker logs no INFO lines: this says how it ended).
"""

from __future__ import annotations

import json
import os
import threading
import traceback
from pathlib import Path
from typing import Any

import redis
import redis.asyncio
from scrapy import signals


class RedisCalls:
    def __init__(self, crawler: Any):
        self.directory = Path(crawler.settings["REDISGUARD_DIR"])
        self.calls: dict[str, Any] = {"sync_on_reactor": 0, "sync_elsewhere": 0, "async": 0, "first_sync": None}
        self.reactor_thread = threading.current_thread()
        self._originals: list[tuple[type, str, Any]] = []
        crawler.signals.connect(self.start, signal=signals.spider_opened)
        crawler.signals.connect(self.stop, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Any) -> RedisCalls:
        return cls(crawler)

    def start(self) -> None:
        calls = self.calls

        def sync(original):
            def wrapper(*args, **kwargs):
                if threading.current_thread() is self.reactor_thread:
                    calls["sync_on_reactor"] += 1
                    calls["first_sync"] = calls["first_sync"] or "".join(traceback.format_stack(limit=12))
                else:
                    calls["sync_elsewhere"] += 1
                return original(*args, **kwargs)
            return wrapper

        def asynchronous(original):
            async def wrapper(*args, **kwargs):
                calls["async"] += 1
                return await original(*args, **kwargs)
            return wrapper

        for cls, name, wrap in ((redis.Redis, "execute_command", sync), (redis.client.Pipeline, "execute", sync),
                                (redis.asyncio.Redis, "execute_command", asynchronous),
                                (redis.asyncio.client.Pipeline, "execute", asynchronous)):
            original = cls.__dict__[name]
            self._originals.append((cls, name, original))
            setattr(cls, name, wrap(original))

    def stop(self, reason: str) -> None:
        self.calls["reason"] = reason
        for cls, name, original in self._originals:
            setattr(cls, name, original)
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / f"{os.getpid()}.json").write_text(json.dumps(self.calls))
