"""Images in CSS: ``url()`` and ``image-set()`` values, and the style sheets a sheet imports.

A single regular expression tokenizes the CSS that matters (comments, strings,
``@import``, ``@font-face``, ``url()``, ``image-set()``) and skips the rest.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from w3lib.html import HTML5_WHITESPACE

from imgscraper.discovery.references import ImageRef
from imgscraper.discovery.urls import clean_url, http_url, image_url, is_non_image_file

__all__ = ["css_image_urls", "css_import_urls", "find_css_images"]

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


def find_css_images(css: str, base_url: str) -> list[ImageRef]:
    """Return the images the style sheet *css* references, each once.

    *base_url* is the sheet's own URL, which its relative URLs resolve
    against. Fonts and other files that are never images are left out; the
    source of every result is ``"stylesheet"``.
    """
    images: dict[str, ImageRef] = {}
    for value in _css_urls(css):
        if is_non_image_file(value):
            continue
        url = image_url(value, base_url)
        if url and url not in images:
            images[url] = ImageRef(url, "stylesheet")
    return list(images.values())


def css_import_urls(css: str, base_url: str) -> list[str]:
    """Return the absolute ``http(s)`` URLs of the style sheets that *css* imports."""
    urls: dict[str, None] = {}
    for match in _CSS_IMPORT.finditer(css):
        url = http_url(clean_url(_css_unescape(next(g for g in match.groups() if g is not None))), base_url)
        if url:
            urls[url] = None
    return list(urls)


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
