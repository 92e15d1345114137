"""The URLs of discovery: cleaning and resolving what a page wrote, and telling image files by extension."""

from __future__ import annotations

import hashlib
import posixpath
import re
from urllib.parse import urljoin, urlsplit

from w3lib.html import strip_html5_whitespace
from w3lib.url import canonicalize_url

__all__ = [
    "IMAGE_EXTENSIONS",
    "clean_url",
    "has_whitespace",
    "http_url",
    "image_url",
    "image_url_digest",
    "image_url_key",
    "is_image_reference",
    "is_image_url",
    "is_non_image_file",
    "looks_like_url",
    "other_scheme_url",
    "url_extension",
]

#: File extensions (lower case, no dot) that :func:`is_image_url` accepts.
IMAGE_EXTENSIONS = frozenset(
    "jpg jpeg jpe jfif pjpeg png apng gif webp avif bmp tif tiff ico svg svgz"
    " heic heif jxl".split()
)

#: Extensions of files that are never images, though CSS ``url()`` or a
#: ``data-*`` attribute may point at them: fonts, code, documents, media.
_NON_IMAGE_EXTENSIONS = frozenset(
    "woff woff2 ttf otf eot css js mjs json htc htm html xml pdf"
    " mp4 webm ogv ogg mp3 m4a wav mov m3u8".split()
)

_TAB_AND_NEWLINE = str.maketrans("", "", "\t\n\r")
_DATA_IMAGE_URI = re.compile(r"data:[\t\n\f\r ]*image/", re.IGNORECASE)
_HTTP_URL = re.compile(r"https?://", re.IGNORECASE)
#: Three or more slashes where an http(s) URL's authority starts: one host follows.
_EXTRA_SLASHES = re.compile(r"^((?:https?:)?)/{3,}", re.IGNORECASE)
_URL_PREFIXES = ("http://", "https://", "//", "/", "./", "../")
_HAS_WHITESPACE = re.compile(r"[\t\n\f\r ]")


def image_url_key(url: str) -> str:
    """What two references to the same image have in common: the canonical URL (a ``data:`` URL as it is)."""
    return url if url.startswith("data:") else canonicalize_url(url)


def image_url_digest(url: str) -> bytes:
    """8 bytes of the BLAKE2b hash of :func:`image_url_key`: what a crawl keeps to know the image URLs
    it has yielded, whatever their length. Two of a crawl's ten million image URLs share one with a
    chance of about 3 in a million (the later one is then taken for the earlier)."""
    return hashlib.blake2b(image_url_key(url).encode("utf-8", "surrogatepass"), digest_size=8).digest()


def is_image_url(url: str) -> bool:
    """Tell whether the path of *url* (not its query) ends with an image
    file extension from :data:`IMAGE_EXTENSIONS`, in any letter case.

    *url* may be relative.
    """
    return url_extension(url) in IMAGE_EXTENSIONS


def is_image_reference(value: str) -> bool:
    """Whether *value* is a ``data:image/...`` URI or the URL of an image file (:func:`is_image_url`)."""
    return bool(_DATA_IMAGE_URI.match(value)) or is_image_url(value)


def is_non_image_file(url: str) -> bool:
    """Whether *url* names a file that is never an image: a font, a script, a document, a video..."""
    return url_extension(url) in _NON_IMAGE_EXTENSIONS


def url_extension(url: str) -> str:
    """The extension of the path of *url*, lower case, without the dot; empty for none or a malformed URL."""
    try:
        path = urlsplit(url).path
    except ValueError:  # e.g. a malformed IPv6 host
        return ""
    return posixpath.splitext(path)[1][1:].lower()


def has_whitespace(value: str) -> bool:
    """Whether *value* holds HTML whitespace (which no URL written as one value does)."""
    return bool(_HAS_WHITESPACE.search(value))


def looks_like_url(value: str) -> bool:
    """Whether *value* starts as an absolute or path-relative URL and holds no whitespace."""
    return value.startswith(_URL_PREFIXES) and not has_whitespace(value)


def clean_url(value: str) -> str:
    """Remove from *value* the whitespace that browsers ignore in URLs."""
    return strip_html5_whitespace(value).translate(_TAB_AND_NEWLINE)


def http_url(url: str, base_url: str) -> str | None:
    """Return the clean *url* resolved against *base_url*, without fragment
    and with its scheme in lower case, or ``None`` if it is empty,
    fragment-only, not ``http(s)`` or malformed.
    """
    if not url or url.startswith("#"):
        return None
    url = _as_browsers_read(url)
    if not _HTTP_URL.match(url):
        try:
            url = urljoin(base_url, url)
        except ValueError:
            return None
        if not _HTTP_URL.match(url):
            return None
    return _lower_scheme(url.split("#", 1)[0]) if _has_valid_authority(url) else None


def image_url(value: str, base_url: str) -> str | None:
    """Return the URL of the image that *value* references: a ``data:image``
    URI as is but for the case of its scheme, else like :func:`http_url`.
    """
    url = clean_url(value)
    if _DATA_IMAGE_URI.match(url):
        return _lower_scheme(url)
    return http_url(url, base_url)


def other_scheme_url(value: str, base_url: str) -> str | None:
    """Return *value* resolved if its scheme is neither ``http(s)`` nor an image ``data:``."""
    url = clean_url(value)
    if not url or url.startswith("#"):
        return None
    try:
        url = urljoin(base_url, url)
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return None
    return url if scheme and scheme not in ("http", "https") else None


def _as_browsers_read(url: str) -> str:
    """*url* as browsers read an http(s) URL (the WHATWG URL standard): a backslash
    before the query is a slash (``\\images\\a.jpg`` of pages written on Windows), and
    ``https:///host/`` or ``///host/`` names ``host``."""
    if "\\" in url:
        end = min([i for i in (url.find("?"), url.find("#")) if i >= 0] or [len(url)])
        url = url[:end].replace("\\", "/") + url[end:]
    return _EXTRA_SLASHES.sub(r"\1//", url) if "///" in url else url


def _has_valid_authority(url: str) -> bool:
    """Whether *url*'s host and port parse, as Scrapy's ``Request`` parses them
    (``http://[`` and ``https://host:99999`` make no request)."""
    try:
        urlsplit(url).port  # noqa: B018 - reading it is the check
    except ValueError:
        return False
    return True


def _lower_scheme(url: str) -> str:
    scheme, colon, rest = url.partition(":")
    return scheme.lower() + colon + rest
