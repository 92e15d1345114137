"""Perceptual hashes of images, to tell near-duplicates (resized, re-encoded copies) apart from other images.

:func:`perceptual_hash` is the DCT hash known as pHash: the picture in 32x32
grayscale, the 8x8 lowest frequencies of its 2-D DCT-II, one bit per
coefficient saying whether it is above their median. Copies of one picture
(resized, recompressed, slightly cropped) are a few bits apart
(:func:`hamming_distance`); unrelated pictures about 32. Pure Python, no
numpy: only the 8 needed coefficients of each row and column are computed
(32 x 8 x 32 + 8 x 8 x 32 = 10,240 multiply-adds). A JPEG is decoded in
Pillow's draft mode, at 1/2 to 1/8 of its size and in grayscale, which is
most of the saving.

:class:`NearDuplicateIndex` holds the hashes of stored images and answers
"is this image a near-duplicate of one of them?". The pipeline claims an image's
place among them before storing it, through a :class:`NearDuplicateClaimsProtocol`
named by ``IMGSCRAPER_NEAR_DUPLICATE_CLAIMS``: :class:`NearDuplicateClaims`, in this
process, or one that a crawl shared by several workers installs
(:class:`imgscraper.distributed.nearduplicates.SharedNearDuplicateClaims`).
"""

from __future__ import annotations

import logging
import math
import sqlite3
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from io import BytesIO
from operator import mul
from typing import TYPE_CHECKING, Protocol

from PIL import Image

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from typing_extensions import Self

    from imgscraper.pipelines.records import StoreRecord

__all__ = [
    "HashedImage", "NearDuplicateClaims", "NearDuplicateClaimsProtocol", "NearDuplicateIndex", "hamming_distance",
    "perceptual_hash", "stored_images",
]

logger = logging.getLogger(__name__)

_SIZE = 32  # the grayscale picture the DCT runs on
_KEPT = 8  # lowest frequencies kept per axis: 8 x 8 = 64 bits
#: cos(pi * (2x + 1) * u / 64) for the kept frequencies u and every pixel x.
_COSINES = [[math.cos(math.pi * (2 * x + 1) * u / (2 * _SIZE)) for x in range(_SIZE)] for u in range(_KEPT)]


def perceptual_hash(data: bytes) -> int:
    """The 64-bit pHash of the image ``data`` (the first frame of an animation).

    Raises what Pillow raises for bytes it cannot decode (``OSError``,
    ``ValueError``, ``Image.DecompressionBombError``...).
    """
    with Image.open(BytesIO(data)) as image:
        # A JPEG decodes at the smallest scale still >= 64x64, in grayscale; other formats ignore it.
        image.draft("L", (2 * _SIZE, 2 * _SIZE))
        # Pillow warns when it converts a palette with per-entry transparency straight to L.
        picture = image.convert("RGBA") if image.mode == "P" else image
        gray = picture.convert("L").resize((_SIZE, _SIZE), Image.Resampling.BOX)
    pixels = gray.tobytes()
    rows = [pixels[y * _SIZE : (y + 1) * _SIZE] for y in range(_SIZE)]
    # DCT of every row, kept frequencies only (32 x 8), then of the 8 resulting columns.
    row_frequencies = [[sum(map(mul, cosines, row)) for cosines in _COSINES] for row in rows]
    columns = list(zip(*row_frequencies))
    frequencies = [sum(map(mul, cosines, column)) for cosines in _COSINES for column in columns]
    median = statistics.median(frequencies)
    bits = 0
    for frequency in frequencies:
        bits = (bits << 1) | (frequency > median)
    return bits


def hamming_distance(a: int, b: int) -> int:
    """How many bits of the hashes ``a`` and ``b`` differ."""
    return (a ^ b).bit_count()


@dataclass(frozen=True)
class HashedImage:
    """A stored image, as the index knows it (and the URL it was fetched from, when known: not
    part of what makes two images the same)."""

    phash: int
    width: int
    height: int
    path: str
    url: str = field(default="", compare=False)


class NearDuplicateIndex:
    """The hashes of stored images.

    An image is a near-duplicate of a stored one when their hashes are at
    most ``max_distance`` bits apart, their aspect ratios (width / height)
    differ by at most ``aspect_tolerance`` (relative: rounding when resizing
    a small picture changes it a little) and the stored one is at least as
    wide and as high. Not thread-safe.

    Hashes at most ``max_distance`` bits apart agree on at least one of
    ``max_distance + 1`` disjoint ranges of their bits (pigeonhole): the
    images are filed by the value of each range, and :meth:`find` compares
    only those that share one with the hash sought (a few hundredths of a
    large store, instead of all of it).
    """

    def __init__(self, max_distance: int, aspect_tolerance: float, images: Iterable[HashedImage] = ()):
        self.max_distance = max_distance
        self.aspect_tolerance = aspect_tolerance
        parts = max_distance + 1
        bounds = [64 * n // parts for n in range(parts + 1)]
        #: (shift, mask) of each range of bits.
        self._ranges = [(low, (1 << (high - low)) - 1) for low, high in zip(bounds, bounds[1:])]
        self._filed: list[dict[int, list[HashedImage]]] = [defaultdict(list) for _ in self._ranges]
        for image in images:
            self.add(image)

    def add(self, image: HashedImage) -> None:
        for (shift, mask), filed in zip(self._ranges, self._filed):
            filed[(image.phash >> shift) & mask].append(image)

    def remove(self, image: HashedImage) -> None:
        """Forget ``image`` (added, then not stored after all)."""
        for (shift, mask), filed in zip(self._ranges, self._filed):
            bucket = filed.get((image.phash >> shift) & mask)
            if bucket is not None and image in bucket:
                bucket.remove(image)

    def find(self, phash: int, width: int, height: int) -> HashedImage | None:
        """A stored image that the image ``(phash, width, height)`` is a near-duplicate of (the closest), or None."""
        best, best_distance = None, self.max_distance + 1
        for (shift, mask), filed in zip(self._ranges, self._filed):
            for stored in filed.get((phash >> shift) & mask, ()):
                distance = hamming_distance(stored.phash, phash)
                if (
                    distance < best_distance
                    and stored.width >= width
                    and stored.height >= height
                    and abs(stored.width * height - width * stored.height)
                    <= self.aspect_tolerance * stored.width * height
                ):
                    best, best_distance = stored, distance
        return best


def stored_images(record: StoreRecord | None) -> list[HashedImage]:
    """The images in the store's ``record`` that have a hash, one per file (none if it cannot be read)."""
    if record is None:
        return []
    try:
        hashed = {r.path: r for r in record.all() if r.phash and r.path and r.width and r.height}
    except (OSError, sqlite3.Error) as exc:
        logger.warning("Cannot read the hashes of stored images (%s): near-duplicates of this crawl only", exc)
        return []
    return [HashedImage(int(r.phash, 16), r.width, r.height, r.path) for r in hashed.values()]


class NearDuplicateClaimsProtocol(Protocol):
    """The stored images' hashes, among which the pipeline claims an image's place before storing it.

    An implementation is named by ``IMGSCRAPER_NEAR_DUPLICATE_CLAIMS`` and built with
    ``from_crawler(crawler, record)`` (``record``: the store's record, or None), whose
    hashed images count as stored. Its methods are called on the crawl's event loop.
    """

    @classmethod
    def from_crawler(cls, crawler: Crawler, record: StoreRecord | None) -> Self: ...

    async def claim(self, image: HashedImage) -> HashedImage | None:
        """File ``image``, about to be stored, unless a stored image is a near-duplicate of it:
        then return that one (the closest; possibly the file at ``image.path`` itself, claimed
        before) and file nothing. Atomic: of near-duplicates claimed together, one is filed."""

    async def release(self, image: HashedImage) -> None:
        """Forget ``image``, filed by :meth:`claim` and then not stored: its copies are not near-duplicates of it."""


class NearDuplicateClaims:
    """:class:`NearDuplicateClaimsProtocol` in this process: a :class:`NearDuplicateIndex` of the
    images ``stored`` (the store's record) and of those claimed since."""

    #: Perceptual hashes at most this many bits apart. Resized, recompressed and re-encoded copies of
    #: a picture are 0 to 4 bits apart, copies cropped by 1-2% up to 4, by 5% up to 8; unrelated
    #: pictures 32 on average (tests/pipelines/test_nearduplicates.py).
    MAX_DISTANCE = 6
    #: ... and width / height ratios at most this far apart (relative): a resize rounds to whole pixels.
    ASPECT_TOLERANCE = 0.03

    def __init__(self, stored: Iterable[HashedImage] = ()):
        self.index = NearDuplicateIndex(self.MAX_DISTANCE, self.ASPECT_TOLERANCE, stored)

    @classmethod
    def from_crawler(cls, crawler: Crawler, record: StoreRecord | None) -> Self:
        return cls(stored_images(record))

    async def claim(self, image: HashedImage) -> HashedImage | None:
        stored = self.index.find(image.phash, image.width, image.height)
        if stored is None:
            self.index.add(image)
        return stored

    async def release(self, image: HashedImage) -> None:
        self.index.remove(image)
