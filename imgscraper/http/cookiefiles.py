"""Cookies files: the Netscape ``cookies.txt`` format and the JSON export of cookie-editor extensions.

``cookies.txt`` is what browsers' export extensions, ``curl -c`` and ``wget --save-cookies`` write: a
cookie a line, seven tab-separated fields (domain, include subdomains, path, secure, expiry, name,
value), ``#`` comments, and ``#HttpOnly_`` before the domain of an HttpOnly cookie; an expiry of 0
marks a session cookie. The JSON export of cookie-editor extensions is a list of objects with
``domain``, ``name``, ``value``, ``path``, ``secure``, ``hostOnly``, ``httpOnly``, ``sameSite`` and
``expirationDate`` (absent for a session cookie).

Both are read into :class:`http.cookiejar.Cookie` objects shaped as :class:`http.cookiejar.CookieJar`
makes them from ``Set-Cookie``: a domain cookie's domain has a leading dot, a host-only cookie's is
the host with ``domain_specified`` false (a host name without a dot, such as ``localhost``, gets
http.cookiejar's ``.local`` suffix). :class:`HostOnlyCookiePolicy` sends a host-only cookie to its
host alone, as browsers do.

:class:`http.cookiejar.MozillaCookieJar` is not used: it refuses a file without its exact first line
(wget writes another), takes the expiry 0 of session cookies for a date in 1970 and silently drops
them, and reports a malformed line through a traceback.

Nothing here does I/O but :func:`read_cookies_file` and :func:`write_cookies_file`.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from http.cookiejar import Cookie, DefaultCookiePolicy, eff_request_host
from pathlib import Path
from typing import Any

from imgscraper.exceptions import CookiesFileError

__all__ = [
    "JSON", "NETSCAPE", "CookiesFile", "HostOnlyCookiePolicy", "browser_cookie", "cookie_domain", "describe_cookies",
    "format_cookies", "make_cookie", "parse_cookies", "read_cookies_file", "write_cookies_file",
]

NETSCAPE = "netscape"
JSON = "json"

_HTTP_ONLY = "HttpOnly"
_SAME_SITE = "SameSite"
_HTTP_ONLY_PREFIX = "#HttpOnly_"
_NETSCAPE_LINE = (
    "7 tab-separated fields: domain, include subdomains (TRUE/FALSE), path, secure (TRUE/FALSE),"
    " expiry (Unix time, 0 for a session cookie), name, value"
)
#: cookie-editor's ``sameSite`` values, and the attribute's.
_SAME_SITE_FROM_JSON = {"no_restriction": "None", "lax": "Lax", "strict": "Strict"}
_SAME_SITE_TO_JSON = {value: name for name, value in _SAME_SITE_FROM_JSON.items()}


class HostOnlyCookiePolicy(DefaultCookiePolicy):
    """http.cookiejar's default policy, plus RFC 6265's host-only rule: a cookie set without a
    ``Domain`` (``domain_specified`` false) is returned to its host only, not to its subdomains
    (http.cookiejar's liberal default sends it to them)."""

    def return_ok_domain(self, cookie: Cookie, request: Any) -> bool:
        if not cookie.domain_specified and cookie.domain not in eff_request_host(request):
            return False
        return super().return_ok_domain(cookie, request)


def make_cookie(
    name: str,
    value: str | None,
    domain: str,
    *,
    host_only: bool,
    path: str = "/",
    secure: bool = False,
    expires: float | None = None,
    http_only: bool = False,
    same_site: str = "",
) -> Cookie:
    """A cookie as :class:`http.cookiejar.CookieJar` holds it; ``expires`` None (or 0) for a session cookie."""
    host = domain.lower().lstrip(".")
    if host_only and "." not in host:
        host += ".local"  # http.cookiejar's "effective request-host name" of a host without a dot
    rest: dict[str, str | None] = {}
    if http_only:
        rest[_HTTP_ONLY] = None
    if same_site:
        rest[_SAME_SITE] = same_site
    return Cookie(
        version=0, name=name, value=value, port=None, port_specified=False,
        domain=host if host_only else f".{host}", domain_specified=not host_only, domain_initial_dot=not host_only,
        path=path or "/", path_specified=True, secure=secure,
        expires=int(expires) if expires else None, discard=not expires,
        comment=None, comment_url=None, rest=rest,
    )


def _http_only(cookie: Cookie) -> bool:
    # Set-Cookie attributes keep the case the server wrote.
    return any(cookie.has_nonstandard_attr(name) for name in (_HTTP_ONLY, "httponly", "HTTPOnly", "httpOnly"))


def _same_site(cookie: Cookie) -> str:
    for name in (_SAME_SITE, "samesite", "sameSite"):
        if value := cookie.get_nonstandard_attr(name):
            return str(value).capitalize()
    return ""


def _host_only(cookie: Cookie) -> bool:
    return not cookie.domain.startswith(".")


def cookie_domain(cookie: Cookie) -> str:
    """The domain of ``cookie`` as files and browsers write it: without the ``.local`` suffix
    :func:`make_cookie` gives a host name without a dot."""
    stem = cookie.domain.removesuffix(".local")
    return stem if _host_only(cookie) and "." not in stem else cookie.domain


# Netscape cookies.txt


def _parse_flag(text: str, field: str) -> bool:
    flag = text.strip().upper()
    if flag not in ("TRUE", "FALSE"):
        raise ValueError(f"{field} is {text!r}, not TRUE or FALSE")
    return flag == "TRUE"


def _parse_netscape_line(line: str) -> Cookie:
    http_only = line.startswith(_HTTP_ONLY_PREFIX)
    fields = line.removeprefix(_HTTP_ONLY_PREFIX).split("\t")
    if len(fields) != 7:
        raise ValueError(f"{len(fields)} tab-separated field{'s' if len(fields) != 1 else ''}")
    domain, subdomains, path, secure, expiry, name, value = fields
    if not domain.strip(". "):
        raise ValueError("no domain")
    try:
        expires = int(float(expiry or 0))
    except ValueError:
        raise ValueError(f"expiry is {expiry!r}, not a Unix time") from None
    if name == "":  # curl writes a cookie set as "Set-Cookie: foo" with an empty name
        name, value = value, None
    return make_cookie(
        name, value, domain.strip(), host_only=not (domain.startswith(".") or _parse_flag(subdomains, "include subdomains")),
        path=path, secure=_parse_flag(secure, "secure"), expires=max(expires, 0), http_only=http_only,
    )


def _parse_netscape(text: str) -> list[Cookie]:
    cookies = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or (line.lstrip().startswith("#") and not line.startswith(_HTTP_ONLY_PREFIX)):
            continue
        try:
            cookies.append(_parse_netscape_line(line))
        except ValueError as exc:
            raise CookiesFileError(f"line {number} is not a cookie ({exc}): a cookies.txt line has {_NETSCAPE_LINE}") from None
    return cookies


def _format_netscape(cookies: Iterable[Cookie]) -> str:
    lines = ["# Netscape HTTP Cookie File", "# Written by imgscraper (IMGSCRAPER_COOKIES_SAVE).", ""]
    for cookie in cookies:
        domain = f"{_HTTP_ONLY_PREFIX}{cookie_domain(cookie)}" if _http_only(cookie) else cookie_domain(cookie)
        name, value = (cookie.name, cookie.value) if cookie.value is not None else ("", cookie.name)
        flags = ["FALSE" if _host_only(cookie) else "TRUE", cookie.path, "TRUE" if cookie.secure else "FALSE"]
        lines.append("\t".join([domain, *flags, str(cookie.expires or 0), name, value]))
    return "\n".join(lines) + "\n"


# cookie-editor JSON


def _json_cookie(entry: Any) -> Cookie:
    if not isinstance(entry, dict):
        raise ValueError("not an object")
    name, value, domain = entry.get("name"), entry.get("value", ""), entry.get("domain")
    if not isinstance(name, str):
        raise ValueError("no name")
    if not isinstance(domain, str) or not domain.strip("."):
        raise ValueError("no domain")
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ValueError("its value is not text")
    expires = entry.get("expirationDate")
    if entry.get("session") or expires is None:
        expires = None
    elif not isinstance(expires, (int, float)) or isinstance(expires, bool):
        raise ValueError(f"its expirationDate {expires!r} is not a Unix time")
    host_only = entry.get("hostOnly", not domain.startswith("."))
    return make_cookie(
        name, str(value), domain, host_only=bool(host_only) and not domain.startswith("."),
        path=str(entry.get("path") or "/"), secure=bool(entry.get("secure")), expires=max(expires or 0, 0),
        http_only=bool(entry.get("httpOnly")),
        same_site=_SAME_SITE_FROM_JSON.get(str(entry.get("sameSite", "")).lower(), ""),
    )


def _parse_json(text: str) -> list[Cookie]:
    try:
        entries = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CookiesFileError(f"not valid JSON ({exc})") from None
    if not isinstance(entries, list):
        raise CookiesFileError("JSON, but not a list of cookies as cookie-editor extensions export them")
    cookies = []
    for number, entry in enumerate(entries, 1):
        try:
            cookies.append(_json_cookie(entry))
        except ValueError as exc:
            raise CookiesFileError(
                f"cookie {number} of the list is not a cookie ({exc}): each needs name, value and domain"
            ) from None
    return cookies


def _format_json(cookies: Iterable[Cookie]) -> str:
    entries = []
    for cookie in cookies:
        entry: dict[str, Any] = {
            "domain": cookie_domain(cookie), "hostOnly": _host_only(cookie), "name": cookie.name, "value": cookie.value or "",
            "path": cookie.path, "secure": bool(cookie.secure), "httpOnly": _http_only(cookie),
            "sameSite": _SAME_SITE_TO_JSON.get(_same_site(cookie), "unspecified"), "session": not cookie.expires,
        }
        if cookie.expires:
            entry["expirationDate"] = cookie.expires
        entries.append(entry)
    return json.dumps(entries, indent=2) + "\n"


# Files


def parse_cookies(text: str) -> tuple[str, list[Cookie]]:
    """The format (:data:`NETSCAPE` or :data:`JSON`, told by a leading ``[``) and the cookies of
    ``text``, expired ones included; :class:`CookiesFileError` saying what is wrong with a malformed one."""
    text = text.removeprefix("\ufeff")
    if text.lstrip().startswith("["):
        return JSON, _parse_json(text)
    return NETSCAPE, _parse_netscape(text)


def format_cookies(cookies: Iterable[Cookie], file_format: str) -> str:
    """``cookies`` written in ``file_format`` (:data:`NETSCAPE` or :data:`JSON`)."""
    return _format_json(cookies) if file_format == JSON else _format_netscape(cookies)


@dataclass
class CookiesFile:
    """A cookies file as read: its format, its cookies still valid, and those already expired."""

    path: Path
    format: str
    cookies: list[Cookie]
    expired: list[Cookie]


def read_cookies_file(path: str | os.PathLike[str], now: float | None = None) -> CookiesFile:
    """Read a cookies file (either format); :class:`CookiesFileError` (``<path>: <problem>``) for
    one that cannot be read or is malformed."""
    path = Path(path)
    try:
        file_format, cookies = parse_cookies(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise CookiesFileError(f"{path}: not a text file") from None
    except OSError as exc:
        raise CookiesFileError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except CookiesFileError as exc:
        raise CookiesFileError(f"{path}: {exc}") from None
    now = time.time() if now is None else now
    return CookiesFile(
        path=path,
        format=file_format,
        cookies=[c for c in cookies if not c.is_expired(now)],
        expired=[c for c in cookies if c.is_expired(now)],
    )


def write_cookies_file(path: str | os.PathLike[str], cookies: Iterable[Cookie], file_format: str) -> None:
    """Replace the file at ``path`` (the file a symbolic link points to) with ``cookies``, atomically:
    written to a temporary file beside it, readable by its owner only, then renamed over it."""
    target = Path(os.path.realpath(path))
    text = format_cookies(cookies, file_format)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def describe_cookies(cookies: Iterable[Cookie], with_expiry: bool = False) -> str:
    """``sid (.example.com), theme (example.com)``; ``with_expiry``: ``sid (.example.com, expired 2024-05-01 12:00 UTC)``."""
    parts = []
    for cookie in cookies:
        detail = cookie_domain(cookie)
        if with_expiry and cookie.expires is not None:
            detail += f", expired {datetime.fromtimestamp(cookie.expires, timezone.utc):%Y-%m-%d %H:%M} UTC"
        parts.append(f"{cookie.name} ({detail})")
    return ", ".join(parts)


def browser_cookie(cookie: Cookie) -> dict[str, Any]:
    """``cookie`` as Playwright's ``BrowserContext.add_cookies`` takes it: a domain without a
    leading dot is host-only there too."""
    same_site = _same_site(cookie)
    if same_site == "None" and not cookie.secure:
        same_site = ""  # Chromium refuses SameSite=None without Secure
    entry: dict[str, Any] = {
        "name": cookie.name if cookie.value is not None else "",
        "value": cookie.value if cookie.value is not None else cookie.name,
        "domain": cookie_domain(cookie),
        "path": cookie.path,
        "expires": float(cookie.expires) if cookie.expires else -1,
        "httpOnly": _http_only(cookie),
        "secure": bool(cookie.secure),
    }
    if same_site in ("Strict", "Lax", "None"):
        entry["sameSite"] = same_site
    return entry
