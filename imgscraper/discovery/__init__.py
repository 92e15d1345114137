"""Find the images an HTML page references, and the pages it links to.

Pure functions over a parsed document, no Scrapy engine involved:
:func:`find_images` lists every image the page references, the way a
browser (plus the usual lazy-loading scripts) would load them, and
:func:`find_page_links` lists the HTML pages worth following.

The building blocks are public too: :func:`parse_srcset` implements the
WHATWG "parse a srcset attribute" algorithm, :func:`pick_srcset` chooses from
its candidates, :func:`css_image_urls` reads ``url()`` and ``image-set()``
values from CSS, and :func:`is_image_url` tells image files by extension.

Nodes are selected with compiled XPath expressions, evaluated by lxml on the
document the :class:`parsel.Selector` already holds: a page costs one parse
and a few tree walks.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from string import ascii_lowercase, ascii_uppercase
from urllib.parse import urljoin, urlsplit

from lxml import etree
from parsel import Selector
from scrapy.linkextractors import IGNORED_EXTENSIONS
from w3lib.html import HTML5_WHITESPACE, strip_html5_whitespace
from w3lib.url import canonicalize_url

from imgscraper.settingspec import SRCSET_MODES as _SRCSET_MODES

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageRef",
    "SrcsetCandidate",
    "css_image_urls",
    "css_import_urls",
    "find_css_images",
    "find_frames",
    "find_images",
    "find_page_links",
    "find_page_title",
    "find_stylesheets",
    "image_url_key",
    "is_image_url",
    "parse_srcset",
    "pick_srcset",
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

#: Extensions of links that are files to download, not pages to read.
_NON_PAGE_EXTENSIONS = frozenset(IGNORED_EXTENSIONS) | {"gz", "tgz", "bz2", "xz", "zst", "csv", "epub", "mkv", "flac"}


@dataclass(frozen=True)
class ImageRef:
    """An image referenced by a page.

    ``url`` is absolute (``http``/``https``, without fragment) or a
    ``data:image/...`` URI. ``source`` says how the page referenced it:
    ``img`` (``<img src>``, ``<picture><source src>``, ``<object data>``,
    ``<embed src>``), ``srcset``, ``lazy`` (a ``data-*`` attribute),
    ``noscript`` (anything inside ``<noscript>``), ``link-href`` (an
    ``<a href>`` or ``<area href>`` to an image file), ``css`` (``url()`` in
    a ``style`` attribute or ``<style>``, or a ``background`` attribute),
    ``meta`` (``<meta>`` such as ``og:image``, or JSON-LD), ``link``
    (``<link>`` icons, ``image_src`` and image preloads), ``input``
    (``<input type=image>``), ``svg`` (SVG ``<image>`` and ``<use>``),
    ``poster`` (``<video poster>``) or ``start`` (the spider's: a start URL
    that is an image).

    The context, whitespace-collapsed and empty when there is none: ``alt``
    and ``title`` of the referencing element (for a ``<picture><source>``,
    of the picture's ``<img>``; for an ``<a href>`` to an image, the alt text
    of the ``<img>`` inside the link), ``caption`` (the ``<figcaption>`` of
    the enclosing ``<figure>``) and ``srcset_descriptor``, the descriptor of
    the ``srcset`` candidate chosen (``800w``, ``2x``; ``1x`` when it had
    none).
    """

    url: str
    source: str
    alt: str = ""
    title: str = ""
    caption: str = ""
    srcset_descriptor: str = ""


@dataclass(frozen=True)
class SrcsetCandidate:
    """One image candidate of a ``srcset`` attribute.

    ``url`` is as written (not resolved). At most one of ``width`` (a ``w``
    descriptor) and ``density`` (an ``x`` descriptor) is set; neither means
    the implicit ``1x``.
    """

    url: str
    width: int | None = None
    density: float | None = None

    @property
    def descriptor(self) -> str:
        """The descriptor as written in a srcset: ``800w``, ``1.5x``, ``1x`` for none."""
        if self.width is not None:
            return f"{self.width}w"
        return f"{1.0 if self.density is None else self.density:g}x"


def find_images(
    document: Selector | str,
    base_url: str,
    *,
    srcset: str = "largest",
    scripts: bool = True,
    ignored: list[str] | None = None,
) -> list[ImageRef]:
    """Return every image *document* references, each URL once.

    *document* is HTML text or an already parsed :class:`parsel.Selector`
    (e.g. ``response.selector``), whose whole document is searched.
    *base_url* is the page URL; a ``<base href>`` in the document overrides
    it. *srcset* is the :func:`pick_srcset` mode applied to each
    ``srcset``-like attribute.

    Images come grouped by kind of reference: ``<meta>`` and ``<link>``
    first, then ``<img>``, ``srcset``, ``data-*`` attributes, CSS, JSON-LD,
    ``<a href>``, image file URLs quoted in inline scripts (with *scripts*:
    the galleries and state that scripts turn into images), and
    ``<noscript>`` content last; each kind in document order. The first
    reference to a URL sets its :attr:`ImageRef.source` and
    ``srcset_descriptor``; its ``alt``, ``title`` and ``caption`` are the
    first non-empty ones of its references.

    Values that are empty, fragment-only, malformed (``http://[``, a port
    over 65535), or resolve to anything but an ``http(s)`` URL or a
    ``data:image/...`` URI are ignored; when *ignored*
    is a list, the resolved URLs dropped for their scheme (``file:``,
    ``ftp:``, ``javascript:``, non-image ``data:``...) are appended to it.
    URLs are kept as the page spells them once resolved (no
    percent-encoding).
    """
    if srcset not in _SRCSET_MODES:
        raise ValueError(f"srcset must be one of {_SRCSET_MODES}, got {srcset!r}")
    root = _as_selector(document).root
    base_url = _document_base_url(root, base_url)
    images: dict[str, ImageRef] = {}
    resolved: dict[str, str | None] = {}
    finders = _IMAGE_FINDERS + _SCRIPT_FINDERS if scripts else _IMAGE_FINDERS
    for source, value, element, descriptor in _image_references(root, srcset, finders):
        if value in resolved:
            url = resolved[value]
        else:
            url = resolved[value] = _image_url(value, base_url)
            if url is None and ignored is not None:
                other = _other_scheme_url(value, base_url)
                if other:
                    ignored.append(other)
        if url is None:
            continue
        ref = images.get(url)
        if ref is None:
            images[url] = ImageRef(url, source, *_image_context(element), srcset_descriptor=descriptor)
        elif not (ref.alt and ref.title and ref.caption):
            alt, title, caption = _image_context(element)
            images[url] = replace(ref, alt=ref.alt or alt, title=ref.title or title, caption=ref.caption or caption)
    return list(images.values())


def find_page_title(document: Selector | str) -> str:
    """The text of the document's ``<title>`` (not an SVG's), whitespace-collapsed; empty if none."""
    titles = _PAGE_TITLE(_as_selector(document).root)
    return _text(titles[0]) if titles else ""


def find_page_links(document: Selector | str, base_url: str) -> list[str]:
    """Return the HTML pages *document* links to, each once, in order.

    These are the absolute ``http(s)`` URLs of ``<a href>``, ``<area
    href>``, ``<iframe src>`` and ``<frame src>`` that are not image files
    (see :func:`is_image_url`) nor other files by their extension
    (Scrapy's ``IGNORED_EXTENSIONS``: documents, archives, media,
    programs), without fragment. ``javascript:``, ``mailto:``, ``tel:``,
    ``data:`` and other schemes are ignored.
    """
    return _page_urls(_as_selector(document).root, base_url, _PAGE_LINKS)


def find_frames(document: Selector | str, base_url: str) -> list[str]:
    """Return the pages *document* shows inside itself (``<iframe src>``,
    ``<frame src>``), each once, in order, filtered like :func:`find_page_links`."""
    return _page_urls(_as_selector(document).root, base_url, _FRAMES)


def _page_urls(root: etree._Element, base_url: str, xpath: etree.XPath) -> list[str]:
    base_url = _document_base_url(root, base_url)
    links: dict[str, None] = {}
    for value in xpath(root):
        url = _http_url(_clean_url(value), base_url)
        if url and not is_image_url(url) and _extension(url) not in _NON_PAGE_EXTENSIONS:
            links[url] = None
    return list(links)


def find_stylesheets(document: Selector | str, base_url: str) -> list[str]:
    """Return the external style sheets *document* loads, each once, in order.

    These are the absolute ``http(s)`` URLs of ``<link rel="stylesheet">``
    (and ``<link rel="preload" as="style">``), then of the ``@import`` rules
    of ``<style>`` blocks. Browsers load the background images these sheets
    name: :func:`find_css_images` reads them.
    """
    root = _as_selector(document).root
    base_url = _document_base_url(root, base_url)
    sheets: dict[str, None] = {}
    for value in _STYLESHEET_LINKS(root):
        url = _http_url(_clean_url(value), base_url)
        if url:
            sheets[url] = None
    for css in _STYLE_IMPORTS(root):
        sheets.update(dict.fromkeys(css_import_urls(css, base_url)))
    return list(sheets)


def find_css_images(css: str, base_url: str) -> list[ImageRef]:
    """Return the images the style sheet *css* references, each once.

    *base_url* is the sheet's own URL, which its relative URLs resolve
    against. Fonts and other files that are never images are left out; the
    source of every result is ``"stylesheet"``.
    """
    images: dict[str, ImageRef] = {}
    for value in _css_image_urls(css, "all"):
        url = _image_url(value, base_url)
        if url and url not in images:
            images[url] = ImageRef(url, "stylesheet")
    return list(images.values())


def css_import_urls(css: str, base_url: str) -> list[str]:
    """Return the absolute ``http(s)`` URLs of the style sheets that *css* imports."""
    urls: dict[str, None] = {}
    for match in _CSS_IMPORT.finditer(css):
        url = _http_url(_clean_url(_css_unescape(next(g for g in match.groups() if g is not None))), base_url)
        if url:
            urls[url] = None
    return list(urls)


def image_url_key(url: str) -> str:
    """What two references to the same image have in common: the canonical URL (a ``data:`` URL as it is)."""
    return url if url.startswith("data:") else canonicalize_url(url)


def is_image_url(url: str) -> bool:
    """Tell whether the path of *url* (not its query) ends with an image
    file extension from :data:`IMAGE_EXTENSIONS`, in any letter case.

    *url* may be relative.
    """
    return _extension(url) in IMAGE_EXTENSIONS


def parse_srcset(value: str) -> list[SrcsetCandidate]:
    """Parse a ``srcset`` attribute value into its valid candidates.

    This is the WHATWG HTML "parse a srcset attribute" algorithm
    (https://html.spec.whatwg.org/multipage/images.html#parsing-a-srcset-attribute):
    a URL is a run of non-whitespace characters, so it may contain commas,
    except that trailing commas end the candidate; descriptors run up to the
    next comma outside parentheses. Candidates with invalid descriptors
    (unknown, repeated, both ``w`` and ``x``, zero width, negative density,
    ``h`` without ``w``, ...) are dropped. ``h`` descriptors are validated,
    then ignored.
    """
    candidates = []
    position = 0
    while match := _SRCSET_URL.match(value, position):
        url = match["url"]
        position = match.end()
        if url.endswith(","):
            url = url.rstrip(",")
            descriptors = []
        else:
            match = _SRCSET_DESCRIPTORS.match(value, position)
            position = match.end()
            descriptors = _SRCSET_DESCRIPTOR.findall(match["descriptors"])
        candidate = _srcset_candidate(url, descriptors)
        if candidate is not None:
            candidates.append(candidate)
    return candidates


def pick_srcset(
    candidates: Sequence[SrcsetCandidate], mode: str = "largest"
) -> list[str]:
    """Return the URLs of the *candidates* to download.

    ``"largest"`` picks the one candidate with the largest width (``w``) or,
    when no candidate has a width, the largest density (``x``, no descriptor
    counting as ``1x``); the first wins a tie. ``"all"`` returns every
    candidate's URL.
    """
    return [candidate.url for candidate in _pick_candidates(candidates, mode)]


def _pick_candidates(candidates: Sequence[SrcsetCandidate], mode: str) -> list[SrcsetCandidate]:
    if mode == "all":
        return list(candidates)
    if mode != "largest":
        raise ValueError(f"mode must be one of {_SRCSET_MODES}, got {mode!r}")
    if not candidates:
        return []
    if widths := [c for c in candidates if c.width is not None]:
        return [max(widths, key=lambda c: c.width)]
    return [max(candidates, key=lambda c: 1.0 if c.density is None else c.density)]


def css_image_urls(css: str) -> list[str]:
    """Return the raw ``url()`` values of *css*, in order.

    *css* is a style sheet or the declarations of a ``style`` attribute.
    Values are unquoted, stripped of whitespace and CSS escapes are decoded,
    but they are not resolved nor otherwise filtered. Plain strings inside
    ``image-set()`` and ``-webkit-image-set()`` count as URLs. Comments and
    strings are skipped, and so are the ``url()`` values of ``@import``,
    ``@namespace`` and ``@font-face``, which are never images.
    """
    return list(_css_urls(css))


# --- Documents and URLs ------------------------------------------------------

_TAB_AND_NEWLINE = str.maketrans("", "", "\t\n\r")
_DATA_IMAGE_URI = re.compile(r"data:[\t\n\f\r ]*image/", re.IGNORECASE)
_HTTP_URL = re.compile(r"https?://", re.IGNORECASE)


def _as_selector(document: Selector | str) -> Selector:
    return document if isinstance(document, Selector) else Selector(text=document)


def _document_base_url(root: etree._Element, page_url: str) -> str:
    """Return the URL that relative URLs of the document resolve against:
    the first ``<base href>``, itself resolved against *page_url*.
    """
    hrefs = _BASE_HREF(root)
    href = strip_html5_whitespace(hrefs[0]) if hrefs else ""
    try:
        return urljoin(page_url, href) if href else page_url
    except ValueError:  # a malformed one (http://[): browsers ignore it too
        return page_url


def _clean_url(value: str) -> str:
    """Remove from *value* the whitespace that browsers ignore in URLs."""
    return strip_html5_whitespace(value).translate(_TAB_AND_NEWLINE)


#: Three or more slashes where an http(s) URL's authority starts: one host follows.
_EXTRA_SLASHES = re.compile(r"^((?:https?:)?)/{3,}", re.IGNORECASE)


def _as_browsers_read(url: str) -> str:
    """*url* as browsers read an http(s) URL (the WHATWG URL standard): a backslash
    before the query is a slash (``\\images\\a.jpg`` of pages written on Windows), and
    ``https:///host/`` or ``///host/`` names ``host``."""
    if "\\" in url:
        end = min([i for i in (url.find("?"), url.find("#")) if i >= 0] or [len(url)])
        url = url[:end].replace("\\", "/") + url[end:]
    return _EXTRA_SLASHES.sub(r"\1//", url) if "///" in url else url


def _http_url(url: str, base_url: str) -> str | None:
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


def _has_valid_authority(url: str) -> bool:
    """Whether *url*'s host and port parse, as Scrapy's ``Request`` parses them
    (``http://[`` and ``https://host:99999`` make no request)."""
    try:
        urlsplit(url).port  # noqa: B018 - reading it is the check
    except ValueError:
        return False
    return True


def _image_url(value: str, base_url: str) -> str | None:
    """Return the URL of the image that *value* references: a ``data:image``
    URI as is but for the case of its scheme, else like :func:`_http_url`.
    """
    url = _clean_url(value)
    if _DATA_IMAGE_URI.match(url):
        return _lower_scheme(url)
    return _http_url(url, base_url)


def _lower_scheme(url: str) -> str:
    scheme, colon, rest = url.partition(":")
    return scheme.lower() + colon + rest


def _other_scheme_url(value: str, base_url: str) -> str | None:
    """Return *value* resolved if its scheme is neither ``http(s)`` nor an image ``data:``."""
    url = _clean_url(value)
    if not url or url.startswith("#"):
        return None
    try:
        url = urljoin(base_url, url)
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return None
    return url if scheme and scheme not in ("http", "https") else None


def _extension(url: str) -> str:
    try:
        path = urlsplit(url).path
    except ValueError:  # e.g. a malformed IPv6 host
        return ""
    return posixpath.splitext(path)[1][1:].lower()


def _is_image_reference(value: str) -> bool:
    return bool(_DATA_IMAGE_URI.match(value)) or is_image_url(value)


def _is_non_image_file(url: str) -> bool:
    return _extension(url) in _NON_IMAGE_EXTENSIONS


# --- srcset ------------------------------------------------------------------

# Whitespace and commas, then the URL: a run of non-whitespace characters.
_SRCSET_URL = re.compile(r"[\t\n\f\r ,]*(?P<url>[^\t\n\f\r ,][^\t\n\f\r ]*)")
# Descriptors run to a comma outside parentheses, which is consumed.
_SRCSET_DESCRIPTORS = re.compile(r"(?P<descriptors>(?:[^,(]|\([^)]*\)?)*),?")
_SRCSET_DESCRIPTOR = re.compile(r"(?:[^\t\n\f\r (]|\([^)]*\)?)+")
_NON_NEGATIVE_INTEGER = re.compile(r"[0-9]+")
_FLOATING_POINT_NUMBER = re.compile(
    r"-?(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
)


def _srcset_candidate(url: str, descriptors: list[str]) -> SrcsetCandidate | None:
    """Return the candidate, or ``None`` if its *descriptors* are invalid."""
    width = density = height = None
    for descriptor in descriptors:
        number, kind = descriptor[:-1], descriptor[-1]
        if (
            kind == "w"
            and width is None
            and density is None
            and _NON_NEGATIVE_INTEGER.fullmatch(number)
            and int(number) > 0
        ):
            width = int(number)
        elif (
            kind == "x"
            and width is None
            and density is None
            and height is None
            and _FLOATING_POINT_NUMBER.fullmatch(number)
            and float(number) >= 0
        ):
            density = float(number)
        elif (
            kind == "h"
            and height is None
            and density is None
            and _NON_NEGATIVE_INTEGER.fullmatch(number)
            and int(number) > 0
        ):
            height = int(number)
        else:
            return None
    if height is not None and width is None:
        return None
    return SrcsetCandidate(url, width, density)


# --- CSS ---------------------------------------------------------------------

_CSS_WHITESPACE = r"[\t\n\f\r ]"
# What strings hold between their double or single quotes. Quantifiers are
# possessive (*+) throughout, to keep the regex linear on malformed CSS.
_CSS_DOUBLE_QUOTED = r'(?:[^"\\\n\r\f]|\\(?:\r\n|[\s\S]))*+'
_CSS_SINGLE_QUOTED = r"(?:[^'\\\n\r\f]|\\(?:\r\n|[\s\S]))*+"
_CSS_STRING = f"\"{_CSS_DOUBLE_QUOTED}\"|'{_CSS_SINGLE_QUOTED}'"
# Characters of an unquoted url(): no quotes, parentheses, whitespace nor
# non-printables, and backslashes only to escape.
_CSS_URL_CHARACTER = (
    r"""[^"'()\\\t\n\f\r \x00-\x08\x0b\x0e-\x1f\x7f]"""
    r"|\\[0-9a-fA-F]{1,6}(?:\r\n|[\t\n\f\r ])?"
    r"|\\[^\n\r\f]"
)
# The arguments of image-set(), which may hold url() and type() calls.
_CSS_IMAGE_SET_ARGUMENTS = (
    rf"""(?:[^()"';{{}}]|{_CSS_STRING}|\((?:[^()"';{{}}]|{_CSS_STRING})*+\))*+"""
)
# The CSS tokens that matter here; what does not match is skipped. Every
# alternative starts with a punctuation character, so that the regex engine
# can skip the text in between fast, which is why function names are looked
# for behind their "(". A string missing its closing quote ends at the end
# of its line.
_CSS_TOKENS = re.compile(
    rf"""
    /\*.*?(?:\*/|\Z)
  | @(?:import|namespace)\b(?:[^;{{}}"']|{_CSS_STRING})*+
  | @font-face{_CSS_WHITESPACE}*+\{{(?:[^}}"']|{_CSS_STRING})*+\}}?
  | "(?P<double_quoted>{_CSS_DOUBLE_QUOTED})"?
  | '(?P<single_quoted>{_CSS_SINGLE_QUOTED})'?
  | \((?<=(?<![\w-])type\() {_CSS_WHITESPACE}*+(?:{_CSS_STRING}){_CSS_WHITESPACE}*+\)
  | \((?<=(?<![\w-])url\() {_CSS_WHITESPACE}*+
        (?:(?P<quoted_url>{_CSS_STRING})|(?P<url>(?:{_CSS_URL_CHARACTER})*+))
        {_CSS_WHITESPACE}*+\)
  | \((?:(?<=(?<![\w-])image-set\()|(?<=(?<![\w-])-webkit-image-set\())
        (?P<image_set>{_CSS_IMAGE_SET_ARGUMENTS})\)
    """,
    re.IGNORECASE | re.DOTALL | re.VERBOSE,
)
_CSS_IMPORT = re.compile(
    rf"""@import{_CSS_WHITESPACE}++(?:url\({_CSS_WHITESPACE}*+)?
        (?:"([^"]*)"|'([^']*)'|([^\t\n\f\r ;'"()]++))""",
    re.IGNORECASE | re.VERBOSE,
)
_CSS_ESCAPE = re.compile(
    r"""\\(?:
        (?P<hex>[0-9a-fA-F]{1,6})(?:\r\n|[\t\n\f\r ])?
      | (?P<newline>\r\n|[\n\r\f])
      | (?P<char>.)
    )""",
    re.DOTALL | re.VERBOSE,
)


def _css_urls(css: str, in_image_set: bool = False) -> Iterator[str]:
    """Yield the URLs of *css*, strings included when *in_image_set*."""
    for match in _CSS_TOKENS.finditer(css):
        kind = match.lastgroup
        if kind == "url":
            yield _css_unescape(match["url"])
        elif kind == "quoted_url":
            yield _css_unescape(match[kind][1:-1]).strip(HTML5_WHITESPACE)
        elif kind in ("double_quoted", "single_quoted") and in_image_set:
            yield _css_unescape(match[kind]).strip(HTML5_WHITESPACE)
        elif kind == "image_set":
            yield from _css_urls(match["image_set"], in_image_set=True)


def _css_unescape(text: str) -> str:
    return _CSS_ESCAPE.sub(_css_escaped_character, text) if "\\" in text else text


def _css_escaped_character(match: re.Match[str]) -> str:
    if match["newline"]:
        return ""  # an escaped newline continues a string on the next line
    if match["char"]:
        return match["char"]
    code_point = int(match["hex"], 16)
    if code_point == 0 or 0xD800 <= code_point <= 0xDFFF or code_point > 0x10FFFF:
        return "\ufffd"
    return chr(code_point)


# --- JSON --------------------------------------------------------------------

#: JSON-LD (schema.org) properties whose values are images.
_JSON_LD_IMAGE_KEYS = frozenset({"image", "thumbnailUrl", "thumbnail", "logo"})
#: Properties of an ImageObject that hold its URL.
_JSON_LD_URL_KEYS = frozenset({"url", "contentUrl"})


def _load_json(text: str) -> object:
    try:
        return json.loads(text, strict=False)  # tolerate raw newlines in strings
    except (ValueError, RecursionError):
        return None


def _json_strings(data: object) -> Iterator[str]:
    """Yield every string nested in *data*, in order."""
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            yield node
        elif isinstance(node, dict):
            stack.extend(reversed(node.values()))
        elif isinstance(node, list):
            stack.extend(reversed(node))


def _json_ld_image_urls(data: object) -> Iterator[str]:
    """Yield the image URLs of JSON-LD *data*, in order.

    Those are the strings, or lists of strings, of the properties ``image``,
    ``thumbnailUrl``, ``thumbnail`` and ``logo``, and the ``url`` and
    ``contentUrl`` of ImageObjects: objects typed so, or the value of one of
    those properties.
    """
    stack = [(data, False)]  # (node, whether it is the value of an image property)
    while stack:
        node, is_image = stack.pop()
        if isinstance(node, str):
            if is_image:
                yield node
        elif isinstance(node, list):
            stack.extend((item, is_image) for item in reversed(node))
        elif isinstance(node, dict):
            is_image_object = is_image or _is_image_object(node)
            stack.extend(
                (
                    value,
                    key in _JSON_LD_IMAGE_KEYS
                    or (is_image_object and key in _JSON_LD_URL_KEYS),
                )
                for key, value in reversed(node.items())
            )


def _is_image_object(data: dict) -> bool:
    types = data.get("@type")
    types = types if isinstance(types, list) else [types]
    return any(
        isinstance(type_, str) and type_.endswith("ImageObject") for type_ in types
    )


# --- Reading image references ------------------------------------------------

#: What the XPath expressions below return: lxml "smart strings", which know
#: the attribute (``attrname``) or text of which element (``getparent()``)
#: they are.
_SmartString = etree._ElementUnicodeResult
#: Reads the raw image URLs from one XPath result, given the srcset mode
#: (the chosen srcset candidates, for srcset values).
_Reader = Callable[[_SmartString, str], Iterable[str | SrcsetCandidate]]


def _url(value: _SmartString, srcset_mode: str) -> list[str]:
    return [value]


def _image_file_url(value: _SmartString, srcset_mode: str) -> list[str]:
    return [value] if is_image_url(value) else []


def _srcset_urls(value: _SmartString, srcset_mode: str) -> list[SrcsetCandidate]:
    return _pick_candidates(parse_srcset(value), srcset_mode)


def _css_image_urls(css: _SmartString, srcset_mode: str) -> list[str]:
    return [url for url in _css_urls(css) if not _is_non_image_file(url)]


def _json_ld_urls(text: _SmartString, srcset_mode: str) -> list[str]:
    return list(_json_ld_image_urls(_load_json(text)))


def _srcdoc_urls(html: _SmartString, srcset_mode: str) -> list[str]:
    """The image references of the document an ``<iframe srcdoc>`` holds
    (its relative URLs resolve against the page's, as a browser's do)."""
    if not html.strip():
        return []
    return [url for _, url, _, _ in _image_references(Selector(text=str(html)).root, srcset_mode)]


_IMAGE_EXTENSION_GROUP = "(?:%s)" % "|".join(sorted(IMAGE_EXTENSIONS, key=len, reverse=True))
#: A quoted string of a script (JavaScript, JSON, a template) ending with an image file
#: extension, maybe followed by a query: no whitespace, quote, angle bracket or template
#: brace inside (the closing quote may be escaped: HTML inside a JSON string).
_SCRIPT_IMAGE_STRING = re.compile(
    r"""["'`]([^"'`\s<>{}]{1,2000}?\.%s(?:[?#][^"'`\s<>{}]{0,2000})?)\\?["'`]""" % _IMAGE_EXTENSION_GROUP,
    re.IGNORECASE,
)
#: CSS ``url(...)`` of an image file inside a script's strings
#: (``el.style.backgroundImage = "url(/img/hero.jpg)"``).
_SCRIPT_CSS_URL = re.compile(
    r"""url\(\s*(?:\\?["'])?([^"'`\s<>{}()]{1,2000}?\.%s(?:[?#][^"'`\s<>{}()]{0,2000})?)(?:\\?["'])?\s*\)"""
    % _IMAGE_EXTENSION_GROUP,
    re.IGNORECASE,
)
#: Escapes of "/" and "&" that JSON and JavaScript strings use in URLs.
_SCRIPT_ESCAPES = re.compile(r"\\/|\\u002[fF]|\\u0026")


def _script_image_urls(text: _SmartString, srcset_mode: str) -> list[str]:
    """The image file URLs quoted in a script: absolute, or relative with a leading
    ``/``, ``./`` or ``../`` (a bare file name is more often a setting than an image)."""
    urls = []
    for match in _SCRIPT_IMAGE_STRING.finditer(text):
        url = _unescape_script_url(match[1])
        if _looks_like_url(url) and is_image_url(url):
            urls.append(url)
    if "url(" in text:
        urls += [url for match in _SCRIPT_CSS_URL.finditer(text) if is_image_url(url := _unescape_script_url(match[1]))]
    return urls


def _unescape_script_url(url: str) -> str:
    # A query runs up to the closing quote, which may be escaped (\").
    return _SCRIPT_ESCAPES.sub(lambda m: "&" if m[0].endswith("26") else "/", url).rstrip("\\")


# --- data-* attributes -------------------------------------------------------

#: Attributes of lazy-loading scripts that hold an image URL.
_LAZY_ATTRIBUTES = frozenset(
    {
        "data-src",
        "data-original",
        "data-lazy-src",
        "data-lazy",
        "data-url",
        "data-hi-res-src",
        "data-full-src",
        "data-zoom-image",
        "data-large_image",
        "data-bg",
        "data-background",
        "data-background-image",
        "data-image",
        "data-echo",
    }
)
#: Words that make a data-* attribute name look like it holds an image.
_IMAGE_WORDS = re.compile("src|img|image|bg|background|original|lazy|thumb|full|zoom")
#: Names of data-* attributes holding a srcset (vanilla-lazyload's ``data-original-set``).
_SRCSET_NAME = re.compile("srcset|-set$")
#: Where a list of URLs splits: lozad's ``data-background-image="a.jpg,b.jpg"``,
#: bLazy's ``data-src="small.jpg|retina.jpg"``. A comma counts only before the start
#: of a URL: image CDNs put commas inside their paths (``/w_200,h_100/``).
_URL_LIST_SEPARATOR = re.compile(r"[\t\n\f\r ]*[|,][\t\n\f\r ]*(?=(?:https?:)?//|\.{0,2}/)")
#: lazysizes' bgset: srcsets separated by "|", each with an optional "[media]" after it.
_BGSET_SET = re.compile(r"(?P<srcset>[^|\[]*)(?:\[[^\]]*\]?)?[^|]*\|?")
#: Elements whose data-* URLs are for videos, frames, scripts and such,
#: unless they name an image file.
_NON_IMAGE_ELEMENTS = frozenset(
    "iframe frame script video audio track embed object link meta".split()
)
_IMAGE_ELEMENTS = frozenset({"img", "amp-img", "amp-anim", "source"})
_URL_PREFIXES = ("http://", "https://", "//", "/", "./", "../")
_HAS_WHITESPACE = re.compile(r"[\t\n\f\r ]")
#: <img> attributes read elsewhere or holding text (``alt="IMG_0042.JPG"`` is a caption).
_IMG_NON_URL_ATTRIBUTES = frozenset({"src", "srcset", "alt", "title", "longdesc", "class", "id", "style"})


def _data_attribute_urls(attribute: _SmartString, srcset_mode: str) -> list[str]:
    """Return the image URLs in the value of a ``data-*`` *attribute*."""
    name, tag = attribute.attrname, attribute.getparent().tag
    value = strip_html5_whitespace(attribute)
    if value.startswith(("{", "[")):
        return [
            url for url in _json_strings(_load_json(value)) if _is_image_reference(url)
        ]
    if "bgset" in name:
        return [
            url
            for match in _BGSET_SET.finditer(value)
            for url in _pick_candidates(parse_srcset(match["srcset"]), srcset_mode)
        ]
    if "url(" in value.lower():  # CSS: url(a.jpg), url(b.jpg); background-image: url(c.jpg)
        urls = list(_css_urls(value))
    elif _SRCSET_NAME.search(name):
        candidates = [c for c in _pick_candidates(parse_srcset(value), srcset_mode) if not _is_non_image_file(c.url)]
        if not any(_WIDTH_PLACEHOLDER in c.url for c in candidates):
            return candidates
        urls = [c.url for c in candidates]
    else:
        urls = [
            url
            for url in _URL_LIST_SEPARATOR.split(value)
            if _is_image_reference(url) or (_names_image_attribute(tag, name) and _looks_like_url(url))
        ]
    urls = [url for url in urls if not _is_non_image_file(url)]
    if any(_WIDTH_PLACEHOLDER in url for url in urls):
        return _fill_width(urls, attribute.getparent().get("data-widths"), srcset_mode)
    return urls


#: lazysizes' rias plugin (Shopify themes): ``data-src="photo_{width}x.jpg"`` and
#: ``data-widths="[180, 360, 540]"`` on the same element.
_WIDTH_PLACEHOLDER = "{width}"


def _fill_width(urls: list[str], widths_value: str | None, srcset_mode: str) -> list[str]:
    """*urls* with their ``{width}`` replaced by the largest of the element's ``data-widths``
    (each of them for ``"all"``); a URL left with the placeholder cannot be fetched."""
    widths = _load_json(widths_value or "")
    widths = sorted({w for w in widths if isinstance(w, int) and w > 0}) if isinstance(widths, list) else []
    if srcset_mode == "largest":
        widths = widths[-1:]
    filled = []
    for url in urls:
        filled += [url.replace(_WIDTH_PLACEHOLDER, str(w)) for w in widths] if _WIDTH_PLACEHOLDER in url else [url]
    return filled


def _other_img_attribute_urls(attribute: _SmartString, srcset_mode: str) -> list[str]:
    """Return the image file URL an ``<img>`` attribute other than ``src``,
    ``srcset`` and ``data-*`` holds, if any (the srcset's, if its name says so)."""
    if attribute.attrname.startswith(("on", "aria-")):
        return []
    if "srcset" in attribute.attrname:  # NitroPack's nitro-lazy-srcset
        return _pick_candidates(parse_srcset(attribute), srcset_mode)
    value = strip_html5_whitespace(attribute)
    return [value] if is_image_url(value) and not _HAS_WHITESPACE.search(value) else []


def _names_image_attribute(tag: str, name: str) -> bool:
    """Tell whether the ``data-*`` attribute *name* of a *tag* element is
    likely to hold an image URL. ``data-url`` counts on images only: on
    other elements it is mostly a share or navigation link.
    """
    if tag in _NON_IMAGE_ELEMENTS:
        return False
    if name == "data-url":
        return tag in _IMAGE_ELEMENTS
    return name in _LAZY_ATTRIBUTES or bool(_IMAGE_WORDS.search(name, len("data-")))


def _looks_like_url(value: str) -> bool:
    return value.startswith(_URL_PREFIXES) and not _HAS_WHITESPACE.search(value)


# --- Finding image references ------------------------------------------------


def _lower(expression: str) -> str:
    return f"translate({expression}, '{ascii_uppercase}', '{ascii_lowercase}')"


def _is_one_of(expression: str, values: Iterable[str]) -> str:
    """XPath test: the lower-cased *expression* is one of *values*."""
    return " or ".join(f"{_lower(expression)} = '{value}'" for value in values)


_META_IMAGE_NAMES = (
    "og:image",
    "og:image:url",
    "og:image:secure_url",
    "twitter:image",
    "twitter:image:src",
    "msapplication-tileimage",
)
_ITEMPROP_IMAGES = ("image", "thumbnailurl", "logo")
_META_IMAGES = " or ".join(
    [
        _is_one_of("@property", _META_IMAGE_NAMES),
        _is_one_of("@name", _META_IMAGE_NAMES),
        _is_one_of("@itemprop", _ITEMPROP_IMAGES),
    ]
)
_LINK_IMAGES = " or ".join(
    [
        f"contains({_lower('@rel')}, 'icon')",  # icon, apple-touch-icon, mask-icon...
        f"contains({_lower('@rel')}, 'image')",  # image_src, apple-touch-startup-image
        _is_one_of("@as", ["image"]),
        _is_one_of("@itemprop", _ITEMPROP_IMAGES),
    ]
)
_XLINK_HREF = "@*[name() = 'xlink:href']"

#: Where pages reference images: (source, XPath, reader of its results), in
#: the order find_images() reports them. Each XPath is evaluated on its own:
#: libxml2 merges the results of a union in quadratic time.
_IMAGE_FINDERS: tuple[tuple[str, etree.XPath, _Reader], ...] = (
    ("meta", etree.XPath(f"//meta[{_META_IMAGES}]/@content"), _url),
    ("link", etree.XPath(f"//link[{_LINK_IMAGES}]/@href"), _url),
    # Browsers fetch prefetched resources too: the next slide, the next page's hero.
    ("link", etree.XPath(f"//link[contains({_lower('@rel')}, 'prefetch')]/@href"), _image_file_url),
    (
        "link",
        etree.XPath(f"//link[{_is_one_of('@as', ['image'])}]/@imagesrcset"),
        _srcset_urls,
    ),
    # libxml2 does not know <source> is void: a <source> may hold the next.
    ("img", etree.XPath("//img/@src | //amp-img/@src | //amp-anim/@src | //picture//source/@src"), _url),
    ("srcset", etree.XPath("//@srcset"), _srcset_urls),
    ("input", etree.XPath(f"//input[{_is_one_of('@type', ['image'])}]/@src"), _url),
    ("poster", etree.XPath("//video/@poster"), _url),
    (
        "svg",
        etree.XPath(
            f"//image/@href | //image/{_XLINK_HREF} | //use/@href | //use/{_XLINK_HREF}"
        ),
        _url,
    ),
    ("img", etree.XPath("//object/@data | //embed/@src"), _image_file_url),
    (
        "lazy",
        # Every image URL has a "/" or a ".", most data-* values have neither.
        etree.XPath(
            "//@*[starts-with(name(), 'data-')][contains(., '/') or contains(., '.')]"
        ),
        _data_attribute_urls,
    ),
    # Lazy loaders of old, NitroPack and forum software (Discuz!) use plain attributes too:
    # <img lazy-src="...">, <img nitro-lazy-src="...">, <img file="..." zoomfile="...">.
    (
        "lazy",
        etree.XPath(
            "//img/@*[not(starts-with(name(), 'data-'))][contains(., '.')]"
            f"[not({' or '.join(f'name() = {name!r}' for name in sorted(_IMG_NON_URL_ATTRIBUTES))})]"
        ),
        _other_img_attribute_urls,
    ),
    ("css", etree.XPath("//@style[contains(., '(')]"), _css_image_urls),
    ("css", etree.XPath("//style/text()"), _css_image_urls),
    ("css", etree.XPath("//@background"), _url),
    (
        "meta",
        etree.XPath(f"//script[{_is_one_of('@type', ['application/ld+json'])}]/text()"),
        _json_ld_urls,
    ),
    ("link-href", etree.XPath("//a/@href | //area/@href"), _image_file_url),
    ("srcdoc", etree.XPath("//iframe/@srcdoc"), _srcdoc_urls),
)
#: Inline scripts, JSON-LD aside (read above): find_images(scripts=True).
_SCRIPT_FINDERS: tuple[tuple[str, etree.XPath, _Reader], ...] = (
    (
        "script",
        etree.XPath(f"//script[not(@src)][not({_is_one_of('@type', ['application/ld+json'])})]/text()"),
        _script_image_urls,
    ),
)
_NOSCRIPT_ELEMENTS = etree.XPath("//noscript//*")
_BASE_HREF = etree.XPath("(//base[@href])[1]/@href")
_STYLESHEET_LINKS = etree.XPath(
    f"//link[contains({_lower('@rel')}, 'stylesheet')"
    f" or ({_is_one_of('@rel', ['preload'])} and {_is_one_of('@as', ['style'])})]/@href"
)
_STYLE_IMPORTS = etree.XPath("//style[contains(., '@import')]/text()")
_PAGE_LINKS = etree.XPath("//a/@href | //area/@href | //iframe/@src | //frame/@src")
_FRAMES = etree.XPath("//iframe/@src | //frame/@src")


def _image_references(
    root: etree._Element,
    srcset_mode: str,
    finders: Sequence[tuple[str, etree.XPath, _Reader]] = _IMAGE_FINDERS,
) -> Iterator[tuple[str, str, etree._Element, str]]:
    """Yield ``(source, raw URL, element, srcset descriptor)`` for each image
    reference of the document of *root*; the element is the one whose
    attribute or text holds the URL, the descriptor empty unless the URL is a
    chosen ``srcset`` candidate. References inside ``<noscript>`` come last:
    they are the fallbacks of lazy-loaded images, which other references name already.
    """
    inside_noscript = set(_NOSCRIPT_ELEMENTS(root))
    noscript_refs: list[tuple[str, str, etree._Element, str]] = []
    for source, xpath, read in finders:
        for node in xpath(root):
            element = node.getparent()
            refs = [
                (source, found.url, element, found.descriptor) if isinstance(found, SrcsetCandidate)
                else (source, found, element, "")
                for found in read(node, srcset_mode)
            ]
            if element in inside_noscript:
                noscript_refs.extend(("noscript", *ref[1:]) for ref in refs)
            else:
                yield from refs
    yield from noscript_refs


#: Longest context text kept (alt, title, caption, page title): a page may hold megabytes of it.
_MAX_TEXT = 1000
_PAGE_TITLE = etree.XPath("(//title[not(ancestor::svg)])[1]")
_FIGCAPTION = etree.XPath("./figcaption[1]")


def _text(element: etree._Element) -> str:
    """The text inside *element*, whitespace-collapsed."""
    return " ".join(etree.tostring(element, method="text", encoding="unicode", with_tail=False).split())[:_MAX_TEXT]


def _attribute_text(element: etree._Element | None, name: str) -> str:
    value = element.get(name) if element is not None else None
    return " ".join(value.split())[:_MAX_TEXT] if value else ""


def _image_context(element: etree._Element) -> tuple[str, str, str]:
    """``(alt, title, caption)`` of the image that *element* references (see :class:`ImageRef`)."""
    if not isinstance(element.tag, str):  # a comment or processing instruction
        return "", "", ""
    described = element
    if element.tag == "source" and (picture := next(element.iterancestors("picture"), None)) is not None:
        described = next(picture.iter("img"), None)
    elif element.tag == "a":
        described = next(element.iter("img"), None)
    alt = _attribute_text(described, "alt")
    title = _attribute_text(element if element.tag == "a" else described, "title")
    figure = element if element.tag == "figure" else next(element.iterancestors("figure"), None)
    captions = _FIGCAPTION(figure) if figure is not None else []
    return alt, title, _text(captions[0]) if captions else ""
