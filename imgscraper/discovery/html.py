"""Images, links, frames, style sheets and the title of an HTML page.

:func:`find_images` lists every image the page references, the way a browser
(plus the usual lazy-loading scripts) would load them, and
:func:`find_page_links` lists the HTML pages worth following.

Nodes are selected with compiled XPath expressions, evaluated by lxml on the
document the :class:`parsel.Selector` already holds: a page costs one parse
and a few tree walks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from string import ascii_lowercase, ascii_uppercase
from urllib.parse import urljoin

from lxml import etree
from parsel import Selector
from scrapy.linkextractors import IGNORED_EXTENSIONS
from w3lib.html import strip_html5_whitespace

from imgscraper.discovery.css import css_image_urls, css_import_urls
from imgscraper.discovery.lazy import DATA_ATTRIBUTES, OTHER_IMG_ATTRIBUTES, data_attribute_urls, other_img_attribute_urls
from imgscraper.discovery.references import ImageRef
from imgscraper.discovery.scripts import json_ld_image_urls, load_json, script_image_urls
from imgscraper.discovery.srcset import SRCSET_MODES, SrcsetCandidate, parse_srcset, pick_srcset_candidates
from imgscraper.discovery.urls import (
    clean_url,
    http_url,
    image_url,
    is_image_url,
    is_non_image_file,
    other_scheme_url,
    url_extension,
)

__all__ = ["find_frames", "find_images", "find_page_links", "find_page_title", "find_stylesheets"]

#: Extensions of links that are files to download, not pages to read.
_NON_PAGE_EXTENSIONS = frozenset(IGNORED_EXTENSIONS) | {"gz", "tgz", "bz2", "xz", "zst", "csv", "epub", "mkv", "flac"}


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
    it. *srcset* is the :func:`~imgscraper.discovery.srcset.pick_srcset` mode
    applied to each ``srcset``-like attribute.

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
    if srcset not in SRCSET_MODES:
        raise ValueError(f"srcset must be one of {SRCSET_MODES}, got {srcset!r}")
    root = _as_selector(document).root
    base_url = _document_base_url(root, base_url)
    images: dict[str, ImageRef] = {}
    resolved: dict[str, str | None] = {}
    finders = _IMAGE_FINDERS + _SCRIPT_FINDERS if scripts else _IMAGE_FINDERS
    for source, value, element, descriptor in _image_references(root, srcset, finders):
        if value in resolved:
            url = resolved[value]
        else:
            url = resolved[value] = image_url(value, base_url)
            if url is None and ignored is not None:
                other = other_scheme_url(value, base_url)
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
    (see :func:`~imgscraper.discovery.urls.is_image_url`) nor other files by their extension
    (Scrapy's ``IGNORED_EXTENSIONS``: documents, archives, media,
    programs), without fragment. ``javascript:``, ``mailto:``, ``tel:``,
    ``data:`` and other schemes are ignored.
    """
    return _page_urls(_as_selector(document).root, base_url, _PAGE_LINKS)


def find_frames(document: Selector | str, base_url: str) -> list[str]:
    """Return the pages *document* shows inside itself (``<iframe src>``,
    ``<frame src>``), each once, in order, filtered like :func:`find_page_links`."""
    return _page_urls(_as_selector(document).root, base_url, _FRAMES)


def find_stylesheets(document: Selector | str, base_url: str) -> list[str]:
    """Return the external style sheets *document* loads, each once, in order.

    These are the absolute ``http(s)`` URLs of ``<link rel="stylesheet">``
    (and ``<link rel="preload" as="style">``), then of the ``@import`` rules
    of ``<style>`` blocks. Browsers load the background images these sheets
    name: :func:`~imgscraper.discovery.css.find_css_images` reads them.
    """
    root = _as_selector(document).root
    base_url = _document_base_url(root, base_url)
    sheets: dict[str, None] = {}
    for value in _STYLESHEET_LINKS(root):
        url = http_url(clean_url(value), base_url)
        if url:
            sheets[url] = None
    for css in _STYLE_IMPORTS(root):
        sheets.update(dict.fromkeys(css_import_urls(css, base_url)))
    return list(sheets)


def _page_urls(root: etree._Element, base_url: str, xpath: etree.XPath) -> list[str]:
    base_url = _document_base_url(root, base_url)
    links: dict[str, None] = {}
    for value in xpath(root):
        url = http_url(clean_url(value), base_url)
        if url and not is_image_url(url) and url_extension(url) not in _NON_PAGE_EXTENSIONS:
            links[url] = None
    return list(links)


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
    return pick_srcset_candidates(parse_srcset(value), srcset_mode)


def _css_urls(css: _SmartString, srcset_mode: str) -> list[str]:
    return [url for url in css_image_urls(css) if not is_non_image_file(url)]


def _json_ld_urls(text: _SmartString, srcset_mode: str) -> list[str]:
    return list(json_ld_image_urls(load_json(text)))


def _script_urls(text: _SmartString, srcset_mode: str) -> list[str]:
    return script_image_urls(text)


def _srcdoc_urls(html: _SmartString, srcset_mode: str) -> list[str]:
    """The image references of the document an ``<iframe srcdoc>`` holds
    (its relative URLs resolve against the page's, as a browser's do)."""
    if not html.strip():
        return []
    return [url for _, url, _, _ in _image_references(Selector(text=str(html)).root, srcset_mode)]


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
    ("lazy", DATA_ATTRIBUTES, data_attribute_urls),
    ("lazy", OTHER_IMG_ATTRIBUTES, other_img_attribute_urls),
    ("css", etree.XPath("//@style[contains(., '(')]"), _css_urls),
    ("css", etree.XPath("//style/text()"), _css_urls),
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
        _script_urls,
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


# --- The context of an image -------------------------------------------------

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
