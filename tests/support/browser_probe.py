"""A test-only Scrapy extension: what of a browser a crawl has loaded.

Enabled in a crawl subprocess with ``PYTHONPATH=tests``, ``-s
EXTENSIONS={"browser_probe.BrowserProbe": 0}`` and the environment variable
``BROWSER_PROBE_FILE``. When the spider closes (before the download handlers
close), it writes to that file a JSON object: ``modules``, the imported
Playwright / scrapy-playwright modules, ``processes``, the command names
(``/proc/PID/comm``) of every process descended from the crawl, ``reactor``,
the class of the installed Twisted reactor (``None`` without one), and
``handlers``, the class of each download handler the crawl used, by scheme.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from scrapy import signals
from scrapy.crawler import Crawler

BROWSER_PACKAGES = ("playwright", "scrapy_playwright")


def descendant_processes(pid: int) -> list[str]:
    """Command names of every live descendant of ``pid``."""
    children: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            names[int(entry.name)] = (entry / "comm").read_text().strip()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(names.get(child, "?"))
        todo += children.get(child, [])
    return sorted(found)


def class_name(obj: object) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


class BrowserProbe:
    def __init__(self, path: str, crawler: Crawler):
        self.path = path
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> BrowserProbe:
        probe = cls(os.environ["BROWSER_PROBE_FILE"], crawler)
        crawler.signals.connect(probe.spider_closed, signal=signals.spider_closed)
        return probe

    def spider_closed(self) -> None:
        modules = sorted(m for m in sys.modules if m.split(".")[0] in BROWSER_PACKAGES)
        # Importing twisted.internet.reactor would install one: only look.
        reactor = sys.modules.get("twisted.internet.reactor")
        handlers = self.crawler.engine.downloader.handlers._handlers
        Path(self.path).write_text(json.dumps({
            "modules": modules,
            "processes": descendant_processes(os.getpid()),
            "reactor": class_name(reactor) if reactor is not None else None,
            "handlers": {scheme: class_name(handler) for scheme, handler in handlers.items()},
        }))
