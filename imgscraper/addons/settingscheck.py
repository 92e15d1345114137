"""The one place where settings are checked before a crawl starts.

:func:`check_settings` checks every value against its kind in
:data:`imgscraper.settingspec.SETTINGS`, and every name against the settings
of Scrapy, of the components in use and of the project: a name close to a
known one is a misspelling ("did you mean ...?"), a name close to none is
left to the user's own component (:func:`unknown_settings`).

``scrapy crawl`` (:mod:`imgscraper.commands.crawl`) runs it before anything
is set up. :class:`SettingsCheck`, a Scrapy add-on, runs it for crawls
started otherwise: add-ons run before any other component is built, so a
wrong setting is reported as one ``ERROR`` line saying what is wrong and how
to fix it, the item pipelines are left out (a pipeline would otherwise fail
on the same value with a traceback, or be silently disabled), and the spider
is closed with the finish reason ``bad_setting`` before any request is made.
The add-on also logs the one ``WARNING`` for each setting nobody knows.
"""

from __future__ import annotations

import difflib
import logging
import os
import tempfile
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import CloseSpider
from scrapy.settings import BaseSettings, Settings, default_settings
from scrapy.utils.misc import load_object

from imgscraper import settings as project_settings
from imgscraper.settingspec import SETTINGS

__all__ = [
    "COMPONENT_SETTINGS", "SettingsCheck", "check_settings", "check_store", "known_setting_names", "spider_arguments",
    "unknown_settings",
]

logger = logging.getLogger(__name__)

#: Settings the components in use read that Scrapy's default settings leave out (from their sources:
#: tests/test_checks.py reads them again).
COMPONENT_SETTINGS = frozenset({
    # Scrapy: the media pipelines, one that is deprecated but still read, and the ones
    # get_project_settings() takes from SCRAPY_* environment variables.
    "CONCURRENT_REQUESTS_PER_IP", "FILES_EXPIRES", "FILES_RESULT_FIELD", "FILES_URLS_FIELD", "IMAGES_EXPIRES",
    "IMAGES_MIN_HEIGHT", "IMAGES_MIN_WIDTH", "IMAGES_RESULT_FIELD", "IMAGES_THUMBS", "IMAGES_URLS_FIELD",
    "MEDIA_ALLOW_REDIRECTS", "META_COPY_WARN_SKIP_KEYS", "CHECK", "PROJECT", "PYTHON_SHELL", "SETTINGS_MODULE",
    # scrapy-redis (a crawl shared through Redis).
    "MAX_IDLE_TIME_BEFORE_CLOSE", "REDIS_DB", "REDIS_DECODE_RESPONSES", "REDIS_ENCODING", "REDIS_HOST",
    "REDIS_ITEMS_KEY", "REDIS_ITEMS_SERIALIZER", "REDIS_PARAMS", "REDIS_PORT", "REDIS_START_URLS_AS_SET",
    "REDIS_START_URLS_AS_ZSET", "REDIS_START_URLS_KEY", "REDIS_URL", "SCHEDULER_DUPEFILTER_KEY",
    "SCHEDULER_FLUSH_ON_START", "SCHEDULER_IDLE_BEFORE_CLOSE", "SCHEDULER_PERSIST", "SCHEDULER_QUEUE_CLASS",
    "SCHEDULER_QUEUE_KEY", "SCHEDULER_SERIALIZER", "STATS_KEY",
    # scrapy-playwright (-a render=yes).
    "PLAYWRIGHT_ABORT_REQUEST", "PLAYWRIGHT_BROWSER_PROVIDER", "PLAYWRIGHT_BROWSER_TYPE", "PLAYWRIGHT_CDP_KWARGS",
    "PLAYWRIGHT_CDP_URL", "PLAYWRIGHT_CONNECT_KWARGS", "PLAYWRIGHT_CONNECT_URL", "PLAYWRIGHT_CONTEXTS",
    "PLAYWRIGHT_DEFAULT_NAVIGATION_TIMEOUT", "PLAYWRIGHT_DOWNLOAD_TIMEOUT", "PLAYWRIGHT_LAUNCH_OPTIONS",
    "PLAYWRIGHT_MAX_CONTEXTS", "PLAYWRIGHT_MAX_PAGES_PER_CONTEXT", "PLAYWRIGHT_PROCESS_REQUEST_HEADERS",
    "PLAYWRIGHT_RESTART_DISCONNECTED_BROWSER", "_PLAYWRIGHT_THREADED_LOOP",
})
#: The project's namespace and ImagesPipeline's: an unknown name starting with one of these is a
#: bad setting even when it is close to no known one.
_PREFIXES = ("IMGSCRAPER_", "IMAGES_", "IMAGE_")
#: How alike (difflib's ratio) an unknown name and a known one are when the first is a misspelling of
#: the second: a letter left out, added, changed or swapped scores 0.88 or more; the settings of other
#: components (SPLASH_URL, PROXY_POOL_ENABLED...) score under 0.8 against every known name.
_MISSPELT = 0.88
#: The same, for a name in the project's namespace: a likely misspelling, whatever the hint.
_MISSPELT_OURS = 0.6


def known_setting_names() -> set[str]:
    """The settings of Scrapy, of the components in use and of the project."""
    names = {name for module in (default_settings, project_settings) for name in dir(module) if name.isupper()}
    return names | COMPONENT_SETTINGS | set(SETTINGS)


def _unprefixed(name: str) -> str:
    """``name`` without the namespace it starts with (``IMGSCRAPER_DEPTH``: ``DEPTH``): names are
    compared by what follows, which the namespace would otherwise outweigh."""
    return next((name.removeprefix(prefix) for prefix in _PREFIXES if name.startswith(prefix)), name)


def _closest(name: str, candidates: Collection[str], cutoff: float) -> str | None:
    """The candidate ``name`` is most likely a misspelling of, if it is close enough."""
    score, _, closest = max(
        (difflib.SequenceMatcher(None, _unprefixed(name), _unprefixed(candidate)).ratio(),
         difflib.SequenceMatcher(None, name, candidate).ratio(), candidate)
        for candidate in candidates
    )
    return closest if score >= cutoff else None


def unknown_settings(settings: BaseSettings, arguments: Collection[str] = ()) -> dict[str, str]:
    """Each setting of ``settings`` that :func:`known_setting_names` lacks, with its hint:
    ``did you mean X?`` when its name is close to a known setting's or to one of the spider's
    ``arguments`` (``IMGSCRAPER_DEPHT``, ``DEPTH``: ``-a depth=``); ``see docs/settings.md`` for a name
    in the project's namespace close to none; empty for a name close to none (a setting of the
    user's own component)."""
    known = known_setting_names()
    hints = {name: f"did you mean {name}?" for name in known}
    for argument in arguments:
        if f"IMGSCRAPER_{argument.upper()}" not in known:  # the filters' arguments are settings too
            hints[f"IMGSCRAPER_{argument.upper()}"] = f"did you mean the spider argument -a {argument}=...?"
    ours = [name for name in hints if name.startswith(_PREFIXES)]
    unknown = {}
    for name in sorted(settings.attributes):
        if name in known:
            continue
        if name.upper().startswith(_PREFIXES):
            closest = _closest(name.upper(), ours, _MISSPELT_OURS)
            unknown[name] = hints[closest] if closest else "see docs/settings.md"
        else:
            closest = _closest(name.upper(), hints, _MISSPELT)
            unknown[name] = hints[closest] if closest else ""
    return unknown


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

    Nothing is created: a temporary file is written (and removed) in the
    directory, or in the closest one above it that exists, where the
    pipeline will create it. Permission bits alone say nothing when running
    as root or on a read-only mount.
    """
    text = str(store or "")
    if not text:
        yield "IMAGES_STORE is empty: pass e.g. -s IMAGES_STORE=images"
        return
    if "://" in text and not text.startswith("file://"):
        return  # S3, GCS, FTP: checked by their own clients
    path = Path(text.removeprefix("file://"))
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("."))
    try:
        with tempfile.TemporaryFile(dir=existing):
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


def spider_arguments(spidercls: type) -> tuple[str, ...]:
    """The arguments ``spidercls`` declares (``ImagesSpider.argument_names``), for the hints."""
    names = getattr(spidercls, "argument_names", None)
    return tuple(names()) if callable(names) else ()


def check_settings(settings: BaseSettings, arguments: Collection[str] = ()) -> list[str]:
    """Every problem found in ``settings``, one line each; ``arguments``, the spider's, for the hints."""
    problems = [f"unknown setting {name}: {hint}" for name, hint in unknown_settings(settings, arguments).items() if hint]
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
        arguments = spider_arguments(self.crawler.spidercls)
        for name, hint in unknown_settings(settings, arguments).items():
            if not hint:
                logger.warning("Unknown setting %s: not one of Scrapy's, scrapy-redis', scrapy-playwright's or"
                               " imgscraper's, nor close to one: left to your own components", name)
        self.problems = check_settings(settings, arguments)
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
