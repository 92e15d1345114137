"""Every exception of imgscraper, and the vocabulary of failure reasons.

A failure reason is a short slug (``dns-error``, ``timeout``, ``not-an-image``...) that items
(``reason``), stats (``imgscraper/failed/<reason>``) and log lines share. An exception that
stands for one carries it as ``failure_reason`` (or ``reason``); :func:`failure_reason` names
the reason of any download error, :func:`store_fault` of a store that cannot be written,
:func:`rejection_status` says whether an image rejected for a reason is ``skipped`` or
``failed``.
"""

from __future__ import annotations

import errno
import re
import sqlite3
from typing import TYPE_CHECKING

from scrapy.exceptions import DropItem, IgnoreRequest
from scrapy.pipelines.media import _MediaRequestFiltered
from twisted.internet.error import DNSLookupError

if TYPE_CHECKING:
    from imgscraper.pipelines.nearduplicates import HashedImage

__all__ = [
    "AddressRefused", "ArgumentError", "BlockedAddressError", "CookiesFileError", "CrawlStopped", "HostUnreachable",
    "ImageFailed", "ImageLimitReached", "ImageRejected", "NearDuplicate", "OriginalFailed", "RedisServerError",
    "RedisServerMissing", "RenderingError", "ScheduleError", "StoppedBeforeDownload", "browser_failure_reason",
    "failure_reason", "rejection_status", "store_fault",
]


# Arguments, settings and configuration


class ArgumentError(ValueError):
    """A spider argument is wrong; the message says how to fix it."""


class CookiesFileError(ArgumentError):
    """The cookies file (``-a cookies=FILE``) cannot be read or is malformed; the message says where."""


class ScheduleError(ValueError):
    """The schedule file is wrong: ``problems`` holds one line per problem, each saying where and how."""

    def __init__(self, *problems: str):
        super().__init__("\n".join(problems))
        self.problems = list(problems)


class RenderingError(RuntimeError):
    """Rendering cannot work with this configuration; the message says why."""


class RedisServerError(RuntimeError):
    """The private ``redis-server`` of local workers cannot be had; the message says why."""


class RedisServerMissing(RedisServerError):
    """``redis-server`` is not installed."""


# Requests not sent


class CrawlStopped(IgnoreRequest):
    """A request not sent because the crawl is stopping: a resumed crawl sends it."""

    failure_reason = "shutdown"

    def __init__(self) -> None:
        super().__init__("not sent: the crawl is stopping")


class HostUnreachable(IgnoreRequest):
    """A request not sent because its host is down: reason ``host-unreachable``, or for a retry, the
    reason its earlier try failed with (``tried``), so that an item says what really happened."""

    def __init__(self, host: str, tried: str = ""):
        super().__init__(f"Not requested: host {host} is unreachable")
        self.host = host
        self.failure_reason = tried or "host-unreachable"


class BlockedAddressError(IgnoreRequest):
    """A request refused because its host is (or resolves to) an address of a refused category.

    An ``IgnoreRequest``: not retried, and robots.txt requests refused this way are silent.
    """

    failure_reason = "blocked-address"

    def __init__(self, host: str, address: str, category: str):
        super().__init__(f"{host} is {address}, a {category} address" if host != address else f"{address} is a {category} address")
        self.host, self.address, self.category = host, address, category


class AddressRefused(DNSLookupError):
    """What :class:`GuardedResolver` fails a lookup with: ``name`` resolves to ``address``,
    of the refused ``category``. A ``DNSLookupError``, because Twisted turns every resolver
    failure into one; :class:`PrivateNetworkMiddleware` tells it apart (:attr:`AddressPolicy.refused`)."""

    def __init__(self, name: str, address: str, category: str):
        super().__init__(f"{name} resolves to {address}, a {category} address")
        self.name, self.address, self.category = name, address, category


# Images not stored


class ImageRejected(Exception):
    """The bytes are not a storable image; ``reason`` is a short slug for stats."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class NearDuplicate(Exception):
    """The image is a near-duplicate of ``stored``, an image in the store: left unstored."""

    def __init__(self, stored: HashedImage):
        super().__init__(f"near-duplicate of {stored.path}")
        self.stored = stored


class ImageFailed(_MediaRequestFiltered):
    """An image that could not be stored; ``status`` is ``skipped`` or ``failed``.

    It derives from Scrapy's "filtered" media exception so that
    ``MediaPipeline`` does not log a traceback for it: this pipeline logs one
    line per image itself.
    """

    def __init__(self, status: str, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.status = status
        self.reason = reason


class OriginalFailed(ImageFailed):
    """The original of a thumbnail (``-a originals=yes``) could not be stored: the pipeline fetches
    the URL the page named instead. Neither counted nor announced as a failure."""


class StoppedBeforeDownload(DropItem):
    """An image not downloaded because the crawl stopped first (Ctrl-C, SIGTERM).

    Not a result: the item is dropped (not exported), the image neither
    stored nor recorded, and its page is not done in a ``JOBDIR``'s journal,
    so the resumed crawl fetches it.
    """

    def __init__(self) -> None:
        super().__init__("not downloaded: the crawl stopped first", log_level="DEBUG")


class ImageLimitReached(StoppedBeforeDownload):
    """An image not downloaded because the crawl stored ``max_images`` images first: dropped,
    like an image the crawl stopped before (its page stays to do in a ``JOBDIR``)."""

    def __init__(self, max_images: int) -> None:
        DropItem.__init__(self, f"not downloaded: {max_images} images are stored (max_images)", log_level="DEBUG")


# The failure-reason vocabulary


_FAILURE_REASONS = {
    "DownloadConnectionRefusedError": "connection-refused",
    "ConnectionRefusedError": "connection-refused",
    "CannotResolveHostError": "dns-error",
    "DNSLookupError": "dns-error",
    # A host name that cannot be IDNA-encoded (a label over 63 characters).
    "UnicodeError": "dns-error",
    "DownloadTimeoutError": "timeout",
    "TimeoutError": "timeout",
    "DownloadCancelledError": "too-large",
    "ResponseDataLossError": "data-loss",
    "UnsupportedURLSchemeError": "unsupported-scheme",
    "ConnectionLost": "connection-lost",
    "ResponseFailed": "connection-lost",
    "ConnectionDone": "connection-lost",
}


#: ``IgnoreRequest`` messages of Scrapy's middlewares that are failures, not choices.
_IGNORE_REQUEST_FAILURES = {
    "max redirections reached": "too-many-redirects",
    "exceeded DOWNLOAD_MAXSIZE": "too-large",
}


def failure_reason(exc: BaseException) -> str:
    """A short slug for a download error, used in items, stats and logs (an exception may
    carry its own as ``failure_reason``)."""
    if reason := getattr(exc, "failure_reason", ""):
        return reason
    if isinstance(exc, IgnoreRequest):
        message = str(exc)
        for text, reason in _IGNORE_REQUEST_FAILURES.items():
            if text in message:
                return reason
        return "robots-txt" if "robots.txt" in message else "ignored"
    name = type(exc).__name__
    return _FAILURE_REASONS.get(name) or re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


_STORE_ERRNOS = {
    errno.ENOSPC: "store-full",
    errno.EDQUOT: "store-full",
    errno.EROFS: "store-unwritable",
    errno.EACCES: "store-unwritable",
    errno.EPERM: "store-unwritable",
}


def store_fault(exc: OSError | sqlite3.Error) -> str:
    """``store-full``, ``store-unwritable`` or ``store-error``: why the store could not be written."""
    if isinstance(exc, OSError):
        return _STORE_ERRNOS.get(exc.errno or 0, "store-error")
    message = str(exc).lower()
    if "full" in message:
        return "store-full"
    if "readonly" in message or "read-only" in message:
        return "store-unwritable"
    return "store-error"


#: Chromium's network error names (``net::ERR_CONNECTION_REFUSED``).
_NET_ERROR = re.compile(r"net::ERR_([A-Z_]+)")


def browser_failure_reason(exc: BaseException) -> str | None:
    """A short slug for a page the browser could not load (``connection-refused``
    from Chromium's ``net::ERR_CONNECTION_REFUSED``, ``timeout`` for a
    navigation timeout), or None if ``exc`` is no browser error."""
    if not type(exc).__module__.startswith("playwright."):
        return None
    if type(exc).__name__ == "TimeoutError":
        return "timeout"
    found = _NET_ERROR.search(str(exc))
    return found.group(1).lower().replace("_", "-") if found else "browser-error"


#: Reasons for which an image is ``skipped`` (a choice or a link that is not an image file)
#: rather than ``failed``.
SKIPPED_REASONS = frozenset({"too-small", "filtered", "link-to-page"})


def rejection_status(reason: str) -> str:
    """The item status of an image rejected for ``reason``: ``skipped`` or ``failed``."""
    return "skipped" if reason in SKIPPED_REASONS else "failed"
