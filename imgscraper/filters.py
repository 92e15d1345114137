"""Which pages a crawl follows and which images it keeps.

Each filter is a spider argument (``-a allow=/gallery/``) and a setting
(``IMGSCRAPER_ALLOW``); the argument wins (:data:`FILTERS`). Page and image
URLs are filtered by regular expression, as ``LinkExtractor``'s ``allow`` and
``deny``: ``re.search`` on the absolute URL. Image formats and sizes are
decided from the response headers where they can be trusted, so the body of
an unwanted image is not transferred, and again on the downloaded bytes.

The spider (URLs) and the pipeline (headers and bytes) wire these; nothing
here does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from scrapy.http import Headers
from scrapy.settings import BaseSettings
from scrapy.statscollectors import StatsCollector

from imgscraper.pipelines.inspection import MEDIA_TYPES

__all__ = [
    "FILTERS", "Filter", "ImageFilter", "URLFilter", "count_filtered", "format_of_media_type",
    "parse_byte_size", "parse_formats", "parse_regex", "resolve_arguments",
]

#: Format names people type, and the format each means (:data:`imgscraper.pipelines.inspection.MEDIA_TYPES`).
FORMAT_NAMES: dict[str, str] = {
    **{name.lower(): name for name in MEDIA_TYPES},
    "jpg": "JPEG",
    "tif": "TIFF",
}
#: Media types that name one format, besides the canonical ones: common aliases.
_MEDIA_TYPE_FORMATS: dict[str, str] = {
    **{media_type: name for name, media_type in MEDIA_TYPES.items()},
    "image/jpg": "JPEG",
    "image/pjpeg": "JPEG",
    "image/x-png": "PNG",
    "image/vnd.microsoft.icon": "ICO",
    "image/x-ms-bmp": "BMP",
}
_BYTE_SIZE = re.compile(r"(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[kmg]?)(?:i?b)?", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_regex(value: Any) -> re.Pattern[str] | None:
    """A regular expression, or None for an empty value (no filter)."""
    if isinstance(value, re.Pattern):
        return value
    text = str(value or "")
    if not text:
        return None
    try:
        return re.compile(text)
    except re.error as exc:
        raise ValueError(f"is not a regular expression ({exc})") from None


def parse_byte_size(value: Any) -> int:
    """A number of bytes: ``20000``, ``20k``, ``1.5M``, ``2G`` (binary units: ``1k`` is 1024
    bytes; a trailing ``B`` or ``iB`` is allowed). Empty or 0: no limit."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    text = str(value if value is not None else "").strip()
    if not text:
        return 0
    match = _BYTE_SIZE.fullmatch(text)
    if not match:
        raise ValueError("is not a size such as 20000, 20k or 5M")
    return int(float(match["number"]) * _UNITS[match["unit"].lower()])


def parse_formats(value: Any) -> frozenset[str]:
    """Image formats (``jpeg,png,webp``, or a list): their names as
    :class:`imgscraper.pipelines.inspection.ImageInfo` gives them. Empty: every format."""
    if isinstance(value, str):
        names = value.split(",")
    elif isinstance(value, (list, tuple, set, frozenset)) or value is None:
        names = list(value or ())
    else:
        raise ValueError("is not a list of formats such as jpeg,png")
    formats = set()
    for name in (str(n).strip().lower() for n in names):
        if not name:
            continue
        if name not in FORMAT_NAMES:
            known = ", ".join(n for n in FORMAT_NAMES if n not in ("jpg", "tif"))
            raise ValueError(f"names an unknown format {name!r} (formats: {known})")
        formats.add(FORMAT_NAMES[name])
    return frozenset(formats)


def format_of_media_type(content_type: str) -> str | None:
    """The format a ``Content-Type`` names, when it names one (``image/png``); None for
    anything that does not say which image format the body is (``image/*``,
    ``application/octet-stream``, ``text/html``, a missing header)."""
    media_type = content_type.partition(";")[0].strip().lower()
    return _MEDIA_TYPE_FORMATS.get(media_type)


@dataclass(frozen=True)
class Filter:
    """One filter: the spider argument, its setting ``IMGSCRAPER_<ARGUMENT>``, how a value is
    read (raises ``ValueError`` with what is wrong), and an example value for messages."""

    argument: str
    parse: Callable[[Any], Any]
    example: str

    @property
    def setting(self) -> str:
        return f"IMGSCRAPER_{self.argument.upper()}"


#: Every filter, in the order the documentation lists them (examples a shell passes as typed).
FILTERS: tuple[Filter, ...] = (
    Filter("allow", parse_regex, "/gallery/"),
    Filter("deny", parse_regex, "/tag/"),
    Filter("image_allow", parse_regex, "/uploads/"),
    Filter("image_deny", parse_regex, "logo"),
    Filter("formats", parse_formats, "jpeg,png"),
    Filter("min_bytes", parse_byte_size, "20k"),
    Filter("max_bytes", parse_byte_size, "5M"),
)


def count_filtered(stats: StatsCollector) -> None:
    """Count an image left out by a filter, as the pipeline counts the images it skips."""
    stats.inc_value("imgscraper/images/skipped")
    stats.inc_value("imgscraper/images/skipped/filtered")


@dataclass(frozen=True)
class URLFilter:
    """``allow``/``deny`` regular expressions over absolute URLs (LinkExtractor's meaning):
    a URL passes if it matches ``allow`` (when given) and does not match ``deny``."""

    allow: re.Pattern[str] | None = None
    deny: re.Pattern[str] | None = None

    def __bool__(self) -> bool:
        return bool(self.allow or self.deny)

    def allows(self, url: str) -> bool:
        if self.allow is not None and not self.allow.search(url):
            return False
        return self.deny is None or not self.deny.search(url)


@dataclass(frozen=True)
class ImageFilter:
    """Which downloaded images are kept: their format (empty ``formats``: any) and their size
    in bytes as served (``max_bytes`` 0: no limit)."""

    formats: frozenset[str] = frozenset()
    min_bytes: int = 0
    max_bytes: int = 0

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> ImageFilter:
        """The filter of ``IMGSCRAPER_FORMATS``, ``IMGSCRAPER_MIN_BYTES`` and ``IMGSCRAPER_MAX_BYTES``, already checked."""
        return cls(
            parse_formats(settings.get("IMGSCRAPER_FORMATS")),
            parse_byte_size(settings.get("IMGSCRAPER_MIN_BYTES")),
            parse_byte_size(settings.get("IMGSCRAPER_MAX_BYTES")),
        )

    def __bool__(self) -> bool:
        return bool(self.formats or self.min_bytes or self.max_bytes)

    @property
    def decides_on_headers(self) -> bool:
        """Whether :meth:`rejection_by_headers` can reject anything."""
        return bool(self.formats or self.max_bytes)

    def rejection(self, image_format: str, size: int | None) -> str:
        """Why an image of ``image_format`` and ``size`` bytes is left out, or ``""`` to keep it."""
        if self.formats and image_format not in self.formats:
            return f"format {image_format}"
        if size is not None and size < self.min_bytes:
            return f"{size} bytes, under {self.min_bytes}"
        if size is not None and self.max_bytes and size > self.max_bytes:
            return f"{size} bytes, over {self.max_bytes}"
        return ""

    def rejection_by_headers(self, headers: Headers) -> str:
        """Why the image these response headers announce is left out, or ``""`` when they do
        not tell: the format from a ``Content-Type`` that names one, the size from a
        ``Content-Length`` of an unencoded body. Too small is left to the bytes: a short
        body costs little, and a 304 or redirect has a short one too."""
        image_format = format_of_media_type(headers.get("Content-Type", b"").decode("latin-1"))
        if self.formats and image_format is not None and image_format not in self.formats:
            return f"format {image_format} (Content-Type)"
        if self.max_bytes and _unencoded(headers):
            length = headers.get("Content-Length", b"").strip()
            if length.isdigit() and int(length) > self.max_bytes:
                return f"{int(length)} bytes (Content-Length), over {self.max_bytes}"
        return ""

    def counts_arriving_bytes(self, headers: Headers) -> bool:
        """Whether a body these headers (that :meth:`rejection_by_headers` let through) announce
        is to be counted as it arrives, to stop it once over ``max_bytes``: an unencoded body
        of unknown length (no ``Content-Length``). An encoded one is left to the bytes."""
        return bool(self.max_bytes) and _unencoded(headers) and not headers.get("Content-Length", b"").strip()

    def rejection_by_arriving_bytes(self, received: int) -> str:
        """Why an image whose body is over ``max_bytes`` after ``received`` bytes is left out, or ``""``."""
        return f"over {self.max_bytes} bytes after {received} received" if received > self.max_bytes else ""


def _unencoded(headers: Headers) -> bool:
    """Whether the body is sent as is (no ``Content-Encoding``), so its length is the image's."""
    return headers.get("Content-Encoding", b"identity").strip().lower() == b"identity"


def resolve_arguments(arguments: dict[str, Any], known: Iterable[Filter] = FILTERS) -> dict[Filter, Any]:
    """The filters given as spider arguments (not None), each with its raw value, checked:
    raises ``ValueError("<argument> <value> <problem>: pass e.g. -a ...")`` for the first bad one."""
    given = {}
    for option in known:
        value = arguments.get(option.argument)
        if value is None:
            continue
        try:
            option.parse(value)
        except ValueError as exc:
            raise ValueError(f"{option.argument} {value!r} {exc}: pass e.g. -a {option.argument}={option.example}") from None
        given[option] = value
    return given
