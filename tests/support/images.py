"""Images for the tests: deterministic, and different for every seed.

:func:`picture` draws the picture of a seed; :func:`png` and :func:`jpeg` encode it, and
:func:`encode` any picture in any format Pillow writes.
"""

from __future__ import annotations

import io
import random
import zlib

from PIL import Image, ImageDraw

__all__ = ["encode", "jpeg", "picture", "png"]


def _rng(seed: int | str) -> random.Random:
    return random.Random(zlib.crc32(str(seed).encode("utf-8")))


def picture(seed: int | str, size: tuple[int, int]) -> Image.Image:
    """An RGB picture of shapes on a background, the same for the same ``seed``, different for
    every other one."""
    rng = _rng(seed)
    w, h = size
    img = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(img)
    for _ in range(8):
        x0, y0 = rng.randrange(w), rng.randrange(h)
        x1, y1 = rng.randrange(x0, w + 1), rng.randrange(y0, h + 1)
        color = tuple(rng.randrange(256) for _ in range(3))
        if rng.random() < 0.5:
            draw.rectangle([x0, y0, x1, y1], fill=color)
        else:
            draw.ellipse([x0, y0, x1, y1], fill=color)
    # A seed-dependent pixel row makes collisions impossible in practice.
    for x in range(min(w, 16)):
        img.putpixel((x, h - 1), tuple(rng.randrange(256) for _ in range(3)))
    return img


def encode(img: Image.Image, fmt: str, **params) -> bytes:
    """``img`` saved in ``fmt`` (a Pillow format name) with Pillow's ``params``."""
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def png(seed: int | str, size: tuple[int, int] = (40, 30), *, noise: bool = False) -> bytes:
    """The PNG of :func:`picture`; with ``noise``, of random pixels instead: a file that does not
    compress (about 3 bytes a pixel), for tests that need bodies of a known size."""
    if noise:
        img = Image.frombytes("RGB", size, random.Random(seed).randbytes(size[0] * size[1] * 3))
    else:
        img = picture(seed, size)
    return encode(img, "PNG")


def jpeg(seed: int | str, size: tuple[int, int] = (40, 30)) -> bytes:
    """The JPEG (quality 85) of :func:`picture`."""
    return encode(picture(seed, size), "JPEG", quality=85)
