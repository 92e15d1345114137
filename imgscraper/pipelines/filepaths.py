"""The path of a stored image under the store: ``IMGSCRAPER_FILE_PATH``, a template of fields.

:meth:`FilePathTemplate.parse` reads a template such as ``{page_host}/{page_path}/{name}-{uuid}{ext}``
(the default, ``full/{uuid}{ext}``, is the historical layout) and refuses one that could give two
images one name (without ``{uuid}`` or ``{sha256}``) or that names no file under the store;
:meth:`~FilePathTemplate.render` fills it with an image's :data:`FIELDS`. Each path component is
made safe on every file system and as an S3 key: the characters Windows and many tools refuse
(``<>:"\\|?*``) and control characters become ``_``, leading and trailing dots and spaces go, a
component left empty, ``.`` or ``..`` is dropped, and a component over 255 bytes is cut, as valid
UTF-8, in the fields that may be cut (never ``{uuid}``, ``{sha256}`` nor ``{ext}``).

:func:`image_fields` computes the fields that come from the image's and its page's URLs, and
:func:`thumbnail_path` where a thumbnail of a stored image goes (the gallery looks there). Pure
functions: no I/O, no settings.
"""

from __future__ import annotations

import posixpath
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from urllib.parse import SplitResult, unquote, urlsplit

from imgscraper.discovery.urls import IMAGE_EXTENSIONS

__all__ = ["DEFAULT_FILE_PATH", "FIELDS", "FilePathTemplate", "image_fields", "thumbnail_path"]

DEFAULT_FILE_PATH = "full/{uuid}{ext}"
#: The fields of a template, and what each is.
FIELDS = {
    "uuid": "the file's UUID (IMGSCRAPER_FILE_NAMES: from its bytes, or random)",
    "sha256": "the SHA-256 of the stored bytes, in hex",
    "ext": "the extension of the detected format, with its dot: .jpg",
    "name": "the image URL's file name without its extension, percent-decoded",
    "host": "the image URL's host",
    "page_host": "the host of the page it was found on",
    "page_path": "that page's URL path, as folders (a component of its own)",
    "page_title": "that page's <title>",
    "alt": "the image's alt text",
    "date": "the day it was stored, YYYY-MM-DD",
}
#: The fields that keep two images apart, and those never cut to fit a component in 255 bytes.
UNIQUE_FIELDS = frozenset({"uuid", "sha256"})
KEPT_FIELDS = UNIQUE_FIELDS | {"ext"}
#: The fields :func:`image_fields` computes from the URLs.
URL_FIELDS = frozenset({"name", "host", "page_host", "page_path"})
#: Bytes in a path component: the limit of ext4, XFS, btrfs, APFS and NTFS (in UTF-16 units there).
MAX_COMPONENT_BYTES = 255
#: The longest value of each field that is never cut.
_KEPT_BYTES = {"uuid": 36, "sha256": 64, "ext": 5}
#: What no component may hold: characters Windows (and S3 tools) refuse, C0 and C1 control characters.
_UNSAFE = re.compile(r'[<>:"\\|?*/\x00-\x1f\x7f-\x9f]')
_WHITESPACE = re.compile(r"\s+")

#: A component: its parts, each literal text (``field`` None) or a field's name.
Part = tuple[str, "str | None"]


@dataclass(frozen=True)
class FilePathTemplate:
    """A parsed ``IMGSCRAPER_FILE_PATH``: its text and its components, split at ``/``."""

    text: str
    components: tuple[tuple[Part, ...], ...]

    @classmethod
    def parse(cls, text: object) -> FilePathTemplate:
        """The template ``text``; raises ``ValueError("is not ..."/"has ...")`` saying what is wrong."""
        if not isinstance(text, str) or not text.strip("/"):
            raise ValueError("is not a path template such as full/{uuid}{ext}")
        try:
            parsed = list(string.Formatter().parse(text))
        except ValueError as exc:
            raise ValueError(f"is not a path template ({exc}; a literal brace is written {{{{ or }}}})") from None
        components: list[list[Part]] = [[]]
        for literal, field, spec, conversion in parsed:
            for n, piece in enumerate(literal.split("/")):
                if n:
                    components.append([])
                if piece:
                    components[-1].append((piece, None))
            if field is None:
                continue
            if field not in FIELDS:
                raise ValueError(f"has an unknown field {{{field}}} (fields: {', '.join(f'{{{name}}}' for name in FIELDS)})")
            if spec or conversion:
                raise ValueError(f"has a format in {{{field}}}: write the field bare")
            components[-1].append(("", field))
        template = cls(text, tuple(tuple(parts) for parts in components))
        template._check()
        return template

    def _check(self) -> None:
        if self.text.startswith("/") or self.text.endswith("/"):
            raise ValueError("is not a relative path to a file: drop the leading or trailing /")
        if not self.fields & UNIQUE_FIELDS:
            raise ValueError("has no {uuid} or {sha256}, which keep two images apart: add one")
        for parts in self.components:
            literal = "".join(text for text, field in parts if field is None)
            if not parts or (literal in (".", "..") and len(parts) == 1):
                raise ValueError("has an empty, . or .. folder")
            if _UNSAFE.search(literal):
                raise ValueError(f"has a character no file name may hold in {literal!r}")
            if ("", "page_path") in parts and len(parts) > 1:
                raise ValueError("has {page_path} beside other text: it is folders, write it between slashes")
            kept = sum(_KEPT_BYTES.get(field or "", 0) for _, field in parts)
            if len(literal.encode("utf-8")) + kept > MAX_COMPONENT_BYTES:
                raise ValueError(f"has a component longer than {MAX_COMPONENT_BYTES} bytes")

    @cached_property
    def fields(self) -> frozenset[str]:
        """The fields the template uses."""
        return frozenset(field for parts in self.components for _, field in parts if field)

    @property
    def folder(self) -> str:
        """The folders every path starts with (the template's leading literal ones): ``full`` by default."""
        folders = []
        for parts in self.components[:-1]:
            if len(parts) != 1 or parts[0][1] is not None:
                break
            folders.append(parts[0][0])
        return "/".join(folders)

    @property
    def from_bytes_only(self) -> bool:
        """Whether the path depends on the stored bytes only (with stable UUIDs): the same bytes
        always get the same path."""
        return self.fields <= KEPT_FIELDS

    def render(self, values: Mapping[str, str]) -> str:
        """The path for ``values`` (every field the template uses), each component made safe."""
        out: list[str] = []
        for parts in self.components:
            if parts == (("", "page_path"),):
                out += (_fit([(folder, True)]) for folder in values["page_path"].split("/"))
            else:
                out.append(_fit([_part(text, field, values) for text, field in parts]))
        return "/".join(component for component in out if component)


def _part(text: str, field: str | None, values: Mapping[str, str]) -> tuple[str, bool]:
    """A component's part as :func:`_fit` takes it: its text, and whether it may be cut."""
    if field is None:
        return text, False
    return _field_text(field, values[field]), field not in KEPT_FIELDS


def _field_text(field: str, value: str) -> str:
    """A field's value as it may stand in a file name (its whitespace collapsed, unsafe characters ``_``)."""
    return value if field in KEPT_FIELDS else _UNSAFE.sub("_", _WHITESPACE.sub(" ", value).strip())


def _fit(parts: list[tuple[str, bool]]) -> str:
    """The component of ``parts`` (text, whether it may be cut) in at most 255 bytes of UTF-8, the
    longest part that may be cut shortened first, without its leading and trailing dots and
    spaces; empty for a component that is nothing, ``.`` or ``..``."""
    texts = [_UNSAFE.sub("_", text) for text, _ in parts]
    excess = sum(len(text.encode("utf-8")) for text in texts) - MAX_COMPONENT_BYTES
    while excess > 0:
        cuttable = [n for n, (_, may_cut) in enumerate(parts) if may_cut and texts[n]]
        if not cuttable:
            break
        longest = max(cuttable, key=lambda n: len(texts[n].encode("utf-8")))
        encoded = texts[longest].encode("utf-8")
        texts[longest] = encoded[: max(len(encoded) - excess, 0)].decode("utf-8", "ignore").rstrip(" .")
        excess -= len(encoded) - len(texts[longest].encode("utf-8"))
    return "".join(texts).strip(" .")


def image_fields(url: str, page: str) -> dict[str, str]:
    """:data:`URL_FIELDS` of the image at ``url`` found on ``page``: ``name`` (the file name
    without its extension, percent-decoded), ``host``, ``page_host`` and ``page_path`` (the page's
    path without its leading and trailing slashes, percent-decoded). Empty for a ``data:`` URI or no page."""
    image, on_page = _split(url), _split(page)
    name = posixpath.splitext(posixpath.basename(unquote(image.path)))[0] if image.hostname else ""
    return {
        "name": name,
        "host": image.hostname or "",
        "page_host": on_page.hostname or "",
        "page_path": unquote(on_page.path).strip("/"),
    }


def _split(url: str) -> SplitResult:
    """``url`` split, or nothing for one that is not http(s) or is malformed."""
    try:
        return urlsplit(url if url.startswith(("http://", "https://")) else "")
    except ValueError:
        return urlsplit("")


def thumbnail_path(path: str, thumb_id: str) -> str:
    """Where the JPEG thumbnail ``thumb_id`` of the image stored at ``path`` goes:
    ``thumbs/<thumb_id>/`` and the image's path without ``full/`` and its extension, ``.jpg``
    (``full/<uuid>.png`` -> ``thumbs/<thumb_id>/<uuid>.jpg``)."""
    stem, extension = posixpath.splitext(path.removeprefix("full/"))
    if extension[1:].lower() not in IMAGE_EXTENSIONS:
        stem += extension
    return f"thumbs/{thumb_id}/{stem}.jpg"
