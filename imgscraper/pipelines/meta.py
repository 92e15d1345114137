"""What the store pipeline keeps about one image request, under one ``request.meta`` key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scrapy.http import Request

    from imgscraper.pipelines.inspection import ImageInfo
    from imgscraper.pipelines.records import ImageRecord

__all__ = ["META_KEY", "ImageMeta"]

#: The ``request.meta`` key of an image request's :class:`ImageMeta`: its presence marks the request as one.
META_KEY = "imgscraper_image"


@dataclass
class ImageMeta:
    """The pipeline's state of one image request.

    Known when the request is made: ``context`` (how the page showed the image, kept in
    the store's record), ``link`` (the page linked to the image rather than showing it),
    ``original_of`` (for the original of a thumbnail: the URL the page named, fetched instead
    if the original fails).
    Learnt along the way: ``uuid`` (the file name in ``random`` mode, minted once), ``path``
    (where it is stored, computed once),
    ``record`` (of a stored image being revalidated), ``info``, ``checksum`` (SHA-256 of
    the bytes to store) and ``phash`` of the image; while the body arrives, ``received``
    (its bytes so far, when counted) and ``filtered`` (why the filter stopped it).
    Redirects and retries copy ``request.meta`` shallowly: they share this object.
    """

    # Known when the request is made.
    context: dict[str, str] = field(default_factory=dict)
    link: bool = False
    original_of: str = ""
    # Learnt along the way.
    uuid: str = ""
    path: str = ""
    record: ImageRecord | None = None
    # Of the image's bytes.
    info: ImageInfo | None = None
    checksum: str = ""
    phash: int | None = None
    # While the body arrives.
    received: int | None = None
    filtered: str = ""

    @classmethod
    def of(cls, request: Request) -> ImageMeta:
        """The state of ``request``: a new one for a request the pipeline did not make."""
        meta: ImageMeta = request.meta.setdefault(META_KEY, cls())
        return meta
