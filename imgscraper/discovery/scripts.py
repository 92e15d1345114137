"""Images in scripts: JSON-LD (schema.org) data, and the image file URLs inline scripts quote."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from imgscraper.discovery.urls import IMAGE_EXTENSIONS, is_image_url, looks_like_url

__all__ = ["json_ld_image_urls", "json_strings", "load_json", "script_image_urls"]

#: JSON-LD (schema.org) properties whose values are images.
_JSON_LD_IMAGE_KEYS = frozenset({"image", "thumbnailUrl", "thumbnail", "logo"})
#: Properties of an ImageObject that hold its URL.
_JSON_LD_URL_KEYS = frozenset({"url", "contentUrl"})

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


def load_json(text: str) -> object:
    """The JSON value of *text*, or None when it is not JSON."""
    try:
        return json.loads(text, strict=False)  # tolerate raw newlines in strings
    except (ValueError, RecursionError):
        return None


def json_strings(data: object) -> Iterator[str]:
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


def json_ld_image_urls(data: object) -> Iterator[str]:
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


def script_image_urls(text: str) -> list[str]:
    """The image file URLs quoted in a script: absolute, or relative with a leading
    ``/``, ``./`` or ``../`` (a bare file name is more often a setting than an image)."""
    urls = []
    for match in _SCRIPT_IMAGE_STRING.finditer(text):
        url = _unescape_script_url(match[1])
        if looks_like_url(url) and is_image_url(url):
            urls.append(url)
    if "url(" in text:
        urls += [url for match in _SCRIPT_CSS_URL.finditer(text) if is_image_url(url := _unescape_script_url(match[1]))]
    return urls


def _is_image_object(data: dict) -> bool:
    types = data.get("@type")
    types = types if isinstance(types, list) else [types]
    return any(
        isinstance(type_, str) and type_.endswith("ImageObject") for type_ in types
    )


def _unescape_script_url(url: str) -> str:
    # A query runs up to the closing quote, which may be escaped (\").
    return _SCRIPT_ESCAPES.sub(lambda m: "&" if m[0].endswith("26") else "/", url).rstrip("\\")
