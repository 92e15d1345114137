"""The one place where settings are checked before a crawl starts.

:class:`SettingsCheck` is a Scrapy add-on: add-ons run before any other
component is built, so a wrong setting is reported as one ``ERROR`` line
saying what is wrong and how to fix it, the item pipelines are left out (a
pipeline would otherwise fail on the same value with a traceback, or be
silently disabled), and the spider is closed with the finish reason
``bad_setting`` before any request is made (``scrapy crawl`` then exits 1).
"""

from __future__ import annotations

import difflib
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import CloseSpider
from scrapy.settings import BaseSettings, Settings, default_settings
from scrapy.utils.misc import load_object

from imgscraper import settings as project_settings
from imgscraper.settingspec import SETTINGS

__all__ = ["SettingsCheck", "check_settings", "check_store"]

logger = logging.getLogger(__name__)

#: Setting names close to these but unknown are reported as misspelt.
_PREFIXES = ("IMGSCRAPER_", "IMAGES_", "IMAGE_")
#: Settings Scrapy reads that its default settings leave out: the media pipelines', a deprecated one.
_SCRAPY_SETTINGS = {
    "CONCURRENT_REQUESTS_PER_IP", "FILES_EXPIRES", "FILES_RESULT_FIELD", "FILES_URLS_FIELD", "IMAGES_EXPIRES",
    "IMAGES_MIN_HEIGHT", "IMAGES_MIN_WIDTH", "IMAGES_RESULT_FIELD", "IMAGES_STORE_FTP_ACL", "IMAGES_THUMBS",
    "IMAGES_URLS_FIELD", "MEDIA_ALLOW_REDIRECTS", "META_COPY_WARN_SKIP_KEYS",
}


def known_setting_names() -> set[str]:
    """Scrapy's settings and the project's."""
    names = {name for module in (default_settings, project_settings) for name in dir(module) if name.isupper()}
    return names | _SCRAPY_SETTINGS | set(SETTINGS)


def check_names(settings: BaseSettings, known: set[str]) -> Iterator[str]:
    """A problem for each ``IMGSCRAPER_*`` / ``IMAGES_*`` setting that does not exist."""
    ours = sorted(name for name in known if name.startswith(_PREFIXES))
    for name in sorted(settings.attributes):
        if name in known or not name.upper().startswith(_PREFIXES):
            continue
        close = difflib.get_close_matches(name.upper(), ours, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else "see docs/settings.md"
        yield f"unknown setting {name}: {hint}"


def check_values(settings: BaseSettings) -> Iterator[str]:
    """A problem for each setting of :data:`imgscraper.settingspec.SETTINGS` whose value is wrong."""
    for name, kind in SETTINGS.items():
        yield from kind.problems(settings, name)
    yield from check_transport(settings)


def check_transport(settings: BaseSettings) -> Iterator[str]:
    """The crawl must run on the reactor: only Scrapy's HTTP/1.1 handler sends URLs as written."""
    try:
        reactor = settings.getbool("TWISTED_REACTOR_ENABLED")
    except ValueError:
        reactor = False
    if not reactor:
        yield ("TWISTED_REACTOR_ENABLED=False runs Scrapy's experimental aiohttp handler, which rewrites"
               " the URLs it sends: imgscraper runs on the asyncio reactor; drop -s TWISTED_REACTOR_ENABLED=False")


def check_store(store: Any) -> Iterator[str]:
    """A problem if ``IMAGES_STORE`` is a local directory that cannot be written.

    The directory is created if missing (the pipeline would create it too)
    and a temporary file is written there and removed: permission bits alone
    say nothing when running as root or on a read-only mount.
    """
    text = str(store or "")
    if not text:
        yield "IMAGES_STORE is empty: pass e.g. -s IMAGES_STORE=images"
        return
    if "://" in text and not text.startswith("file://"):
        return  # S3, GCS, FTP: checked by their own clients
    path = Path(text.removeprefix("file://"))
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        yield f"IMAGES_STORE {os.fspath(path)!r} cannot be written ({reason}): pass a writable directory, e.g. -s IMAGES_STORE=images"


def check_resolver(settings: BaseSettings) -> Iterator[str]:
    """A problem if private networks are refused but ``TWISTED_DNS_RESOLVER`` cannot refuse them."""
    try:
        if settings.getbool("IMGSCRAPER_ALLOW_PRIVATE_NETWORKS") or not settings.getbool("TWISTED_REACTOR_ENABLED"):
            return
    except ValueError:
        return  # reported by check_values
    from imgscraper.resolver import AddressGuard  # noqa: PLC0415 - imports Twisted

    value = settings.get("TWISTED_DNS_RESOLVER")
    try:
        resolver = load_object(value)
    except (AttributeError, ImportError, NameError, ValueError):
        resolver = None
    if not (isinstance(resolver, type) and issubclass(resolver, AddressGuard)):
        yield (f"TWISTED_DNS_RESOLVER={value!r} cannot refuse private addresses: use imgscraper.resolver."
               "GuardedResolver (IPv4) or GuardedHostnameResolver (IPv6 too), or -s IMGSCRAPER_ALLOW_PRIVATE_NETWORKS=True")


def check_settings(settings: BaseSettings) -> list[str]:
    """Every problem found in ``settings``, one line each."""
    problems = list(check_names(settings, known_setting_names()))
    problems += check_values(settings)
    problems += check_resolver(settings)
    if settings.get("ITEM_PIPELINES"):
        problems += check_store(settings.get("IMAGES_STORE"))
    return problems


class SettingsCheck:
    """Add-on that refuses to crawl with wrong settings (see the module docstring)."""

    def __init__(self, crawler: Crawler):
        self.crawler = crawler
        self.problems: list[str] = []

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> SettingsCheck:
        return cls(crawler)

    def update_settings(self, settings: Settings) -> None:
        self.problems = check_settings(settings)
        if self.problems:
            settings.set("ITEM_PIPELINES", {}, priority=max(settings.getpriority("ITEM_PIPELINES") or 0, 50))
            # Nothing is fetched: no download handler is built that would need closing.
            handlers = {**settings.getdict("DOWNLOAD_HANDLERS"), "http": None, "https": None}
            settings.set("DOWNLOAD_HANDLERS", handlers, priority=max(settings.getpriority("DOWNLOAD_HANDLERS") or 0, 50))
            # Until the spider closes, the rest of the crawl (the other add-ons, the spider) reads the defaults.
            for problem in self.problems:
                name = problem.partition("=")[0]
                default = getattr(project_settings, name, getattr(default_settings, name, None))
                # The reactor is chosen before add-ons run: the setting must keep saying which.
                if name.isupper() and default is not None and name != "TWISTED_REACTOR_ENABLED":
                    settings.set(name, default, priority=max(settings.getpriority(name) or 0, 50))
            self.crawler.signals.connect(self.spider_opened, signal=signals.spider_opened)

    def spider_opened(self) -> None:
        for problem in self.problems:
            logger.error("Bad setting: %s", problem)
        raise CloseSpider("bad_setting")
