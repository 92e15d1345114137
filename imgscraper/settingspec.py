"""The kind of value each setting takes: one table.

:data:`SETTINGS` names every setting imgscraper adds (``IMGSCRAPER_*``) and
every Scrapy setting whose value it checks, each with its kind. The defaults
live in :mod:`imgscraper.settings` only. :mod:`imgscraper.addons.settingscheck`
checks every value against its kind, ``tests/test_docs.py`` checks that
``docs/settings.md`` has a row for each, and the components take their modes
from here (:data:`SRCSET_MODES`, :data:`FILE_NAME_MODES`, :data:`FILE_TIME_MODES`, :data:`NEAR_DUPLICATE_MODES`).

A kind reports a wrong value as one line saying what is wrong and how to fix
it: ``NAME='value' is not ...: pass e.g. -s NAME=example``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from imgscraper.discovery.originals import parse_rules
from imgscraper.filters import FILTERS, parse_byte_size
from imgscraper.pipelines.filepaths import FilePathTemplate
from imgscraper.addons.useragent import contact_reference
from imgscraper.utils import parse_duration

if TYPE_CHECKING:
    from scrapy.settings import BaseSettings

__all__ = [
    "FILE_NAME_MODES", "FILE_TIME_MODES", "NEAR_DUPLICATE_MODES", "SETTINGS", "SRCSET_MODES", "Boolean", "Choice",
    "Duration", "Integer", "Internal", "Kind", "Number", "Parsed", "SpiderArgument", "Text", "Thumbs", "wrong_value",
]

#: ``IMGSCRAPER_SRCSET``: one candidate per ``srcset`` (the largest), or all of them.
SRCSET_MODES = ("largest", "all")
#: ``IMGSCRAPER_FILE_NAMES``: a UUID derived from the image bytes, or a new UUID4 per image.
FILE_NAME_MODES = ("stable", "random")
#: ``IMGSCRAPER_FILE_TIMES``: a stored file dated by the server's ``Last-Modified``, or when it was stored.
FILE_TIME_MODES = ("server", "stored")
#: ``IMGSCRAPER_NEAR_DUPLICATES``: no perceptual hash, hash each stored image, or also skip near-duplicates.
NEAR_DUPLICATE_MODES = ("off", "mark", "skip")


class Kind(Protocol):
    def problems(self, settings: BaseSettings, name: str) -> Iterator[str]:
        """What is wrong with the value of setting ``name`` in ``settings``, one line each."""


def wrong_value(name: str, value: Any, what: str, example: str) -> str:
    """The line reporting a wrong value: ``NAME='value' <what>: pass e.g. -s NAME=<example>``."""
    return f"{name}={value!r} {what}: pass e.g. -s {name}={example}"


@dataclass(frozen=True)
class Choice:
    """One of a few words."""

    words: tuple[str, ...]

    def problems(self, settings: BaseSettings, name: str) -> Iterator[str]:
        value = settings.get(name)
        if value not in self.words:
            yield wrong_value(name, value, f"is not one of {', '.join(self.words)}", self.words[0])


@dataclass(frozen=True)
class Number:
    """A number at least ``minimum``."""

    minimum: float = 0
    convert: ClassVar[Callable[[Any], float]] = float
    noun: ClassVar[str] = "a number"

    def problems(self, settings: BaseSettings, name: str) -> Iterator[str]:
        value = settings.get(name)
        try:
            ok = self.convert(value) >= self.minimum
        except (TypeError, ValueError):
            ok = False
        if not ok:
            yield wrong_value(name, value, f"is not {self.noun} >= {self.minimum:g}", f"{max(self.minimum, 1):g}")


@dataclass(frozen=True)
class Integer(Number):
    """An integer at least ``minimum``."""

    convert: ClassVar[Callable[[Any], float]] = int
    noun: ClassVar[str] = "an integer"


@dataclass(frozen=True)
class Boolean:
    """What Scrapy's ``getbool`` reads: ``True``/``False``, ``true``/``false``, ``1``/``0``."""

    def problems(self, settings: BaseSettings, name: str) -> Iterator[str]:
        try:
            settings.getbool(name)
        except (TypeError, ValueError):
            yield wrong_value(name, settings.get(name), "is not true or false", "false")


@dataclass(frozen=True)
class Duration:
    """``30m``, ``12h``, ``7d``, ``2w`` or a number of days (:func:`imgscraper.utils.parse_duration`); empty: none."""

    def problems(self, settings: BaseSettings, name: str) -> Iterator[str]:
        value = settings.get(name)
        if value in (None, ""):
            return
        try:
            parse_duration(value)
        except ValueError:
            yield wrong_value(name, value, "is not a duration such as 30m, 12h, 7d or 2w", "12h")


@dataclass(frozen=True)
class Parsed:
    """A value ``parse`` reads; it raises ``ValueError("is not ...")`` for a wrong one."""

    parse: Callable[[Any], Any]
    example: str

    def problems(self, settings: BaseSettings, name: str) -> Iterator[str]:
        value = settings.get(name)
        try:
            self.parse(value)
        except ValueError as exc:
            yield wrong_value(name, value, str(exc), self.example)


@dataclass(frozen=True)
class Thumbs:
    """``IMAGES_THUMBS``: a JSON object of names to ``[width, height]``."""

    example: ClassVar[str] = """-s 'IMAGES_THUMBS={"small": [200, 200]}'"""

    def problems(self, settings: BaseSettings, name: str) -> Iterator[str]:
        try:
            thumbs = settings.getdict(name)
        except (TypeError, ValueError):
            yield f"{name}={settings.get(name)!r} is not a JSON object: pass e.g. {self.example}"
            return
        for thumb, size in thumbs.items():
            if not (
                isinstance(size, (list, tuple))
                and len(size) == 2
                and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in size)
            ):
                yield f"{name}[{json.dumps(thumb)}]={size!r} is not [width, height]: pass e.g. {self.example}"


@dataclass(frozen=True)
class SpiderArgument:
    """A Scrapy setting the images spider takes as an argument instead (``DEPTH_LIMIT``: ``-a depth=``):
    any value but 0, Scrapy's default, is refused rather than half honoured."""

    argument: str

    def problems(self, settings: BaseSettings, name: str) -> Iterator[str]:
        value = settings.get(name)
        try:
            unset = settings.getint(name) == 0
        except (TypeError, ValueError):
            unset = False
        if not unset:
            yield f"{name}={value!r} does not set the images spider's {self.argument}: pass -a {self.argument}={value} instead"


@dataclass(frozen=True)
class Text:
    """Any text or list (a path, a URL, names): whoever reads it says what is wrong with it."""

    def problems(self, settings: BaseSettings, name: str) -> Iterator[str]:
        return iter(())


@dataclass(frozen=True)
class Internal(Text):
    """Set by the crawl command or an add-on, not by hand (and so not documented)."""


#: Every setting imgscraper adds, and the Scrapy settings whose values it checks, with their kind.
#: ``TWISTED_REACTOR_ENABLED``, ``TWISTED_DNS_RESOLVER`` and ``IMAGES_STORE`` are checked with
#: the settings they depend on, by :mod:`imgscraper.addons.settingscheck`.
SETTINGS: Mapping[str, Kind] = {
    # What is found
    "IMGSCRAPER_SRCSET": Choice(SRCSET_MODES),
    "IMGSCRAPER_STYLESHEETS": Boolean(),
    "IMGSCRAPER_SCRIPT_IMAGES": Boolean(),
    "IMGSCRAPER_MAX_PAGES": Integer(0),
    "IMGSCRAPER_MAX_IMAGES": Integer(0),
    "IMGSCRAPER_ORIGINALS": Boolean(),
    "IMGSCRAPER_ORIGINALS_RULES": Parsed(parse_rules, """'{"-thumb(\\\\.jpg)$": "\\\\1"}'"""),
    # What is stored
    "IMGSCRAPER_FILE_NAMES": Choice(FILE_NAME_MODES),
    "IMGSCRAPER_FILE_TIMES": Choice(FILE_TIME_MODES),
    "IMGSCRAPER_FILE_PATH": Parsed(FilePathTemplate.parse, "'{page_host}/{name}-{uuid}{ext}'"),
    "IMGSCRAPER_CONVERT_TO_JPEG": Boolean(),
    "IMGSCRAPER_SKIP_TRACKING_PIXELS": Boolean(),
    "IMGSCRAPER_EXPIRES": Duration(),
    "IMGSCRAPER_GALLERY": Boolean(),
    "IMGSCRAPER_NEAR_DUPLICATES": Choice(NEAR_DUPLICATE_MODES),
    # Filters: each also a spider argument (imgscraper.filters)
    **{option.setting: Parsed(option.parse, option.example) for option in FILTERS},
    # Signed-in crawls and the User-Agent
    "IMGSCRAPER_COOKIES": Text(),
    "IMGSCRAPER_COOKIES_SAVE": Boolean(),
    "IMGSCRAPER_HTTP_USER": Text(),
    "IMGSCRAPER_HTTP_PASSWORD": Text(),
    "IMGSCRAPER_CONTACT": Parsed(contact_reference, "me@example.com"),
    # Faults
    "IMGSCRAPER_RETRY_AFTER_MAX": Number(0),
    "IMGSCRAPER_HOST_FAILURES": Integer(0),
    "IMGSCRAPER_HOST_COOLDOWN": Number(0),
    "IMGSCRAPER_FAILURE_LINES": Integer(0),
    "IMGSCRAPER_ALLOW_PRIVATE_NETWORKS": Boolean(),
    # Progress and the process
    "IMGSCRAPER_PROGRESS": Boolean(),
    "IMGSCRAPER_PROGRESS_INTERVAL": Number(0),
    "IMGSCRAPER_WORKERS": Integer(1),
    "IMGSCRAPER_MAX_RATE": Parsed(parse_byte_size, "1M"),
    "IMGSCRAPER_GC_THRESHOLD": Integer(0),
    # Rendering
    "IMGSCRAPER_RENDER_BROWSER": Text(),
    "IMGSCRAPER_RENDER_MAX_PAGES": Integer(1),
    "IMGSCRAPER_RENDER_MAX_SCROLLS": Integer(0),
    "IMGSCRAPER_RENDER_SETTLE_MS": Integer(0),
    "IMGSCRAPER_RENDER_TIMEOUT": Number(0),
    "IMGSCRAPER_RENDER_MAX_CLICKS": Integer(0),
    "IMGSCRAPER_RENDER_BLOCK_RESOURCE_TYPES": Text(),
    "IMGSCRAPER_RENDER_BLOCK_DOMAINS": Text(),
    "IMGSCRAPER_RENDER_LOAD_IMAGES": Boolean(),
    # A crawl shared through Redis
    "IMGSCRAPER_REDIS_URL": Text(),
    "IMGSCRAPER_CRAWL_ID": Text(),
    "IMGSCRAPER_REDIS_WORKER_TIMEOUT": Number(1),
    "IMGSCRAPER_WORKER_ID": Internal(),
    "IMGSCRAPER_LOCAL_WORKERS": Internal(),
    "IMGSCRAPER_LEAD_WORKER": Internal(),
    "IMGSCRAPER_UNIQUE_IMAGES": Internal(),
    "IMGSCRAPER_SPIDER_PAGE_BUDGET": Internal(),
    "IMGSCRAPER_LOG_FAILURES": Internal(),
    "IMGSCRAPER_NEAR_DUPLICATE_CLAIMS": Internal(),
    # Scrapy's
    "IMAGES_EXPIRES": Integer(0),
    "IMAGES_MIN_WIDTH": Integer(0),
    "IMAGES_MIN_HEIGHT": Integer(0),
    "IMAGES_THUMBS": Thumbs(),
    "CONCURRENT_REQUESTS": Integer(1),
    "CONCURRENT_REQUESTS_PER_DOMAIN": Integer(1),
    "DOWNLOAD_TIMEOUT": Number(0),
    "DOWNLOAD_DELAY": Number(0),
    "DEPTH_LIMIT": SpiderArgument("depth"),
}

