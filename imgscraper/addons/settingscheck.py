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
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import CloseSpider
from scrapy.settings import BaseSettings, Settings, default_settings
from scrapy.utils.misc import load_object

from imgscraper import settings as project_settings
from imgscraper.utils import parse_duration
from imgscraper.filters import check_filter_settings

__all__ = ["SettingsCheck", "check_settings", "check_store"]

logger = logging.getLogger(__name__)

#: Allowed values of the project's settings that take one of a few words.
CHOICES: dict[str, tuple[str, ...]] = {
    "IMGSCRAPER_SRCSET": ("largest", "all"),
    "IMGSCRAPER_FILE_NAMES": ("stable", "random"),
    "IMGSCRAPER_NEAR_DUPLICATES": ("off", "mark", "skip"),
}

#: Setting names close to these but unknown are reported as misspelt.
_PREFIXES = ("IMGSCRAPER_", "IMAGES_", "IMAGE_")
#: ImagesPipeline's settings that Scrapy's default settings leave out.
_IMAGES_PIPELINE_SETTINGS = {
    "IMAGES_EXPIRES", "IMAGES_MIN_HEIGHT", "IMAGES_MIN_WIDTH", "IMAGES_RESULT_FIELD",
    "IMAGES_STORE_FTP_ACL", "IMAGES_THUMBS", "IMAGES_URLS_FIELD",
}


def known_setting_names() -> set[str]:
    """Scrapy's settings, ImagesPipeline's and the ones :mod:`imgscraper.settings` defines."""
    names = {name for module in (default_settings, project_settings) for name in dir(module) if name.isupper()}
    return names | _IMAGES_PIPELINE_SETTINGS


def check_names(settings: BaseSettings, known: set[str]) -> Iterator[str]:
    """A problem for each ``IMGSCRAPER_*`` / ``IMAGES_*`` setting that does not exist."""
    ours = sorted(name for name in known if name.startswith(_PREFIXES))
    for name in sorted(settings.attributes):
        if name in known or not name.upper().startswith(_PREFIXES):
            continue
        close = difflib.get_close_matches(name.upper(), ours, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else "see docs/settings.md"
        yield f"unknown setting {name}: {hint}"


def _number(settings: BaseSettings, name: str, convert: Callable[[Any], float], minimum: float) -> Iterator[str]:
    value = settings.get(name)
    try:
        ok = convert(value) >= minimum
    except (TypeError, ValueError):
        ok = False
    if not ok:
        kind = "an integer" if convert is int else "a number"
        yield f"{name}={value!r} is not {kind} >= {minimum:g}: pass e.g. -s {name}={max(minimum, 1):g}"


def check_values(settings: BaseSettings) -> Iterator[str]:
    """A problem for each project or image setting whose value is wrong."""
    for name, choices in CHOICES.items():
        value = settings.get(name)
        if value not in choices:
            yield f"{name}={value!r} is not one of {', '.join(choices)}: pass e.g. -s {name}={choices[0]}"
    for name in sorted(n for n in settings.attributes if n.startswith("IMGSCRAPER_")):
        if isinstance(getattr(project_settings, name, None), bool):
            try:
                settings.getbool(name)
            except ValueError:
                yield f"{name}={settings.get(name)!r} is not true or false: pass e.g. -s {name}=false"
    expires = settings.get("IMGSCRAPER_EXPIRES")
    if expires not in (None, ""):
        try:
            parse_duration(expires)
        except ValueError:
            yield (f"IMGSCRAPER_EXPIRES={expires!r} is not a duration such as 30m, 12h, 7d or 2w: "
                   "pass e.g. -s IMGSCRAPER_EXPIRES=12h")
    for name in ("IMAGES_EXPIRES", "IMAGES_MIN_WIDTH", "IMAGES_MIN_HEIGHT", "IMGSCRAPER_MAX_PAGES",
                 "IMGSCRAPER_HOST_FAILURES", "IMGSCRAPER_FAILURE_LINES"):
        yield from _number(settings, name, int, 0)
    for name in ("CONCURRENT_REQUESTS", "CONCURRENT_REQUESTS_PER_DOMAIN"):
        yield from _number(settings, name, int, 1)
    for name in ("DOWNLOAD_TIMEOUT", "DOWNLOAD_DELAY", "IMGSCRAPER_PROGRESS_INTERVAL", "IMGSCRAPER_RETRY_AFTER_MAX",
                 "IMGSCRAPER_RENDER_TIMEOUT", "IMGSCRAPER_HOST_COOLDOWN"):
        yield from _number(settings, name, float, 0)
    yield from _number(settings, "IMGSCRAPER_RENDER_MAX_PAGES", int, 1)
    yield from _number(settings, "IMGSCRAPER_GC_THRESHOLD", int, 0)
    yield from _number(settings, "IMGSCRAPER_WORKERS", int, 1)
    for name in ("IMGSCRAPER_RENDER_MAX_SCROLLS", "IMGSCRAPER_RENDER_SETTLE_MS", "IMGSCRAPER_RENDER_MAX_CLICKS"):
        yield from _number(settings, name, int, 0)
    yield from _number(settings, "IMGSCRAPER_REDIS_WORKER_TIMEOUT", float, 1)
    yield from check_thumbs(settings)
    yield from check_transport(settings)
    yield from check_filter_settings(settings)


def check_transport(settings: BaseSettings) -> Iterator[str]:
    """The crawl must run on the reactor: only Scrapy's HTTP/1.1 handler sends URLs as written."""
    try:
        reactor = settings.getbool("TWISTED_REACTOR_ENABLED")
    except ValueError:
        reactor = False
    if not reactor:
        yield ("TWISTED_REACTOR_ENABLED=False runs Scrapy's experimental aiohttp handler, which rewrites"
               " the URLs it sends: imgscraper runs on the asyncio reactor; drop -s TWISTED_REACTOR_ENABLED=False")


def check_thumbs(settings: BaseSettings) -> Iterator[str]:
    """``IMAGES_THUMBS`` must map names to ``[width, height]``."""
    example = """-s 'IMAGES_THUMBS={"small": [200, 200]}'"""
    try:
        thumbs = settings.getdict("IMAGES_THUMBS")
    except (TypeError, ValueError):
        yield f"IMAGES_THUMBS={settings.get('IMAGES_THUMBS')!r} is not a JSON object: pass e.g. {example}"
        return
    for name, size in thumbs.items():
        if not (
            isinstance(size, (list, tuple))
            and len(size) == 2
            and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in size)
        ):
            yield f"IMAGES_THUMBS[{json.dumps(name)}]={size!r} is not [width, height]: pass e.g. {example}"


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
