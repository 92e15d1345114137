"""Small helpers shared by several components: durations, the host of a URL or request, a failure in a few words."""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit

from scrapy.http import Request
from scrapy.utils.httpobj import urlparse_cached

__all__ = ["failure_detail", "host_label", "host_of", "host_port_of", "parse_duration"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[smhdw]?)", re.IGNORECASE)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def parse_duration(value: str | float, default_unit: str = "d") -> float:
    """Seconds in ``value``: a number followed by ``s``, ``m``, ``h``, ``d`` or ``w``
    (``90m``, ``12h``, ``7d``, ``1.5h``), or a bare number of ``default_unit``.

    Raises ``ValueError`` for anything else (negative numbers included).
    """
    text = str(value).strip()
    match = _DURATION.fullmatch(text)
    if not match:
        raise ValueError(f"{value!r} is not a duration such as 30m, 12h, 7d or 2w")
    unit = (match["unit"] or default_unit).lower()
    return float(match["number"]) * _UNITS[unit]


def host_of(url: str) -> str:
    """The lower-case host name of ``url`` (a scheme is optional); '' when it has none or is malformed."""
    try:
        return (urlsplit(url if "://" in url else f"http://{url}").hostname or "").lower()
    except ValueError:
        return ""


def host_port_of(request: Request | str) -> tuple[str, int] | None:
    """The host (name, port) ``request`` (or a URL) connects to, or None for a URL without one (``data:``)
    or a malformed one."""
    try:
        parts = urlparse_cached(request) if isinstance(request, Request) else urlsplit(request)
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 0)
    except ValueError:
        return None
    return (parts.hostname.lower(), port) if parts.hostname else None


def host_label(host: tuple[str, int]) -> str:
    """``example.com`` on a default port, ``example.com:8080`` otherwise."""
    name, port = host
    return name if port in _DEFAULT_PORTS.values() else f"{name}:{port}"


def failure_detail(exc: BaseException) -> str:
    """What went wrong, in a few words: ``HTTP <status>`` for an error response, else the error's first line."""
    response = getattr(exc, "response", None)
    if response is not None:
        return f"HTTP {response.status}"
    return (str(exc) or type(exc).__name__).splitlines()[0]


def new_file_mode() -> int:
    """The mode ``open()`` gives a new file in this process: 0o666 less its umask. (``mkstemp``, which
    writes atomically, gives 0o600: a store that a web server or another user reads needs this.)"""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o022)  # elsewhere, the only way to read it is to set it
    os.umask(umask)
    return 0o666 & ~umask
